"""How a task's deadline reads on a page, as pure functions: the working time left in working
days and hours of the shared calendar ("còn 2 ngày 3 giờ", "quá hạn 1 ngày"), whether it is on
time, due soon or overdue (a word beside the colour, never the colour alone), and local times."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.calendar import HOURS_PER_DAY, VIETNAM

Timeliness = Literal["on_time", "due_soon", "overdue"]
TIMELINESS: tuple[Timeliness, ...] = ("on_time", "due_soon", "overdue")
Translate = Callable[..., str]


@dataclass(frozen=True)
class Deadline:
    """A step's deadline as a row or the dossier page shows it: the class that colours it, the
    word that says the same, the working time left (or late by), and the due moment."""

    timeliness: Timeliness | None
    label: str
    left: str
    due_at: str

    @property
    def css(self) -> str:
        return self.timeliness or "no_deadline"


def split_hours(working_hours: float) -> tuple[int, int, int]:
    """|working_hours| as (working days of HOURS_PER_DAY, hours, minutes), to the minute."""
    minutes = round(abs(working_hours) * 60)
    days, rest = divmod(minutes, HOURS_PER_DAY * 60)
    hours, minutes = divmod(rest, 60)
    return days, hours, minutes


def time_left_text(working_hours: float, t: Translate) -> str:
    """ "còn 2 ngày 3 giờ" / "quá hạn 1 ngày" (minutes only under a day, so it stays short)."""
    days, hours, minutes = split_hours(working_hours)
    parts = []
    if days:
        parts.append(t("time.days", n=days))
    if hours:
        parts.append(t("time.hours", n=hours))
    if minutes and not days:
        parts.append(t("time.minutes", n=minutes))
    if not parts:
        return t("time.due_now")
    span = " ".join(parts)
    return t("time.overdue_by", span=span) if working_hours < 0 else t("time.left", span=span)


def local(moment: str | datetime | None) -> str:
    """A moment as Vietnamese officers read it: "14:30 03/12/2026", in Vietnam's time."""
    if moment is None or moment == "":
        return ""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y")


def timeliness_of(task: Mapping[str, Any]) -> Timeliness | None:
    """The API's `timeliness`; from an older review, only overdue is known (`waiting.overdue`)."""
    value = task.get("timeliness")
    if value in TIMELINESS:
        return value  # type: ignore[no-any-return]
    waiting = task.get("waiting") or {}
    return "overdue" if waiting.get("overdue") else None


def deadline(task: Mapping[str, Any], t: Translate) -> Deadline:
    """The deadline of the task's current step, as words (no deadline: empty texts)."""
    waiting = task.get("waiting") or {}
    due_at = task.get("due_at") or waiting.get("due_at")
    kind = timeliness_of(task) if due_at else None
    left = task.get("time_left")
    if isinstance(left, dict) and isinstance(left.get("working_hours"), int | float):
        left_text = time_left_text(float(left["working_hours"]), t)
    else:
        left_text = ""
    if not due_at:
        paused = waiting.get("clock") == "paused"
        return Deadline(None, t("time.paused") if paused else t("time.no_deadline"), "", "")
    return Deadline(kind, t(f"time.{kind}") if kind else "", left_text, local(due_at))


def named(kind: str, code: str, t: Translate, fallback: object = None) -> str:
    """A workflow state's or action's name in the page's language (`state.x`, `action.x`),
    else the API's, else its code: a new workflow's words never break a page."""
    try:
        return t(f"{kind}.{code}")
    except KeyError:
        return str(fallback or code)
