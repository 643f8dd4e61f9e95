"""Review's pure rules: tasks, who gets one, and who may decide it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from services.review.roster import Officer

TaskState = Literal["assigned", "approved", "rejected", "withdrawn"]
Decision = Literal["approve", "reject"]
OUTCOME: dict[Decision, TaskState] = {"approve": "approved", "reject": "rejected"}
DECIDING_ROLES = frozenset({"chief", "supervisor"})


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


@dataclass(frozen=True)
class Task:
    """An officer's piece of work on one dossier."""

    id: str
    dossier_code: str
    procedure_code: str
    unit_id: str
    officer_id: str
    state: TaskState
    created_at: datetime
    correlation_id: str
    dossier: Mapping[str, Any]
    version: int = 1
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.state == "assigned"


def pick_officer(candidates: Sequence[Officer], open_tasks: Mapping[str, int]) -> Officer:
    """The candidate with the fewest open tasks (ties go to the first listed)."""
    if not candidates:
        raise DomainError("no officer can take dossiers of this unit")
    return min(candidates, key=lambda o: open_tasks.get(o.id, 0))


def check_decision(task: Task, officer: Officer, decision: Decision, reason: str | None) -> None:
    """Raise unless `officer` may take `decision` on `task` now."""
    if officer.unit != task.unit_id:
        raise Forbidden(f"task {task.id} belongs to unit {task.unit_id}, not {officer.unit}")
    if officer.id != task.officer_id and officer.role not in DECIDING_ROLES:
        raise Forbidden(f"task {task.id} is assigned to another officer")
    if not task.is_open:
        raise Conflict(f"task {task.id} is already {task.state}", allowed=[])
    if decision == "reject" and not (reason and reason.strip()):
        raise DomainError("a rejection needs a reason")
