"""Audit's history as it is read: a dossier's timeline and chain, search and export with a
cursor, statistics, and the walks of the full verification; every query on a declared index
(`store.INDEXES`), every time range through `TimeRange` (an nx-27017 defect)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from services.audit.domain import occurrence_key
from services.audit.ledger import EPOCH
from services.audit.statistics import FACT_DATA_FIELDS, FACT_FIELDS
from services.audit.timerange import TimeRange
from shared.storage import Document

# What statistics read of a record (`statistics.facts`).
STATISTICS_FIELDS = {
    name: 1
    for name in (
        "dossier_code",
        *FACT_FIELDS,
        *(f"data.{field}" for field in FACT_DATA_FIELDS),
    )
}


def nested(doc: Document) -> Document:
    """`doc` with the fields of a projection on dotted paths nested, as MongoDB returns them.

    nx-27017 0.8.1 defect: a projection `{"data.received_at": 1}` comes back as a top-level
    key `"data.received_at"`, not as `{"data": {"received_at": ...}}`, so the statistics read
    from records lost every date of the events' data (nothing was received, nothing on time).
    On MongoDB no key holds a dot and `doc` is returned as it is."""
    if not any("." in key for key in doc):
        return doc
    out: Document = {}
    for key, value in doc.items():
        *path, last = key.split(".")
        at = out
        for part in path:
            at = at.setdefault(part, {})
        if isinstance(value, dict) and isinstance(at.get(last), dict):
            at[last].update(value)
        else:
            at[last] = value
    return out


class HistoryReader:
    records: AsyncCollection[Document]
    facts: AsyncCollection[Document]
    pending: AsyncCollection[Document]
    chain: AsyncCollection[Document]
    seals: AsyncCollection[Document]

    async def timeline(self, dossier_code: str) -> list[Document]:
        """The dossier's records in order of occurrence (event time, event id)."""
        cursor = self.records.find({"dossier_code": dossier_code})
        return sorted([doc async for doc in cursor], key=occurrence_key)

    async def links(self, dossier_code: str) -> list[Document]:
        cursor = self.chain.find({"dossier_code": dossier_code}).sort("seq", 1)
        return [d async for d in cursor]

    async def pending_of(self, dossier_code: str) -> dict[str, Document]:
        """The dossier's pending markers by record id."""
        return {d["_id"]: d async for d in self.pending.find({"dossier_code": dossier_code})}

    async def pending_ids(self, dossier_code: str) -> set[str]:
        return set(await self.pending_of(dossier_code))

    async def link_of(self, record_id: str) -> Document | None:
        return await self.chain.find_one({"record_id": record_id})

    async def record(self, record_id: str) -> Document | None:
        return await self.records.find_one({"_id": record_id})

    async def links_settled(self, after: datetime, until: datetime) -> list[Document]:
        """Links settled in (after, until], in seal order (settled time, id)."""
        window = TimeRange("settled_at", after=after, through=until)
        cursor = self.chain.find(window.query()).sort([("settled_at", 1), ("_id", 1)])
        return [d async for d in cursor if window.holds(d)]

    async def first_link_settled(self, after: datetime, until: datetime) -> Document | None:
        """The first link settled in (after, until], if any."""
        window = TimeRange("settled_at", after=after, through=until)
        cursor = self.chain.find(window.query()).sort([("settled_at", 1), ("_id", 1)])
        async for doc in cursor:
            if window.holds(doc):
                return doc
        return None

    async def all_pending(self) -> dict[str, Document]:
        """Every pending marker (the live tail), for the full check."""
        window = TimeRange("recorded_at", since=EPOCH)
        return {d["_id"]: d async for d in self.pending.find(window.query())}

    async def grouped(
        self,
        collection: AsyncCollection[Document],
        then: str,
        page: int = 1000,
        after: str | None = None,
    ) -> AsyncIterator[tuple[str, list[Document]]]:
        """(dossier code, its documents ordered by `then`) for every dossier (after `after`),
        in code order, read `page` documents at a time on the index by dossier code (a dossier
        is read whole: one longer than a page on its own)."""
        last = after
        while True:
            query = {"dossier_code": {"$gt": last} if last is not None else {"$gte": ""}}
            cursor = collection.find(query).sort("dossier_code", 1).limit(page)
            groups: dict[str, list[Document]] = {}
            docs = [d async for d in cursor]
            for doc in docs:
                groups.setdefault(str(doc["dossier_code"]), []).append(doc)
            codes = list(groups)
            if len(docs) == page and len(codes) > 1:
                codes.pop()  # it may go on in the next page: read whole there
            elif len(docs) == page:
                code = codes[0]
                groups[code] = [d async for d in collection.find({"dossier_code": code})]
            for code in codes:
                yield code, sorted(groups[code], key=lambda d: (d.get(then), str(d["_id"])))
            if len(docs) < page:
                return
            last = codes[-1]

    def grouped_records(
        self, after: str | None = None
    ) -> AsyncIterator[tuple[str, list[Document]]]:
        return self.grouped(self.records, "_id", after=after)

    def grouped_links(self) -> AsyncIterator[tuple[str, list[Document]]]:
        return self.grouped(self.chain, "seq")

    async def stray_records(self, limit: int = 10) -> list[Document]:
        """Records with no dossier code (never audit's: forged), a few."""
        return [d async for d in self.records.find({"dossier_code": None}).limit(limit)]

    async def seal_covering(self, settled_at: datetime) -> Document | None:
        """The seal whose period (start, end] holds `settled_at`, if any (by `period_end`)."""
        window = TimeRange("period_end", since=settled_at)
        cursor = self.seals.find(window.query()).sort("period_end", 1).limit(64)
        async for seal in cursor:
            if window.holds(seal) and seal["period_start"] < settled_at:
                return seal
        return None

    async def all_seals(self) -> list[Document]:
        return [d async for d in self.seals.find({"_id": {"$gte": 0}}).sort("_id", 1)]

    async def dossier_codes(self, since: datetime) -> list[str]:
        """The dossiers with a record stamped since `since`."""
        window = TimeRange("time", since=since)
        cursor = self.records.find(window.query(), {"dossier_code": 1, "time": 1})
        return sorted({d["dossier_code"] async for d in cursor if window.holds(d)})

    async def search(
        self,
        query: dict[str, Any],
        window: TimeRange,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Document]:
        """Up to `limit` records matching `query` and `window` in (time, id) order, after the
        cursor position `after`."""
        if after is not None:
            window = TimeRange(
                "time",
                since=max(after[0], window.since) if window.since else after[0],
                until=window.until,
            )

        def wanted(doc: Document) -> bool:
            return window.holds(doc) and (after is None or occurrence_key(doc) > after)

        found: list[Document] = []
        skip = 0
        full = {**query, **window.query()}
        while len(found) < limit:
            cursor = self.records.find(full).sort([("time", 1), ("_id", 1)])
            batch = [d async for d in cursor.skip(skip).limit(limit)]
            found += [d for d in batch if wanted(d)]
            if len(batch) < limit:
                break
            skip += len(batch)
        return found[:limit]

    async def stream(
        self, query: dict[str, Any], window: TimeRange, page: int
    ) -> AsyncIterator[Document]:
        """Every record matching `query` and `window`, in order, read `page` at a time."""
        after: tuple[datetime, str] | None = None
        while True:
            docs = await self.search(query, window, after, page)
            for doc in docs:
                yield doc
            if len(docs) < page:
                return
            after = occurrence_key(docs[-1])

    async def dossiers_records(self, codes: list[str]) -> list[Document]:
        """The records of these dossiers, with only what statistics read."""
        query = {"dossier_code": {"$in": codes}}
        return [nested(d) async for d in self.records.find(query, STATISTICS_FIELDS)]

    async def codes_with(self, types: list[str], since: datetime, until: datetime) -> set[str]:
        """The dossiers with a record of one of `types` stamped in [since, until)."""
        window = TimeRange("time", since=since, until=until)
        query = {"type": {"$in": types}, **window.query()}
        projection = {"dossier_code": 1, "time": 1}
        return {
            d["dossier_code"] async for d in self.records.find(query, projection) if window.holds(d)
        }

    async def facts_in(
        self,
        field: str,
        since: datetime,
        until: datetime,
        *,
        unit_id: str | None = None,
        procedure_code: str | None = None,
    ) -> list[Document]:
        """The `dossier_facts` of the dossiers whose `field` (received_at or decided_at) is in
        [since, until), of one unit or procedure if asked: one query on the index by `field`,
        or by (unit_id, `field`), or by (procedure_code, `field`)."""
        window = TimeRange(field, since=since, until=until)
        query: dict[str, Any] = {
            name: value
            for name, value in (("unit_id", unit_id), ("procedure_code", procedure_code))
            if value is not None
        }
        # Read whole: the documents are small, and a projection costs nx-27017 more.
        cursor = self.facts.find({**query, **window.query()})
        return [d async for d in cursor if window.holds(d)]
