"""What review's handlers need from the outside world, as Protocols: the task store, the
directory of units and officers, the clock, and publishing. store.py and directory.py are the
MongoDB adapters; tests/unit/review_fakes.py holds in-memory ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.review.access import Position, Scope
from services.review.deadlines import Firing
from services.review.domain import Task
from services.review.roster import Officer, Roster, Unit
from services.review.stages import StageCount
from services.review.steps import Decision
from shared.contracts import Event

__all__ = ["Directory", "Publish", "QueueFilter", "StageCount", "Tasks"]

Publish = Callable[[list[Event]], Awaitable[list[Event]]]
"""Publish stored events with confirms (and forget their outbox pointers); returns them."""


@dataclass(frozen=True)
class QueueFilter:
    """Narrowing of a queue: one state, stage, procedure or ward, due before / not before a
    moment."""

    state: str | None = None
    procedure_code: str | None = None
    due_before: datetime | None = None
    due_from: datetime | None = None
    stage: str | None = None
    ward_code: str | None = None
    soon_by: datetime | None = None  # due soon by then (see stages.py)


class Tasks(Protocol):
    async def load(self, task_id: str) -> Task | None:
        """The task, open or finished."""
        ...

    async def by_dossier(self, dossier_code: str) -> Task | None:
        """The dossier's task, open or finished."""
        ...

    async def stored_events(self, task_id: str, caused_by: str) -> list[Event]:
        """The events the task recorded because of `caused_by` (for a redelivered input)."""
        ...

    async def open_counts(self, unit_id: str) -> dict[str, int]:
        """How many open tasks each officer of the unit holds."""
        ...

    async def create(self, task: Task, events: list[Event]) -> tuple[Task, bool]:
        """Store a new task with its events; if it exists already, that one and False."""
        ...

    async def save(self, before: Task, decision: Decision) -> bool:
        """Store a step taken from `before` (its version); False if another step won."""
        ...

    async def queue(
        self, scopes: Sequence[Scope], where: QueueFilter, after: Position | None, limit: int
    ) -> list[Task]:
        """Open tasks in any of `scopes`, soonest due first (no due date last), by id on ties."""
        ...

    async def finished(self, scope: Scope, after: Position | None, limit: int) -> list[Task]:
        """Finished tasks of `scope`, most recently decided first."""
        ...

    async def counts(self, scopes: Sequence[Scope], now: datetime) -> dict[str, StageCount]:
        """Open tasks of `scopes` (disjoint) per stage, with those overdue or due soon at
        `now`: one indexed count per scope."""
        ...

    async def by_phone(self, phone: str, limit: int) -> list[Task]:
        """Tasks (open, then finished) of dossiers whose applicant has this +84 number."""
        ...

    async def due_timers(self, now: datetime, limit: int) -> list[Task]:
        """Open tasks whose next timer is at or before `now`, earliest first."""
        ...

    async def next_timer(self) -> datetime | None:
        """The earliest pending timer of any open task."""
        ...

    async def fire(self, firing: Firing) -> bool:
        """Record the firing once, with its event; False if it had fired already."""
        ...

    async def timer_fired(self, before: Task, after: Task) -> bool:
        """Store the task moved on to its next timer (and escalated), guarded by the version
        of `before`; False if a step moved it meanwhile (the next round looks again)."""
        ...

    async def close_finished(self, limit: int) -> int:
        """Move finished tasks whose events are published out of the live collection."""
        ...


class Directory(Protocol):
    async def roster(self) -> Roster:
        """Units and officers as they stand."""
        ...

    async def put_unit(self, unit: Unit, *, by: str) -> Unit: ...

    async def put_officer(self, officer: Officer, *, by: str) -> Officer: ...

    async def history(self, kind: str, key: str) -> list[dict[str, Any]]: ...
