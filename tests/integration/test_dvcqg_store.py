"""The national portal sync's per-dossier queue against the real MongoDB-wire server: an
earlier event that arrives late (a redelivery after a failure) is sent before a later one
already waiting, and the status kept is the latest event's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from services.notify.national.domain import StatusMap, next_operation
from services.notify.national.store import SYNC, SyncStore
from services.notify.national.sync import Sync
from shared.storage import Document
from tests.conftest import Isolation
from tests.factories import approved_event, submitted_event

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


def ops(event_id: str, status: int, at: datetime) -> list[dict[str, object]]:
    base = {"event_id": event_id, "status": status, "at": at.isoformat()}
    return [{**base, "kind": "update"}, {**base, "kind": "progress"}]


async def test_operations_are_kept_in_the_order_the_events_happened(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    db = mongo[isolation.database("notify")]
    store = SyncStore(db)
    await store.setup()
    code = "G01.99-261201-0001"
    submitted = [{"event_id": "e0", "status": 1, "at": T0.isoformat(), "kind": "add"}]
    assert await store.enqueue(code, "e0", submitted, T0)
    delivered = T0 + timedelta(hours=3)
    approved = T0 + timedelta(hours=2)
    assert await store.enqueue(code, "e2", ops("e2", 10, delivered), delivered)
    assert await store.enqueue(code, "e1", ops("e1", 9, approved), delivered)  # arrived late
    assert not await store.enqueue(code, "e1", ops("e1", 9, approved), delivered)  # once
    doc = await db[SYNC].find_one({"_id": code})
    assert doc is not None
    queued = [(o["event_id"], o["kind"]) for o in doc["ops"]]
    assert queued == [
        ("e0", "add"),
        ("e1", "update"),
        ("e1", "progress"),
        ("e2", "update"),
        ("e2", "progress"),
    ]
    assert doc["status"] == 10  # the latest event's, not the last to arrive


async def test_an_event_older_than_the_update_already_sent_sends_only_its_progress(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    db = mongo[isolation.database("notify")]
    store = SyncStore(db)
    await store.setup()
    code = "G01.99-261201-0002"
    submitted = [{"event_id": "e0", "status": 1, "at": T0.isoformat(), "kind": "add"}]
    assert await store.enqueue(code, "e0", submitted, T0)
    delivered = T0 + timedelta(hours=3)
    assert await store.enqueue(code, "e2", ops("e2", 10, delivered), delivered)
    for kind in ("add", "update", "progress"):  # all three sent
        got = await store.claim(delivered, timedelta(minutes=1))
        assert got is not None
        claim, doc = got
        [op] = [o for o in doc["ops"] if o["kind"] == kind]
        await store.sent(code, claim, op, delivered)
    # The approval, redelivered after a failure, comes after the hand-over went out.
    approved = T0 + timedelta(hours=2)
    assert await store.enqueue(code, "e1", ops("e1", 9, approved), delivered)
    stored = await db[SYNC].find_one({"_id": code})
    assert stored is not None
    assert [(o["event_id"], o["kind"]) for o in stored["ops"]] == [("e1", "progress")]
    assert stored["status"] == 10  # the portal keeps the hand-over's status, not the approval's


async def test_a_resync_queues_the_add_and_update_again_at_the_last_status_once_each(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    db = mongo[isolation.database("notify")]
    store = SyncStore(db)
    await store.setup()
    later = T0 + timedelta(days=1)
    sync = Sync(
        store,
        None,  # type: ignore[arg-type]  # a resync only queues: nothing is sent here
        StatusMap({}),
        lambda: later,
        batch_size=5,
        lease=timedelta(minutes=1),
        retry_base_seconds=1,
        retry_max_seconds=10,
    )
    # The events at fixed moments before the sync's clock, not at the wall clock: the test
    # went off once the wall clock passed `later` (an update queued "at" the resync would then
    # be older than the portal's, and rightly dropped).
    submitted = submitted_event("G01.99-261201-0003").model_copy(update={"time": T0})
    approved = approved_event(submitted).model_copy(update={"time": T0 + timedelta(hours=1)})
    await sync(submitted)
    await sync(approved)
    for _ in range(3):  # add, update, progress: in sync
        got = await store.claim(later, timedelta(minutes=1))
        assert got is not None
        claim, doc = got
        op = doc["ops"][next_operation(doc["ops"], doc["dossier"]) or 0]
        await store.sent(doc["_id"], claim, op, later)
    before = await db[SYNC].find_one({"_id": submitted.subject})
    assert before is not None and before["state"] == "in_sync" and before["ops"] == []
    await sync.resync(later - timedelta(hours=1), 100, marker="resync:cb-pc06-qt")
    after = await db[SYNC].find_one({"_id": submitted.subject})
    assert after is not None
    assert [o["kind"] for o in after["ops"]] == ["add", "update"]  # no made-up progress step
    assert {o["status"] for o in after["ops"]} == {before["status"]} == {9}
    assert after["state"] == "pending" and after["due_at"] is not None
    assert await store.changed_since(later + timedelta(hours=1), 100) == []  # by its index
