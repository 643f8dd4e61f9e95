"""The transactional outbox, built for a store without transactions.

A state change and the events it emits are one single-document write: the events go into the
document's `outbox` list and stay there, so a redelivered input can re-publish the very same
events. Just before that write, a small pointer per event goes into the service's
`outbox_pending` collection; after the write, the events are published with confirms and their
pointers deleted. A relay publishes what a crash or a broker outage left pointed at, and drops
pointers whose write never happened. The pending collection holds only events in flight, so the
relay reads little, and no large document is ever updated to mark an event published.

The relay works when there is work: at start-up (a crashed process's events), right after a
flush failed (an in-process signal), when a pointer it saw comes of age, and otherwise once per
long interval with one query on the `created_at` index (another replica's crash).

`inline_fields`/`inline_set` + `settle` are a cheaper scheme for collections whose updates
are isolated (MongoDB, nx-27017): the write marks its own events pending, so a step costs the
write and one clearing update instead of pointer insert, write and pointer delete. The clear is
off the step's path: it waits `CLEAR_LINGER` for others and goes with them in one bulk update
(`Clears`), after the step has answered. A clear that fails, or that a stop cuts short, leaves
the mark to the relay, which publishes the events again (consumers deduplicate by event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pymongo import IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from shared.clock import utcnow
from shared.contracts import Event, load
from shared.metrics import OUTBOX_PENDING
from shared.storage import Document, Indexes

log = logging.getLogger(__name__)

Publish = Callable[[Event], Awaitable[None]]
STALE_AFTER = timedelta(minutes=2)
RELAY_BATCH = 100
MARKED_KEPT = 10_000  # events this process marked and may still publish (their document)
PENDING = "outbox_pending"
OUTBOX_INDEXES: Indexes = {PENDING: [IndexModel([("created_at", 1)])]}
"""The index the relay's query needs; include it in a service's `INDEXES` (`**OUTBOX_INDEXES`)."""


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


INLINE_PENDING, INLINE_SINCE = "outbox_pending", "outbox_pending_since"


def inline_indexes(*collections: str) -> Indexes:
    """The index the relay needs on each collection that marks its own pending events."""
    return {name: [IndexModel([(INLINE_SINCE, 1)], sparse=True)] for name in collections}


def _instant(value: Any) -> datetime:
    """A stored moment as a datetime. nx-27017 0.8.1 defect: a datetime written by an update
    operator (`$set`, `$min`) is read back as a naive string ('2026-12-01 15:53:08.723000')."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return cast(datetime, value)


def _millis(at: datetime | None) -> int:
    """A moment as epoch milliseconds: the inline mark is a number, which every server compares
    right even after an update operator wrote it (see `_instant` for the nx-27017 defect)."""
    return int((at or utcnow()).timestamp() * 1000)


def inline_fields(events: Iterable[Event], *, at: datetime | None = None) -> dict[str, Any]:
    """The fields of a new document that records `events` and marks them unpublished.

    The inline scheme: no pointer collection. The write itself marks its events pending (one
    round trip), `Outbox.settle` publishes them and clears the mark (one more); the relay finds
    what a crash left marked with one query on `outbox_pending_since` per collection."""
    listed = list(events)
    fields = outbox_fields(listed)
    if listed:
        fields |= {INLINE_PENDING: [e.id for e in listed], INLINE_SINCE: _millis(at)}
    return fields


def inline_set(
    loaded: Document, events: Iterable[Event], *, at: datetime | None = None
) -> dict[str, Any]:
    """Fields to `$set`, in the step's own conditional `update_one` of the document `loaded`,
    that append `events` to its outbox marked unpublished.

    Whole values, computed from the loaded document (the update's guard makes it current): an
    nx-27017 0.8.1 defect turns every element of an array of sub-documents into a JSON string
    when anything is `$push`ed onto it."""
    listed = list(events)
    if not listed:
        return {}
    since = _millis(at)
    if loaded.get(INLINE_SINCE) is not None:
        since = min(int(loaded[INLINE_SINCE]), since)
    return {
        "outbox": [*loaded.get("outbox", []), *outbox_fields(listed)["outbox"]],
        INLINE_PENDING: [*loaded.get(INLINE_PENDING, []), *(e.id for e in listed)],
        INLINE_SINCE: since,
    }


CLEAR_LINGER = 0.1
"""Seconds a mark clear waits for others to go with it in one write."""
CLEARS_AT_ONCE = 500  # clears per bulk update
CLEAR_LIMIT = 30.0  # seconds a clearing write may take (the driver sets no timeout)
STOP_DRAIN_SECONDS = 2.0  # how long a stopping relay waits for the clears asked for


class ClearsFailed(Exception):
    """A relay round's mark clears failed: the round fails, and the relay backs off."""


def _resolve(future: asyncio.Future[bool] | None, written: bool) -> None:
    if future is not None and not future.done():
        future.set_result(written)


class Clears:
    """The mark clears of one collection's documents, sent together off the steps' path: a
    clear asked for waits `linger` seconds for others, then all go in unordered bulk
    `update`s (500 at most each). Under load a step's clear costs a share of one round trip,
    and no step waits for it.

    A clear unsets the mark if it holds exactly the published ids (one update); if it holds
    more (a later write marked others meanwhile), only those ids are pulled, and the relay
    clears the rest once published. A clear that fails is logged and left to the relay."""

    def __init__(self, source: AsyncCollection[Document], *, linger: float = CLEAR_LINGER) -> None:
        self.source = source
        self.linger = linger
        self.waiting: list[tuple[Any, list[str]]] = []
        self.gathering: asyncio.Future[bool] | None = None
        """Resolved once the clears waiting now are written (True) or failed (False)."""
        self.writing: asyncio.Future[bool] | None = None  # the batch being written, likewise
        self.sender: asyncio.Task[None] | None = None
        self.published: OrderedDict[Any, set[str]] = OrderedDict()
        """Document → the ids of its mark this process published (the latest `MARKED_KEPT`
        documents), whether or not their clear is written yet."""

    def later(self, doc_id: Any, ids: list[str]) -> asyncio.Future[bool]:
        """Clear the mark of `doc_id` soon; the returned future tells once that is written
        (True) or failed (False: the relay sees to it), and never raises."""
        loop = asyncio.get_running_loop()
        if ids:
            self.published.setdefault(doc_id, set()).update(ids)
            self.published.move_to_end(doc_id)
            while len(self.published) > MARKED_KEPT:
                self.published.popitem(last=False)
        if self.gathering is None:
            self.gathering = loop.create_future()
        self.waiting.append((doc_id, ids))
        if self.sender is None or self.sender.done():
            self.sender = loop.create_task(self._send_all(), name=f"clears-{self.source.name}")
        return self.gathering

    def superseded(self, doc_id: Any, ids: set[str]) -> None:
        """`doc_id` was written again without `ids` in its mark: their clears still waiting
        are dropped (one being written goes on, and finds nothing to clear)."""
        self.waiting = [(d, i) for d, i in self.waiting if d != doc_id or not set(i) <= ids]

    async def drain(self) -> None:
        """Return once every clear asked for so far is written (or failed)."""
        last = self.gathering or self.writing  # batches are written one after the other
        if last is not None:
            await asyncio.shield(last)

    async def _send_all(self) -> None:
        finished = False
        try:
            while self.waiting:
                await asyncio.sleep(self.linger)
                batch, done = self.waiting, self.gathering
                self.waiting, self.gathering, self.writing = [], None, done
                chunks = [
                    batch[at : at + CLEARS_AT_ONCE] for at in range(0, len(batch), CLEARS_AT_ONCE)
                ]
                written = False  # unless every chunk is (each is tried)
                try:
                    written = all([await self._write_chunk(chunk) for chunk in chunks])
                finally:
                    _resolve(done, written)
                    self.writing = None
            finished = True
        finally:
            # Ended with nothing waiting: a batch asked for and then superseded while another
            # was written has nothing left to write. Cancelled (the loop stops): nobody is left
            # waiting, the relay sees to the rest.
            _resolve(self.gathering, finished)
            self.gathering = None
            self.waiting = []

    async def _write_chunk(self, chunk: list[tuple[Any, list[str]]]) -> bool:
        """Write one chunk of clears; False (logged) if that failed."""
        try:
            async with asyncio.timeout(CLEAR_LIMIT):
                await self._write(chunk)
        except Exception:
            log.warning(
                "clearing %d outbox mark(s) in %s failed; the relay will publish and clear them",
                len(chunk),
                self.source.name,
                exc_info=True,
            )
            return False
        return True

    async def _write(self, batch: list[tuple[Any, list[str]]]) -> None:
        unset = {"$unset": {INLINE_PENDING: "", INLINE_SINCE: ""}}

        def exactly(doc_id: Any, ids: list[str]) -> Document:
            # "Exactly these ids", as $all + $size: nx-27017 0.8.1 refuses a filter that
            # compares an array field to an array value ("type 'list' is not supported").
            held = {"$all": ids, "$size": len(ids)} if ids else {"$size": 0}
            return {"_id": doc_id, INLINE_PENDING: held}

        if len(batch) == 1:
            doc_id, ids = batch[0]
            if (await self.source.update_one(exactly(doc_id, ids), unset)).matched_count == 1:
                return
            left = [(doc_id, ids)] if ids else []
        else:
            # Two clears of one document (two writes of it published meanwhile) go as one of
            # both's ids: apart, neither would match the mark that holds both.
            merged: dict[Any, list[str]] = {}
            for doc_id, ids in batch:
                held = merged.setdefault(doc_id, [])
                held.extend(i for i in ids if i not in held)
            batch = list(merged.items())
            ops = [UpdateOne(exactly(doc_id, ids), unset) for doc_id, ids in batch]
            result = await self.source.bulk_write(ops, ordered=False)
            if result.matched_count == len(ops):
                return
            # Which marks held more than their published ids: one read by key finds them.
            asked = list({doc_id: None for doc_id, ids in batch if ids})
            query = {"_id": {"$in": asked}, INLINE_PENDING: {"$exists": True}}
            still = {
                doc["_id"]: set(doc.get(INLINE_PENDING) or [])
                async for doc in self.source.find(query, {INLINE_PENDING: 1})
            }
            left = [(d, ids) for d, ids in batch if ids and still.get(d, set()) & set(ids)]
        for doc_id, ids in left:
            await self.source.update_one({"_id": doc_id}, {"$pullAll": {INLINE_PENDING: ids}})


class Outbox:
    """One service's outbox over the collections whose documents record events."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        publish: Publish,
        *,
        service: str,
        sources: Iterable[AsyncCollection[Document]],
        inline: Iterable[AsyncCollection[Document]] = (),
        linger: float = CLEAR_LINGER,
    ) -> None:
        self.pending = db[PENDING]
        self.linger = linger
        """Seconds a mark clear waits for others (`Clears`)."""
        self.sources = {c.name: c for c in sources}
        self.inline = list(inline)
        """Collections whose documents mark their own unpublished events (`inline_fields`)."""
        self.publish = publish
        self.service = service
        self.wake = asyncio.Event()
        """Set when a flush failed: the relay runs without waiting for its interval."""
        self.next_due: datetime | None = None
        """When the youngest pointer the last round left alone comes of age."""
        self._marked: dict[str, tuple[AsyncCollection[Document], Any]] = {}
        """Event id → the document whose write this process marked it in (`marked`)."""
        self.backlog = False  # the last round read a full batch and published: more waits
        self._clears: dict[str, Clears] = {}
        """Collection name → the batcher of its documents' mark clears."""

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

    async def discard(self, events: Iterable[Event]) -> None:
        """Drop the pointers of events whose write lost a race (it never happened), at once
        rather than when they go stale: a waiting pointer holds its document back (review
        moves no task to history while an event of it may still be unpublished)."""
        ids = [e.id for e in events]
        if ids:
            await self.pending.delete_many({"_id": {"$in": ids}})

    async def _publish_each(self, events: Iterable[Event], published: list[Event]) -> None:
        """Publish in order (confirmed), adding each to `published` once the broker has it; a
        failure wakes the relay, which publishes what is left once it comes of age."""
        try:
            for event in events:
                await self.publish(event)
                published.append(event)
        except BaseException:
            self.wake.set()
            raise

    async def flush(self, events: Iterable[Event]) -> list[Event]:
        """Publish `events` (confirmed), then drop their pointers. Returns them.

        A failed publish wakes the relay, which publishes what is left once it comes of age."""
        published: list[Event] = []
        try:
            await self._publish_each(events, published)
        finally:
            if published:
                ids = [e.id for e in published]
                if len(ids) == 1:
                    await self.pending.delete_one({"_id": ids[0]})
                else:
                    await self.pending.delete_many({"_id": {"$in": ids}})
        return published

    def marked(
        self, source: AsyncCollection[Document], doc_id: Any, events: Iterable[Event]
    ) -> None:
        """Say that this process's write of `source`'s document `doc_id` marked `events`
        (inline), so `publish_written` clears their mark. Bounded: one never published (a broker
        outage) is forgotten first, and the relay clears its mark."""
        for event in events:
            self._marked[event.id] = (source, doc_id)
        while len(self._marked) > MARKED_KEPT:
            self._marked.pop(next(iter(self._marked)))

    async def publish_written(self, events: list[Event]) -> list[Event]:
        """Publish `events` in order (confirmed): each run of them marked in one document
        (`marked`) is settled, its mark cleared once published; any other is flushed, its
        pointer dropped (a pointer's event, or events read back for a redelivered input,
        whose mark the relay clears). Returns those published."""
        published: list[Event] = []
        run: list[Event] = []
        for position, event in enumerate(events):
            run.append(event)
            where = self._marked.get(event.id)
            following = events[position + 1] if position + 1 < len(events) else None
            if following is not None and self._marked.get(following.id) == where:
                continue  # one document's events are published, then cleared, together
            if where is None:
                published += await self.flush(run)
            else:
                published += await self.settle(where[0], where[1], run)
                for done in run:
                    self._marked.pop(done.id, None)
            run = []
        return published

    async def settle(
        self, source: AsyncCollection[Document], doc_id: Any, events: Iterable[Event]
    ) -> list[Event]:
        """Publish `events` that `source`'s document `doc_id` marked inline, then have their
        mark cleared (`Clears`: soon, with the clears of other documents; `drain` waits).
        Returns those published."""
        published: list[Event] = []
        await self._settle(source, doc_id, events, published)
        return published

    async def _settle(
        self,
        source: AsyncCollection[Document],
        doc_id: Any,
        events: Iterable[Event],
        published: list[Event],
    ) -> asyncio.Future[bool]:
        """`settle`, returning the future of the clear (see `Clears.later`)."""
        try:
            await self._publish_each(events, published)
        finally:
            clears = self._clears.get(source.name)
            if clears is None:
                clears = self._clears[source.name] = Clears(source, linger=self.linger)
            cleared = clears.later(doc_id, [e.id for e in published])
        return cleared

    def published(self, source: AsyncCollection[Document], doc_id: Any) -> set[str]:
        """The ids in `doc_id`'s mark that this process published (its clear written or not):
        a write of the document that carries its loaded mark forward leaves these out (else a
        clear that landed between the load and the write would be undone, and the relay would
        publish them again)."""
        clears = self._clears.get(source.name)
        return set(clears.published.get(doc_id, ())) if clears is not None else set()

    def superseded(self, source: AsyncCollection[Document], doc_id: Any, ids: set[str]) -> None:
        """`doc_id` was written without `ids` (`published`) in its mark: no clear needed."""
        clears = self._clears.get(source.name)
        if clears is not None and ids:
            clears.superseded(doc_id, ids)

    async def drain(self) -> None:
        """Return once every mark clear asked for so far is written (or failed)."""
        for clears in list(self._clears.values()):
            await clears.drain()

    async def _relay_inline(self, now: datetime, cutoff: datetime, older_than: timedelta) -> int:
        count = 0
        for source in self.inline:
            cursor = source.find({INLINE_SINCE: {"$lte": _millis(now)}}).sort(INLINE_SINCE, 1)
            read = published = 0
            cleared: set[asyncio.Future[bool]] = set()
            try:
                async for doc in cursor.limit(RELAY_BATCH):
                    read += 1
                    since = datetime.fromtimestamp(doc[INLINE_SINCE] / 1000, UTC)
                    if since >= cutoff:
                        due = since + older_than
                        self.next_due = min(self.next_due or due, due)
                        break
                    ids = set(doc.get(INLINE_PENDING, []))
                    stored = [load(e) for e in doc.get("outbox", []) if e.get("id") in ids]
                    sent: list[Event] = []
                    cleared.add(await self._settle(source, doc["_id"], stored, sent))
                    for event in sent:
                        OUTBOX_PENDING.labels(self.service, event.type).inc()
                        published += 1
            finally:
                # The next round must not read these marks again: their clears are awaited.
                written = await asyncio.gather(*(asyncio.shield(f) for f in cleared))
            if not all(written):  # a round that republishes would loop: back off instead
                raise ClearsFailed(f"clearing the marks of {source.name} failed")
            count += published
            self.backlog = self.backlog or (read == RELAY_BATCH and published > 0)
        return count

    async def relay_once(self, *, older_than: timedelta = timedelta(seconds=5)) -> int:
        """Publish events left pointed at for longer than `older_than`; return how many.

        One query on the `created_at` index reads the oldest pointers; those younger than
        `older_than` (a write or a flush may still be under way) set `next_due` instead."""
        now = utcnow()
        cutoff = now - older_than
        count = 0
        self.next_due = None
        self.backlog = False
        cursor = self.pending.find({"created_at": {"$lte": now}}).sort("created_at", 1)
        read = 0
        async for pointer in cursor.limit(RELAY_BATCH):
            read += 1
            created = _instant(pointer["created_at"])
            if created >= cutoff:
                due = created + older_than
                self.next_due = min(self.next_due or due, due)
                break
            source = self.sources.get(pointer.get("source", ""))
            doc = await source.find_one({"_id": pointer["doc_id"]}) if source is not None else None
            stored = next(
                (e for e in (doc or {}).get("outbox", []) if e.get("id") == pointer["_id"]), None
            )
            if stored is None:
                if now - created > STALE_AFTER:  # the write never happened
                    await self.pending.delete_one({"_id": pointer["_id"]})
                else:  # the write may still come: look again when it would be stale
                    due = created + STALE_AFTER
                    self.next_due = min(self.next_due or due, due)
                continue
            for event in await self.flush([load(stored)]):
                OUTBOX_PENDING.labels(self.service, event.type).inc()
                count += 1
        # A full batch that published something: more may wait behind it (a broker outage's
        # backlog), so the next round follows at once instead of an interval later.
        self.backlog = read == RELAY_BATCH and count > 0
        return count + await self._relay_inline(now, cutoff, older_than)

    async def run(
        self, interval: float, *, retry: float = 1.0, grace: timedelta = timedelta(seconds=5)
    ) -> None:
        """Relay until cancelled: at start, on a failed flush, when a pointer comes of age
        (`grace` after it was written), else every `interval` seconds. A failed round is tried
        again after `retry` seconds, doubling up to `interval`."""
        backoff = retry
        try:
            await self._relay_forever(interval, retry, grace, backoff)
        finally:  # stopping: the clears asked for land before the database client closes
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), STOP_DRAIN_SECONDS)

    async def _relay_forever(
        self, interval: float, retry: float, grace: timedelta, backoff: float
    ) -> None:
        while True:
            self.wake.clear()
            try:
                count = await self.relay_once(older_than=grace)
                if count:
                    log.info("outbox relay published %d event(s)", count)
                backoff = retry
                pause = 0.0 if self.backlog else interval
                if self.next_due is not None and not self.backlog:
                    pause = min(interval, max(0.05, (self.next_due - utcnow()).total_seconds()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox relay round failed; will try again", exc_info=True)
                await asyncio.sleep(backoff)  # a failing broker must not make us spin
                pause, backoff = 0.0, min(backoff * 2, interval)
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), pause)
