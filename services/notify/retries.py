"""Delayed retries that never block the consumer, and parking what failed for good.

One durable queue per backoff level, each with its own TTL (a per-queue TTL: a short delay is
never stuck behind a longer one, as it would be with per-message TTLs in one queue). An expired
message is dead-lettered through notify's requeue exchange straight back into its own queue,
where the event is handled again: the deliveries already finished are skipped.

They are quorum queues, as every other queue of ours, with at-least-once dead-lettering: a
classic queue lives on one node, and with that node of a cluster down notify could neither
declare it again nor reconnect (RabbitMQ answers NOT_FOUND, "home node ... is down") until the
node came back; its waiting retries were out of reach meanwhile. (Classic queues of an older
version, `<queue>.retry.<ms>ms`, keep dead-lettering into `queue` as their messages expire; an
operator deletes them once empty.)
"""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from services.notify.domain import pick_delay
from shared.contracts import Event
from shared.messaging import (
    DEAD_EXCHANGE,
    PUBLISH_TIMEOUT,
    QUEUE_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
    event_message,
)

DELIVERY_HEADER = "x-motcua-delivery"
REOPEN_HEADER = "x-motcua-reopen"  # which replay of the delivery a parked message would be


def retry_exchange(queue: str) -> str:
    """Where notify publishes a retry (each delay queue bound by its name): its own exchange,
    so its broker user needs no right on the default exchange, which reaches every queue."""
    return f"{queue}.retry"


def requeue_exchange(queue: str) -> str:
    """Where an expired retry is dead-lettered, bound to `queue` only."""
    return f"{queue}.requeue"


def retry_queue_arguments(delay: float, queue: str) -> dict[str, Any]:
    """A replicated delay queue: expires its messages after `delay` s into `queue` (through its
    requeue exchange), and keeps each until `queue` has it (at-least-once dead-lettering needs
    reject-publish overflow)."""
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": round(delay * 1000),
        "x-dead-letter-exchange": requeue_exchange(queue),
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


class RetryQueues:
    def __init__(self, channel: AbstractChannel, *, queue: str, delays: list[float]) -> None:
        self.channel = channel
        self.queue = queue
        self.delays = delays
        self._dead: AbstractExchange | None = None
        self._retry: AbstractExchange | None = None
        self._requeue: AbstractExchange | None = None

    def name(self, delay: float) -> str:
        # The delay is part of the name: changing the settings declares new queues instead of
        # clashing with the arguments of the old ones (which keep draining into `queue`).
        return f"{self.queue}.retry.{round(delay * 1000)}ms.quorum"

    async def setup(self) -> None:
        self._dead = await self.channel.declare_exchange(
            DEAD_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        self._retry = await self.channel.declare_exchange(
            retry_exchange(self.queue), aio_pika.ExchangeType.DIRECT, durable=True
        )
        self._requeue = await self.channel.declare_exchange(
            requeue_exchange(self.queue), aio_pika.ExchangeType.DIRECT, durable=True
        )
        for delay in self.delays:
            delayed = await self.channel.declare_queue(
                self.name(delay),
                durable=True,
                arguments=retry_queue_arguments(delay, self.queue),
            )
            await delayed.bind(self._retry, routing_key=self.name(delay))

    async def bind_back(self) -> None:
        """Bind notify's own queue (declared by its consumer, after setup) to the requeue
        exchange: expired retries come back to it and to nothing else."""
        assert self._requeue is not None, "setup() first"
        queue = await self.channel.declare_queue(self.queue, passive=True)
        await queue.bind(self._requeue, routing_key=self.queue)

    async def schedule(self, event: Event, *, at_least: float) -> float:
        """Hand `event` back to notify after the shortest delay ≥ `at_least`; returns it."""
        delay = self.delays[pick_delay(self.delays, at_least)]
        assert self._retry is not None, "setup() first"
        await self._retry.publish(
            event_message(event),
            routing_key=self.name(delay),
            mandatory=True,
            timeout=PUBLISH_TIMEOUT,
        )
        return delay

    async def park(self, event: Event, *, delivery_id: str, reason: str, reopen: int) -> None:
        """Keep the event of a delivery that failed for good in `<queue>.dead`, with why.

        Replayed (`python -m shared.deadletters replay`), it reopens that delivery once."""
        assert self._dead is not None, "setup() first"
        headers = {
            REASON_HEADER: reason[:1000],
            QUEUE_HEADER: self.queue,
            ROUTING_KEY_HEADER: event.type,
            DELIVERY_HEADER: delivery_id,
            REOPEN_HEADER: str(reopen),
        }
        await self._dead.publish(
            event_message(event, headers=headers),
            routing_key=self.queue,
            mandatory=True,
            timeout=PUBLISH_TIMEOUT,
        )
