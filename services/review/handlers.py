"""Review's use cases: assign a submitted dossier, decide a task."""

from __future__ import annotations

import logging
import uuid

from services.review.domain import (
    OUTCOME,
    Conflict,
    Decision,
    DomainError,
    NotFound,
    Task,
    check_decision,
    pick_officer,
)
from services.review.roster import Officer, Roster
from services.review.store import TaskStore
from shared.clock import Clock
from shared.contracts import (
    DossierApproved,
    DossierAssigned,
    DossierAssignedData,
    DossierDecisionData,
    DossierRejected,
    DossierSubmitted,
    Event,
    derived_id,
)
from shared.faults import FaultPoints
from shared.messaging import PermanentFailure
from shared.outbox import events_of

log = logging.getLogger(__name__)


async def assign(
    event: Event,
    *,
    tasks: TaskStore,
    roster: Roster,
    clock: Clock,
    source: str,
    faults: FaultPoints,
) -> None:
    """Create the dossier's task for the least-loaded officer of its ward's unit, once."""
    if not isinstance(event, DossierSubmitted):
        raise PermanentFailure(f"review does not handle {event.type}")
    submitted = event.data
    existing = await tasks.by_dossier(submitted.dossier_code)
    if existing is None:
        unit_id = roster.receiving_unit(submitted)
        candidates = roster.assignable(unit_id)
        try:
            officer = pick_officer(candidates, await tasks.open_counts([o.id for o in candidates]))
        except DomainError as exc:  # a roster gap: park it until an operator fixes and replays
            raise PermanentFailure(f"{submitted.dossier_code}: unit {unit_id}: {exc}") from exc
        now = clock()
        task = Task(
            id=str(uuid.UUID(derived_id(event.id, "review.task"))),
            dossier_code=submitted.dossier_code,
            procedure_code=submitted.procedure_code,
            unit_id=unit_id,
            officer_id=officer.id,
            state="assigned",
            created_at=now,
            correlation_id=event.correlationid,
            dossier=submitted.model_dump(mode="json"),
        )
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


async def close_withdrawn(event: Event, *, tasks: TaskStore) -> None:
    """The citizen withdrew: an open task closes, so nobody decides it any more."""
    doc = await tasks.by_dossier(event.subject)
    if doc is None:
        raise RuntimeError(f"no task yet for {event.subject}")  # retried: it may come
    task = await tasks.get(doc["_id"])
    if task is None or not task.is_open:
        log.info("withdrawal after the task closed", extra={"dossier": event.subject})
        return
    await tasks.transition(
        task, state="withdrawn", officer_id="citizen", at=event.time, reason=None, events=[]
    )


async def decide(
    task_id: str,
    decision: Decision,
    reason: str | None,
    *,
    officer: Officer,
    tasks: TaskStore,
    clock: Clock,
    source: str,
) -> Task:
    """Approve or reject an open task; exactly one of two concurrent decisions wins."""
    task = await tasks.get(task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    check_decision(task, officer, decision, reason)
    now = clock()
    model = DossierApproved if decision == "approve" else DossierRejected
    event = model.create(
        source=source,
        subject=task.dossier_code,
        time=now,
        correlationid=task.correlation_id,
        data=DossierDecisionData(
            dossier_code=task.dossier_code,
            task_id=task.id,
            procedure_code=task.procedure_code,
            unit_id=task.unit_id,
            officer_id=officer.id,
            decided_at=now,
            reason=reason,
        ),
    )
    doc = await tasks.transition(
        task,
        state=OUTCOME[decision],
        officer_id=officer.id,
        at=now,
        reason=reason,
        events=[event],
    )
    if doc is None:
        raise Conflict(f"task {task_id} was decided meanwhile", allowed=[])
    try:
        await tasks.outbox.flush(events_of(doc))
    except Exception:
        log.warning("decision stored, event not published yet", exc_info=True)
    return (await tasks.get(task_id)) or task
