"""The sync state of each dossier in notify's database: one document per dossier (`dvcqg_sync`)
holding the dossier's snapshot, its pending operations in order, the event ids already queued
(idempotence), and `due_at`, the moment it is next worth sending, in epoch seconds (None:
nothing to send).

Every write is guarded by the version it was read at (an event's enqueue and the sender racing:
one wins, the other reads again). A replica claims a dossier by moving its `due_at` forward by
the lease and writing a claim id, in one conditional update; only the claim holder's writes land
afterwards. So two replicas never
send one dossier at once, and a dossier's operations go out one after another, in order.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.notify.national.domain import next_operation
from shared.storage import Document, Indexes, ensure_indexes

SYNC = "dvcqg_sync"
RACES = 20
INDEXES: Indexes = {
    SYNC: [
        IndexModel([("due_at", ASCENDING)], name="due"),
        IndexModel([("pending", ASCENDING)], name="backlog"),
        IndexModel([("changed_at", ASCENDING)], name="changed"),
    ]
}


def _ts(moment: datetime) -> float:
    """`due_at` is kept as epoch seconds: a number compares and sorts alike everywhere."""
    return moment.timestamp()


class SyncStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.sync = db[SYNC]

    async def setup(self) -> None:
        await ensure_indexes(self.sync.database, INDEXES)

    async def enqueue(
        self,
        code: str,
        event_id: str,
        ops: list[dict[str, Any]],
        now: datetime,
        dossier: dict[str, Any] | None = None,
    ) -> bool:
        """Queue `ops` of one event, once: False when that event was queued already."""
        for _ in range(RACES):
            doc = await self.sync.find_one({"_id": code})
            if doc is None:
                fresh: Document = {
                    "_id": code,
                    "version": 1,
                    "ops": ops,
                    "seen": [event_id],
                    "pending": len(ops),
                    "status": ops[-1]["status"],
                    "state": "pending",
                    "changed_at": now,
                    "due_at": _ts(now),
                    "attempts": 0,
                    "claim": None,
                    "added": False,
                    "dossier": dossier,
                }
                try:
                    await self.sync.insert_one(fresh)
                except DuplicateKeyError:
                    continue
                return True
            if event_id in doc.get("seen", []):
                return False
            # An event older than the newest update the portal already has updates nothing
            # (its status would go back): only its progress step goes.
            until = doc.get("updated_until")
            late = [o for o in ops if until and _when(o) < datetime.fromisoformat(until)]
            ops = [o for o in ops if not (o in late and o["kind"] == "update")]
            # In the order the events happened, not the order they arrived: a redelivered
            # earlier event is sent before a later one already waiting (one event's own
            # operations keep their order: the sort is stable).
            queued = sorted([*doc.get("ops", []), *ops], key=_when)
            newest = [o for o in queued if o not in late]
            change: dict[str, Any] = {
                "ops": queued,
                "seen": [*doc.get("seen", []), event_id],
                "pending": len(queued),
                "status": newest[-1]["status"] if newest else doc.get("status"),
                "state": "pending",
                "changed_at": now,
                "due_at": doc.get("due_at") or _ts(now),
            }
            if dossier is not None:
                change["dossier"] = dossier
            if await self._write(doc, change):
                return True
        raise RuntimeError(f"{code}: too many concurrent writes of its sync state")

    async def _write(self, doc: Document, change: dict[str, Any], claim: str | None = None) -> bool:
        """Write `change` if the document is still the version read (and still claimed)."""
        where: dict[str, Any] = {"_id": doc["_id"], "version": doc["version"]}
        if claim is not None:
            where["claim"] = claim
        result = await self.sync.update_one(
            where, {"$set": {**change, "version": doc["version"] + 1}}
        )
        return result.modified_count == 1

    async def claim(self, now: datetime, lease: timedelta) -> tuple[str, Document] | None:
        """One due dossier, held for `lease` by a new claim id."""
        claim = uuid.uuid4().hex
        doc = await self.sync.find_one_and_update(
            {"due_at": {"$lte": _ts(now)}},
            {"$set": {"due_at": _ts(now + lease), "claim": claim}, "$inc": {"version": 1}},
            sort=[("due_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else (claim, doc)

    async def _settle(self, code: str, claim: str, decide: Any) -> None:
        """Apply `decide(doc)` (a change) to the claimed dossier, re-reading on a race with an
        event's enqueue; nothing if the claim was lost (its lease ran out)."""
        for _ in range(RACES):
            doc = await self.sync.find_one({"_id": code, "claim": claim})
            if doc is None:
                return
            if await self._write(doc, {**decide(doc), "claim": None}, claim):
                return

    async def sent(self, code: str, claim: str, op: dict[str, Any], now: datetime) -> None:
        """The claimed dossier's operation went through: drop it, stay due for the next."""

        def change(doc: Document) -> dict[str, Any]:
            ops = [
                o for o in doc["ops"] if (o["event_id"], o["kind"]) != (op["event_id"], op["kind"])
            ]
            until = doc.get("updated_until")
            if op["kind"] in ("add", "update") and (
                not until or _when(op) > datetime.fromisoformat(until)
            ):
                until = str(op["at"])  # the portal has this dossier's status as of then
            return {
                "updated_until": until,
                "ops": ops,
                "pending": len(ops),
                "due_at": _ts(now) if ops else None,
                "attempts": 0,
                "state": "pending" if ops else "in_sync",
                "last_attempt_at": now,
                "last_success_at": now,
                "last_error": None,
                "added": bool(doc.get("added")) or op["kind"] == "add",
            }

        await self._settle(code, claim, change)

    async def failed(
        self, code: str, claim: str, now: datetime, retry_at: datetime, error: str
    ) -> None:
        await self._settle(
            code,
            claim,
            lambda doc: {
                "due_at": _ts(retry_at),
                "state": "retrying",
                "last_attempt_at": now,
                "last_error": error[:500],
                "attempts": int(doc.get("attempts", 0)) + 1,
            },
        )

    async def idle(self, code: str, claim: str, now: datetime) -> None:
        """Nothing to send now: not due until new work comes (at once, if some came meanwhile:
        the submission this dossier was waiting for may have been queued during the claim)."""

        def change(doc: Document) -> dict[str, Any]:
            waiting = next_operation(list(doc.get("ops", [])), doc.get("dossier")) is None
            return {"due_at": None if waiting else _ts(now)}

        await self._settle(code, claim, change)

    async def next_due(self) -> datetime | None:
        doc = await self.sync.find_one({"due_at": {"$gte": 0}}, sort=[("due_at", ASCENDING)])
        return None if doc is None else datetime.fromtimestamp(doc["due_at"], UTC)

    async def backlog(self) -> int:
        return await self.sync.count_documents({"pending": {"$gt": 0}})

    async def get(self, code: str) -> Document | None:
        return await self.sync.find_one({"_id": code}, projection={"seen": 0})

    async def changed_since(self, since: datetime, limit: int) -> list[Document]:
        cursor = self.sync.find(
            {"changed_at": {"$gte": since}}, sort=[("changed_at", ASCENDING)], limit=limit
        )
        return [doc async for doc in cursor]


def _when(op: dict[str, Any]) -> datetime:
    """When the event an operation comes from happened."""
    return datetime.fromisoformat(str(op["at"]))
