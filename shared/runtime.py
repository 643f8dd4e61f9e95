"""What every service process holds: settings, the broker, its database, background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.faults import FaultPoints
from shared.messaging import Broker, Consumer, Handler
from shared.outbox import STOP_DRAIN_SECONDS, Outbox
from shared.settings import ServiceSettings
from shared.storage import Document, mongo_client, ping

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: ServiceSettings
    broker: Broker
    mongo: AsyncMongoClient[Document]
    faults: FaultPoints
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    outboxes: list[Outbox] = field(default_factory=list)

    @property
    def db(self) -> AsyncDatabase[Document]:
        return self.mongo[self.settings.database]

    async def readiness(self) -> dict[str, bool]:
        """Whether the broker and the database are reachable right now."""
        return {"broker": self.broker.is_ready(), "database": await ping(self.mongo)}

    def background(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.tasks.append(asyncio.create_task(coro, name=name))

    def relay(self, outbox: Outbox) -> None:
        """Keep publishing what `outbox` left unpublished, until shutdown."""
        interval = self.settings.shared.outbox_interval_seconds
        self.outboxes.append(outbox)
        self.background(outbox.run(interval), "outbox-relay")

    async def consume(self, queue: str, bindings: list[str], handle: Handler) -> Consumer:
        """Start consuming `queue` (named `motcua.<service>[.<queue>]`) with retries and DLQ."""
        shared = self.settings.shared
        consumer = Consumer(
            self.broker,
            queue=queue,
            bindings=bindings,
            handle=handle,
            max_attempts=shared.max_attempts,
            retry_delay=shared.retry_delay_seconds,
        )
        await consumer.start()
        return consumer


async def _connect(broker: Broker) -> None:
    delay = 0.5
    while True:
        try:
            await broker.connect()
            return
        except Exception as exc:
            log.warning("broker not reachable yet (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


@contextlib.asynccontextmanager
async def runtime(settings: ServiceSettings) -> AsyncIterator[Runtime]:
    """Open the broker and database clients (waiting for the broker), close all on exit."""
    shared = settings.shared
    broker = Broker(shared.amqp_url, service=settings.service_name, prefetch=shared.prefetch)
    await _connect(broker)
    mongo = mongo_client(
        shared.mongodb_url, service=settings.service_name, command_log_dir=shared.command_log_dir
    )
    rt = Runtime(settings, broker, mongo, FaultPoints(shared.fault_points))
    try:
        yield rt
    finally:
        for task in rt.tasks:
            task.cancel()
        await asyncio.gather(*rt.tasks, return_exceptions=True)
        await broker.close()
        # Consumers settled steps until the broker closed: their mark clears land first (any
        # left over are the relay's at the next start).
        for outbox in rt.outboxes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outbox.drain(), STOP_DRAIN_SECONDS)
        await rt.mongo.close()
