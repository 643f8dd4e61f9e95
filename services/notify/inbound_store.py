"""The inbound SMS webhook's two small collections, both read by key only and both holding
live items only (a TTL index removes what is past):
- `sms_inbound`: the gateway's message ids taken in the replay window, so a replayed call is
  answered without effect (a timestamp older than the window is refused before it is looked up);
- `sms_rate`: one counter per phone and minute, shared by every replica."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.notify.inbound import TOLERANCE_SECONDS, WINDOW_SECONDS
from shared.storage import Document, Indexes, ensure_indexes

SEEN = "sms_inbound"
RATE = "sms_rate"
# Both are read by `_id` only; `expires_at` is for the TTL monitor.
INBOUND_INDEXES: Indexes = {
    SEEN: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry")],
    RATE: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry")],
}
KEPT = timedelta(seconds=2 * TOLERANCE_SECONDS)


class InboundStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.seen = db[SEEN]
        self.rate = db[RATE]
        self.db = db

    async def setup(self) -> None:
        await ensure_indexes(self.db, INBOUND_INDEXES)

    async def claim(self, message_id: str, now: datetime) -> bool:
        """Take the gateway's message id; False if it was taken already (one insert)."""
        try:
            await self.seen.insert_one({"_id": message_id, "expires_at": now + KEPT})
        except DuplicateKeyError:
            return False
        return True

    async def release(self, message_id: str) -> None:
        await self.seen.delete_one({"_id": message_id})

    async def hit(self, key: str, window: int) -> int:
        """Count one request of `key` in minute `window`; the count so far. One isolated
        `$inc`; the minute's first inserts its counter (with `expires_at`: nx-27017 0.8.1
        stores a datetime given to `$set` as a string, which no TTL index expires)."""
        doc_id = _counter(key, window)
        for _ in range(10):  # find-or-insert: two replicas racing at a minute's start
            doc = await self.rate.find_one_and_update(
                {"_id": doc_id}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
            )
            if doc is not None:
                return int(doc["n"])
            expires = datetime.fromtimestamp((window + 3) * WINDOW_SECONDS, UTC)
            try:
                await self.rate.insert_one({"_id": doc_id, "n": 1, "expires_at": expires})
            except DuplicateKeyError:
                continue  # another replica counted the minute's first meanwhile
            return 1
        raise RuntimeError(f"could not count requests of {doc_id}")

    async def count(self, key: str, window: int) -> int:
        doc = await self.rate.find_one({"_id": _counter(key, window)}, projection={"n": 1})
        return int(doc["n"]) if doc else 0


def _counter(key: str, window: int) -> str:
    """A minute's counter of a phone, named by a hash: no phone number is stored."""
    return f"{hashlib.sha256(key.encode()).hexdigest()[:32]}:{window}"
