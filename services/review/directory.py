"""Units and officers in review's database: seeded from the roster file, managed by admins.

The roster file only seeds what the database lacks, so changes made through the admin API
survive a restart and a redeploy. Every change is checked against the whole directory (an
officer's unit exists, no ward in two units) before it is written, and recorded in
`directory_changes` with who made it. Every request reads the directory (to authenticate its
officer), so reads use an in-process snapshot: a change made here invalidates it at once, one
made by another replica is seen within `ttl` seconds. An idle replica reads nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.review.roster import Officer, Roster, Unit
from shared.clock import utcnow
from shared.storage import Document, Indexes

DEFAULT_UNIT = "default_unit"
ALL: Document = {"_id": {"$gte": ""}}  # every document, read along the _id index (ids are strings)

INDEXES: Indexes = {
    "units": [],  # read whole along _id, or by _id
    "officers": [],
    "directory_meta": [],
    "directory_changes": [IndexModel([("kind", ASCENDING), ("key", ASCENDING), ("at", ASCENDING)])],
}


class DirectoryError(ValueError):
    """A change that would leave the directory inconsistent; nothing was written."""


class Directory:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        ttl: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.units = db["units"]
        self.officers = db["officers"]
        self.meta = db["directory_meta"]
        self.changes = db["directory_changes"]
        self.ttl = ttl
        self.monotonic = monotonic
        self._snapshot: Roster | None = None
        self._taken = 0.0

    async def seed(self, roster: Roster) -> int:
        """Insert the roster's units and officers the database does not have yet."""
        added = 0
        pairs: list[tuple[Any, list[Document]]] = [
            (self.meta, [{"_id": DEFAULT_UNIT, "value": roster.default_unit}]),
            (self.units, [_unit_doc(u) for u in roster.units]),
            (self.officers, [_officer_doc(o) for o in roster.officers]),
        ]
        for collection, docs in pairs:
            for doc in docs:
                try:
                    await collection.insert_one({**doc, "seeded_at": utcnow()})
                    added += 1
                except DuplicateKeyError:
                    pass
        self._snapshot = None
        return added

    async def roster(self) -> Roster:
        """The directory as a checked roster (cached for `ttl` seconds)."""
        if self._snapshot is None or self.monotonic() - self._taken > self.ttl:
            self._snapshot = await self._load()
            self._taken = self.monotonic()
        return self._snapshot

    async def _load(self, **replace: Any) -> Roster:
        meta = await self.meta.find_one({"_id": DEFAULT_UNIT})
        units = {d["_id"]: _unit(d) async for d in self.units.find(ALL)}
        officers = {d["_id"]: _officer(d) async for d in self.officers.find(ALL)}
        if "unit" in replace:
            units[replace["unit"].id] = replace["unit"]
        if "officer" in replace:
            officers[replace["officer"].id] = replace["officer"]
        try:
            return Roster(
                default_unit=meta["value"] if meta else "",
                units=sorted(units.values(), key=lambda u: u.id),
                officers=sorted(officers.values(), key=lambda o: o.id),
            )
        except ValidationError as exc:
            raise DirectoryError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from exc

    async def put_unit(self, unit: Unit, *, by: str) -> Unit:
        """Create or replace a unit (its name and the wards it receives)."""
        await self._load(unit=unit)  # refuse what would not hold together
        before = await self.units.find_one({"_id": unit.id})
        await self.units.replace_one({"_id": unit.id}, _unit_doc(unit), upsert=True)
        await self._record("unit", unit.id, before, _unit_doc(unit), by)
        return unit

    async def put_officer(self, officer: Officer, *, by: str) -> Officer:
        """Create or replace an officer (name, role, unit, active)."""
        await self._load(officer=officer)
        before = await self.officers.find_one({"_id": officer.id})
        await self.officers.replace_one({"_id": officer.id}, _officer_doc(officer), upsert=True)
        await self._record("officer", officer.id, before, _officer_doc(officer), by)
        return officer

    async def _record(
        self, kind: str, key: str, before: Document | None, after: Document, by: str
    ) -> None:
        self._snapshot = None
        if before is not None:
            before.pop("seeded_at", None)
        await self.changes.insert_one(
            {"kind": kind, "key": key, "before": before, "after": after, "by": by, "at": utcnow()}
        )

    async def history(self, kind: str, key: str) -> list[Document]:
        cursor = self.changes.find({"kind": kind, "key": key}, {"_id": 0}).sort("at", 1)
        return [doc async for doc in cursor]


def _unit_doc(unit: Unit) -> Document:
    return {"_id": unit.id, "name": unit.name, "wards": list(unit.wards)}


def _officer_doc(officer: Officer) -> Document:
    return {
        "_id": officer.id,
        "name": officer.name,
        "role": officer.role,
        "unit": officer.unit,
        "active": officer.active,
    }


def _unit(doc: Document) -> Unit:
    return Unit(id=doc["_id"], name=doc["name"], wards=doc.get("wards", []))


def _officer(doc: Document) -> Officer:
    return Officer(
        id=doc["_id"],
        name=doc["name"],
        role=doc["role"],
        unit=doc["unit"],
        active=doc.get("active", True),
    )
