"""Notify's MongoDB adapter: applicants' contacts, deliveries in flight, and the history of
finished deliveries. It records what the domain decided and reads by key; it decides nothing.

`deliveries` holds only deliveries in flight (sending, retrying; a finished one for the moment
between its outcome and its move). Each document is the whole aggregate, outcome event (outbox)
included, and every write of it is guarded by the version it was read at, so of two handlers
racing for one delivery exactly one writes. Finished deliveries move to `delivery_history`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.notify.domain import Delivery, LogKey, log_key
from shared.contracts import load
from shared.storage import Document, Indexes, ensure_indexes

LIVE = "deliveries"
HISTORY = "delivery_history"
RECIPIENTS = "recipients"

# Not [dossier_code, created_at, _id]: nx-27017 0.8.1 refuses every insert into a collection
# with a compound index naming `_id` ("JSON path error near '_id'"); `log_key` orders alike.
_BY_DOSSIER = IndexModel([("dossier_code", ASCENDING), ("log_key", ASCENDING)], name="dossier_log")
INDEXES: Indexes = {
    # The log, and a message's resends (of the same dossier); the sweep's due moments.
    LIVE: [_BY_DOSSIER, IndexModel([("check_at", ASCENDING)], name="stuck")],
    HISTORY: [_BY_DOSSIER],
    RECIPIENTS: [],  # read by _id (the dossier code) only
}

_STORED = [f.name for f in dataclass_fields(Delivery) if f.name not in ("id", "archived")]


def document(delivery: Delivery) -> Document:
    """The stored form of a delivery (also what a benchmark loads as history)."""
    doc: Document = {"_id": delivery.id}
    for name in _STORED:
        doc[name] = getattr(delivery, name)
    doc["trigger"] = delivery.trigger.model_dump(mode="json")
    doc["outbox"] = [e.model_dump(mode="json") for e in delivery.outbox]
    doc["log_key"] = log_key(delivery)
    return doc


def delivery_of(doc: Mapping[str, Any], *, archived: bool) -> Delivery:
    values: dict[str, Any] = {name: doc[name] for name in _STORED if name in doc}
    values["trigger"] = load(doc["trigger"])
    values["outbox"] = tuple(load(e) for e in doc.get("outbox", []))
    return Delivery(id=doc["_id"], archived=archived, **values)


class NotifyStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.recipients = db[RECIPIENTS]
        self.live = db[LIVE]
        self.history = db[HISTORY]

    async def setup(self) -> None:
        await ensure_indexes(self.db, INDEXES)

    # --- contacts --------------------------------------------------------------------------

    async def remember(self, dossier_code: str, contact: dict[str, Any]) -> None:
        """Keep the applicant's contact for later notifications (idempotent: the first stays)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.recipients.insert_one({"_id": dossier_code, **contact})

    async def recipient(self, dossier_code: str) -> Document | None:
        return await self.recipients.find_one({"_id": dossier_code})

    # --- deliveries ------------------------------------------------------------------------

    async def load(self, delivery_id: str) -> Delivery | None:
        """The delivery in flight, else the finished one, else None (at most two reads by key:
        in this order, because a finished delivery reaches history before it leaves `live`)."""
        doc = await self.live.find_one({"_id": delivery_id})
        if doc is not None:
            return delivery_of(doc, archived=False)
        doc = await self.history.find_one({"_id": delivery_id})
        return delivery_of(doc, archived=True) if doc is not None else None

    async def save(self, previous: Delivery, new: Delivery) -> Delivery | None:
        """Record `new` in place of `previous` as it was read, in one write; None if another
        handler wrote meanwhile (then nothing is written). Returns `new` as stored."""
        saved = replace(new, version=previous.version + 1, archived=False)
        doc = document(saved)
        if previous.version and not previous.archived:
            result = await self.live.replace_one({"_id": new.id, "version": previous.version}, doc)
            return saved if result.matched_count == 1 else None
        try:  # a new delivery, or a finished one reopened from history
            await self.live.insert_one(doc)
        except DuplicateKeyError:
            return None
        if previous.version:
            return saved
        # A new one: another handler may have created, finished and moved it between our two
        # reads and this insert. Its history entry is there by now if so: step back.
        if await self.history.find_one({"_id": new.id}, {"_id": 1}) is not None:
            await self.live.delete_one({"_id": new.id, "version": saved.version})
            return None
        return saved

    async def archive(self, delivery: Delivery) -> None:
        """Move a finished delivery to history (idempotent; never over a later version)."""
        if delivery.archived:
            return
        doc = document(delivery)  # with its _id: nx-27017 0.8.1 takes none from an upsert's filter
        with contextlib.suppress(DuplicateKeyError):  # history holds this version or a later
            await self.history.replace_one(
                {"_id": delivery.id, "version": {"$lt": delivery.version}}, doc, upsert=True
            )
        await self.live.delete_one({"_id": delivery.id, "version": delivery.version})

    async def resends(self, root: Delivery) -> list[Delivery]:
        """Every resend of the delivery `root`, among its dossier's (the log's index)."""
        query = {"dossier_code": root.dossier_code, "resend_of": root.id}
        found = [delivery_of(doc, archived=False) async for doc in self.live.find(query)]
        found += [delivery_of(doc, archived=True) async for doc in self.history.find(query)]
        return found

    async def stuck(self, now: datetime, *, limit: int) -> list[Delivery]:
        """Deliveries still in `live` past their due moment plus a grace (the sweep's query)."""
        cursor = self.live.find({"check_at": {"$lt": now}}).sort("check_at", 1).limit(limit)
        return [delivery_of(doc, archived=False) async for doc in cursor]

    async def log(
        self, dossier_code: str, *, after: LogKey | None, limit: int
    ) -> tuple[list[Delivery], list[Delivery]]:
        """A page (`limit` + 1, oldest first) of a dossier's deliveries in flight and finished."""
        query: Document = {"dossier_code": dossier_code}
        if after is not None:
            query["log_key"] = {"$gt": after}

        async def page(collection: AsyncCollection[Document], archived: bool) -> list[Delivery]:
            cursor = collection.find(query).sort("log_key", 1).limit(limit + 1)
            return [delivery_of(doc, archived=archived) async for doc in cursor]

        return await page(self.live, False), await page(self.history, True)
