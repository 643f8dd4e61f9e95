"""Service adapters against the real MongoDB-wire server (and RabbitMQ for the outbox)."""

from __future__ import annotations

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
