"""Who sees and acts on a task, what an officer's queue holds, and in which order it pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.review.domain import UNIT_WIDE_ROLES, Forbidden, Task
from services.review.roster import Officer
from services.review.workflow import Workflow
from shared import roles


def may_see(task: Task, officer: Officer) -> bool:
    """Officers of the task's unit see it, and the one it was escalated to."""
    return task.unit_id == officer.unit or task.escalated_to == officer.id


def may_act(task: Task, officer: Officer) -> bool:
    """Its holder, the unit's chiefs and supervisors, and the one it was escalated to."""
    return (
        officer.unit == task.unit_id
        and (officer.id == task.officer_id or officer.role in UNIT_WIDE_ROLES)
    ) or officer.id == task.escalated_to


def allowed_actions(task: Task, workflow: Workflow, officer: Officer) -> list[str]:
    """The workflow actions `officer` may take on `task` now (none if it is not theirs)."""
    if not may_act(task, officer):
        return []
    return [a.name for a in workflow.actions_from(task.state, officer.role) if not a.trigger]


@dataclass(frozen=True)
class Scope:
    """One part of a queue: open tasks of a unit, held by an officer, released to a unit's
    pool, or escalated to a supervisor (the fields that are set all hold)."""

    unit_id: str | None = None
    officer_id: str | None = None
    released: bool = False
    escalated_to: str | None = None
    outside_unit: str | None = None  # not of this unit (what was escalated from elsewhere)


QueueScope = str  # "mine", "unit" or "unassigned"
QUEUE_SCOPES = ("mine", "unit", "unassigned")


class ScopeRefused(Forbidden):
    """An officer asked for a part of the queue their role does not see."""


def scopes_for(officer: Officer, scope: QueueScope | None) -> list[Scope]:
    """The parts of a queue `scope` names, as disjoint scopes (so they can be counted):
    `mine` the tasks the officer holds (for supervisors, what was escalated to them from
    other units too); `unassigned` the unit's released ones; `unit` the whole unit, for chiefs,
    supervisors and admins only (ScopeRefused for an officer); None, an officer's whole queue:
    officers their own tasks and their unit's released ones; chiefs, supervisors and admins the
    whole unit; supervisors also what was escalated to them."""
    escalated = (
        [Scope(escalated_to=officer.id, outside_unit=officer.unit)]
        if officer.role in roles.ESCALATED_TO
        else []
    )
    if scope == "mine":
        return [Scope(officer_id=officer.id), *escalated]
    if scope == "unassigned":
        return [Scope(unit_id=officer.unit, released=True)]
    if scope == "unit":
        if officer.role == roles.OFFICER:
            raise ScopeRefused(f"an {officer.role} sees the tasks they hold and unassigned ones")
        return [Scope(unit_id=officer.unit)]
    if officer.role == roles.OFFICER:
        return [Scope(officer_id=officer.id), Scope(unit_id=officer.unit, released=True)]
    return [Scope(unit_id=officer.unit), *escalated]


def history_scope(officer: Officer) -> Scope:
    """Whose finished work an officer may page through: the unit's for chiefs and
    supervisors, their own otherwise."""
    if officer.role == roles.OFFICER:
        return Scope(officer_id=officer.id)
    return Scope(unit_id=officer.unit)


Position = str
"""Where a task sorts in a page: its sort moment (UTC, fixed width) then its id, as one string,
so ties are broken by id and one indexed field serves the sort. It starts with a letter: nx-27017
reads a string that begins like an ISO date as a date, and then compares it as one."""

NO_DUE = datetime(9999, 12, 31, tzinfo=UTC)  # sorts a task without a deadline last


def _position(moment: datetime, task_id: str) -> Position:
    return f"d{moment.astimezone(UTC):%Y%m%dT%H%M%S%f}|{task_id}"


def queue_position(task: Task) -> Position:
    """Where an open task sorts in a queue: soonest due first, no due date last."""
    return _position(task.due_at or NO_DUE, task.id)


def history_position(task: Task) -> Position:
    """Where a finished task sorts (read in reverse: most recently decided first)."""
    return _position(task.decided_at or task.created_at, task.id)
