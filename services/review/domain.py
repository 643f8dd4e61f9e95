"""Review's pure rules: tasks, who gets one, and who may act on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.review.roster import Officer
from services.review.workflow import NotAllowed, Step, Workflow

UNIT_WIDE_ROLES = frozenset({"chief", "supervisor"})


class DomainError(Exception):
    """A rule of review was broken; nothing was changed."""


class NotFound(DomainError):
    pass


class Forbidden(DomainError):
    pass


class Conflict(DomainError):
    def __init__(self, message: str, allowed: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.allowed = list(allowed)


class InvalidAction(DomainError):
    """The request itself is wrong (e.g. a reason is required)."""


@dataclass(frozen=True)
class Task:
    """An officer's piece of work on one dossier, in a state of its procedure's workflow."""

    id: str
    dossier_code: str
    procedure_code: str
    unit_id: str
    officer_id: str
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

    @property
    def is_open(self) -> bool:
        return not self.terminal


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
