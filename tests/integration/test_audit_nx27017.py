"""Five nx-27017 0.8.1 defects that audit's adapter works around, each shown on the server
(so that the day a new nx-27017 fixes it, this says the workaround can go) and shown not to
reach audit."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.audit import handlers
from services.audit.batching import Batcher
from services.audit.store import AuditStore, is_nx_27017
from shared.storage import Document
from tests.conftest import Isolation
from tests.factories import T0, dossier_events

pytestmark = pytest.mark.integration
KEY = b"k"


async def test_nx_27017_defect_a_compound_index_naming_id_refuses_every_insert(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """nx-27017 defect: with a compound index that names `_id` (as audit declares for its
    (time, _id) cursors), every insert into the collection fails, "JSON path error near
    '_id'": the cause of audit's "PartialWrite: N document(s) not written: refused by the
    database". Audit leaves `_id` out of compound keys there, and its batches are written."""
    db = mongo[isolation.database("audit")]
    if await is_nx_27017(db):
        probe = db["probe"]
        await probe.create_index([("time", 1), ("_id", 1)])
        with pytest.raises(BulkWriteError) as refused:
            await probe.insert_many([{"_id": "a", "time": T0}], ordered=False)
        assert "JSON path error near '_id'" in str(refused.value.details["writeErrors"])
    store = AuditStore(db)
    await store.setup()
    batcher = Batcher(partial(store.insert_records, hmac_key=KEY), size=8, wait=0.01)
    events = [e for code in ("N1", "N2") for e in dossier_events(code)]
    clock = lambda: T0 + timedelta(hours=1)  # noqa: E731
    await asyncio.gather(
        *(handlers.record(e, batcher=batcher, hmac_key=KEY, clock=clock) for e in events)
    )
    assert await store.records.count_documents({"dossier_code": {"$in": ["N1", "N2"]}}) == 10


async def test_nx_27017_defect_datetimes_compare_to_the_whole_second(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """nx-27017 defect: `$gt`/`$lte`... on datetimes go through SQLite's `datetime()`, which
    drops the fraction of a second, so a seal missed links settled in the same second as the
    previous seal's end. Audit asks for whole seconds and cuts exactly: each link is in
    exactly one seal, and the proof of each is found."""
    db = mongo[isolation.database("audit")]
    at = T0.replace(microsecond=0) + timedelta(hours=1)
    if await is_nx_27017(db):
        probe = db["probe"]
        await probe.insert_one({"_id": 1, "t": at + timedelta(milliseconds=500)})
        found = [d async for d in probe.find({"t": {"$gt": at}})]
        assert found == []  # should be the one document, 500 ms after `at`
    store = AuditStore(db)
    await store.setup()
    key = Ed25519PrivateKey.generate()
    grace = timedelta(seconds=5)
    sealed = []
    for i, code in enumerate(("S1", "S2", "S3")):
        batcher = Batcher(partial(store.insert_records, hmac_key=KEY), size=8, wait=0.01)
        events = dossier_events(code)
        clock = lambda: at  # noqa: E731
        await asyncio.gather(
            *(handlers.record(e, batcher=batcher, hmac_key=KEY, clock=clock) for e in events)
        )
        # Settled and sealed 300 ms apart, all in the same second.
        now = at + grace + timedelta(seconds=1, milliseconds=300 * i)
        assert await handlers.settle(store=store, now=now, grace=grace, hmac_key=KEY) == 5
        seal = await handlers.seal(store=store, key=key, now=now + timedelta(milliseconds=100))
        assert seal is not None
        sealed.append(seal["count"])
    assert sealed == [5, 5, 5]
    for code in ("S1", "S2", "S3"):
        for link in await store.links(code):
            proof = await handlers.proof(str(link["record_id"]), store=store)
            assert proof is not None and proof["tree_size"] == 5
    assert await handlers.verify_all(store=store, since=None, hmac_key=KEY) is None


async def test_nx_27017_defect_a_unique_index_over_a_non_unique_one_is_not_made(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """nx-27017 defect: `createIndexes` of a unique index whose keys (and so name) an
    existing non-unique index has answers ok and keeps the old one, not unique (MongoDB
    refuses it, IndexOptionsConflict). Audit declared `chain.record_id` non-unique before:
    its setup drops that one first, and the database then refuses a record's second link."""
    db = mongo[isolation.database("audit")]
    if await is_nx_27017(db):
        probe = db["probe"]
        await probe.create_index([("k", 1)])
        await probe.create_index([("k", 1)], unique=True)
        assert not any(i.get("unique") for i in (await probe.index_information()).values())
    await db["chain"].create_index([("record_id", 1)])
    await AuditStore(db).setup()
    await db["chain"].insert_one({"_id": "D#0", "record_id": "r"})
    with pytest.raises(DuplicateKeyError):
        await db["chain"].insert_one({"_id": "D#1", "record_id": "r"})


async def test_nx_27017_defect_a_projection_on_a_dotted_path_comes_back_flat(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """nx-27017 defect: `find(..., {"data.received_at": 1})` returns the key
    `"data.received_at"` at the top of the document, not `{"data": {"received_at": ...}}`,
    so the statistics folded from records lost every date of the events' data (nothing
    received, nothing on time). Audit nests such keys back (`store_reading.nested`)."""
    db = mongo[isolation.database("audit")]
    if await is_nx_27017(db):
        probe = db["probe_projection"]
        await probe.insert_one({"_id": "a", "data": {"received_at": "x", "other": 1}})
        got = await probe.find_one({"_id": "a"}, {"data.received_at": 1})
        assert got == {"_id": "a", "data.received_at": "x"}
    store = AuditStore(db)
    await store.setup()
    batcher = Batcher(partial(store.insert_records, hmac_key=KEY), size=8, wait=0.01)
    clock = lambda: T0 + timedelta(hours=1)  # noqa: E731
    await asyncio.gather(
        *(
            handlers.record(e, batcher=batcher, hmac_key=KEY, clock=clock)
            for e in dossier_events("N3")
        )
    )
    [decided] = [r for r in await store.dossiers_records(["N3"]) if r["type"] == "dossier.approved"]
    assert "decided_at" in decided["data"] and not any("." in k for k in decided)


async def test_nx_27017_defect_a_guarded_upsert_does_not_insert_under_the_filter_s_id(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """nx-27017 defect: `replace_one({"_id": k, "version": {"$lt": v}}, doc, upsert=True)`
    that matches nothing inserts `doc` under a new ObjectId, where MongoDB inserts it under
    `k` (or refuses it as a duplicate when `k` is there, at a newer version). Audit writes a
    dossier's facts without upserts (`AuditStore.put_facts`): a conditional replace, then an
    insert whose duplicate is the newer version."""
    db = mongo[isolation.database("audit")]
    if await is_nx_27017(db):
        probe = db["probe_upsert"]
        await probe.replace_one({"_id": "k", "version": {"$lt": 1}}, {"version": 1}, upsert=True)
        assert await probe.find_one({"_id": "k"}) is None
        assert await probe.count_documents({"version": 1}) == 1
    store = AuditStore(db)
    await store.setup()
    at = T0.replace(microsecond=0)
    facts = {"_id": "F1", "received_at": at, "decided_at": None, "version": 1}
    await store.put_facts([facts])  # none there yet: inserted under its code
    await store.put_facts([{**facts, "version": 0, "received_at": None}])  # older: left
    assert await store.facts.find_one({"_id": "F1"}) == facts
    assert [d["_id"] async for d in store.facts.find({"received_at": {"$gte": at}})] == ["F1"]


async def test_nx_27017_defect_a_set_on_an_existing_document_writes_datetimes_as_strings(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """nx-27017 defect: `update_one({"_id": k}, {"$set": {"at": datetime, "done": True}})` on
    an existing document stores `at` as the string "2026-11-02 01:00:00" and `done` as 1.
    Audit notes its upgrade steps by replacing the whole document (`note_upgrade`)."""
    db = mongo[isolation.database("audit")]
    at = T0.replace(microsecond=0)
    if await is_nx_27017(db):
        probe = db["probe_set"]
        await probe.insert_one({"_id": "k"})
        await probe.update_one({"_id": "k"}, {"$set": {"at": at, "done": True}})
        got = await probe.find_one({"_id": "k"})
        assert got is not None and isinstance(got["at"], str) and got["done"] is not True
    store = AuditStore(db)
    await store.setup()
    await store.note_upgrade("step", done=False, started_at=at)
    await store.note_upgrade("step", done=True, finished_at=at)
    assert await store.upgrade_state("step") == {
        "_id": "step",
        "done": True,
        "started_at": at,
        "finished_at": at,
    }
