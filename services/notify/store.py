"""Notify's MongoDB adapter: applicants' contacts, deliveries in flight, and the history of
finished deliveries. It records what the domain decided and reads by key; it decides nothing.

`deliveries` holds only deliveries in flight (sending, retrying; a finished one for the moment
between its outcome and its move). Each document is the whole aggregate, outcome event (outbox)
included, and every write of it is guarded by the version it was read at, so of two handlers
racing for one delivery exactly one writes. Finished deliveries move to `delivery_history`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DeleteOne, IndexModel, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError, WriteError

from services.notify.domain import Delivery, LogKey, log_key
from services.notify.endpoint_store import INDEXES as PARTNER_INDEXES
from services.notify.national.store import INDEXES as DVCQG_INDEXES
from services.notify.ports import Unreadable
from shared.contracts import load
from shared.outbox import OUTBOX_INDEXES
from shared.storage import Coalesced, Document, Indexes, ensure_indexes

log = logging.getLogger(__name__)

LIVE = "deliveries"
HISTORY = "delivery_history"
# Set on a delivery inserted into live until its next save: its insert was followed by a check
# of history that may have failed or been cut short (see `load`).
UNCHECKED = "unchecked"
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
INDEXES = {**INDEXES, **DVCQG_INDEXES}  # the national-portal sync's (services/notify/national)
# Partner accounts, endpoints, their messages and logs; the relay's pointers (unused, queried).
INDEXES = {**INDEXES, **PARTNER_INDEXES, **OUTBOX_INDEXES}

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


# Contacts never change once stored (the first stays): a replica keeps the recent ones, so the
# events after a submission need no read for them.
CONTACTS_KEPT = 10_000


class NotifyStore:
    def __init__(self, db: AsyncDatabase[Document], *, contacts_kept: int = CONTACTS_KEPT) -> None:
        self.db = db
        self.contacts: OrderedDict[str, Document] = OrderedDict()
        self.contacts_kept = contacts_kept
        self.recipients = db[RECIPIENTS]
        self.live = db[LIVE]
        self.history = db[HISTORY]
        self._archive = Coalesced(self._archive_all)

    async def setup(self) -> None:
        await ensure_indexes(self.db, INDEXES)

    # --- contacts --------------------------------------------------------------------------

    async def remember(self, dossier_code: str, contact: dict[str, Any]) -> None:
        """Keep the applicant's contact for later notifications (idempotent: the first stays)."""
        if dossier_code in self.contacts:
            return
        try:
            await self.recipients.insert_one({"_id": dossier_code, **contact})
        except DuplicateKeyError:
            return  # the stored one stays; read it when it is asked for
        self._keep(dossier_code, {"_id": dossier_code, **contact})

    async def recipient(self, dossier_code: str) -> Document | None:
        kept = self.contacts.get(dossier_code)
        if kept is not None:
            self.contacts.move_to_end(dossier_code)
            return dict(kept)
        found = await self.recipients.find_one({"_id": dossier_code})
        if found is not None:
            self._keep(dossier_code, found)
        return found

    def _keep(self, dossier_code: str, contact: Document) -> None:
        self.contacts[dossier_code] = contact
        while len(self.contacts) > self.contacts_kept:
            self.contacts.popitem(last=False)

    # --- deliveries ------------------------------------------------------------------------

    async def load(self, delivery_id: str) -> Delivery | None:
        """The delivery in flight, else the finished one, else None (at most two reads by key:
        in this order, because a finished delivery reaches history before it leaves `live`).

        A live copy still `UNCHECKED` (inserted, its check of history not known to have
        passed: a handler is at that check now, or failed or stopped there) is looked up in
        history too: if history holds it as new or newer, the live copy was an insert that
        should have stepped back; it is dropped and the finished delivery is the answer."""
        doc = await self.live.find_one({"_id": delivery_id})
        if doc is not None:
            done = await self._stepped_back(doc)
            return delivery_of(done, archived=True) if done else delivery_of(doc, archived=False)
        doc = await self.history.find_one({"_id": delivery_id})
        return delivery_of(doc, archived=True) if doc is not None else None

    async def _stepped_back(self, doc: Document) -> Document | None:
        """If live `doc` is an insert that should have stepped back (still `UNCHECKED`, and
        history holds the delivery as new or newer), drop it and return history's copy; else
        None (one read of history, for an unchecked copy only)."""
        if not doc.get(UNCHECKED):
            return None
        newer = {"_id": doc["_id"], "version": {"$gte": doc["version"]}}
        done = await self.history.find_one(newer)
        if done is not None:
            await self.live.delete_one({"_id": doc["_id"], "version": doc["version"]})
        return done

    async def save(self, previous: Delivery, new: Delivery) -> Delivery | None:
        """Record `new` in place of `previous` as it was read, in one write; None if another
        handler wrote meanwhile (then nothing is written). Returns `new` as stored."""
        saved = replace(new, version=previous.version + 1, archived=False)
        doc = document(saved)
        if previous.version and not previous.archived:
            result = await self.live.replace_one({"_id": new.id, "version": previous.version}, doc)
            return saved if result.matched_count == 1 else None
        unchecked = {**doc, UNCHECKED: True}  # the next save replaces it
        try:  # a new delivery, or a finished one reopened from history
            await self.live.insert_one(unchecked)
        except DuplicateKeyError:
            return None
        # The delivery may be finished already: a redelivered event's (inserted without a read,
        # `previous` is version 0), or another handler took the same step from the same read,
        # sent, and moved its outcome to history (deleting its live copy) before this insert. A
        # history entry as new as this insert says so (history is written before the live copy
        # is deleted, so it is there by now). Step back, so nothing is sent twice.
        return None if await self._stepped_back(unchecked) is not None else saved

    async def archive(self, delivery: Delivery) -> None:
        """Move a finished delivery to history (idempotent; never over a later version). The
        moves asked for while one is under way go together (`Coalesced`): one bulk write to
        history, then one bulk delete from `live`, instead of two commands each."""
        if not delivery.archived:
            await self._archive(delivery)

    async def _archive_all(self, deliveries: list[Delivery]) -> list[BaseException | None]:
        """Copy each to history, then drop from `live` those whose copy is there: one whose
        copy was refused stays in `live` (its caller gets why), and does not hold back the
        others of its batch."""

        def guard(delivery: Delivery) -> Document:
            return {"_id": delivery.id, "version": {"$lt": delivery.version}}

        # Each document with its _id: nx-27017 0.8.1 takes none from an upsert's filter.
        if len(deliveries) == 1:
            (delivery,) = deliveries
            with contextlib.suppress(DuplicateKeyError):  # history holds it, or a later one
                await self.history.replace_one(guard(delivery), document(delivery), upsert=True)
            await self.live.delete_one({"_id": delivery.id, "version": delivery.version})
            return [None]
        outcomes: list[BaseException | None] = [None] * len(deliveries)
        copies = [ReplaceOne(guard(d), document(d), upsert=True) for d in deliveries]
        try:
            await self.history.bulk_write(copies, ordered=False)
        except BulkWriteError as exc:  # those history holds already, or a later version of
            if exc.details.get("writeConcernErrors"):
                raise
            for error in exc.details.get("writeErrors", []):
                if error.get("code") != 11000:
                    outcomes[error["index"]] = WriteError(
                        error.get("errmsg", "refused"), error.get("code"), error
                    )
        drops = [
            DeleteOne({"_id": d.id, "version": d.version})
            for d, outcome in zip(deliveries, outcomes, strict=True)
            if outcome is None
        ]
        if drops:
            await self.live.bulk_write(drops, ordered=False)
        return outcomes

    async def resends(self, root: Delivery) -> list[Delivery]:
        """Every resend of the delivery `root`, among its dossier's (the log's index)."""
        query = {"dossier_code": root.dossier_code, "resend_of": root.id}
        live = [doc async for doc in self.live.find(query)]
        found = [
            delivery_of(doc, archived=False) for doc in live if not await self._stepped_back(doc)
        ]
        found += [delivery_of(doc, archived=True) async for doc in self.history.find(query)]
        return found

    async def stuck(self, now: datetime, *, limit: int) -> list[Delivery | Unreadable]:
        """Deliveries still in `live` past their due moment plus a grace (the sweep's query),
        each decoded on its own: a document that cannot be read comes back as `Unreadable`."""
        cursor = self.live.find({"check_at": {"$lt": now}}).sort("check_at", 1).limit(limit)
        found: list[Delivery | Unreadable] = []
        async for doc in cursor:
            try:
                if await self._stepped_back(doc) is not None:
                    continue  # finished already: what was left in live is gone
            except PyMongoError:  # this one is looked at again next round; the others go on
                log.warning("could not check a delivery left unchecked", exc_info=True)
                continue
            try:
                found.append(delivery_of(doc, archived=False))
            except Exception as exc:
                found.append(Unreadable(str(doc["_id"]), f"{type(exc).__name__}: {exc}", doc))
        return found

    async def postpone(self, unreadable: Unreadable, until: datetime) -> bool:
        """Move a live document's due moment to `until`, unless it was written since it was
        read; whether it was moved. The whole document is written again: nx-27017 0.8.1 stores
        a datetime given to `$set` as a naive string, which `stuck`'s `$lt` would never match
        again."""
        doc = {**unreadable.stored, "check_at": until}
        guard = {"_id": unreadable.id, "version": unreadable.stored.get("version")}
        result = await self.live.replace_one(guard, doc)
        return result.matched_count == 1

    async def log(
        self, dossier_code: str, *, after: LogKey | None, limit: int
    ) -> tuple[list[Delivery], list[Delivery]]:
        """A page (`limit` + 1, oldest first) of a dossier's deliveries in flight and finished
        (a live copy left unchecked costs a read of history by key)."""
        query: Document = {"dossier_code": dossier_code}
        if after is not None:
            query["log_key"] = {"$gt": after}

        async def page(collection: AsyncCollection[Document], archived: bool) -> list[Delivery]:
            cursor = collection.find(query).sort("log_key", 1).limit(limit + 1)
            docs = [doc async for doc in cursor]
            if not archived:  # an unchecked copy that should have stepped back is not shown
                docs = [doc for doc in docs if not await self._stepped_back(doc)]
            return [delivery_of(doc, archived=archived) for doc in docs]

        return await page(self.live, False), await page(self.history, True)
