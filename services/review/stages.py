"""Where a task stands for the officer console, as pure functions: its stage (the queue it
shows in), whether it is on time, and the working time left on its step.

Stages (hàng đợi), derived from the national portal status code of the task's state, so every
workflow's states fall in one without naming them:
- `reception` (tiếp nhận): 1, new, to be received or refused;
- `in_process` (đang xử lý): 2 and 4, received, being checked or approved;
- `waiting_citizen` (chờ công dân): 5 and 6, or any state whose clock is paused — the citizen
  must supplement documents or pay;
- `handover` (chờ trả kết quả): 9, decided, the result to be handed over;
- `closed` (đã kết thúc): a terminal state (3, 7, 8, 10).

Timeliness of an open step with a deadline (`due_at`): `overdue` once the deadline has passed;
`due_soon` from the moment review's deadlines module announces `dossier.due_soon` (when
`REMIND_AT_SHARE` of the step's SLA is used: the task's `remind_at`), or at once for a step
resumed with less than that left (it has no reminder); `on_time` before. A step without a
deadline (paused, closed, no SLA) has none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from services.review.domain import Task
from shared.calendar import HOURS_PER_DAY, WorkingCalendar

Stage = Literal["reception", "in_process", "waiting_citizen", "handover", "closed"]
STAGES: tuple[Stage, ...] = get_args(Stage)
OPEN_STAGES: tuple[Stage, ...] = tuple(s for s in STAGES if s != "closed")
STAGE_OF_STATUS: dict[int, Stage] = {
    1: "reception",
    2: "in_process",
    4: "in_process",
    5: "waiting_citizen",
    6: "waiting_citizen",
    9: "handover",
    3: "closed",
    7: "closed",
    8: "closed",
    10: "closed",
}
STAGE_NAMES_VI: dict[Stage, str] = {
    "reception": "Chờ tiếp nhận",
    "in_process": "Đang xử lý",
    "waiting_citizen": "Chờ công dân bổ sung hoặc nộp phí",
    "handover": "Đã xử lý, chờ trả kết quả",
    "closed": "Đã kết thúc",
}
STAGE_NAMES_EN: dict[Stage, str] = {
    "reception": "To be received",
    "in_process": "In process",
    "waiting_citizen": "Waiting for the citizen (supplement or payment)",
    "handover": "Decided, awaiting hand-over",
    "closed": "Closed",
}

Timeliness = Literal["on_time", "due_soon", "overdue"]
TIMELINESS: tuple[Timeliness, ...] = get_args(Timeliness)


def stage_of(task: Task) -> Stage:
    """The queue a task shows in (see the module's docstring)."""
    if task.terminal:
        return "closed"
    if task.paused_at is not None:  # the clock stands still: the citizen's move
        return "waiting_citizen"
    return STAGE_OF_STATUS.get(task.status_code, "in_process")


def soon_at(task: Task) -> datetime | None:
    """When the task's step becomes due soon (None: its step has no deadline)."""
    if task.terminal or task.due_at is None:
        return None
    return task.remind_at or task.state_since or task.created_at


def timeliness(task: Task, now: datetime) -> Timeliness | None:
    """On time, due soon or overdue at `now` (None: no deadline runs)."""
    soon = soon_at(task)
    if soon is None or task.due_at is None:
        return None
    if task.due_at < now:
        return "overdue"
    return "due_soon" if soon <= now else "on_time"


@dataclass(frozen=True)
class StageCount:
    """How many open tasks a stage holds, and how many of them are overdue or due soon."""

    total: int = 0
    overdue: int = 0
    due_soon: int = 0


def stage_count(total: int, near: list[datetime], now: datetime) -> StageCount:
    """A stage's count: its `total` open tasks, and of the deadlines of those past their
    due-soon moment (`near`), the ones passed (overdue) and the others (due soon)."""
    overdue = sum(1 for due in near if due < now)
    return StageCount(total, overdue, len(near) - overdue)


@dataclass(frozen=True)
class TimeLeft:
    """Working time to the step's deadline, in the shared calendar: `working_hours` is signed
    (negative once overdue); `days` and `hours` split its size into 8-hour working days."""

    working_hours: float
    days: int
    hours: float


def time_left(task: Task, now: datetime, calendar: WorkingCalendar) -> TimeLeft | None:
    """The working time left on the task's step (None: no deadline runs)."""
    if soon_at(task) is None or task.due_at is None:
        return None
    if task.due_at >= now:
        signed = calendar.working_hours_between(now, task.due_at)
    else:
        signed = -calendar.working_hours_between(task.due_at, now)
    size = round(abs(signed), 2)
    days = int(size // HOURS_PER_DAY)
    return TimeLeft(round(signed, 2), days, round(size - days * HOURS_PER_DAY, 2))


def ward_of(task: Task) -> str | None:
    """The ward (mã phường/xã) a task's dossier was filed for, if it names one."""
    dossier = task.dossier
    residence = dossier.get("residence")
    ward = dossier.get("ward_code") or (
        residence.get("ward_code") if isinstance(residence, dict) else None
    )
    return str(ward) if ward else None


def phone_of(task: Task) -> str | None:
    """The applicant's mobile number, in the +84 form a search looks it up by."""
    applicant = task.dossier.get("applicant")
    phone = applicant.get("phone") if isinstance(applicant, dict) else None
    return phone_key(str(phone)) if phone else None


_MOBILE = re.compile(r"^(?:\+?84|0)([35789]\d{8})$")


def phone_key(text: str) -> str | None:
    """A Vietnamese mobile number in the +84 form dossiers carry, or None if `text` is not one
    (then a search takes it for a dossier code)."""
    match = _MOBILE.match(re.sub(r"[\s.\-()]", "", text))
    return "+84" + match.group(1) if match else None
