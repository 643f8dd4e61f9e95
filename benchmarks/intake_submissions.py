"""Benchmark: submissions per second through intake, against a baseline of bare inserts.

    .venv/bin/python -m benchmarks.intake_submissions [--count 400] [--levels 1,10,50,250]

Starts its own RabbitMQ and MongoDB-wire server (tools.devstack, free ports) and an intake
process, then for each concurrency level sends `count` valid submissions (with attachments)
and prints throughput and latency percentiles. The baseline is the same number of bare
`insert_one` calls of a dossier-sized document, at the same concurrency, to the same database
from this process: the ratio says what intake adds on top of the storage it cannot avoid.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from pymongo import AsyncMongoClient

from tests.e2e.flows import with_documents
from tests.factories import VALID_FORM
from tools.devstack import ROOT, free_port, stack, wait_for


async def _timed(calls: list, concurrency: int) -> tuple[float, list[float]]:  # type: ignore[type-arg]
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(call) -> None:  # type: ignore[no-untyped-def]
        async with semaphore:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in calls))
    return time.perf_counter() - started, latencies


def _report(name: str, count: int, elapsed: float, latencies: list[float]) -> float:
    rate = count / elapsed
    q = statistics.quantiles(latencies, n=100)
    print(f"  {name:<22} {rate:8.1f}/s   p50 {q[49] * 1000:7.1f} ms   p95 {q[94] * 1000:7.1f} ms")
    return rate


async def run(amqp_url: str, mongo_url: str, count: int, levels: list[int]) -> None:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange("motcua.events", "topic", durable=True)
    sink = await channel.declare_queue("bench.sink", arguments={"x-max-length": 1})
    await sink.bind(exchange, "#")  # so intake's events are routable without other services
    port = free_port()
    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    env = {
        **os.environ,
        "MOTCUA_AMQP_URL": amqp_url,
        "MOTCUA_MONGODB_URL": mongo_url,
        "MOTCUA_DATABASE_PREFIX": prefix,
        "MOTCUA_INTAKE_PORT": str(port),
        "MOTCUA_INTAKE_RATE_LIMIT_PER_MINUTE": "100000000",
        "MOTCUA_INTAKE_RATE_LIMIT_BURST": "100000000",
        "MOTCUA_LOG_LEVEL": "WARNING",
    }
    log = open(Path(tempfile.gettempdir()) / "bench-intake.log", "ab")  # noqa: SIM115
    intake = subprocess.Popen(
        [sys.executable, "-m", "services.intake"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    mongo: AsyncMongoClient[dict] = AsyncMongoClient(mongo_url)  # type: ignore[type-arg]
    try:
        wait_for(
            lambda: httpx.get(f"{url}/readyz").status_code == 200 if _up(url) else False,
            "intake",
            60,
            intake,
        )
        body = with_documents(url, VALID_FORM)
        filler = {"form": body, "outbox": [{"data": body, "id": "x"}]}
        print(f"{count} submissions per level, FerretDB/MongoDB at {mongo_url}")
        async with httpx.AsyncClient(
            base_url=url, timeout=300, limits=httpx.Limits(max_connections=max(levels))
        ) as client:
            for level in levels:
                print(f"concurrency {level}:")

                async def submit() -> None:
                    response = await client.post("/v1/dossiers", json=body)
                    assert response.status_code == 201, response.text

                elapsed, lat = await _timed([submit] * count, level)
                rate = _report("intake POST /v1/dossiers", count, elapsed, lat)
                baseline = mongo[f"{prefix}baseline"]["docs"]

                async def insert(baseline: Any = baseline) -> None:
                    await baseline.insert_one({"_id": uuid.uuid4().hex, **filler})

                elapsed, lat = await _timed([insert] * count, level)
                base = _report("baseline insert_one", count, elapsed, lat)
                print(f"  ratio intake/baseline  {rate / base:8.2f}")
    finally:
        intake.terminate()
        intake.wait(30)
        for name in await mongo.list_database_names():
            if name.startswith(prefix):
                await mongo.drop_database(name)
        await mongo.close()
        await connection.close()


def _up(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.intake_submissions")
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--levels", default="1,10,50,250")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with stack("bench", free_port(), free_port(), fresh=True) as s:
        assert s.rabbitmq and s.mongo
        asyncio.run(run(s.rabbitmq.url, s.mongo.url, args.count, levels))


if __name__ == "__main__":
    main()
