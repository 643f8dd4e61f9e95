"""RabbitMQ plumbing on aio-pika: the topic exchange, confirmed publishing, consuming with retries
and dead-lettering.

Topology: one durable topic exchange `motcua.events` whose routing key is the event type; each
service declares durable quorum queues bound to the types it needs. A queue dead-letters to the
direct exchange `motcua.dead` with its own name as routing key, into `<queue>.dead`, where an
operator can inspect and replay what failed.

`MOTCUA_AMQP_URL` may name several nodes of one cluster, comma-separated: the connection fails
over to the next node when its node is lost or refuses a (re)connection, and the quorum queues
(replicated on the cluster's nodes) carry on under a new leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from yarl import URL

from shared.contracts import CONTENT_TYPE, Event, UndecodableEvent, decode
from shared.logging import correlated
from shared.metrics import EVENTS_CONSUMED, EVENTS_PUBLISHED, HANDLER_SECONDS

log = logging.getLogger(__name__)

EXCHANGE = "motcua.events"
DEAD_EXCHANGE = "motcua.dead"
REASON_HEADER = "x-motcua-dead-reason"
QUEUE_HEADER = "x-motcua-dead-queue"
ROUTING_KEY_HEADER = "x-motcua-original-routing-key"
PUBLISH_TIMEOUT = 10.0

Handler = Callable[[Event], Awaitable[None]]

# The headers of the message being handled, for a handler that needs them (notify's replays).
MESSAGE_HEADERS: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "motcua_message_headers", default=None
)


class PermanentFailure(Exception):
    """Raised by a handler when retrying the message cannot help: it is dead-lettered at once."""


class NotReady(RuntimeError):
    """The broker connection is not open (yet, or any more)."""


def broker_urls(url: str) -> list[str]:
    """The nodes `url` names: one URL, or several of one cluster separated by commas."""
    urls = [part.strip() for part in url.split(",") if part.strip()]
    if not urls:
        raise ValueError("no broker URL given")
    return urls


class FailoverConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection over several nodes of one cluster, tried in turn.

    aio-pika reconnects to the one URL it was given, for ever; with the node that URL names gone,
    the service would wait for that node. Here a lost connection, and every failed attempt to
    connect, moves on to the next node, so the service carries on with the cluster's others.
    Options in the query (TLS files, heartbeat) are read from the first URL.
    """

    def __init__(self, urls: Sequence[str], **kwargs: Any) -> None:
        self.urls = [URL(u) for u in urls]
        self.node = 0
        super().__init__(self.urls[0], **kwargs)

    def next_node(self) -> None:
        self.node = (self.node + 1) % len(self.urls)
        self.url = self.urls[self.node]

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # Only an open connection lost; a failed attempt moved on already.
        if self.connected.is_set() and not self._close_called and len(self.urls) > 1:
            log.warning("broker connection to %s lost; next: another node", self)
            self.next_node()
        await super()._on_connection_close(closing)

    # Each attempt of the robust connection's reconnection loop (a name-mangled private method
    # of aio-pika's; tests/unit/test_messaging_failover.py fails if it is renamed).
    async def _RobustConnection__connect_transport(self) -> None:
        try:
            await super()._RobustConnection__connect_transport()  # type: ignore[misc]
        except Exception:
            self.next_node()
            raise


async def connect_failover(url: str, **kwargs: Any) -> FailoverConnection:
    """A connected FailoverConnection over the nodes `url` names: the first that answers."""
    urls = broker_urls(url)
    error: Exception | None = None
    for start in range(len(urls)):
        connection = FailoverConnection([*urls[start:], *urls[:start]], **kwargs)
        try:
            await connection.connect()
        except Exception as exc:
            error = exc
            with contextlib.suppress(Exception):
                await connection.close()
            continue
        return connection
    assert error is not None
    raise error


class Broker:
    """One robust connection with one confirming channel, shared by a service's publisher and
    consumers. aio-pika reconnects by itself (to the next node of a cluster when `url` lists
    several) and restores exchanges, queues and consumers."""

    def __init__(self, url: str, *, service: str, prefetch: int = 32) -> None:
        self.url = url
        self.service = service
        self.prefetch = prefetch
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._dead_exchange: AbstractExchange | None = None

    async def connect(self) -> None:
        """Open the connection and declare the two exchanges (idempotent)."""
        self._connection = await connect_failover(
            self.url, client_properties={"connection_name": f"motcua-{self.service}"}
        )
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=self.prefetch)
        self._exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._dead_exchange = await channel.declare_exchange(
            DEAD_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        self._channel = channel

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    def is_ready(self) -> bool:
        """True while the connection and channel are open."""
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    @property
    def channel(self) -> AbstractChannel:
        if self._channel is None:
            raise NotReady("broker not connected")
        return self._channel

    async def publish(self, event: Event) -> None:
        """Publish persistently and mandatorily; returns once the broker confirmed it.

        Raises if the broker refuses it, nothing is bound to its type, or it is not reachable.
        """
        if self._exchange is None or not self.is_ready():
            raise NotReady("broker not connected")
        message = event_message(event, app_id=f"motcua-{self.service}")
        await self._exchange.publish(
            message, routing_key=event.type, mandatory=True, timeout=PUBLISH_TIMEOUT
        )
        EVENTS_PUBLISHED.labels(self.service, event.type).inc()

    async def declare_queue(
        self, name: str, bindings: Sequence[str], *, delivery_limit: int
    ) -> AbstractQueue:
        """Declare a durable quorum queue bound to `bindings`, and its dead-letter queue."""
        channel = self.channel
        assert self._exchange is not None
        assert self._dead_exchange is not None
        dead = await channel.declare_queue(
            f"{name}.dead", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(self._dead_exchange, routing_key=name)
        queue = await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": DEAD_EXCHANGE,
                "x-dead-letter-routing-key": name,
                "x-delivery-limit": delivery_limit,
            },
        )
        for pattern in bindings:
            await queue.bind(self._exchange, routing_key=pattern)
        return queue

    async def bind(self, queue: str, routing_keys: Sequence[str]) -> None:
        """Bind the declared queue `queue` to more event types (idempotent, broker-side)."""
        assert self._exchange is not None
        declared = await self.channel.get_queue(queue, ensure=True)
        for key in routing_keys:
            await declared.bind(self._exchange, routing_key=key)

    async def unbind(self, queue: str, routing_keys: Sequence[str]) -> None:
        """Unbind the queue `queue` from event types (a binding that is not there: no-op)."""
        assert self._exchange is not None
        declared = await self.channel.get_queue(queue, ensure=True)
        for key in routing_keys:
            await declared.unbind(self._exchange, routing_key=key)

    async def dead_letter(
        self, message: AbstractIncomingMessage, *, queue: str, reason: str
    ) -> None:
        """Copy `message` to `<queue>.dead` with the reason in a header (confirmed)."""
        if self._dead_exchange is None:
            raise NotReady("broker not connected")
        headers: dict[str, Any] = dict(message.headers or {})
        headers[REASON_HEADER] = reason[:1000]
        headers[QUEUE_HEADER] = queue
        headers[ROUTING_KEY_HEADER] = message.routing_key or ""
        await self._dead_exchange.publish(
            copy_message(message, headers),
            routing_key=queue,
            mandatory=True,
            timeout=PUBLISH_TIMEOUT,
        )


def event_message(
    event: Event, *, headers: dict[str, Any] | None = None, app_id: str | None = None
) -> aio_pika.Message:
    """A persistent AMQP message carrying `event` in structured mode, as every publisher sends
    it (the exchange, a delay queue, a dead-letter queue)."""
    return aio_pika.Message(
        body=event.to_json(),
        headers=dict(headers or {}),
        content_type=CONTENT_TYPE,
        message_id=event.id,
        correlation_id=event.correlationid,
        type=event.type,
        timestamp=event.time,
        app_id=app_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def copy_message(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """A persistent copy of a received message, with other headers."""
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


class Consumer:
    """Consumes one queue with manual acks: decodes each message, calls the handler, and acks
    only after the handler returned (its state change and output events are durable by then).

    A message that cannot be decoded, or whose handler raises PermanentFailure, is dead-lettered
    with the reason. Any other failure is retried after a pause, up to `max_attempts` deliveries,
    then dead-lettered. The consumer never stops on a bad message.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        queue: str,
        bindings: Sequence[str],
        handle: Handler,
        max_attempts: int = 5,
        retry_delay: float = 1.0,
    ) -> None:
        self.broker = broker
        self.queue_name = queue
        self.bindings = list(bindings)
        self.handle = handle
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay

    async def start(self) -> None:
        # The broker's own limit is a safety net for messages that crash the whole process.
        queue = await self.broker.declare_queue(
            self.queue_name, self.bindings, delivery_limit=self.max_attempts + 5
        )
        await queue.consume(self.on_message, no_ack=False)

    def _count(self, event_type: str, outcome: str) -> None:
        EVENTS_CONSUMED.labels(self.broker.service, self.queue_name, event_type, outcome).inc()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            event = decode(message.body)
        except UndecodableEvent as exc:
            log.warning("dead-lettering undecodable message", extra={"reason": str(exc)})
            await self._dead_letter(message, str(exc), message.type or "unknown")
            return
        with correlated(event.correlationid):
            started = time.perf_counter()
            MESSAGE_HEADERS.set(message.headers or {})  # set for each message before its handler
            try:
                await self.handle(event)
            except PermanentFailure as exc:
                log.warning(
                    "handler refused event", extra={"event_id": event.id, "reason": str(exc)}
                )
                await self._dead_letter(message, f"{event.type}: {exc}", event.type)
            except Exception as exc:
                await self._retry_or_dead_letter(message, event, exc)
            else:
                HANDLER_SECONDS.labels(self.broker.service, event.type).observe(
                    time.perf_counter() - started
                )
                await self._settle(message.ack())
                self._count(event.type, "handled")

    async def _retry_or_dead_letter(
        self, message: AbstractIncomingMessage, event: Event, exc: Exception
    ) -> None:
        raw_count = (message.headers or {}).get("x-delivery-count") or 0
        attempts = (int(raw_count) if isinstance(raw_count, int | str) else 0) + 1
        if attempts >= self.max_attempts:
            log.error(
                "event failed %d times, dead-lettering",
                attempts,
                extra={"event_id": event.id, "type": event.type},
                exc_info=exc,
            )
            await self._dead_letter(message, f"failed {attempts} times: {exc!r}", event.type)
            return
        log.warning(
            "event failed, will retry",
            extra={"event_id": event.id, "attempt": attempts},
            exc_info=exc,
        )
        await asyncio.sleep(self.retry_delay * attempts)
        await self._settle(message.nack(requeue=True))
        self._count(event.type, "retried")

    async def _dead_letter(
        self, message: AbstractIncomingMessage, reason: str, event_type: str
    ) -> None:
        try:
            await self.broker.dead_letter(message, queue=self.queue_name, reason=reason)
        except Exception:
            # Could not park it: hand it back rather than lose it.
            log.exception("could not dead-letter message; requeueing it")
            await asyncio.sleep(self.retry_delay)
            await self._settle(message.nack(requeue=True))
            return
        await self._settle(message.ack())
        self._count(event_type, "dead_lettered")

    @staticmethod
    async def _settle(result: Awaitable[None]) -> None:
        # If the channel died meanwhile, the broker redelivers the message: nothing is lost.
        try:
            await result
        except Exception:
            log.warning("could not settle message; the broker will redeliver it", exc_info=True)
