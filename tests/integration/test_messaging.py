"""The shared messaging layer against a real RabbitMQ."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiormq.exceptions import PublishError

from shared.contracts import Event
from shared.messaging import (
    QUEUE_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
    Broker,
    Consumer,
    PermanentFailure,
)
from tests.amqp import drain, observe, publish_raw
from tests.conftest import Isolation
from tests.factories import submitted_event

pytestmark = pytest.mark.integration


@pytest.fixture
async def broker(isolation: Isolation) -> AsyncIterator[Broker]:
    b = Broker(isolation.amqp_url, service="test", prefetch=10)
    await b.connect()
    yield b
    await b.close()


async def test_publish_is_confirmed_and_carries_the_cloudevent(
    broker: Broker, isolation: Isolation
) -> None:
    event = submitted_event()
    async with observe(isolation.amqp_url) as seen:
        await broker.publish(event)
        [message] = await seen.wait_for("dossier.submitted")
    assert message["id"] == event.id
    raw = seen.messages[0]
    assert raw.routing_key == "dossier.submitted"
    assert raw.content_type == "application/cloudevents+json; charset=utf-8"
    assert raw.delivery_mode == 2  # persistent


async def test_an_unroutable_event_is_an_error_not_silence(broker: Broker) -> None:
    with pytest.raises(PublishError, match="NO_ROUTE"):
        await broker.publish(submitted_event())


async def _consume(
    broker: Broker, handled: list[Event], *, fail: Exception | None = None, attempts: int = 3
) -> Consumer:
    async def handle(event: Event) -> None:
        if fail is not None and event.subject.startswith("FAIL"):
            raise fail
        handled.append(event)

    consumer = Consumer(
        broker,
        queue="motcua.test",
        bindings=["dossier.*"],
        handle=handle,
        max_attempts=attempts,
        retry_delay=0.05,
    )
    await consumer.start()
    return consumer


async def _until(predicate: object, timeout: float = 20) -> None:
    for _ in range(int(timeout * 20)):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_undecodable_messages_are_dead_lettered_with_reason_and_consuming_goes_on(
    broker: Broker, isolation: Isolation
) -> None:
    handled: list[Event] = []
    await _consume(broker, handled)
    await publish_raw(isolation.amqp_url, "dossier.submitted", b"\x00not json")
    await publish_raw(
        isolation.amqp_url, "dossier.submitted", json.dumps({"type": "dossier.exploded"}).encode()
    )
    good = submitted_event()
    await broker.publish(good)
    await _until(lambda: len(handled) == 1)
    dead = await drain(isolation.amqp_url, "motcua.test.dead", expect=2)
    reasons = sorted(str(m.headers[REASON_HEADER]) for m in dead)
    assert reasons[0].startswith("body is not JSON")
    assert reasons[1] == "unknown event type: 'dossier.exploded'"
    assert {m.headers[QUEUE_HEADER] for m in dead} == {"motcua.test"}
    assert {m.headers[ROUTING_KEY_HEADER] for m in dead} == {"dossier.submitted"}
    assert dead[0].body in (b"\x00not json", b'{"type": "dossier.exploded"}')
    assert handled == [good]


async def test_a_failing_handler_is_retried_then_dead_lettered(
    broker: Broker, isolation: Isolation
) -> None:
    handled: list[Event] = []
    await _consume(broker, handled, fail=RuntimeError("database on fire"), attempts=3)
    await broker.publish(submitted_event(code="FAIL-1"))
    await broker.publish(submitted_event(code="OK-1"))
    [dead] = await drain(isolation.amqp_url, "motcua.test.dead", expect=1)
    assert "failed 3 times" in str(dead.headers[REASON_HEADER])
    assert "database on fire" in str(dead.headers[REASON_HEADER])
    assert json.loads(dead.body)["subject"] == "FAIL-1"
    assert [e.subject for e in handled] == ["OK-1"]
    assert await isolation.queue_messages("motcua.test") == 0


async def test_a_permanent_failure_is_dead_lettered_at_once(
    broker: Broker, isolation: Isolation
) -> None:
    handled: list[Event] = []
    await _consume(broker, handled, fail=PermanentFailure("not ours"), attempts=5)
    await broker.publish(submitted_event(code="FAIL-2"))
    [dead] = await drain(isolation.amqp_url, "motcua.test.dead", expect=1)
    assert str(dead.headers[REASON_HEADER]) == "dossier.submitted: not ours"
    assert dead.headers.get("x-delivery-count") in (None, 0)  # first delivery, not retried


async def test_an_operator_lists_then_replays_dead_letters(
    broker: Broker, isolation: Isolation
) -> None:
    from shared.deadletters import list_dead, replay

    healed = False
    handled: list[Event] = []

    async def handle(event: Event) -> None:
        if not healed:
            raise PermanentFailure("downstream refused")
        handled.append(event)

    consumer = Consumer(
        broker, queue="motcua.test", bindings=["dossier.*"], handle=handle, retry_delay=0.05
    )
    await consumer.start()
    event = submitted_event()
    await broker.publish(event)
    for _ in range(200):
        if await isolation.queue_messages("motcua.test.dead") == 1:
            break
        await asyncio.sleep(0.05)

    [listed] = await list_dead(isolation.amqp_url, "motcua.test", limit=10)
    assert listed["reason"] == "dossier.submitted: downstream refused"
    assert listed["routing_key"] == "dossier.submitted"
    assert json.loads(listed["body"])["id"] == event.id
    assert await isolation.queue_messages("motcua.test.dead") == 1  # listing left it parked

    healed = True
    assert await replay(isolation.amqp_url, "motcua.test", limit=10) == 1
    await _until(lambda: len(handled) == 1)
    assert handled[0].id == event.id
    assert await isolation.queue_messages("motcua.test.dead") == 0
