"""Review's use cases, each load → decide → save: assign a submitted dossier, take a workflow
action, follow the citizen, and read a task or a queue page. They depend on the ports only."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.review import steps
from services.review.access import (
    Position,
    history_position,
    history_scope,
    may_see,
    queue_position,
    scopes_for,
)
from services.review.domain import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidAction,
    NotFound,
    Task,
    moved_since,
    pick_officer,
)
from services.review.ports import Directory, Publish, QueueFilter, Tasks
from services.review.roster import Officer
from services.review.steps import Decision
from services.review.workflow import Registry, Workflow
from shared.calendar import WorkingCalendar
from shared.clock import Clock
from shared.contracts import DossierSubmitted, Event
from shared.faults import FaultPoints
from shared.messaging import PermanentFailure

log = logging.getLogger(__name__)


async def assign(
    event: Event,
    *,
    tasks: Tasks,
    directory: Directory,
    workflows: Registry,
    calendar: WorkingCalendar,
    clock: Clock,
    publish: Publish,
    source: str,
    faults: FaultPoints,
) -> None:
    """Create the dossier's task, on the newest workflow of its procedure, for the
    least-loaded officer of its ward's unit, once."""
    if not isinstance(event, DossierSubmitted):
        raise PermanentFailure(f"review does not handle {event.type}")
    submitted = event.data
    task = await tasks.by_dossier(submitted.dossier_code)
    emitted: list[Event] | None = None  # None: a redelivery, read what it caused
    if task is None:
        try:
            workflow = workflows.for_new(submitted.procedure_code)
        except KeyError as exc:
            raise PermanentFailure(str(exc)) from exc
        roster = await directory.roster()
        unit_id = roster.receiving_unit(submitted)
        candidates = roster.assignable(unit_id)
        try:
            officer = pick_officer(candidates, await tasks.open_counts(unit_id))
        except DomainError as exc:  # a roster gap: park it until an operator fixes and replays
            raise PermanentFailure(f"{submitted.dossier_code}: unit {unit_id}: {exc}") from exc
        new, assigned = steps.new_task(
            event,
            workflow=workflow,
            unit_id=unit_id,
            officer=officer,
            now=clock(),
            calendar=calendar,
            source=source,
        )
        task, created = await tasks.create(new, [assigned])
        if created:
            emitted = [assigned]
            log.info(
                "dossier assigned", extra={"dossier": task.dossier_code, "officer": officer.id}
            )
    await faults.reach("review.assign.after_store")
    # Also on a redelivery: publish again what this input caused; ids are the same.
    if emitted is None:
        emitted = await tasks.stored_events(task.id, event.id)
    await publish(emitted)


async def load(tasks: Tasks, task_id: str) -> Task:
    """The task, or NotFound."""
    task = await tasks.load(task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


async def commit(tasks: Tasks, publish: Publish, before: Task, decision: Decision) -> Task:
    """Save a decided step (Conflict if another step won), then publish what it emits (the
    relay retries if the broker is away). Returns the task as it is now."""
    if not await tasks.save(before, decision):
        raise Conflict(f"task {before.id} changed meanwhile; reload it")
    try:
        await publish(decision.events)
    except Exception:
        log.warning("step stored, event not published yet", exc_info=True)
    return decision.task


CHANGED_VI = "Hồ sơ đã thay đổi từ lúc trang này được mở: vui lòng tải lại trang rồi thao tác lại."


def _allowed(workflow: Workflow, task: Task, officer: Officer) -> list[str]:
    """What `officer` may do on `task` now (what a refused caller is told)."""
    return [a.name for a in workflow.actions_from(task.state, officer.role)]


def _changed(message: str, allowed: list[str]) -> Conflict:
    """The task moved on under the caller: 409 `task_changed`, with what it allows now."""
    return Conflict(message, allowed=allowed, code="task_changed", message_vi=CHANGED_VI)


async def act(
    task_id: str,
    action: str,
    reason: str | None,
    *,
    officer: Officer,
    tasks: Tasks,
    workflows: Registry,
    calendar: WorkingCalendar,
    clock: Clock,
    publish: Publish,
    source: str,
    missing: Sequence[str] = (),
    expected_version: int | None = None,
) -> Task:
    """Take a workflow action on a task; of two at once on the same version, one wins. A
    supplement request may name the documents still needed (`missing`). With
    `expected_version`, only on the task as the officer saw it: a page left open while a
    colleague moved the dossier on acts on nothing."""
    task = await load(tasks, task_id)
    workflow = workflows.get(task.workflow, task.workflow_version)
    if expected_version is not None and moved_since(task, expected_version):
        if not may_see(task, officer):
            raise Forbidden(f"task {task_id} belongs to another unit")
        raise _changed(
            f"task {task_id} changed since version {expected_version}: it is at version "
            f"{task.version}, in state {task.state}",
            [] if task.terminal else _allowed(workflow, task, officer),
        )
    decision = steps.take_action(
        task,
        workflow,
        officer,
        action,
        reason,
        now=clock(),
        calendar=calendar,
        source=source,
        missing=missing,
    )
    try:
        return await commit(tasks, publish, task, decision)
    except Conflict as exc:  # the loser learns what is allowed now
        fresh = await tasks.load(task_id)
        allowed = _allowed(workflow, fresh, officer) if fresh else []
        raise _changed(f"task {task_id} changed meanwhile", allowed) from exc


async def follow_citizen(
    event: Event,
    *,
    tasks: Tasks,
    workflows: Registry,
    calendar: WorkingCalendar,
    publish: Publish,
    source: str,
) -> None:
    """The citizen acted (withdrew, supplemented): take the action the workflow ties to it."""
    task = await tasks.by_dossier(event.subject)
    if task is None:
        raise RuntimeError(f"no task yet for {event.subject}")  # retried: it may come
    workflow = workflows.get(task.workflow, task.workflow_version)
    decision = steps.citizen_moved(task, workflow, event, calendar=calendar, source=source)
    if decision is None:
        log.info(
            "%s in state %s changes nothing",
            event.type,
            task.state,
            extra={"dossier": event.subject},
        )
        return
    await commit(tasks, publish, task, decision)  # a conflict is retried by the consumer


async def show(task_id: str, *, officer: Officer, tasks: Tasks) -> Task:
    """A task the officer may see: their unit's, or escalated to them."""
    task = await load(tasks, task_id)
    if not may_see(task, officer):
        raise Forbidden(f"task {task_id} belongs to another unit")
    return task


@dataclass(frozen=True)
class Page:
    """One page of a queue and the cursor of the next (None: this is the last)."""

    tasks: list[Task]
    next_cursor: str | None


def encode_cursor(position: Position) -> str:
    """An opaque cursor for the page after `position`."""
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names, or InvalidAction."""
    try:
        position = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, task_id = position.partition("|")
        datetime.strptime(moment, "d%Y%m%dT%H%M%S%f")
        if not task_id:
            raise ValueError("no task id")
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidAction(
            "the cursor is not one this service gave",
            code="invalid_cursor",
            message_vi="Con trỏ trang không hợp lệ.",
        ) from exc
    return position


async def queue(
    officer: Officer,
    *,
    tasks: Tasks,
    clock: Clock,
    state: str | None = None,
    procedure: str | None = None,
    overdue: bool | None = None,
    due_before: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
    scope: str | None = None,
    stage: str | None = None,
    ward: str | None = None,
    due_soon: bool = False,
) -> Page:
    """An officer's open work (or the part `scope` names), soonest due first, a page at a
    time; narrowed to one state, stage, procedure or ward, overdue or not, due soon."""
    now = clock()
    before = due_before
    if overdue:
        before = min(before, now) if before else now
    where = QueueFilter(
        state=state,
        procedure_code=procedure,
        due_before=before,
        due_from=now if overdue is False or due_soon else None,
        stage=stage,
        ward_code=ward,
        soon_by=now if due_soon else None,
    )
    after = decode_cursor(cursor) if cursor else None
    found = await tasks.queue(scopes_for(officer, scope), where, after, limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return Page(page, encode_cursor(queue_position(page[-1])) if more and page else None)


async def finished(
    officer: Officer, *, tasks: Tasks, cursor: str | None = None, limit: int = 50
) -> Page:
    """An officer's (or, for chiefs and supervisors, their unit's) finished work, latest first."""
    after = decode_cursor(cursor) if cursor else None
    found = await tasks.finished(history_scope(officer), after, limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return Page(page, encode_cursor(history_position(page[-1])) if more and page else None)
