"""Review's decisions as pure functions: a task and a request in, the new task and its events out.

Nothing here reads or writes anything; handlers load the task, call one of these, and save
what it returns (state and events in one conditional write, guarded by the task's version).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from services.review.domain import (
    MAX_STEPS,
    Conflict,
    InvalidAction,
    Schedule,
    Task,
    TimerKind,
    Transition,
    check_action,
    schedule,
)
from services.review.roster import Officer
from services.review.workflow import Step, Workflow
from shared import roles
from shared.calendar import WorkingCalendar
from shared.contracts import (
    EVENT_TYPES,
    DossierAssigned,
    DossierAssignedData,
    DossierDecisionData,
    DossierSubmitted,
    DossierSupplementRequested,
    DossierSupplementRequestedData,
    DossierTransitionData,
    Event,
    derived_id,
)

DECISIONS = frozenset({"dossier.approved", "dossier.rejected"})


@dataclass(frozen=True)
class Decision:
    """What a step decided: the task after it, the step as recorded, the events it emits."""

    task: Task
    step: Transition
    events: list[Event]


def first_timer(plan: Schedule) -> tuple[datetime | None, TimerKind | None]:
    """The first timer of a step's clock: its reminder, else its due moment."""
    if plan.remind_at is not None:
        return plan.remind_at, "reminder"
    if plan.due_at is not None:
        return plan.due_at, "overdue"
    return None, None


def new_task(
    event: DossierSubmitted,
    *,
    workflow: Workflow,
    unit_id: str,
    officer: Officer,
    now: datetime,
    calendar: WorkingCalendar,
    source: str,
) -> tuple[Task, Event]:
    """The task of a submitted dossier (its id follows from the event's) and its assignment."""
    submitted = event.data
    initial = workflow.definition.initial
    task = Task(
        id=str(uuid.UUID(derived_id(event.id, "review.task"))),
        dossier_code=submitted.dossier_code,
        procedure_code=submitted.procedure_code,
        procedure_name=submitted.procedure_name,
        unit_id=unit_id,
        officer_id=officer.id,
        state=initial,
        created_at=now,
        state_since=now,
        correlation_id=event.correlationid,
        dossier=submitted.model_dump(mode="json"),
        workflow=workflow.name,
        workflow_version=workflow.version,
        status_code=workflow.state(initial).status_code,
        promised_at=submitted.promised_at,
    )
    plan = schedule(workflow, task, initial, now, calendar)
    timer_at, timer_kind = first_timer(plan)
    task = replace(
        task, remind_at=plan.remind_at, due_at=plan.due_at, timer_at=timer_at, timer_kind=timer_kind
    )
    assigned = DossierAssigned.caused_by(
        event,
        source=source,
        time=now,
        data=DossierAssignedData(
            dossier_code=task.dossier_code,
            task_id=task.id,
            procedure_code=task.procedure_code,
            procedure_name=task.procedure_label,
            unit_id=unit_id,
            officer_id=officer.id,
            assigned_at=now,
        ),
    )
    return task, assigned


def advance(
    task: Task,
    *,
    state: str,
    action: str,
    actor: str,
    at: datetime,
    reason: str | None,
    plan: Schedule,
    officer_id: str | None,
    terminal: bool,
    status_code: int,
    form: str | None = None,
    missing: tuple[str, ...] = (),
) -> tuple[Task, Transition]:
    """The task one version on, with the step appended to its history. A step that keeps the
    clock keeps its next timer; a new clock starts with its own first timer."""
    if len(task.steps) >= MAX_STEPS:
        raise Conflict(f"task {task.id} has taken {MAX_STEPS} steps: no more are recorded")
    if (plan.remind_at, plan.due_at) == (task.remind_at, task.due_at):
        timer_at, timer_kind = task.timer_at, task.timer_kind
    else:
        timer_at, timer_kind = first_timer(plan)
    if terminal:
        timer_at, timer_kind = None, None
    version = task.version + 1
    step = Transition(
        version=version,
        action=action,
        state=state,
        officer_id=officer_id,
        decided_by=actor,
        decided_at=at,
        reason=reason,
        promised_at=plan.promised_at,
        due_at=task.due_at if state != task.state else None,
        form=form,
        missing=missing,
    )
    after = replace(
        task,
        version=version,
        state=state,
        terminal=terminal,
        status_code=status_code,
        officer_id=officer_id,
        state_since=at if state != task.state else task.state_since or task.created_at,
        decided_by=actor,
        decided_at=at,
        reason=reason,
        remind_at=plan.remind_at,
        due_at=plan.due_at,
        promised_at=plan.promised_at,
        paused_at=plan.paused_at,
        paused_from=plan.paused_from,
        paused_due_at=plan.paused_due_at,
        timer_at=timer_at,
        timer_kind=timer_kind,
        steps=(*task.steps, step),
    )
    return after, step


def step_event(
    task: Task,
    step: Step,
    *,
    actor: str,
    at: datetime,
    reason: str | None,
    source: str,
    workflow_version: int,
    promised_at: datetime | None = None,
    missing: tuple[str, ...] = (),
) -> Event | None:
    """The event a step emits, if any: decisions keep their own shape for older consumers."""
    if step.emits is None:
        return None
    model = EVENT_TYPES[step.emits]
    if step.emits == DossierSupplementRequested.event_type:
        data: object = DossierSupplementRequestedData(
            dossier_code=task.dossier_code,
            task_id=task.id,
            officer_id=actor,
            requested_at=at,
            missing=list(missing),
            note=reason,
        )
    elif step.emits in DECISIONS:
        data = DossierDecisionData(
            dossier_code=task.dossier_code,
            task_id=task.id,
            procedure_code=task.procedure_code,
            procedure_name=task.procedure_label,
            unit_id=task.unit_id,
            officer_id=actor,
            decided_at=at,
            reason=reason,
            promised_at=promised_at,
        )
    else:
        data = DossierTransitionData(
            dossier_code=task.dossier_code,
            task_id=task.id,
            procedure_code=task.procedure_code,
            procedure_name=task.procedure_label,
            workflow_version=workflow_version,
            action=step.action.name,
            from_state=task.state,
            to_state=step.to,
            unit_id=task.unit_id,
            actor=actor,
            at=at,
            reason=reason,
            status_code=step.status_code,
            promised_at=promised_at,
        )
    return model.create(
        source=source,
        subject=task.dossier_code,
        time=at,
        correlationid=task.correlation_id,
        data=data,
    )


def _workflow_step(
    task: Task,
    workflow: Workflow,
    step: Step,
    *,
    actor: str,
    at: datetime,
    reason: str | None,
    calendar: WorkingCalendar,
    source: str,
    missing: tuple[str, ...] = (),
) -> Decision:
    plan = schedule(workflow, task, step.to, at, calendar)
    event = step_event(
        task,
        step,
        actor=actor,
        at=at,
        reason=reason,
        source=source,
        workflow_version=workflow.version,
        promised_at=plan.promised_at,
        missing=missing,
    )
    after, recorded = advance(
        task,
        state=step.to,
        action=step.action.name,
        actor=actor,
        at=at,
        reason=reason,
        plan=plan,
        officer_id=task.officer_id,
        terminal=workflow.state(step.to).terminal,
        status_code=step.status_code,
        missing=missing,
    )
    return Decision(after, recorded, [event] if event else [])


def take_action(
    task: Task,
    workflow: Workflow,
    officer: Officer,
    action: str,
    reason: str | None,
    *,
    now: datetime,
    calendar: WorkingCalendar,
    source: str,
    missing: Sequence[str] = (),
) -> Decision:
    """An officer's workflow action (receive, approve, ...), or why not (domain errors). Only a
    step that asks the citizen for a supplement names the documents still needed."""
    step = check_action(task, workflow, officer, action, reason)
    if missing and not asks_for_documents(step.emits):
        raise InvalidAction(
            f"{action} asks the citizen for nothing: name no missing documents",
            code="documents_not_asked",
            message_vi="Chỉ khi yêu cầu bổ sung mới nêu giấy tờ còn thiếu.",
        )
    return _workflow_step(
        task,
        workflow,
        step,
        actor=officer.id,
        at=now,
        reason=reason,
        calendar=calendar,
        source=source,
        missing=tuple(dict.fromkeys(missing)),
    )


def asks_for_documents(emits: str | None) -> bool:
    """Whether an action emitting `emits` asks the citizen for documents (a supplement)."""
    return emits == DossierSupplementRequested.event_type


def citizen_moved(
    task: Task,
    workflow: Workflow,
    event: Event,
    *,
    calendar: WorkingCalendar,
    source: str,
) -> Decision | None:
    """The step the workflow ties to a citizen's event (withdrawal, supplement), if any now."""
    action = workflow.triggered_by(event.type, task.state)
    if action is None or task.terminal:
        return None
    step = workflow.step(task.state, action.name, roles.CITIZEN)
    return _workflow_step(
        task,
        workflow,
        step,
        actor=roles.CITIZEN,
        at=event.time,
        reason=None,
        calendar=calendar,
        source=source,
    )
