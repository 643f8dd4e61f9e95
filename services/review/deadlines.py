"""SLA timers decided as pure functions: which timer of a task is due, the event it
publishes, and the task once it fired."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.review.domain import (
    Task,
    TimerKind,
)
from shared.contracts import (
    DossierDueSoon,
    DossierOverdue,
    DossierSlaData,
    Event,
    derived_id,
)


@dataclass(frozen=True)
class Firing:
    """A timer that is due: its once-only key, the event it publishes, and the task's next
    timer (and, for an overdue step, who it is escalated to)."""

    key: str
    kind: TimerKind
    moment: datetime
    event: Event
    next_at: datetime | None
    next_kind: TimerKind | None
    escalated_to: str | None


def timer_key(task: Task, moment: datetime, kind: TimerKind) -> str:
    """The once-only key of a timer: the task, its state, the moment and the kind."""
    return f"{task.id}:{task.state}:{moment:%Y%m%dT%H%M%S}:{kind}"


def due_timer(task: Task, *, now: datetime, supervisor: str | None, source: str) -> Firing | None:
    """The timer of `task` due at `now`, if any. One firing per deadline: its key names the
    state and the moment, so a step resumed after a pause, already overdue, is not announced
    twice."""
    moment, kind = task.timer_at, task.timer_kind
    if task.terminal or moment is None or kind is None or moment > now:
        return None
    key = timer_key(task, moment, kind)
    overdue = kind == "overdue"
    escalated_to = supervisor if overdue else None
    model = DossierOverdue if overdue else DossierDueSoon
    event = model(
        id=derived_id(key, model.event_type),
        source=source,
        type=model.event_type,
        time=now,
        subject=task.dossier_code,
        correlationid=task.correlation_id,
        data=DossierSlaData(
            dossier_code=task.dossier_code,
            task_id=task.id,
            state=task.state,
            due_at=task.due_at or moment,
            unit_id=task.unit_id,
            officer_id=task.officer_id,
            escalated_to=escalated_to,
        ),
    )
    next_at, next_kind = (None, None)
    if not overdue and task.due_at is not None:
        next_at, next_kind = task.due_at, "overdue"
    return Firing(key, kind, moment, event, next_at, next_kind, escalated_to)


def after_firing(task: Task, firing: Firing) -> Task:
    """The task once its timer fired: on to its next timer, escalated if it is overdue; a new
    version, so a step decided on the old one cannot overwrite the escalation."""
    return replace(
        task,
        version=task.version + 1,
        timer_at=firing.next_at,
        timer_kind=firing.next_kind,
        escalated_to=firing.escalated_to or task.escalated_to,
    )
