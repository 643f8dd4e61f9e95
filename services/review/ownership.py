"""Who holds a task, and a late dossier's apology: steps that keep the workflow state.

Each is a step like any workflow action (a conditional update guarded by the task's version),
so two officers claiming at once, or a claim racing a decision, have exactly one winner; the
loser gets a conflict and nothing changes.
"""

from __future__ import annotations

from datetime import datetime

from services.review import handover
from services.review.domain import Task
from services.review.handlers import commit, load
from services.review.ports import Directory, Publish, Tasks
from services.review.roster import Officer
from shared.calendar import WorkingCalendar
from shared.clock import Clock
from shared.contracts import SlipForm


async def claim(
    task_id: str,
    *,
    officer: Officer,
    tasks: Tasks,
    clock: Clock,
    publish: Publish,
    source: str,
) -> Task:
    """Take a task that was released to the unit."""
    task = await load(tasks, task_id)
    decision = handover.claim(task, officer, now=clock(), source=source)
    return await commit(tasks, publish, task, decision)


async def release(
    task_id: str,
    reason: str | None,
    *,
    officer: Officer,
    tasks: Tasks,
    clock: Clock,
    publish: Publish,
    source: str,
) -> Task:
    """Give a task back to the unit, for a colleague to claim."""
    task = await load(tasks, task_id)
    decision = handover.release(task, officer, reason, now=clock(), source=source)
    return await commit(tasks, publish, task, decision)


async def reassign(
    task_id: str,
    to: str,
    reason: str | None,
    *,
    officer: Officer,
    tasks: Tasks,
    directory: Directory,
    clock: Clock,
    publish: Publish,
    source: str,
) -> Task:
    """A supervisor hands a task to another officer of its unit."""
    task = await load(tasks, task_id)
    roster = await directory.roster()
    decision = handover.reassign(
        task,
        officer,
        roster.officer(to),
        reason,
        supervisor=roster.supervisor_for(task.unit_id),
        now=clock(),
        source=source,
    )
    return await commit(tasks, publish, task, decision)


async def apologise(
    task_id: str,
    promised_at: datetime,
    reason: str,
    *,
    officer: Officer,
    tasks: Tasks,
    calendar: WorkingCalendar,
    clock: Clock,
    publish: Publish,
    source: str,
) -> Task:
    """Issue the apology for a late dossier with its new promised date
    (phiếu xin lỗi và hẹn lại ngày trả kết quả)."""
    task = await load(tasks, task_id)
    decision = handover.apologise(
        task, officer, promised_at, reason, now=clock(), calendar=calendar, source=source
    )
    return await commit(tasks, publish, task, decision)


async def print_slip(
    task_id: str,
    form: SlipForm,
    *,
    officer: Officer,
    tasks: Tasks,
    clock: Clock,
    publish: Publish,
    source: str,
) -> Task:
    """Record that `officer` printed a slip of the task's dossier (dossier.slip_printed)."""
    task = await load(tasks, task_id)
    decision = handover.print_slip(task, officer, form, now=clock(), source=source)
    return await commit(tasks, publish, task, decision)
