"""Who holds a task, and a late dossier's apology: steps that keep the workflow state.

Each is a transition like any workflow step (an insert of the task's next version), so two
officers claiming at once, or a claim racing a decision, have exactly one winner; the loser
gets a conflict and nothing changes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Literal

from services.review.directory import Directory
from services.review.domain import (
    Conflict,
    NotFound,
    Schedule,
    Task,
    check_apology,
    check_claim,
    check_reassign,
    check_release,
)
from services.review.handlers import publish_step
from services.review.roster import Officer
from services.review.store import TaskStore
from shared.calendar import WorkingCalendar
from shared.clock import Clock
from shared.contracts import (
    DossierApologyData,
    DossierApologyIssued,
    DossierReassigned,
    DossierReassignedData,
    Event,
)

Change = Literal["claim", "release", "reassign"]


async def _task(tasks: TaskStore, task_id: str) -> Task:
    task = await tasks.get(task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


async def _hand_over(
    tasks: TaskStore,
    task: Task,
    *,
    change: Change,
    to: str | None,
    by: Officer,
    at: datetime,
    reason: str | None,
    source: str,
) -> Task:
    event = DossierReassigned.create(
        source=source,
        subject=task.dossier_code,
        time=at,
        correlationid=task.correlation_id,
        data=DossierReassignedData(
            dossier_code=task.dossier_code,
            task_id=task.id,
            procedure_code=task.procedure_code,
            unit_id=task.unit_id,
            officer_id=to,
            previous_officer_id=task.officer_id,
            by=by.id,
            action=change,
            at=at,
            reason=reason,
        ),
    )
    return await _commit(tasks, task, change, by, at, reason, [event], officer_id=to)


async def _commit(
    tasks: TaskStore,
    task: Task,
    action: str,
    by: Officer,
    at: datetime,
    reason: str | None,
    events: list[Event],
    *,
    officer_id: str | None,
    promised_at: datetime | None = None,
) -> Task:
    planned = Schedule.of(task)
    if promised_at is not None:
        planned = replace(planned, promised_at=promised_at)
    doc = await tasks.transition(
        task,
        state=task.state,
        actor=by.id,
        at=at,
        reason=reason,
        events=events,
        schedule=planned,
        action=action,
        terminal=task.terminal,
        status_code=task.status_code,
        officer_id=officer_id,
    )
    if doc is None:
        raise Conflict(f"task {task.id} changed meanwhile; reload it")
    return await publish_step(tasks, doc, task)


async def claim(
    task_id: str, *, officer: Officer, tasks: TaskStore, clock: Clock, source: str
) -> Task:
    """Take a task that was released to the unit."""
    task = await _task(tasks, task_id)
    check_claim(task, officer)
    return await _hand_over(
        tasks,
        task,
        change="claim",
        to=officer.id,
        by=officer,
        at=clock(),
        reason=None,
        source=source,
    )


async def release(
    task_id: str,
    reason: str | None,
    *,
    officer: Officer,
    tasks: TaskStore,
    clock: Clock,
    source: str,
) -> Task:
    """Give a task back to the unit, for a colleague to claim."""
    task = await _task(tasks, task_id)
    check_release(task, officer)
    return await _hand_over(
        tasks,
        task,
        change="release",
        to=None,
        by=officer,
        at=clock(),
        reason=reason,
        source=source,
    )


async def reassign(
    task_id: str,
    to: str,
    reason: str | None,
    *,
    officer: Officer,
    tasks: TaskStore,
    directory: Directory,
    clock: Clock,
    source: str,
) -> Task:
    """A supervisor hands a task to another officer of its unit."""
    task = await _task(tasks, task_id)
    roster = await directory.roster()
    target = check_reassign(
        task, officer, roster.officer(to), supervisor=roster.supervisor_for(task.unit_id)
    )
    return await _hand_over(
        tasks,
        task,
        change="reassign",
        to=target.id,
        by=officer,
        at=clock(),
        reason=reason,
        source=source,
    )


async def apologise(
    task_id: str,
    promised_at: datetime,
    reason: str,
    *,
    officer: Officer,
    tasks: TaskStore,
    calendar: WorkingCalendar,
    clock: Clock,
    source: str,
) -> Task:
    """Issue the apology for a late dossier with its new promised date
    (phiếu xin lỗi và hẹn lại ngày trả kết quả)."""
    task = await _task(tasks, task_id)
    now = clock()
    check_apology(task, officer, now=now, promised_at=promised_at, reason=reason, calendar=calendar)
    event = DossierApologyIssued.create(
        source=source,
        subject=task.dossier_code,
        time=now,
        correlationid=task.correlation_id,
        data=DossierApologyData(
            dossier_code=task.dossier_code,
            task_id=task.id,
            procedure_code=task.procedure_code,
            unit_id=task.unit_id,
            officer_id=officer.id,
            issued_at=now,
            reason=reason,
            previous_promised_at=task.promised_at,
            promised_at=promised_at,
            status_code=task.status_code,
        ),
    )
    return await _commit(
        tasks,
        task,
        "apologise",
        officer,
        now,
        reason,
        [event],
        officer_id=task.officer_id,
        promised_at=promised_at,
    )
