"""Benchmark: audit records written per second, one insert per record against batched inserts,
then chained: the round trips each step sends.

    .venv/bin/python -m benchmarks.audit_batching [--count 2000] [--concurrency 32]
        [--sizes 1,8,32,64]

Starts its own MongoDB-wire server (tools.devstack, free ports; MOTCUA_DATABASE chooses which)
and, for each batch size, records `count` events through audit's record handler with
`concurrency` handlers in flight (as the consumer runs up to `prefetch` at once), each
returning only once its record is durable. Prints records per second, the number of database
writes (batches) used and the commands sent per record (a PyMongo CommandListener). Then
settles them all in one round (as the ledger keeper does once their grace window has passed)
and prints how long that took and the commands it sent per link, then settles one more event
of an already long chain, to show the cost does not grow with it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

from pymongo import AsyncMongoClient, monitoring

from services.audit import handlers
from services.audit.batching import Batcher
from services.audit.store import AuditStore
from shared.clock import utcnow
from shared.contracts import Event
from shared.storage import Document
from tests.factories import dossier_events
from tools.devstack import free_port, stack

IGNORED = {"ping", "hello", "isMaster", "endSessions", "serverStatus"}


class Count(monitoring.CommandListener):
    def __init__(self) -> None:
        self.n = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.n += event.command_name not in IGNORED

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> int:
        n, self.n = self.n, 0
        return n


async def one_size(url: str, events: list[Event], size: int, concurrency: int) -> None:
    count = Count()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        url, tz_aware=True, event_listeners=[count]
    )
    store = AuditStore(client[f"bench_audit_{uuid.uuid4().hex[:8]}"])
    await store.setup()
    batcher = Batcher(partial(store.insert_records, hmac_key=b"k"), size=size, wait=0.02)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(event: Event) -> None:
        async with semaphore:
            await handlers.record(event, batcher=batcher, hmac_key=b"k", clock=utcnow)

    count.take()
    started = time.perf_counter()
    await asyncio.gather(*(one(e) for e in events))
    elapsed = time.perf_counter() - started
    sent = count.take()
    written = await store.records.count_documents({})
    print(
        f"batch size {size:>3}: {len(events) / elapsed:8.0f} records/s "
        f"({written} records, {batcher.batches} writes, {sent / len(events):.2f} commands "
        f"per record, {elapsed:.2f}s)"
    )
    count.take()
    started = time.perf_counter()
    later = utcnow() + timedelta(minutes=1)
    links = await handlers.settle(store=store, now=later, grace=timedelta(0), hmac_key=b"k")
    elapsed = time.perf_counter() - started
    sent = count.take()
    print(
        f"    settled {links} links of {len(events) // 5} dossiers in {elapsed:.2f}s "
        f"({sent} commands, {sent / max(links, 1):.2f} per link)"
    )
    await client.drop_database(store.records.database.name)
    await client.close()


async def long_chain(url: str, length: int) -> None:
    """The commands one more event costs (record + settle) on a chain of `length` links."""
    count = Count()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        url, tz_aware=True, event_listeners=[count]
    )
    store = AuditStore(client[f"bench_audit_{uuid.uuid4().hex[:8]}"])
    await store.setup()
    code = "B-long"
    events = [
        e.model_copy(update={"id": f"{i}-{e.id}", "time": e.time + timedelta(hours=i)})
        for i in range(length // 5 + 1)
        for e in dossier_events(code)
    ]
    batcher = Batcher(partial(store.insert_records, hmac_key=b"k"), size=32, wait=0.01)
    at = datetime(2026, 11, 2, tzinfo=UTC)
    await asyncio.gather(
        *(
            handlers.record(e, batcher=batcher, hmac_key=b"k", clock=lambda: at)
            for e in events[:length]
        )
    )
    grace = timedelta(seconds=1)
    await handlers.settle(store=store, now=at + timedelta(minutes=1), grace=grace, hmac_key=b"k")
    count.take()
    single = Batcher(partial(store.insert_records, hmac_key=b"k"), size=1, wait=0)
    later = at + timedelta(minutes=2)
    await handlers.record(events[length], batcher=single, hmac_key=b"k", clock=lambda: later)
    recorded = count.take()
    await handlers.settle(store=store, now=later + timedelta(minutes=1), grace=grace, hmac_key=b"k")
    settled = count.take()
    print(
        f"link {length + 1:>4} of one dossier: {recorded} commands to record, {settled} to settle"
    )
    await client.drop_database(store.records.database.name)
    await client.close()


async def run(url: str, count: int, concurrency: int, sizes: list[int]) -> None:
    events = [e for i in range(count // 5) for e in dossier_events(f"B-{i}")]
    print(f"{len(events)} records, {concurrency} in flight, {datetime.now(UTC):%Y-%m-%d %H:%M}")
    for size in sizes:
        await one_size(url, events, size, concurrency)
    for length in (5, 50, 200):
        await long_chain(url, length)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit_batching")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sizes", default="1,8,32,64")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    with stack("bench", free_port(), free_port(), fresh=True) as s:
        assert s.mongo
        asyncio.run(run(s.mongo.url, args.count, args.concurrency, sizes))


if __name__ == "__main__":
    main()
