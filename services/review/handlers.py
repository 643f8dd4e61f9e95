"""Review's use cases: assign a submitted dossier, take a workflow action, follow the citizen."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import datetime

from services.review.directory import Directory
from services.review.domain import (
    Conflict,
    DomainError,
    NotFound,
    Task,
    check_action,
    pick_officer,
    schedule,
)
from services.review.roster import Officer
from services.review.store import TaskStore
from services.review.workflow import Registry, Step
from shared.calendar import WorkingCalendar
from shared.clock import Clock
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
from shared.faults import FaultPoints
from shared.messaging import PermanentFailure
from shared.outbox import events_of
from shared.storage import Document

log = logging.getLogger(__name__)
DECISIONS = frozenset({"dossier.approved", "dossier.rejected"})


async def assign(
    event: Event,
    *,
    tasks: TaskStore,
    directory: Directory,
    workflows: Registry,
    calendar: WorkingCalendar,
    clock: Clock,
    source: str,
    faults: FaultPoints,
) -> None:
    """Create the dossier's task, on the newest workflow of its procedure, for the
    least-loaded officer of its ward's unit, once."""
    if not isinstance(event, DossierSubmitted):
        raise PermanentFailure(f"review does not handle {event.type}")
    submitted = event.data
    existing = await tasks.by_dossier(submitted.dossier_code)
    if existing is None:
        try:
            workflow = workflows.for_new(submitted.procedure_code)
        except KeyError as exc:
            raise PermanentFailure(str(exc)) from exc
        roster = await directory.roster()
        unit_id = roster.receiving_unit(submitted)
        candidates = roster.assignable(unit_id)
        try:
            officer = pick_officer(candidates, await tasks.open_counts([o.id for o in candidates]))
        except DomainError as exc:  # a roster gap: park it until an operator fixes and replays
            raise PermanentFailure(f"{submitted.dossier_code}: unit {unit_id}: {exc}") from exc
        now = clock()
        initial = workflow.definition.initial
        task = Task(
            id=str(uuid.UUID(derived_id(event.id, "review.task"))),
            dossier_code=submitted.dossier_code,
            procedure_code=submitted.procedure_code,
            unit_id=unit_id,
            officer_id=officer.id,
            state=initial,
            created_at=now,
            correlation_id=event.correlationid,
            dossier=submitted.model_dump(mode="json"),
            workflow=workflow.name,
            workflow_version=workflow.version,
            status_code=workflow.state(initial).status_code,
            promised_at=submitted.promised_at,
        )
        clock_of_task = schedule(workflow, task, initial, now, calendar)
        task = replace(task, remind_at=clock_of_task.remind_at, due_at=clock_of_task.due_at)
        assigned = DossierAssigned.caused_by(
            event,
            source=source,
            time=now,
            data=DossierAssignedData(
                dossier_code=task.dossier_code,
                task_id=task.id,
                procedure_code=task.procedure_code,
                unit_id=unit_id,
                officer_id=officer.id,
                assigned_at=now,
            ),
        )
        existing, created = await tasks.create(task, [assigned])
        if created:
            log.info(
                "dossier assigned", extra={"dossier": task.dossier_code, "officer": officer.id}
            )
    await faults.reach("review.assign.after_store")
    # Also on a redelivery: publish again what this input caused; ids are the same.
    await tasks.outbox.flush(events_of(existing, caused_by=event.id))


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
            note=reason,
        )
    elif step.emits in DECISIONS:
        data = DossierDecisionData(
            dossier_code=task.dossier_code,
            task_id=task.id,
            procedure_code=task.procedure_code,
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


async def act(
    task_id: str,
    action: str,
    reason: str | None,
    *,
    officer: Officer,
    tasks: TaskStore,
    workflows: Registry,
    calendar: WorkingCalendar,
    clock: Clock,
    source: str,
) -> Task:
    """Take a workflow action on a task; of two at once on the same version, one wins."""
    task = await tasks.get(task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    workflow = workflows.get(task.workflow, task.workflow_version)
    step = check_action(task, workflow, officer, action, reason)
    now = clock()
    planned = schedule(workflow, task, step.to, now, calendar)
    event = step_event(
        task,
        step,
        actor=officer.id,
        at=now,
        reason=reason,
        source=source,
        workflow_version=workflow.version,
        promised_at=planned.promised_at,
    )
    doc = await tasks.transition(
        task,
        state=step.to,
        actor=officer.id,
        at=now,
        reason=reason,
        events=[event] if event else [],
        action=action,
        terminal=workflow.state(step.to).terminal,
        status_code=step.status_code,
        schedule=planned,
        officer_id=task.officer_id,
    )
    if doc is None:
        fresh = await tasks.get(task_id)
        allowed = (
            [a.name for a in workflow.actions_from(fresh.state, officer.role)] if fresh else []
        )
        raise Conflict(f"task {task_id} changed meanwhile", allowed=allowed)
    return await publish_step(tasks, doc, task)


async def publish_step(tasks: TaskStore, doc: Document, task: Task) -> Task:
    """Publish what a stored step emits (the relay retries if the broker is away); the task
    as it is now."""
    try:
        await tasks.outbox.flush(events_of(doc))
    except Exception:
        log.warning("step stored, event not published yet", exc_info=True)
    return (await tasks.get(task.id)) or task


async def follow_citizen(
    event: Event,
    *,
    tasks: TaskStore,
    workflows: Registry,
    calendar: WorkingCalendar,
    source: str,
) -> None:
    """The citizen acted (withdrew, supplemented): take the action the workflow ties to it."""
    doc = await tasks.by_dossier(event.subject)
    if doc is None:
        raise RuntimeError(f"no task yet for {event.subject}")  # retried: it may come
    task = await tasks.get(doc["_id"])
    assert task is not None
    workflow = workflows.get(task.workflow, task.workflow_version)
    action = workflow.triggered_by(event.type, task.state)
    if action is None:
        log.info(
            "%s in state %s changes nothing",
            event.type,
            task.state,
            extra={"dossier": event.subject},
        )
        return
    step = workflow.step(task.state, action.name, "citizen")
    planned = schedule(workflow, task, step.to, event.time, calendar)
    emitted = step_event(
        task,
        step,
        actor="citizen",
        at=event.time,
        reason=None,
        source=source,
        workflow_version=workflow.version,
        promised_at=planned.promised_at,
    )
    await tasks.transition(
        task,
        state=step.to,
        actor="citizen",
        at=event.time,
        reason=None,
        events=[emitted] if emitted else [],
        action=action.name,
        terminal=workflow.state(step.to).terminal,
        status_code=step.status_code,
        schedule=planned,
        officer_id=task.officer_id,
    )
