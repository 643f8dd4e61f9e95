"""The national portal sync's per-dossier queue against the real MongoDB-wire server: an
earlier event that arrives late (a redelivery after a failure) is sent before a later one
already waiting, and the status kept is the latest event's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from services.notify.national.store import SYNC, SyncStore
from shared.storage import Document
from tests.conftest import Isolation

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
