"""Audit's MongoDB adapter: it records facts, and decides nothing.

- `records`: one document per event (`_id` = event id), identifiers masked. History: read by
  key, by a dossier's code (its timeline) or by search and export, with a cursor.
- `pending`: the unsettled tail (the live collection the settler reads): a marker per record
  not chained yet, written *before* the record (so a record with no marker and no link is one
  nobody received: an insertion), holding a MAC of the record (`ledger.marker_mac`) so that a
  forged marker is told from audit's own. Settling deletes it.
- `chain`: immutable links, `_id` = `<dossier>#<seq>` (one winner per place in a chain), a
  unique `record_id` (a record is chained once, whatever two settlers do).
- `heads`: per dossier, where its chain ends (`_id` = dossier code, next `seq`, last `hash`):
  read by key, moved on by a conditional update after the links are written, so appending to
  a chain costs the same whatever its length. Never trusted by verification (links are).
- `seals`: one per period, `_id` = its sequence number (one winner per seal).
- `legacy_quarantine`: documents of the pre-ledger `events` collection that were no readable
  event, scrubbed of identifiers (see `handlers.recording.adopt_legacy`).
- `leases`: who settles and seals, `_id` = `ledger-lease-<n>` (one winner per lease).
- `dossier_fact_records`: per dossier (`_id` = its code), the summaries of its records that
  bear on statistics (`statistics.fact_summary`) and a `version` each write is guarded on
  (an insert for the first, then a conditional replace): the arbiter of two folds at once.
- `dossier_facts`: the statistics projection, one small document per dossier (`_id` = its
  code): `statistics.facts` of those summaries, and their version (written only over an
  older one). Written by settling; read by the period's indexes (received_at, decided_at,
  each also after unit_id and after procedure_code). Kept apart from the summaries, which
  make a document ten times larger: a year's statistics read 10,000 of these.
- `upgrades`: one document per one-off step over an old database (`_id` = its name), such
  as building `dossier_facts` from the records stored before it existed.

Five nx-27017 0.8.1 defects are worked around here (see `without_ids_in_compound_keys`,
`timerange.TimeRange`, `store_reading.nested`, `put_facts` and `note_upgrade`); the code stays
correct on MongoDB 7.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from services.audit import ledger
from services.audit.batching import PartialWrite
from services.audit.domain import ChainHead
from services.audit.store_reading import HistoryReader
from services.audit.timerange import TimeRange, floor_second
from shared.storage import Document, Indexes, ensure_indexes

EPOCH = ledger.EPOCH
QUARANTINE = "legacy_quarantine"
LEGACY = "events"  # audit's collection before issue 6: events in full, identifiers in clear
DUPLICATE_KEY = 11000
FACTS = "dossier_facts"
FACT_SOURCES = "dossier_fact_records"
UPGRADES = "upgrades"
FACT_CHANGES = "fact_changes"  # one document: how many writes of dossier_facts so far
FACTS_CHANGED = "facts"

# Every query audit sends, and the index that serves it:
# - records: timeline (dossier_code), search by each filter then (time, _id) for the cursor's
#   order, export and statistics by time; a personal ID's records (applicant_id_hmac);
# - pending: the settler's due markers and next due moment (recorded_at), a dossier's
#   markers for its verification (dossier_code);
# - chain: a dossier's links (dossier_code, seq), a record's link (record_id), a seal's links
#   (settled_at, _id);
# - seals: the seal over a link (period_end), the last and all in order (`_id`);
# - leases: old leases dropped (claimed_at); heads, quarantine and upgrades: by `_id` only;
# - dossier_fact_records: by `_id`; dossier_facts: by `_id` (settling), and statistics by
#   the period on received_at or decided_at, alone or after unit_id or procedure_code (the
#   console's unit and procedure).
_SEARCHED = ("dossier_code", "type", "actor", "procedure_code", "unit_id", "applicant_id_hmac")
INDEXES: Indexes = {
    "records": [
        IndexModel([("time", 1), ("_id", 1)]),
        *(IndexModel([(field, 1), ("time", 1), ("_id", 1)]) for field in _SEARCHED),
    ],
    "pending": [IndexModel([("recorded_at", 1)]), IndexModel([("dossier_code", 1)])],
    "chain": [
        IndexModel([("dossier_code", 1), ("seq", 1)]),
        IndexModel([("record_id", 1)], unique=True),  # a record is chained once
        IndexModel([("settled_at", 1), ("_id", 1)]),
    ],
    "heads": [],
    "seals": [IndexModel([("period_end", 1)])],
    "leases": [IndexModel([("claimed_at", 1)])],
    FACTS: [
        IndexModel([("received_at", 1)]),
        IndexModel([("decided_at", 1)]),
        *(
            IndexModel([(first, 1), (period, 1)])
            for first in ("unit_id", "procedure_code")
            for period in ("received_at", "decided_at")
        ),
    ],
    FACT_SOURCES: [],
    FACT_CHANGES: [],
    UPGRADES: [],
    QUARANTINE: [],
    LEGACY: [],
}


async def is_nx_27017(db: AsyncDatabase[Document]) -> bool:
    """Whether the server is nx-27017 (its `serverStatus` names its process `nx_27017`)."""
    try:
        status = await db.client.admin.command("serverStatus")
    except PyMongoError:
        return False
    return status.get("process") == "nx_27017"


def without_ids_in_compound_keys(indexes: Indexes) -> Indexes:
    """`indexes` with `_id` left out of every compound key.

    nx-27017 0.8.1 defect: a compound index that names `_id` makes every insert into its
    collection fail with "JSON path error near '_id'" (neosqlite's `parse_json_path("_id")`
    returns `_id`, not a JSON path, and only a single-key `_id` index is special-cased), which
    the batched `insert_many(ordered=False)` of records reported as "refused by the database".
    What is left of each index is a prefix of it, so every filter it serves on MongoDB is still
    served; only the tie-break of a sort on `_id` is done without the index there."""
    out: dict[str, list[IndexModel]] = {}
    for collection, models in indexes.items():
        kept = []
        for model in models:
            keys = list(model.document["key"].items())
            if len(keys) > 1 and any(name == "_id" for name, _ in keys):
                model = IndexModel([(n, d) for n, d in keys if n != "_id"])
            kept.append(model)
        out[collection] = kept
    return out


async def _drop_non_unique_versions(db: AsyncDatabase[Document], indexes: Indexes) -> None:
    """Drop an existing index that a declared unique index of the same keys replaces (audit
    once declared `chain.record_id` non-unique). MongoDB refuses to create it over the old
    one (IndexOptionsConflict); nx-27017 0.8.1 says it did and keeps the old one, not unique."""
    for collection, models in indexes.items():
        wanted = {tuple(m.document["key"].items()) for m in models if m.document.get("unique")}
        if not wanted:
            continue
        for name, info in (await db[collection].index_information()).items():
            if tuple(info["key"]) in wanted and not info.get("unique"):
                await db[collection].drop_index(name)


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    """Create audit's declared `INDEXES` (on nx-27017, as it can keep them)."""
    nx = await is_nx_27017(db)
    await _drop_non_unique_versions(db, INDEXES)
    await ensure_indexes(db, without_ids_in_compound_keys(INDEXES) if nx else INDEXES)


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


class AuditStore(HistoryReader):
    """Audit's storage: what settling, sealing and the lease write and read (here), and the
    history that timelines, search, export, statistics and verification read (`HistoryReader`)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.records = db["records"]
        self.pending = db["pending"]
        self.chain = db["chain"]
        self.heads = db["heads"]
        self.seals = db["seals"]
        self.leases = db["leases"]
        self.facts = db[FACTS]
        self.fact_sources = db[FACT_SOURCES]
        self.upgrades = db[UPGRADES]
        self.fact_changes = db[FACT_CHANGES]

    async def setup(self) -> None:
        await create_indexes(self.records.database)
        await self._fact_counter()  # so a settling round counts in one $inc

    # --- recording -----------------------------------------------------------------------

    async def insert_records(self, records: list[Document], *, hmac_key: bytes) -> None:
        """Make `records` durable: pending markers first (with their MAC under a key derived
        from `hmac_key`), then the records; ones already stored (redeliveries) are left as
        they are. Two round trips for the whole batch."""
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

    async def quarantine(self, docs: list[Document]) -> None:
        """Keep `docs` in the quarantine (ones already there are left as they are)."""
        if not docs:
            return
        try:
            await self.records.database[QUARANTINE].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if not insert_errors_are_duplicates(exc):
                raise

    async def legacy_page(self, after: str | None, limit: int) -> list[Document]:
        """Documents of the pre-ledger collection in `_id` order, after `after`."""
        query = {"_id": {"$gt": after}} if after is not None else {}
        cursor = self.records.database[LEGACY].find(query).sort("_id", 1).limit(limit)
        return [d async for d in cursor]

    async def drop_legacy(self) -> None:
        await self.records.database[LEGACY].drop()

    # --- settling (the live tail, heads and links by key) --------------------------------

    async def due_markers(self, cutoff: datetime) -> list[Document]:
        """The pending markers recorded before `cutoff` (the unsettled tail past its grace)."""
        window = TimeRange("recorded_at", until=cutoff)
        return [d async for d in self.pending.find(window.query()) if window.holds(d)]

    async def next_due(self, after: datetime | None) -> datetime | None:
        """The earliest `recorded_at` of a pending marker (recorded after `after`)."""
        window = TimeRange("recorded_at", after=after)
        cursor = self.pending.find(window.query(), {"recorded_at": 1}).sort("recorded_at", 1)
        async for doc in cursor.limit(1 if after is None else 64):
            if window.holds(doc):
                at: datetime = doc["recorded_at"]
                return at
        return None

    async def records_by_id(self, ids: list[str]) -> list[Document]:
        """The records with these ids that exist (one query by `_id`)."""
        if not ids:
            return []
        return [d async for d in self.records.find({"_id": {"$in": ids}})]

    async def chained_ids(self, record_ids: list[str]) -> set[str]:
        """Which of these records already have a link (one query on `record_id`)."""
        if not record_ids:
            return set()
        cursor = self.chain.find({"record_id": {"$in": record_ids}}, {"record_id": 1})
        return {str(d["record_id"]) async for d in cursor}

    async def heads_of(self, codes: list[str]) -> dict[str, ChainHead]:
        """The chain heads of these dossiers (those that have one), one query by `_id`."""
        if not codes:
            return {}
        cursor = self.heads.find({"_id": {"$in": codes}})
        return {
            str(d["_id"]): ChainHead(str(d["_id"]), int(d["seq"]), str(d["hash"]))
            async for d in cursor
        }

    async def add_links(self, links: list[Document]) -> bool:
        """Append one dossier's links in order; False if another settler took a place or
        chained one of the records (the unique `record_id` index). The insert is ordered: the
        links before the refused one are written, those after it are not (no hole), and the
        settler catches its head up over them by key."""
        try:
            await self.chain.insert_many(links, ordered=True)
        except BulkWriteError as exc:
            if insert_errors_are_duplicates(exc):
                return False
            raise
        return True

    async def move_head(self, old: ChainHead | None, new: ChainHead) -> bool:
        """Move a dossier's head from `old` (None: it has none yet) to `new`; False if it is
        not at `old` any more (an isolated conditional update, or a one-winner insert)."""
        fields = {"seq": new.seq, "hash": new.hash}
        if old is None:
            try:
                await self.heads.insert_one({"_id": new.dossier_code, **fields})
            except DuplicateKeyError:
                return False
            return True
        moved = await self.heads.update_one(
            {"_id": old.dossier_code, "seq": old.seq, "hash": old.hash}, {"$set": fields}
        )
        return moved.modified_count == 1

    async def links_from(self, dossier_code: str, seq: int) -> list[Document]:
        """A dossier's links from place `seq` on, by `_id`, up to the first missing place (to
        catch a head up after a crash between writing links and moving it)."""
        links: list[Document] = []
        while link := await self.chain.find_one({"_id": f"{dossier_code}#{seq + len(links)}"}):
            links.append(link)
        return links

    async def link_after(self, dossier_code: str, seq: int) -> bool:
        """Whether the dossier has a link at a place after `seq` (one query on its index)."""
        query = {"dossier_code": dossier_code, "seq": {"$gt": seq}}
        return await self.chain.find_one(query, {"_id": 1}) is not None

    async def drop_pending(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            await self.pending.delete_many({"_id": {"$in": ids}})

    # --- the statistics projection (by key) -----------------------------------------------

    async def fact_records(self, codes: list[str]) -> dict[str, Document]:
        """The summaries documents of these dossiers (those that have one), by `_id`."""
        if not codes:
            return {}
        cursor = self.fact_sources.find({"_id": {"$in": codes}})
        return {str(d["_id"]): d async for d in cursor}

    async def insert_fact_records(self, docs: list[Document]) -> set[str]:
        """Insert first summaries documents in one round trip; the codes of those that
        another writer inserted first (a duplicate `_id`: re-read and fold again)."""
        if not docs:
            return set()
        try:
            await self.fact_sources.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if not insert_errors_are_duplicates(exc):
                raise
            return {str(docs[int(e["index"])]["_id"]) for e in exc.details["writeErrors"]}
        return set()

    async def replace_fact_records(self, doc: Document, version: int) -> bool:
        """Replace a dossier's summaries if they are still at `version` (an isolated
        conditional replace: of two writers who read the same version, one wins)."""
        done = await self.fact_sources.replace_one({"_id": doc["_id"], "version": version}, doc)
        return done.matched_count == 1

    async def put_facts(self, docs: list[Document]) -> None:
        """Write dossiers' facts, each only over an older version: a conditional replace of
        each (one round trip a dossier), and the first ones (version 0, or none there) in one
        unordered insert, where a duplicate is a version as new or newer, left as it is.

        No upsert: nx-27017 0.8.1 inserts a replacement upsert under a new ObjectId instead
        of the filter's `_id` (and where MongoDB would refuse it as a duplicate)."""
        if not docs:
            return
        first = [d for d in docs if d["version"] == 0]
        for doc in docs:
            if doc["version"] != 0:
                older = {"_id": doc["_id"], "version": {"$lt": doc["version"]}}
                if (await self.facts.replace_one(older, doc)).matched_count == 0:
                    first.append(doc)
        if first:
            try:
                await self.facts.insert_many(first, ordered=False)
            except BulkWriteError as exc:
                if not insert_errors_are_duplicates(exc):
                    raise
        await self._count_fact_change()

    async def _count_fact_change(self) -> None:
        """Count a write of `dossier_facts` (after it: a reader that saw the new count reads
        the facts written before it), so the index gauges re-read the month only when it
        changed. One keyed `$inc`; on a database set up before the count existed, the
        counter is created first (no upsert: nx-27017 0.8.1 takes no `_id` from an upsert's
        filter)."""
        key, bump = {"_id": FACTS_CHANGED}, {"$inc": {"n": 1}}
        if (await self.fact_changes.update_one(key, bump)).matched_count == 0:
            await self._fact_counter()
            await self.fact_changes.update_one(key, bump)

    async def _fact_counter(self) -> None:
        """The count of facts writes, at 0, unless it is there already."""
        with contextlib.suppress(DuplicateKeyError):
            await self.fact_changes.insert_one({"_id": FACTS_CHANGED, "n": 0})

    async def facts_changed(self) -> int:
        """How many writes of `dossier_facts` there have been (0: none counted yet)."""
        doc = await self.fact_changes.find_one({"_id": FACTS_CHANGED})
        return int(doc["n"]) if doc else 0

    async def upgrade_state(self, name: str) -> Document | None:
        return await self.upgrades.find_one({"_id": name})

    async def note_upgrade(self, name: str, **fields: object) -> None:
        """Set `fields` on the upgrade step's document (created if none): read, then insert
        or replace it whole.

        Not `$set`: nx-27017 0.8.1 writes a datetime `$set` on an existing document as a
        string, and `True` as 1."""
        for _ in range(3):
            held = await self.upgrades.find_one({"_id": name})
            doc = {**(held or {"_id": name}), **fields}
            if held is not None:
                await self.upgrades.replace_one({"_id": name}, doc)
                return
            try:
                await self.upgrades.insert_one(doc)
            except DuplicateKeyError:
                continue  # another process noted it first: merge into theirs
            return

    async def has_records(self) -> bool:
        """Whether any record is stored (the oldest by time: sorted on its index, limit 1)."""
        cursor = self.records.find({}, {"_id": 1}).sort("time", 1).limit(1)
        return bool([d async for d in cursor])

    # --- seals and leases ----------------------------------------------------------------

    async def last_seal(self) -> Document | None:
        cursor = self.seals.find().sort("_id", -1).limit(1)
        return next(iter([d async for d in cursor]), None)

    async def add_seal(self, seal: Document) -> bool:
        try:
            await self.seals.insert_one(seal)
        except DuplicateKeyError:
            return False
        return True

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
        """The newest ledger lease (read once, at start)."""
        cursor = self.leases.find().sort("_id", -1).limit(1)
        return next(iter([d async for d in cursor]), None)

    async def drop_leases_before(self, cutoff: datetime) -> None:
        # The cutoff is taken down to its second (see `TimeRange`): never too many dropped.
        await self.leases.delete_many({"claimed_at": {"$lt": floor_second(cutoff)}})
