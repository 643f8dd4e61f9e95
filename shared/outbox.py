"""The transactional outbox on a single document.

A state change and the events it emits are written in one atomic single-document update: the
events go into the document's `outbox` list (kept for good, so a redelivered input re-publishes
the very same events) and their ids into `unpublished`. After the write, the events are
published with confirms and their ids pulled from `unpublished`. A relay publishes whatever a
crash or a broker outage left in `unpublished`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.contracts import Event, load
from shared.metrics import OUTBOX_PENDING
from shared.storage import Document

log = logging.getLogger(__name__)

Publish = Callable[[Event], Awaitable[None]]


def outbox_fields(events: Iterable[Event]) -> dict[str, Any]:
    """Fields for a new document that emits `events`."""
    events = list(events)
    return {
        "outbox": [e.model_dump(mode="json") for e in events],
        "unpublished": [e.id for e in events],
    }


def outbox_push(events: Iterable[Event]) -> dict[str, Any]:
    """The `$push` clause that adds `events` to an existing document's outbox."""
    events = list(events)
    return {
        "outbox": {"$each": [e.model_dump(mode="json") for e in events]},
        "unpublished": {"$each": [e.id for e in events]},
    }


class Outbox:
    """Publishes the events stored in one collection's documents."""

    def __init__(
        self, collection: AsyncCollection[Document], publish: Publish, *, service: str
    ) -> None:
        self.collection = collection
        self.publish = publish
        self.service = service

    async def flush(self, doc: Document, *, caused_by: str | None = None) -> list[Event]:
        """Publish the document's unpublished events (or, with `caused_by`, every event caused
        by that input, published or not) and mark them published. Returns what was published."""
        pending = set(doc.get("unpublished", []))
        published = []
        for stored in doc.get("outbox", []):
            if caused_by:
                wanted = stored.get("causationid") == caused_by
            else:
                wanted = stored["id"] in pending
            if not wanted:
                continue
            event = load(stored)
            await self.publish(event)
            if event.id in pending:
                await self.collection.update_one(
                    {"_id": doc["_id"]}, {"$pull": {"unpublished": event.id}}
                )
            published.append(event)
        return published

    async def relay_once(self, *, older_than: timedelta = timedelta(seconds=5)) -> int:
        """Publish events left unpublished for longer than `older_than`; return how many."""
        cutoff = datetime.now(UTC) - older_than
        count = 0
        cursor = self.collection.find(
            {"unpublished.0": {"$exists": True}, "updated_at": {"$lt": cutoff}}
        )
        async for doc in cursor:
            for event in await self.flush(doc):
                OUTBOX_PENDING.labels(self.service, event.type).inc()
                count += 1
        return count

    async def run(self, interval: float) -> None:
        """Relay forever; failures are logged and tried again on the next round."""
        while True:
            try:
                count = await self.relay_once()
                if count:
                    log.info("outbox relay published %d event(s)", count)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox relay round failed; will try again", exc_info=True)
            await asyncio.sleep(interval)
