"""The inbound SMS webhook's store against the real MongoDB-wire server: a gateway message id
is taken once (even by two replicas at once), and a phone's requests are counted per minute
across replicas, without the phone number stored."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import AsyncMongoClient

from services.notify.inbound import Inbound, InboundSms, receive
from services.notify.inbound_store import RATE, SEEN, InboundStore
from shared.clock import utcnow
from shared.contracts import Event
from shared.storage import Document
from tests.conftest import Isolation

pytestmark = pytest.mark.integration


async def _stores(mongo: AsyncMongoClient[Document], isolation: Isolation) -> list[InboundStore]:
    db = mongo[isolation.database("notify")]
    stores = [InboundStore(db), InboundStore(db)]  # two replicas, one database
    await stores[0].setup()
    return stores


async def test_a_message_id_is_taken_once_even_by_two_replicas_at_once(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    now = utcnow()  # a TTL index counts from the real clock: taken when the test runs
    one, two = await _stores(mongo, isolation)
    taken = await asyncio.gather(one.claim("gw-1", now), two.claim("gw-1", now))
    assert sorted(taken) == [False, True]
    await one.release("gw-1")
    assert await two.claim("gw-1", now)
    stored = await mongo[isolation.database("notify")][SEEN].find_one({"_id": "gw-1"})
    assert stored is not None and stored["expires_at"] > now


async def test_the_twenty_first_request_of_a_minute_is_refused_across_replicas(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    now = utcnow()  # not at import: the suite reaches this test many minutes later
    stores = await _stores(mongo, isolation)
    published: list[Event] = []

    async def publish(event: Event) -> None:
        published.append(event)

    replicas = [
        Inbound(
            seen=s, counters=s, publish=publish, clock=lambda: now, per_minute=20, source="urn:t"
        )
        for s in stores
    ]

    def sms(n: int) -> InboundSms:
        return InboundSms.model_validate(
            {
                "from": "84912345678",
                "text": "TT G01.99-261201-0001",
                "received_at": now.isoformat(),
                "message_id": f"gw-{n}",
            }
        )

    outcomes = await asyncio.gather(*(receive(sms(n), inbound=replicas[n % 2]) for n in range(21)))
    assert sorted(outcomes).count("requested") == 20 and outcomes.count("limited") == 1
    assert len(published) == 20
    counters = [doc async for doc in mongo[isolation.database("notify")][RATE].find({})]
    assert [c["n"] for c in counters] == [21]
    assert "912345678" not in str(counters)
