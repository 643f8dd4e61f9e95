"""The console's views over the queue: how many tasks each stage holds for an officer, a
search by dossier code or the applicant's phone, and who the officer and their colleagues are.
They depend on the ports only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.review.access import may_see, scopes_for
from services.review.domain import Task
from services.review.ports import Directory, StageCount, Tasks
from services.review.roster import Officer, Unit
from services.review.stages import OPEN_STAGES, phone_key
from shared.clock import Clock


@dataclass(frozen=True)
class Counts:
    """Open tasks of an officer's scope per stage at `at`, and how many are overdue or due
    soon (of all stages, and per stage)."""

    at: datetime
    scope: str | None
    stages: dict[str, StageCount]

    @property
    def overdue(self) -> int:
        return sum(c.overdue for c in self.stages.values())

    @property
    def due_soon(self) -> int:
        return sum(c.due_soon for c in self.stages.values())

    @property
    def total(self) -> int:
        return sum(c.total for c in self.stages.values())


async def counts(officer: Officer, *, tasks: Tasks, clock: Clock, scope: str | None) -> Counts:
    """The counts of the queue `scope` names (every stage listed, none missing)."""
    now = clock()
    found = await tasks.counts(scopes_for(officer, scope), now)
    stages: dict[str, StageCount] = {s: found.get(s, StageCount()) for s in OPEN_STAGES}
    return Counts(now, scope, stages)


async def search(officer: Officer, text: str, *, tasks: Tasks, limit: int = 50) -> list[Task]:
    """The tasks, open ones first, of the dossier with this exact code, or of the applicant
    with this exact mobile number, that the officer may see (their unit's, or escalated)."""
    phone = phone_key(text)
    if phone is not None:
        found = await tasks.by_phone(phone, limit)
    else:
        task = await tasks.by_dossier(text.strip())
        found = [task] if task is not None else []
    return [t for t in found if may_see(t, officer)]


@dataclass(frozen=True)
class Colleagues:
    """The officer the token names, their unit, and its officers (active ones first)."""

    officer: Officer
    unit: Unit | None
    officers: list[Officer]
    province: bool  # their unit is the province office (the roster's default unit)


async def colleagues(officer: Officer, *, directory: Directory) -> Colleagues:
    """Who the caller is and who works in their unit (from the cached directory)."""
    roster = await directory.roster()
    unit = next((u for u in roster.units if u.id == officer.unit), None)
    members = sorted(
        (o for o in roster.officers if o.unit == officer.unit), key=lambda o: (not o.active, o.id)
    )
    return Colleagues(officer, unit, members, officer.unit == roster.default_unit)
