"""The transactional outbox, built for a store without transactions.

A state change and the events it emits are one single-document write: the events go into the
document's `outbox` list and stay there, so a redelivered input can re-publish the very same
events. Just before that write, a small pointer per event goes into the service's
`outbox_pending` collection; after the write, the events are published with confirms and their
pointers deleted. A relay publishes what a crash or a broker outage left pointed at, and drops
pointers whose write never happened. The pending collection holds only events in flight, so the
relay reads little, and no large document is ever updated to mark an event published (FerretDB
1.24 updates and deletes in time proportional to the collection's size).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from shared.clock import utcnow
from shared.contracts import Event, load
from shared.metrics import OUTBOX_PENDING
from shared.storage import Document

log = logging.getLogger(__name__)

Publish = Callable[[Event], Awaitable[None]]
STALE_AFTER = timedelta(minutes=2)


def outbox_fields(events: Iterable[Event]) -> dict[str, Any]:
    """The field of a document that records the events its write emits."""
    return {"outbox": [e.model_dump(mode="json") for e in events]}


def events_of(doc: Document, *, caused_by: str | None = None) -> list[Event]:
    """The events a document recorded (only those caused by `caused_by`, if given)."""
    return [
        load(stored)
        for stored in doc.get("outbox", [])
        if caused_by is None or stored.get("causationid") == caused_by
    ]


class Outbox:
    """One service's outbox over the collections whose documents record events."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        publish: Publish,
        *,
        service: str,
        sources: Iterable[AsyncCollection[Document]],
    ) -> None:
        self.pending = db["outbox_pending"]
        self.sources = {c.name: c for c in sources}
        self.publish = publish
        self.service = service

    async def expect(
        self, source: AsyncCollection[Document], doc_id: str, events: Iterable[Event]
    ) -> None:
        """Point at events about to be written into `source`'s document `doc_id`."""
        now = utcnow()
        pointers = [
            {"_id": e.id, "source": source.name, "doc_id": doc_id, "created_at": now}
            for e in events
        ]
        if not pointers:
            return
        try:
            await self.pending.insert_many(pointers, ordered=False)
        except BulkWriteError as exc:  # already pointed at (a redelivered input): fine
            if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
                raise

    async def flush(self, events: Iterable[Event]) -> list[Event]:
        """Publish `events` (confirmed), then drop their pointers. Returns them."""
        published = []
        for event in events:
            await self.publish(event)
            await self.pending.delete_one({"_id": event.id})
            published.append(event)
        return published

    async def relay_once(self, *, older_than: timedelta = timedelta(seconds=5)) -> int:
        """Publish events left pointed at for longer than `older_than`; return how many."""
        now = utcnow()
        count = 0
        async for pointer in self.pending.find({"created_at": {"$lt": now - older_than}}):
            source = self.sources.get(pointer.get("source", ""))
            doc = await source.find_one({"_id": pointer["doc_id"]}) if source is not None else None
            stored = next(
                (e for e in (doc or {}).get("outbox", []) if e.get("id") == pointer["_id"]), None
            )
            if stored is None:
                if now - pointer["created_at"] > STALE_AFTER:  # the write never happened
                    await self.pending.delete_one({"_id": pointer["_id"]})
                continue
            for event in await self.flush([load(stored)]):
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
