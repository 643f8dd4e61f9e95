"""Service adapters against the real MongoDB-wire server (and RabbitMQ for the outbox)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from services.audit.domain import build_record
from services.audit.store import AuditStore
from services.intake.domain import Dossier
from services.intake.store import DossierStore
from shared.contracts import (
    Channel,
    Event,
)
from shared.messaging import Broker
from shared.storage import Document
from tests.amqp import observe
from tests.conftest import Isolation
from tests.factories import submitted_event

pytestmark = pytest.mark.integration


async def _nowhere(event: Event) -> None:
    raise AssertionError("must not publish")


def _builder(day: datetime) -> Callable[[str], tuple[Dossier, list[Event]]]:
    def build(code: str) -> tuple[Dossier, list[Event]]:
        event = submitted_event(code=code)
        dossier = Dossier(
            code=code,
            procedure_code="1.004194",
            channel=Channel.ONLINE,
            submitted_at=day,
            form={},
        )
        return dossier, [event]

    return build


async def test_concurrent_submissions_on_two_replicas_never_share_a_code(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    db = mongo[isolation.database("intake")]
    replicas = [DossierStore(db, _nowhere), DossierStore(db, _nowhere)]
    await replicas[0].setup()
    now = datetime(2026, 11, 28, 3, tzinfo=UTC)
    day = date(2026, 11, 28)
    results = await asyncio.gather(
        *(replicas[i % 2].add_new("G01.99", day, _builder(now)) for i in range(100))
    )
    codes = [dossier.code for dossier, _ in results]
    assert len(set(codes)) == 100
    assert await db["dossiers"].count_documents({}) == 100
    assert min(codes) == "G01.99-261128-0001"
    # Every stored event names the code its dossier got.
    for dossier, doc in results:
        assert doc["outbox"][0]["subject"] == dossier.code
    next_day, _ = await replicas[0].add_new("G01.99", day + timedelta(days=1), _builder(now))
    assert next_day.code == "G01.99-261129-0001"


async def test_status_follows_events_whatever_their_arrival_order(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = DossierStore(mongo[isolation.database("intake")], _nowhere)
    t0 = datetime.now(UTC).replace(microsecond=0)
    dossier, _ = await store.add_new("G01.99", date(2026, 11, 28), _builder(t0))
    at = [t0 + timedelta(minutes=m) for m in range(5)]
    # A supplement loop, then the decision; delivered out of order and once twice.
    assert await store.record_status(dossier.code, "supplement_requested", at[3], "e4")
    assert await store.record_status(dossier.code, "assigned", at[0], "e1")
    assert await store.record_status(dossier.code, "supplement_requested", at[1], "e2")
    assert await store.record_status(dossier.code, "supplemented", at[2], "e3")
    assert await store.record_status(dossier.code, "assigned", at[0], "e1") is None
    found = await store.get(dossier.code)
    assert found is not None
    assert (found.status, int(found.status_code)) == ("supplement_requested", 5)
    assert await store.record_status(dossier.code, "approved", at[4], "e5")
    assert await store.record_status(dossier.code, "delivered", at[4], "e6")
    assert await store.record_status(dossier.code, "supplemented", at[4], "e7")  # late: ignored
    found = await store.get(dossier.code)
    assert found is not None
    assert (found.status, int(found.status_code)) == ("delivered", 10)
    assert [h["status"] for h in found.history][:5] == [
        "submitted",
        "assigned",
        "supplement_requested",
        "supplemented",
        "supplement_requested",
    ]


async def test_audit_records_an_event_once(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = AuditStore(mongo[isolation.database("audit")])
    await store.setup()
    event = submitted_event()
    record = build_record(event, hmac_key=b"k", recorded_at=datetime.now(UTC))
    await store.insert_records([record], hmac_key=b"k")
    await store.insert_records([record], hmac_key=b"k")  # a redelivery changes nothing
    [doc] = await store.timeline(event.subject)
    assert doc["_id"] == event.id and doc["type"] == "dossier.submitted"
    assert await store.pending_ids(event.subject) == {event.id}


async def test_the_outbox_relay_publishes_what_a_failed_publish_left_behind(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    broker = Broker(isolation.amqp_url, service="test")
    await broker.connect()
    store = DossierStore(mongo[isolation.database("intake")], broker.publish)
    # Stored, never published (as if the broker had been down).
    dossier, doc = await store.add_new("G01.99", date(2026, 11, 28), _builder(datetime.now(UTC)))
    event_id = doc["outbox"][0]["id"]
    async with observe(isolation.amqp_url) as seen:
        assert await store.outbox.relay_once(older_than=timedelta(0)) == 1
        [published] = await seen.wait_for("dossier.submitted")
        assert await store.outbox.relay_once(older_than=timedelta(0)) == 0
    assert published["id"] == event_id
    assert await store.outbox.pending.count_documents({}) == 0
    stored = await store.dossiers.find_one({"_id": dossier.code})
    assert stored is not None and stored["outbox"][0]["id"] == event_id  # kept for redelivery
    await broker.close()


async def test_the_relay_drops_pointers_whose_write_never_happened(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = DossierStore(mongo[isolation.database("intake")], _nowhere)
    # As if the process died between pointing at an event and writing the dossier.
    await store.outbox.expect(store.dossiers, "G01.99-261128-0042", [submitted_event()])
    assert await store.outbox.relay_once(older_than=timedelta(0)) == 0
    assert await store.outbox.pending.count_documents({}) == 1  # kept a while: it may come
    await store.outbox.pending.update_many(
        {}, {"$set": {"created_at": datetime.now(UTC) - timedelta(minutes=5)}}
    )
    assert await store.outbox.relay_once(older_than=timedelta(0)) == 0
    assert await store.outbox.pending.count_documents({}) == 0
