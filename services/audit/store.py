"""Audit's MongoDB adapter. Every collection is insert-only in normal operation:

- `records`: one document per event (`_id` = event id), identifiers masked.
- `pending`: a marker per record not yet chained, written *before* the record (so a record
  without a marker or a link is one nobody received: an insertion), holding a MAC of the record
  (`ledger.marker_mac`) so that a forged marker is told from audit's own. Settling deletes it.
- `chain`: immutable links, `_id` = `<dossier>#<seq>` (one winner per place in a chain).
- `seals`: one per period, `_id` = its sequence number (one winner per seal).
- `legacy_quarantine`: documents of the pre-ledger `events` collection that were no readable
  event, scrubbed of identifiers (see `handlers.adopt_legacy`).
- `leases`: who settles and seals, `_id` = `ledger-lease-<n>` (one winner per lease).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.audit import ledger
from services.audit.batching import PartialWrite
from services.audit.domain import occurrence_key
from shared.storage import Document

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
QUARANTINE = "legacy_quarantine"
DUPLICATE_KEY = 11000


def insert_errors_are_duplicates(exc: BulkWriteError) -> bool:
    """Whether a bulk insert failed only on documents already there (a redelivery). A write
    concern error (the writes may not be durable) or no write error at all is not that."""
    errors = exc.details.get("writeErrors") or []
    if not errors or exc.details.get("writeConcernErrors"):
        return False
    return all(e.get("code") == DUPLICATE_KEY for e in errors)


def _lease_id(n: int) -> str:
    return f"ledger-lease-{n:012d}"  # zero-padded: ids sort as numbers


async def _insert_each(collection: AsyncCollection[Document], docs: list[Document]) -> set[int]:
    """Insert `docs`; the indexes of those refused (one already there counts as written). A
    write concern error may have lost any of them: raised."""
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors") or []
        if not errors or exc.details.get("writeConcernErrors"):
            raise
        return {int(e["index"]) for e in errors if e.get("code") != DUPLICATE_KEY}
    return set()


# What statistics read of a record (`statistics.facts`).
STATISTICS_FIELDS = {
    name: 1
    for name in (
        "dossier_code",
        "type",
        "time",
        "procedure_code",
        "unit_id",
        *(
            f"data.{field}"
            for field in (
                "received_at",
                "submitted_at",
                "requested_at",
                "supplemented_at",
                "decided_at",
                "promised_at",
            )
        ),
    )
}


class AuditStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.records = db["records"]
        self.pending = db["pending"]
        self.chain = db["chain"]
        self.seals = db["seals"]
        self.leases = db["leases"]

    async def setup(self) -> None:
        await self.records.create_index([("dossier_code", 1), ("time", 1), ("_id", 1)])
        await self.records.create_index([("time", 1), ("_id", 1)])
        await self.records.create_index([("applicant_id_hmac", 1)])
        await self.pending.create_index([("recorded_at", 1)])
        await self.chain.create_index([("dossier_code", 1), ("seq", 1)])
        await self.chain.create_index([("record_id", 1)])
        await self.chain.create_index([("settled_at", 1), ("_id", 1)])

    # --- writing -------------------------------------------------------------------------

    async def insert_records(self, records: list[Document], *, hmac_key: bytes) -> None:
        """Make `records` durable: pending markers first (with their MAC under a key derived
        from `hmac_key`), then the records; ones already stored (redeliveries) are left as
        they are."""
        key = ledger.marker_key(hmac_key)
        markers = [
            {
                "_id": r["_id"],
                "dossier_code": r["dossier_code"],
                "recorded_at": r["recorded_at"],
                "mac": ledger.marker_mac(key, r),
            }
            for r in records
        ]
        # A record is written only once its marker is; a document the database refuses fails
        # alone (the others of the batch are written, `ordered=False`).
        failed = await _insert_each(self.pending, markers)
        kept = [i for i in range(len(records)) if i not in failed]
        if kept:
            refused = await _insert_each(self.records, [records[i] for i in kept])
            failed |= {kept[j] for j in refused}
        if failed:
            raise PartialWrite(failed, "refused by the database")

    async def pending_before(self, cutoff: datetime) -> list[Document]:
        return [d async for d in self.pending.find({"recorded_at": {"$lt": cutoff}})]

    async def pending_ids(self, dossier_code: str) -> set[str]:
        return set(await self.pending_of(dossier_code))

    async def pending_of(self, dossier_code: str) -> dict[str, Document]:
        """The dossier's pending markers by record id."""
        return {d["_id"]: d async for d in self.pending.find({"dossier_code": dossier_code})}

    async def drop_pending(self, ids: list[str]) -> None:
        if ids:
            await self.pending.delete_many({"_id": {"$in": ids}})

    async def records_by_id(self, ids: list[str]) -> list[Document]:
        """The records with these ids that exist (lookups by `_id`: no scan)."""
        found = await asyncio.gather(*(self.records.find_one({"_id": i}) for i in ids))
        return [doc for doc in found if doc is not None]

    async def chain_of(self, dossier_code: str) -> list[Document]:
        """A dossier's links from the first on, by `_id` (`<dossier>#<seq>`), up to the first
        missing place: a dossier's chain is short, and lookups by `_id` never scan."""
        links: list[Document] = []
        while link := await self.chain.find_one({"_id": f"{dossier_code}#{len(links)}"}):
            links.append(link)
        return links

    async def has_link(self, dossier_code: str, seq: int) -> bool:
        return await self.chain.find_one({"_id": f"{dossier_code}#{seq}"}, {"_id": 1}) is not None

    async def add_links(self, links: list[Document]) -> bool:
        """Append links in order; False if another settler took one of their places."""
        try:
            await self.chain.insert_many(links, ordered=True)
        except BulkWriteError as exc:
            if insert_errors_are_duplicates(exc):
                return False
            raise
        return True

    async def last_seal(self) -> Document | None:
        cursor = self.seals.find().sort("_id", -1).limit(1)
        return next(iter([d async for d in cursor]), None)

    async def add_seal(self, seal: Document) -> bool:
        try:
            await self.seals.insert_one(seal)
        except DuplicateKeyError:
            return False
        return True

    async def quarantine(self, docs: list[Document]) -> None:
        """Keep `docs` in the quarantine (ones already there are left as they are)."""
        if not docs:
            return
        try:
            await self.records.database[QUARANTINE].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if not insert_errors_are_duplicates(exc):
                raise

    async def claim_lease(self, n: int, holder: str, now: datetime) -> bool:
        """Insert ledger lease `n` for `holder`; False if another process has it."""
        try:
            await self.leases.insert_one(
                {"_id": _lease_id(n), "n": n, "holder": holder, "claimed_at": now}
            )
        except DuplicateKeyError:
            held = await self.lease(n)
            return held is not None and held.get("holder") == holder
        return True

    async def lease(self, n: int) -> Document | None:
        return await self.leases.find_one({"_id": _lease_id(n)})

    async def latest_lease(self) -> Document | None:
        """The newest ledger lease (a scan: read once, at start)."""
        cursor = self.leases.find().sort("_id", -1).limit(1)
        return next(iter([d async for d in cursor]), None)

    async def drop_leases_before(self, cutoff: datetime) -> None:
        await self.leases.delete_many({"claimed_at": {"$lt": cutoff}})

    # --- reading -------------------------------------------------------------------------

    async def timeline(self, dossier_code: str) -> list[Document]:
        """The dossier's records in order of occurrence (event time, event id)."""
        cursor = self.records.find({"dossier_code": dossier_code})
        return sorted([doc async for doc in cursor], key=occurrence_key)

    async def links(self, dossier_code: str) -> list[Document]:
        cursor = self.chain.find({"dossier_code": dossier_code}).sort("seq", 1)
        return [d async for d in cursor]

    async def link_of(self, record_id: str) -> Document | None:
        return await self.chain.find_one({"record_id": record_id})

    async def record(self, record_id: str) -> Document | None:
        return await self.records.find_one({"_id": record_id})

    async def links_settled(self, after: datetime, until: datetime) -> list[Document]:
        """Links settled in (after, until], in seal order (settled time, id)."""
        query = {"settled_at": {"$gt": after, "$lte": until}}
        cursor = self.chain.find(query).sort([("settled_at", 1), ("_id", 1)])
        return [d async for d in cursor]

    async def first_link_settled(self, after: datetime, until: datetime) -> Document | None:
        """The first link settled in (after, until], if any."""
        query = {"settled_at": {"$gt": after, "$lte": until}}
        cursor = self.chain.find(query).sort([("settled_at", 1), ("_id", 1)]).limit(1)
        return next(iter([d async for d in cursor]), None)

    async def all_pending(self) -> dict[str, Document]:
        return {d["_id"]: d async for d in self.pending.find({})}

    async def grouped(
        self, collection: AsyncCollection[Document], then: str
    ) -> AsyncIterator[tuple[str, list[Document]]]:
        """(dossier code, its documents) for every dossier, in code order, in one pass."""
        code: str | None = None
        group: list[Document] = []
        async for doc in collection.find().sort([("dossier_code", 1), (then, 1)]):
            if doc.get("dossier_code", "") != code and group:
                assert code is not None
                yield code, group
                group = []
            code = str(doc.get("dossier_code", ""))
            group.append(doc)
        if group and code is not None:
            yield code, group

    async def all_seals(self) -> list[Document]:
        return [d async for d in self.seals.find().sort("_id", 1)]

    async def dossier_codes(self, since: datetime | None) -> list[str]:
        query: dict[str, Any] = {"time": {"$gte": since}} if since else {}
        codes = {d["dossier_code"] async for d in self.records.find(query, {"dossier_code": 1})}
        if since is None:
            codes |= {d["dossier_code"] async for d in self.chain.find({}, {"dossier_code": 1})}
        return sorted(codes)

    async def search(
        self, query: dict[str, Any], after: tuple[datetime, str] | None, limit: int
    ) -> list[Document]:
        """Records matching `query` in (time, id) order, after the cursor position `after`."""
        if after is not None:
            t, rid = after
            query = {
                "$and": [query, {"$or": [{"time": {"$gt": t}}, {"time": t, "_id": {"$gt": rid}}]}]
            }
        cursor = self.records.find(query).sort([("time", 1), ("_id", 1)]).limit(limit)
        return [d async for d in cursor]

    async def stream(self, query: dict[str, Any], page: int) -> AsyncIterator[Document]:
        """Every record matching `query`, in order, read `page` at a time."""
        after: tuple[datetime, str] | None = None
        while True:
            docs = await self.search(query, after, page)
            for doc in docs:
                yield doc
            if len(docs) < page:
                return
            after = (docs[-1]["time"], docs[-1]["_id"])

    async def dossiers_records(self, codes: list[str]) -> list[Document]:
        """The records of these dossiers, with only what statistics read."""
        query = {"dossier_code": {"$in": codes}}
        return [d async for d in self.records.find(query, STATISTICS_FIELDS)]

    async def codes_with(self, types: list[str], since: datetime, until: datetime) -> set[str]:
        query = {"type": {"$in": types}, "time": {"$gte": since, "$lt": until}}
        return {d["dossier_code"] async for d in self.records.find(query, {"dossier_code": 1})}
