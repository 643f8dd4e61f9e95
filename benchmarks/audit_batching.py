"""Benchmark: audit records written per second, one insert per record against batched inserts.

    .venv/bin/python -m benchmarks.audit_batching [--count 2000] [--concurrency 32]
        [--sizes 1,8,32,64]

Starts its own MongoDB-wire server (tools.devstack, free ports) and, for each batch size,
records `count` events through audit's record handler with `concurrency` handlers in flight
(as the consumer runs up to `prefetch` at once), each returning only once its record is
durable. Prints records per second and the number of database writes (batches) used.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime
from functools import partial

from services.audit import handlers
from services.audit.batching import Batcher
from services.audit.store import AuditStore
from shared.clock import utcnow
from shared.contracts import Event
from shared.storage import mongo_client
from tests.factories import dossier_events
from tools.devstack import free_port, stack


async def one_size(url: str, events: list[Event], size: int, concurrency: int) -> None:
    client = mongo_client(url)
    store = AuditStore(client[f"bench_audit_{uuid.uuid4().hex[:8]}"])
    await store.setup()
    batcher = Batcher(partial(store.insert_records, hmac_key=b"k"), size=size, wait=0.02)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(event: Event) -> None:
        async with semaphore:
            await handlers.record(event, batcher=batcher, hmac_key=b"k", clock=utcnow)

    started = time.perf_counter()
    await asyncio.gather(*(one(e) for e in events))
    elapsed = time.perf_counter() - started
    written = await store.records.count_documents({})
    print(
        f"batch size {size:>3}: {len(events) / elapsed:8.0f} records/s "
        f"({written} records, {batcher.batches} writes, {elapsed:.2f}s)"
    )
    await client.drop_database(store.records.database.name)
    await client.close()


async def run(url: str, count: int, concurrency: int, sizes: list[int]) -> None:
    events = [e for i in range(count // 5) for e in dossier_events(f"B-{i}")]
    print(f"{len(events)} records, {concurrency} in flight, {datetime.now(UTC):%Y-%m-%d %H:%M}")
    for size in sizes:
        await one_size(url, events, size, concurrency)


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
