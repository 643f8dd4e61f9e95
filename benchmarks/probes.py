"""What the benchmark reads besides latencies: database commands (each service's /metrics),
peak memory (/proc), and the bare broker and bare database on the same stack."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aio_pika
import bson
import httpx
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

DB_COMMANDS = "motcua_db_commands"  # motcua_db_commands_total{service,command,collection}

Key = tuple[str, str, str]  # (service, command, collection)


async def db_commands(urls: dict[str, str]) -> Counter[Key] | None:
    """Every service's database command counters, or None if a service does not export them
    (the metric is the shared client's; an older client has none)."""
    total: Counter[Key] = Counter()
    found = False
    async with httpx.AsyncClient(timeout=10) as client:
        texts = await asyncio.gather(*(client.get(f"{url}/metrics") for url in urls.values()))
    for text in texts:
        for family in text_string_to_metric_families(text.text):
            if family.name not in (DB_COMMANDS, f"{DB_COMMANDS}_total"):
                continue
            found = True
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                labels = sample.labels
                service, command = labels.get("service", ""), labels.get("command", "")
                key = (service, command, labels.get("collection", ""))
                total[key] += int(sample.value)
    return total if found else None


def diff(after: Counter[Key], before: Counter[Key]) -> Counter[Key]:
    out: Counter[Key] = Counter()
    for key, value in after.items():
        if value - before.get(key, 0) > 0:
            out[key] = value - before.get(key, 0)
    return out


async def settle(
    urls: dict[str, str], quiet: float = 0.4, limit: float = 5.0
) -> Counter[Key] | None:
    """The counters once no service has sent a command for `quiet` seconds (at most `limit`)."""
    last = await db_commands(urls)
    if last is None:
        return None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        now = await db_commands(urls)
        assert now is not None
        if now == last:
            return now
        last = now
    return last


def by_service(counts: Counter[Key]) -> Counter[str]:
    out: Counter[str] = Counter()
    for (service, _, _), value in counts.items():
        out[service] += value
    return out


def detail(counts: Counter[Key], service: str | None = None) -> str:
    """`find tasks ×2, update tasks ×1` (most first)."""
    parts = [
        (value, f"{command} {collection} ×{value:g}")
        for (svc, command, collection), value in counts.items()
        if service is None or svc == service
    ]
    return ", ".join(text for _, text in sorted(parts, key=lambda p: -p[0])) or "none"


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), in MB; None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def bare_broker(
    amqp_url: str, bodies: list[bytes], count: int, concurrency: int
) -> tuple[float, float]:
    """Publish `count` of `bodies` (cycled) with publisher confirms, persistent, through a
    durable quorum queue, consumed and acked on another connection: (messages/s, bytes avg)."""
    publisher = await aio_pika.connect(amqp_url)
    consumer = await aio_pika.connect(amqp_url)
    name = f"bench.bare.{uuid.uuid4().hex[:8]}"
    try:
        pub = await publisher.channel(publisher_confirms=True)
        sub = await consumer.channel()
        await sub.set_qos(prefetch_count=max(100, 2 * concurrency))
        queue = await sub.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        received = 0
        done = asyncio.get_running_loop().create_future()

        async def take(message: AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received >= count and not done.done():
                done.set_result(None)

        tag = await queue.consume(take)
        semaphore = asyncio.Semaphore(concurrency)

        async def publish(body: bytes) -> None:
            async with semaphore:
                await pub.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=name,
                )

        chosen = [bodies[i % len(bodies)] for i in range(count)]
        started = time.perf_counter()
        await asyncio.gather(*(publish(b) for b in chosen))
        await asyncio.wait_for(done, 300)
        elapsed = time.perf_counter() - started
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        return count / elapsed, sum(len(b) for b in chosen) / count
    finally:
        await publisher.close()
        await consumer.close()


async def bare_database(
    client: AsyncMongoClient[dict[str, Any]],
    database: str,
    sample: dict[str, Any],
    count: int,
    concurrency: int,
) -> tuple[float, float, int]:
    """`count` insert_one of documents like `sample` (fresh `_id`), then `count` find_one by
    `_id`, `concurrency` at once: (inserts/s, gets/s, document bytes)."""
    collection = client[database]["bare"]
    ids = [uuid.uuid4().hex for _ in range(count)]
    semaphore = asyncio.Semaphore(concurrency)

    async def insert(key: str) -> None:
        async with semaphore:
            await collection.insert_one({**sample, "_id": key})

    async def get(key: str) -> None:
        async with semaphore:
            assert await collection.find_one({"_id": key}) is not None

    try:
        started = time.perf_counter()
        await asyncio.gather(*(insert(k) for k in ids))
        inserts = count / (time.perf_counter() - started)
        started = time.perf_counter()
        await asyncio.gather(*(get(k) for k in ids))
        gets = count / (time.perf_counter() - started)
    finally:
        await client.drop_database(database)
    return inserts, gets, len(bson.encode({**sample, "_id": ids[0]}))


async def largest_document(
    client: AsyncMongoClient[dict[str, Any]], wheres: Iterable[tuple[str, str]]
) -> dict[str, Any]:
    """The largest document (first 50 of each collection, GridFS chunks left out) of
    `wheres` (database, collection): the size of a stored dossier, whatever the services' format."""
    best: dict[str, Any] = {"form": "x" * 2000}
    size = 0
    for name, collection in wheres:
        if collection.endswith((".chunks", ".files")):
            continue
        try:
            docs = await asyncio.wait_for(client[name][collection].find({}).limit(50).to_list(), 10)
        except (TimeoutError, OperationFailure) as exc:
            print(f"[bench] reading {name}.{collection}: {exc!r}"[:300], file=sys.stderr)
            continue
        for doc in docs:
            length = len(bson.encode(doc))
            if length > size:
                best, size = doc, length
    return {k: v for k, v in best.items() if k != "_id"}


def listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:`port` (from /proc: the socket's inode, then the
    process holding it), for a database this benchmark did not start; None if not visible."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def machine_ticks(stat: str | None = None) -> tuple[int, int, int]:
    """The whole machine's CPU ticks so far (/proc/stat, or its text `stat`): (busy, stolen by
    the host, all). Busy is user + nice + system + irq + softirq; steal is time the hypervisor
    gave another guest."""
    text = Path("/proc/stat").read_text() if stat is None else stat
    fields = [int(v) for v in text.split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy, steal, busy + steal + idle + iowait


def machine_share(before: tuple[int, int, int], after: tuple[int, int, int]) -> tuple[float, float]:
    """Cores busy and cores stolen by the host between two `machine_ticks`."""
    cores = os.cpu_count() or 1
    total = max(1, after[2] - before[2])
    return (after[0] - before[0]) / total * cores, (after[1] - before[1]) / total * cores


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU the process has used so far (/proc/<pid>/stat); None once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
