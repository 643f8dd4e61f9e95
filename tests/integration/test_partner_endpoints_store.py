"""Partner endpoints' store against the real MongoDB-wire server: a redelivered event queues no
second message, of two replicas one takes an endpoint's sending, the sender goes idle only when
no work came since it looked, and a recovery moves each failed message once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from services.notify.endpoint_delivery import QUEUE, Subscriptions, bindings
from services.notify.endpoint_store import EndpointStore
from services.notify.endpoints import Endpoint, PartnerAccount, millis, new_message
from services.notify.partners import hash_api_key
from services.notify.store import INDEXES
from shared.messaging import EXCHANGE, Broker
from shared.storage import Document, ensure_indexes
from tests.conftest import Isolation
from tests.factories import approved_event, submitted_event
from tests.unit.test_partner_endpoints import endpoint

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


def an_endpoint() -> Endpoint:
    return endpoint(id="ep_a", description="Cổng tỉnh", rate_limit_per_second=5)


async def test_queue_claim_idle_and_recover(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    db = mongo[isolation.database("notify")]
    await ensure_indexes(db, INDEXES)
    store = EndpointStore(db)
    partner = PartnerAccount("p1", "P", "p@x.vn", frozenset(), hash_api_key("k"), T0, "admin")
    assert await store.add_partner(partner)
    assert not await store.add_partner(partner)  # one partner per id
    assert (await store.partner_by_key(hash_api_key("k"))) == partner
    endpoint = an_endpoint()
    await store.add_endpoint(endpoint)
    assert await store.endpoint("ep_a") == endpoint

    submitted = submitted_event()
    first = new_message(endpoint, submitted, frozenset(), tries=2, now=T0)
    approved = approved_event(submitted).model_copy(
        update={"time": submitted.time + timedelta(seconds=1)}
    )
    second = new_message(endpoint, approved, frozenset(), tries=2, now=T0)
    assert await store.queue([second, first]) == 2
    assert await store.queue([first]) == 0  # a redelivered event: nothing new
    assert [d["_id"] for d in await store.due(millis(T0), limit=10)] == ["ep_a"]

    now = millis(T0)
    assert await store.claim("ep_a", "r1", now_ms=now, lease_ms=10_000)
    assert not await store.claim("ep_a", "r2", now_ms=now + 1, lease_ms=10_000)  # one sender
    assert await store.claim("ep_a", "r2", now_ms=now + 10_001, lease_ms=10_000)  # lease over

    head = await store.head("ep_a")
    assert head is not None and head.id == first.id  # the earlier event first
    doc = await store.endpoint_doc("ep_a")
    assert doc is not None
    queued = int(doc["queued"])
    await store.queue(
        [
            new_message(
                endpoint,
                approved_event(submitted),
                frozenset(),
                tries=2,
                now=T0 + timedelta(seconds=1),
            )
        ]
    )
    assert await store.queue([]) == 0
    assert not await store.idle("ep_a", queued)  # work came since it looked: stays due

    for m in (first, second):
        loaded = await store.message(m.id)
        assert loaded is not None
        tried = replace(loaded, tries=2)
        assert await store.save_message(loaded, tried)
        assert not await store.save_message(loaded, tried)  # a stale write loses
        failed = await store.message(m.id)
        assert failed is not None
        assert await store.save_message(failed, replace(failed, state="failed", failed_at=T0))
    assert await store.head("ep_a") is not None  # the third, still pending
    assert await store.fail_pending("ep_a", "endpoint disabled", datetime.now(UTC)) == 1

    assert await store.recover("ep_a", datetime.now(UTC) + timedelta(hours=1)) == 0  # none since
    assert await store.recover("ep_a", T0 - timedelta(hours=1)) == 3  # by when they failed
    assert await store.recover("ep_a", T0 - timedelta(hours=1)) == 0  # once each
    again = await store.message(first.id)
    assert again is not None and again.state == "pending" and again.try_limit == 3
    assert again.recovered == 1

    assert await store.failing_count() == 0
    on = await store.endpoint("ep_a")
    assert on is not None
    assert await store.save_endpoint(on, replace(on, failing_since_ms=now))
    assert not await store.save_endpoint(on, replace(on, enabled=False))  # stale version
    assert await store.failing_count() == 1

    # A partner's deletion takes every endpoint of it, whatever version the sender left.
    await store.add_endpoint(replace(an_endpoint(), id="ep_b"))
    assert await store.delete_endpoints_of("p1") == 2
    assert await store.endpoint("ep_a") is None and await store.endpoint("ep_b") is None


async def test_the_partner_queue_takes_only_what_enabled_endpoints_subscribe_to(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Bound to every type by an older version, the queue keeps after `reconcile` only the
    types an enabled endpoint takes and the operational one; an endpoint's new types are bound
    by `follow`. Checked by routing: what reaches the queue."""
    db = mongo[isolation.database("notify")]
    await ensure_indexes(db, INDEXES)
    store = EndpointStore(db)
    await store.add_endpoint(replace(an_endpoint(), event_types=("dossier.approved",)))
    await store.add_endpoint(
        replace(an_endpoint(), id="ep_off", event_types=("dossier.received",), enabled=False)
    )
    broker = Broker(isolation.amqp_url, service="notify")
    await broker.connect()
    try:
        await broker.declare_queue(QUEUE, bindings(), delivery_limit=5)  # as an older version
        subscriptions = Subscriptions(broker, store)
        await subscriptions.reconcile()
        exchange = await broker.channel.get_exchange(EXCHANGE)

        queue = await broker.channel.get_queue(QUEUE)

        async def routed(event_type: str) -> bool:
            message = aio_pika.Message(b"{}")
            await exchange.publish(message, routing_key=event_type, mandatory=False)
            for _ in range(25):
                got = await queue.get(no_ack=True, fail=False)
                if got is not None:
                    assert got.routing_key == event_type
                    return True
                await asyncio.sleep(0.02)
            return False

        assert await routed("dossier.approved")
        assert await routed("partner.endpoint_disabled")
        assert not await routed("dossier.received")  # its endpoint is disabled
        assert not await routed("dossier.submitted")
        await subscriptions.follow(["dossier.received", "dossier.approved"])
        assert await routed("dossier.received")
        # Another replica starting with no endpoint taking it unbinds it; following it again
        # (the endpoint enabled once more here) binds it again, whatever this one did before.
        await Subscriptions(broker, store).reconcile()
        assert not await routed("dossier.received")
        await subscriptions.follow(["dossier.received"])
        assert await routed("dossier.received")
    finally:
        await broker.close()
