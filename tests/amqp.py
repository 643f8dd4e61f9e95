"""Test helpers that talk AMQP directly: watch the exchange, publish raw bytes, read DLQs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from shared.contracts import Event
from shared.messaging import DEAD_EXCHANGE, EXCHANGE, Broker


@dataclass
class Observer:
    """Every message published on the events exchange while it is open."""

    messages: list[AbstractIncomingMessage] = field(default_factory=list)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        bodies = [json.loads(m.body) for m in self.messages]
        return [b for b in bodies if event_type is None or b.get("type") == event_type]

    async def wait_for(
        self, event_type: str, count: int = 1, timeout: float = 30
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(event_type)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"{count} x {event_type} not seen in {timeout}s: {self.events()}")


@asynccontextmanager
async def observe(amqp_url: str) -> AsyncIterator[Observer]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")
        observer = Observer()

        async def keep(message: AbstractIncomingMessage) -> None:
            observer.messages.append(message)
            await message.ack()

        await queue.consume(keep)
        yield observer
    finally:
        await connection.close()


async def publish_raw(
    amqp_url: str, routing_key: str, body: bytes, *, exchange: str = EXCHANGE
) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        await ex.publish(
            aio_pika.Message(body=body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=routing_key,
        )
    finally:
        await connection.close()


async def drain(
    amqp_url: str, queue: str, *, expect: int, timeout: float = 30
) -> list[AbstractIncomingMessage]:
    """Take `expect` messages from `queue` (waiting for them), acking each."""
    connection = await aio_pika.connect(amqp_url)
    got: list[AbstractIncomingMessage] = []
    try:
        channel = await connection.channel()
        q = await channel.get_queue(queue, ensure=True)
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            message = await q.get(fail=False)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            await message.ack()
            got.append(message)
    finally:
        await connection.close()
    assert len(got) == expect, f"expected {expect} messages on {queue}, got {len(got)}"
    return got


__all__ = ["DEAD_EXCHANGE", "Observer", "drain", "observe", "publish_raw"]


async def publish_all(amqp_url: str, events: Iterable[Event]) -> None:
    """Publish `events` in order, each confirmed, as a service would (a test's own broker)."""
    broker = Broker(amqp_url, service="test")
    await broker.connect()
    try:
        for event in events:
            await broker.publish(event)
    finally:
        await broker.close()
