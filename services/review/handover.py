"""Who holds a task, and a late dossier's apology, decided as pure functions: steps that keep
the workflow state (claim, release, reassign, apologise)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Literal

from services.review.access import may_see
from services.review.domain import (
    Conflict,
    Forbidden,
    Schedule,
    Task,
    check_apology,
    check_claim,
    check_reassign,
    check_release,
)
from services.review.roster import Officer
from services.review.steps import Decision, advance
from shared.calendar import WorkingCalendar
from shared.contracts import (
    DossierApologyData,
    DossierApologyIssued,
    DossierReassigned,
    DossierReassignedData,
    DossierSlipPrinted,
    DossierSlipPrintedData,
    Event,
    SlipForm,
)

Change = Literal["claim", "release", "reassign"]


def _keep_state(
    task: Task,
    action: str,
    by: Officer,
    at: datetime,
    reason: str | None,
    events: list[Event],
    *,
    officer_id: str | None,
    promised_at: datetime | None = None,
    form: str | None = None,
) -> Decision:
    plan = Schedule.of(task)
    if promised_at is not None:
        plan = replace(plan, promised_at=promised_at)
    after, recorded = advance(
        task,
        state=task.state,
        action=action,
        actor=by.id,
        at=at,
        reason=reason,
        plan=plan,
        officer_id=officer_id,
        terminal=task.terminal,
        status_code=task.status_code,
        form=form,
    )
    return Decision(after, recorded, events)


def hand_over(
    task: Task,
    change: Change,
    *,
    to: str | None,
    by: Officer,
    at: datetime,
    reason: str | None,
    source: str,
) -> Decision:
    """Who holds the task changes (claim, release, reassign); the workflow state stays."""
    event = DossierReassigned.create(
        source=source,
        subject=task.dossier_code,
        time=at,
        correlationid=task.correlation_id,
        data=DossierReassignedData(
            dossier_code=task.dossier_code,
            task_id=task.id,
            procedure_code=task.procedure_code,
            procedure_name=task.procedure_label,
            unit_id=task.unit_id,
            officer_id=to,
            previous_officer_id=task.officer_id,
            by=by.id,
            action=change,
            at=at,
            reason=reason,
        ),
    )
    return _keep_state(task, change, by, at, reason, [event], officer_id=to)


def claim(task: Task, officer: Officer, *, now: datetime, source: str) -> Decision:
    """An officer takes a task released to the unit."""
    check_claim(task, officer)
    return hand_over(task, "claim", to=officer.id, by=officer, at=now, reason=None, source=source)


def release(
    task: Task, officer: Officer, reason: str | None, *, now: datetime, source: str
) -> Decision:
    """The holder gives the task back to the unit."""
    check_release(task, officer)
    return hand_over(task, "release", to=None, by=officer, at=now, reason=reason, source=source)


def reassign(
    task: Task,
    officer: Officer,
    target: Officer | None,
    reason: str | None,
    *,
    supervisor: str | None,
    now: datetime,
    source: str,
) -> Decision:
    """A supervisor hands the task to another holder of its unit."""
    new_holder = check_reassign(task, officer, target, supervisor=supervisor)
    return hand_over(
        task, "reassign", to=new_holder.id, by=officer, at=now, reason=reason, source=source
    )


def apologise(
    task: Task,
    officer: Officer,
    promised_at: datetime,
    reason: str,
    *,
    now: datetime,
    calendar: WorkingCalendar,
    source: str,
) -> Decision:
    """The apology for a late dossier with its new promised date
    (phiếu xin lỗi và hẹn lại ngày trả kết quả)."""
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
            procedure_name=task.procedure_label,
            unit_id=task.unit_id,
            officer_id=officer.id,
            issued_at=now,
            reason=reason,
            previous_promised_at=task.promised_at,
            promised_at=promised_at,
            status_code=task.status_code,
        ),
    )
    return _keep_state(
        task,
        "apologise",
        officer,
        now,
        reason,
        [event],
        officer_id=task.officer_id,
        promised_at=promised_at,
    )


def print_slip(
    task: Task, officer: Officer, form: SlipForm, *, now: datetime, source: str
) -> Decision:
    """An officer of the task's unit printed one of its slips (BM-VP01): recorded in its
    history, with who and when, as `dossier.slip_printed`. The apology slip needs an apology."""
    if not may_see(task, officer):
        raise Forbidden(f"task {task.id} belongs to unit {task.unit_id}, not {officer.unit}")
    if task.terminal:
        raise Conflict(f"task {task.id} is closed ({task.state})")
    if form == "apology" and not any(s.action == "apologise" for s in task.steps):
        raise Conflict(f"dossier {task.dossier_code} has no apology to print")
    event = DossierSlipPrinted.create(
        source=source,
        subject=task.dossier_code,
        time=now,
        correlationid=task.correlation_id,
        data=DossierSlipPrintedData(
            dossier_code=task.dossier_code,
            task_id=task.id,
            procedure_code=task.procedure_code,
            procedure_name=task.procedure_label,
            unit_id=task.unit_id,
            actor=officer.id,
            form=form,
            printed_at=now,
            promised_at=task.promised_at,
            status_code=task.status_code,
        ),
    )
    return _keep_state(
        task, "print", officer, now, None, [event], officer_id=task.officer_id, form=form
    )
