"""Review's pure rules: the `Task` aggregate, who gets one, who may see and act on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services.review.roster import Officer
from services.review.workflow import REMIND_AT_SHARE, NotAllowed, Step, Workflow
from shared import roles
from shared.calendar import WorkingCalendar

UNIT_WIDE_ROLES = roles.UNIT_WIDE
MAX_STEPS = 1000  # a task's own history is bounded: one document never outgrows MongoDB's 16 MB


class DomainError(Exception):
    """A rule of review was broken; nothing was changed."""


class NotFound(DomainError):
    pass


class Forbidden(DomainError):
    pass


class Conflict(DomainError):
    def __init__(
        self,
        message: str,
        allowed: Sequence[str] = (),
        *,
        code: str = "action_not_allowed",
        message_vi: str = "Thao tác không thực hiện được ở bước hiện tại.",
    ) -> None:
        super().__init__(message)
        self.allowed = list(allowed)
        self.code = code
        self.message_vi = message_vi


class InvalidAction(DomainError):
    """The request itself is wrong (e.g. a reason is required)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "reason_required",
        message_vi: str = "Thao tác cần nêu lý do.",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message_vi = message_vi


@dataclass(frozen=True)
class Transition:
    """One step a task took: what, by whom, when, and where it left the task."""

    version: int
    action: str
    state: str
    officer_id: str | None
    decided_by: str
    decided_at: datetime
    reason: str | None
    promised_at: datetime | None
    due_at: datetime | None = None  # the deadline of the step it finished (None: kept the step)
    form: str | None = None  # a printed slip's form (action "print")
    missing: tuple[str, ...] = ()  # the document types a supplement request asks for

    @property
    def on_time(self) -> bool | None:
        """Whether the step it finished was done by its deadline (None: it had none)."""
        return None if self.due_at is None else self.decided_at <= self.due_at

    def view(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "action": self.action,
            "state": self.state,
            "officer_id": self.officer_id,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "reason": self.reason,
            "promised_at": self.promised_at,
            "due_at": self.due_at,
            "on_time": self.on_time,
            "form": self.form,
            "missing": list(self.missing),
        }


TimerKind = str  # "reminder" (dossier.due_soon) or "overdue" (dossier.overdue)


@dataclass(frozen=True)
class Task:
    """An officer's piece of work on one dossier, in a state of its procedure's workflow,
    with the steps it took (its own bounded history) and its next SLA timer."""

    id: str
    dossier_code: str
    procedure_code: str
    unit_id: str
    officer_id: str | None  # None: released to the unit, waiting for someone to claim it
    state: str
    created_at: datetime
    correlation_id: str
    dossier: Mapping[str, Any]
    workflow: str = "one-level"
    workflow_version: int = 1
    terminal: bool = False
    status_code: int = 1
    version: int = 1
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    state_since: datetime | None = None
    remind_at: datetime | None = None
    due_at: datetime | None = None
    escalated_to: str | None = None
    promised_at: datetime | None = None
    paused_at: datetime | None = None
    paused_from: str | None = None
    paused_due_at: datetime | None = None
    procedure_name: str | None = None
    steps: tuple[Transition, ...] = ()
    timer_at: datetime | None = None  # the next timer to fire: reminder, then overdue
    timer_kind: TimerKind | None = None
    emitted: tuple[Mapping[str, Any], ...] = ()  # every event it emitted, as stored (its outbox)
    # Storage's mark of emitted events not published yet (shared.outbox's inline scheme): the
    # ids and since when (epoch ms). Carried as read, so the next write keeps the mark.
    unpublished: tuple[str, ...] = ()
    unpublished_since: int | None = None

    @property
    def is_open(self) -> bool:
        return not self.terminal

    @property
    def procedure_label(self) -> str:
        """The procedure's Vietnamese name, or its code when the submission gave none."""
        return self.procedure_name or self.procedure_code


@dataclass(frozen=True)
class Schedule:
    """The clock of a task after a step: its reminder and due moments, the promised date in
    force, and, while the clock is paused, what to carry over when it runs again."""

    remind_at: datetime | None
    due_at: datetime | None
    promised_at: datetime | None
    paused_at: datetime | None = None
    paused_from: str | None = None
    paused_due_at: datetime | None = None

    @classmethod
    def of(cls, task: Task) -> Schedule:
        """The task's clock as it stands (for steps that change who holds it, or its date)."""
        return cls(
            task.remind_at,
            task.due_at,
            task.promised_at,
            task.paused_at,
            task.paused_from,
            task.paused_due_at,
        )

    def fields(self) -> dict[str, Any]:
        return {
            "remind_at": self.remind_at,
            "due_at": self.due_at,
            "promised_at": self.promised_at,
            "paused_at": self.paused_at,
            "paused_from": self.paused_from,
            "paused_due_at": self.paused_due_at,
        }


def schedule(
    workflow: Workflow, task: Task, to_state: str, now: datetime, calendar: WorkingCalendar
) -> Schedule:
    """When the step into `to_state` at `now` is due. A paused clock (the citizen's move)
    remembers the step it stopped and that step's due moment; when the dossier returns to that
    step, it gets the working time it had left (an already overdue step stays due when it was,
    so its timer does not fire twice); a new step gets its own SLA. The promised date moves on
    by the working time the clock stood still."""
    target = workflow.state(to_state)
    if target.terminal:
        return Schedule(None, None, task.promised_at)
    if target.clock == "paused":
        if task.paused_at is not None:  # still paused (from one citizen's move to another)
            return replace(Schedule.of(task), remind_at=None, due_at=None)
        return Schedule(None, None, task.promised_at, now, task.state, task.due_at)
    start = calendar.next_working_moment(now)
    promised = task.promised_at
    if task.paused_at is not None and promised is not None and promised > task.paused_at:
        promised = calendar.add_working_hours(
            start, calendar.working_hours_between(task.paused_at, promised)
        )
    if target.sla is None:
        return Schedule(None, None, promised)
    full = target.sla.hours
    if task.paused_at is not None and task.paused_from == to_state and task.paused_due_at:
        left = calendar.working_hours_between(task.paused_at, task.paused_due_at)
        if left <= 0:
            return Schedule(None, task.paused_due_at, promised)
    else:
        left = full
    due = calendar.add_working_hours(start, left)
    before_reminder = left - full * (1 - REMIND_AT_SHARE)
    remind = calendar.add_working_hours(start, before_reminder) if before_reminder > 0 else None
    return Schedule(remind, due, promised)


def pick_officer(candidates: Sequence[Officer], open_tasks: Mapping[str, int]) -> Officer:
    """The candidate with the fewest open tasks (ties go to the first listed)."""
    if not candidates:
        raise DomainError("no officer can take dossiers of this unit")
    return min(candidates, key=lambda o: open_tasks.get(o.id, 0))


def check_action(
    task: Task, workflow: Workflow, officer: Officer, action: str, reason: str | None
) -> Step:
    """The step `officer` takes with `action` on `task`, or why not: another unit or another
    officer's task (Forbidden); not possible now (Conflict, with what is); a missing reason."""
    escalated_here = task.escalated_to is not None and officer.id == task.escalated_to
    if officer.unit != task.unit_id and not escalated_here:
        raise Forbidden(f"task {task.id} belongs to unit {task.unit_id}, not {officer.unit}")
    if officer.id != task.officer_id and officer.role not in UNIT_WIDE_ROLES:
        if task.officer_id is None:
            raise Forbidden(f"task {task.id} was released to the unit: claim it first")
        raise Forbidden(f"task {task.id} is assigned to another officer")
    if task.terminal:
        raise Conflict(f"task {task.id} is closed ({task.state})", allowed=[])
    possible = {a.name: a for a in workflow.actions_from(task.state)}
    if action in possible and officer.role not in possible[action].roles:
        raise Forbidden(f"{officer.role} may not {action}")
    try:
        return workflow.step(task.state, action, officer.role, reason)
    except NotAllowed as exc:
        if action in [a.name for a in workflow.actions_from(task.state, officer.role)]:
            raise InvalidAction(str(exc)) from exc  # allowed, but the reason is missing
        raise Conflict(str(exc), allowed=exc.allowed) from exc


HOLDERS = roles.HOLDERS  # roles that hold tasks and can claim them
STILL = frozenset({"print", "apologise"})
"""Steps that leave the dossier where it was (state and holder): a page shown before them is
still the dossier as it is."""


def moved_since(task: Task, version: int) -> bool:
    """Whether the task moved on since `version` (a page showed it then): a step other than a
    print or an apology came after it. Reminders and overdue marks change nothing shown."""
    if version > task.version:
        return True
    return any(s.version > version and s.action not in STILL for s in task.steps)


def check_claim(task: Task, officer: Officer) -> None:
    """An officer or chief of the task's unit takes a task released to the unit."""
    if officer.unit != task.unit_id:
        raise Forbidden(f"task {task.id} belongs to unit {task.unit_id}, not {officer.unit}")
    if officer.role not in HOLDERS:
        raise Forbidden(f"a {officer.role} does not hold tasks")
    if task.terminal:
        raise Conflict(f"task {task.id} is closed ({task.state})")
    if task.officer_id is not None:
        raise Conflict(f"task {task.id} is held by {task.officer_id}; it must be released first")


def check_release(task: Task, officer: Officer) -> None:
    """The holder gives a task back to the unit's pool."""
    if task.officer_id != officer.id:
        raise Forbidden(f"task {task.id} is not held by {officer.id}")
    if task.terminal:
        raise Conflict(f"task {task.id} is closed ({task.state})")


def check_reassign(
    task: Task, officer: Officer, target: Officer | None, *, supervisor: str | None
) -> Officer:
    """A supervisor of the task's unit (or the one it escalated to) hands it to an active
    officer or chief of that unit; returns the new holder."""
    responsible = officer.id in (supervisor, task.escalated_to) or officer.unit == task.unit_id
    if officer.role not in roles.REASSIGNERS or not responsible:
        raise Forbidden(f"only a supervisor responsible for unit {task.unit_id} may reassign")
    if task.terminal:
        raise Conflict(f"task {task.id} is closed ({task.state})")
    if target is None or not target.active:
        raise InvalidAction(
            "the new holder is not an active officer",
            code="invalid_officer",
            message_vi="Cán bộ nhận hồ sơ không có hoặc đã ngừng hoạt động.",
        )
    if target.unit != task.unit_id or target.role not in HOLDERS:
        raise InvalidAction(
            f"{target.id} is not an officer or chief of unit {task.unit_id}",
            code="invalid_officer",
            message_vi="Cán bộ nhận hồ sơ không thuộc đơn vị xử lý.",
        )
    if target.id == task.officer_id:
        raise Conflict(f"task {task.id} is already held by {target.id}")
    return target


APOLOGY_ROLES = roles.APOLOGISERS


def check_apology(
    task: Task,
    officer: Officer,
    *,
    now: datetime,
    promised_at: datetime,
    reason: str,
    calendar: WorkingCalendar,
) -> None:
    """A chief or supervisor of the unit (or the supervisor it escalated to) apologises for a
    dossier that is late, or will be within a working day, and sets a later promised date."""
    escalated_here = officer.id == task.escalated_to
    if not escalated_here and (officer.unit != task.unit_id or officer.role not in APOLOGY_ROLES):
        raise Forbidden("only the unit's chief or supervisor may issue an apology")
    if task.terminal:
        raise Conflict(f"task {task.id} is closed ({task.state})")
    if not reason.strip():
        raise InvalidAction("an apology states why the dossier is late")
    step_overdue = task.due_at is not None and task.due_at <= now
    late_soon = (
        task.promised_at is None
        or calendar.add_working_hours(calendar.next_working_moment(now), 8) >= task.promised_at
    )
    if not (step_overdue or escalated_here or task.escalated_to or late_soon):
        raise Conflict(
            f"dossier {task.dossier_code} is on time (promised {task.promised_at:%Y-%m-%d %H:%M})"
        )
    floor = max(now, task.promised_at) if task.promised_at else now
    if promised_at <= floor:
        raise InvalidAction(
            f"the new promised date must be after {floor:%Y-%m-%d %H:%M}",
            code="invalid_date",
            message_vi="Ngày hẹn trả mới phải sau ngày hẹn cũ và sau thời điểm hiện tại.",
        )
