"""The sync state of each dossier in notify's database: one document per dossier (`dvcqg_sync`)
holding the dossier's snapshot, its pending operations in order, the event ids already queued
(idempotence), and `due_at`, the moment it is next worth sending (None: nothing to send).

A replica claims a dossier by moving its `due_at` forward by the lease and writing a claim id,
in one conditional update; only the claim holder's writes land afterwards. So two replicas never
send one dossier at once, and a dossier's operations go out one after another, in order.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.storage import Document, Indexes, ensure_indexes

SYNC = "dvcqg_sync"
INDEXES: Indexes = {
    SYNC: [
        IndexModel([("due_at", ASCENDING)], name="due"),
        IndexModel([("pending", ASCENDING)], name="backlog"),
        IndexModel([("changed_at", ASCENDING)], name="changed"),
    ]
}


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
        update: dict[str, Any] = {
            "$push": {"ops": {"$each": ops}, "seen": event_id},
            "$inc": {"pending": len(ops)},
            "$set": {"changed_at": now, "status": ops[-1]["status"], "state": "pending"},
            "$setOnInsert": {"due_at": now, "attempts": 0, "claim": None},
        }
        if dossier is not None:
            update["$set"]["dossier"] = dossier
        try:
            result = await self.sync.update_one(
                {"_id": code, "seen": {"$ne": event_id}}, update, upsert=True
            )
        except DuplicateKeyError:
            return False  # the document exists and has seen the event
        if not result.upserted_id:
            await self.sync.update_one({"_id": code, "due_at": None}, {"$set": {"due_at": now}})
        return True

    async def claim(self, now: datetime, lease: timedelta) -> tuple[str, Document] | None:
        """One due dossier, held for `lease` by a new claim id."""
        claim = uuid.uuid4().hex
        doc = await self.sync.find_one_and_update(
            {"due_at": {"$lte": now}},
            {"$set": {"due_at": now + lease, "claim": claim}},
            sort=[("due_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else (claim, doc)

    async def sent(self, code: str, claim: str, op_index: int, now: datetime, added: bool) -> bool:
        """The claimed dossier's operation went through: drop it, stay due for the next."""
        doc = await self.sync.find_one({"_id": code, "claim": claim})
        if doc is None:
            return False
        ops = list(doc.get("ops", []))
        ops.pop(op_index)
        result = await self.sync.update_one(
            {"_id": code, "claim": claim, "pending": doc["pending"]},
            {
                "$set": {
                    "ops": ops,
                    "due_at": now,
                    "claim": None,
                    "attempts": 0,
                    "state": "pending" if ops else "in_sync",
                    "last_attempt_at": now,
                    "last_success_at": now,
                    "last_error": None,
                    **({"added": True} if added else {}),
                },
                "$inc": {"pending": -1},
            },
        )
        if result.modified_count == 0:  # an event came meanwhile: keep both, try again soon
            await self._pop_by_id(code, claim, doc["ops"][op_index], now, added)
        return True

    async def _pop_by_id(
        self, code: str, claim: str, op: dict[str, Any], now: datetime, added: bool
    ) -> None:
        await self.sync.update_one(
            {"_id": code, "claim": claim},
            {
                "$pull": {"ops": {"event_id": op["event_id"], "kind": op["kind"]}},
                "$inc": {"pending": -1},
                "$set": {
                    "due_at": now,
                    "claim": None,
                    "attempts": 0,
                    "last_attempt_at": now,
                    "last_success_at": now,
                    "last_error": None,
                    **({"added": True} if added else {}),
                },
            },
        )

    async def failed(
        self, code: str, claim: str, now: datetime, retry_at: datetime, error: str
    ) -> None:
        await self.sync.update_one(
            {"_id": code, "claim": claim},
            {
                "$set": {
                    "due_at": retry_at,
                    "claim": None,
                    "state": "retrying",
                    "last_attempt_at": now,
                    "last_error": error[:500],
                },
                "$inc": {"attempts": 1},
            },
        )

    async def idle(self, code: str, claim: str, pending: int, now: datetime) -> None:
        """Nothing to send now: not due until new work comes (at once, if some came meanwhile)."""
        result = await self.sync.update_one(
            {"_id": code, "claim": claim, "pending": pending},
            {"$set": {"due_at": None, "claim": None}},
        )
        if result.modified_count == 0:
            await self.sync.update_one(
                {"_id": code, "claim": claim}, {"$set": {"due_at": now, "claim": None}}
            )

    async def next_due(self) -> datetime | None:
        doc = await self.sync.find_one(
            {"due_at": {"$gte": datetime(1970, 1, 1, tzinfo=UTC)}},
            sort=[("due_at", ASCENDING)],
            projection={"due_at": 1},
        )
        return None if doc is None else doc["due_at"]

    async def backlog(self) -> int:
        return await self.sync.count_documents({"pending": {"$gt": 0}})

    async def get(self, code: str) -> Document | None:
        return await self.sync.find_one({"_id": code}, projection={"seen": 0})

    async def changed_since(self, since: datetime, limit: int) -> list[Document]:
        cursor = self.sync.find(
            {"changed_at": {"$gte": since}}, sort=[("changed_at", ASCENDING)], limit=limit
        )
        return [doc async for doc in cursor]
