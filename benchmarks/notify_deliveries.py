"""Benchmark: deliveries per second through notify, and what a redelivered event costs.

    .venv/bin/python -m benchmarks.notify_deliveries [--count 200]

Starts its own RabbitMQ and MongoDB-wire server (tools.devstack, free ports), a loopback HTTP
server standing in for the SMS gateway and the Zalo API, and a notify process. Publishes
`count` submissions, then `count` approvals of citizens who chose SMS and Zalo (2 × count
deliveries), and prints how long until every `notification.sent` was seen; then publishes the
same approvals again and prints how long notify takes to drain them, and how many extra
requests the providers saw (there must be none). The baseline is the same number of bare
POSTs to the stub from this process: what notify adds on top of the provider calls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import httpx

from shared.contracts import Event
from shared.messaging import EXCHANGE
from tests.amqp import observe
from tests.factories import approved_event, submitted_event
from tests.httpstub import http_stub
from tools.devstack import ROOT, free_port, stack, wait_for


async def _count_sent(seen: object, expected: int, limit: float) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if len(seen.events("notification.sent")) >= expected:  # type: ignore[attr-defined]
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{expected} notification.sent not seen in {limit}s")


async def _publish_all(amqp_url: str, events: list[Event]) -> None:
    """Publish over one connection with confirms (a connection per event costs far more)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for event in events:
            await exchange.publish(
                aio_pika.Message(event.to_json(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=event.type,
            )
    finally:
        await connection.close()


async def run(amqp_url: str, mongo_url: str, count: int) -> None:
    zns_ok = (200, {"error": 0, "data": {"msg_id": "z"}})
    with http_stub() as sms, http_stub(zns_ok) as zalo:
        port = free_port()
        env = {
            **os.environ,
            "MOTCUA_AMQP_URL": amqp_url,
            "MOTCUA_MONGODB_URL": mongo_url,
            "MOTCUA_DATABASE_PREFIX": f"bench{uuid.uuid4().hex[:6]}_",
            "MOTCUA_NOTIFY_PORT": str(port),
            "MOTCUA_NOTIFY_SMS_GATEWAY_URL": f"{sms.url}/sms",
            "MOTCUA_NOTIFY_ZALO_BASE_URL": zalo.url,
            "MOTCUA_LOG_LEVEL": "INFO",
        }
        log = open(Path(tempfile.gettempdir()) / "bench-notify.log", "ab")  # noqa: SIM115
        notify = subprocess.Popen(
            [sys.executable, "-m", "services.notify"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _ready(url), "notify", 60, notify)
            submissions = []
            for i in range(count):
                submission = submitted_event(code=f"G01.99-260609-{i:04d}")
                data = submission.data.model_copy(update={"notify_by": ["sms", "zalo"]})
                submissions.append(submission.model_copy(update={"data": data}))
            decisions = [approved_event(s) for s in submissions]
            async with observe(amqp_url) as seen:
                await _publish_all(amqp_url, list(submissions))
                await asyncio.sleep(2)  # let the contacts be stored first
                started = time.perf_counter()
                await _publish_all(amqp_url, list(decisions))
                await _count_sent(seen, 2 * count, 600)
                elapsed = time.perf_counter() - started
                print(f"{count} approvals → {2 * count} deliveries (SMS + Zalo)")
                print(
                    f"  first delivery        {2 * count / elapsed:8.1f} deliveries/s "
                    f"({elapsed:.1f} s)"
                )
                before = len(sms.requests) + len(zalo.requests)
                started = time.perf_counter()
                await _publish_all(amqp_url, list(decisions))
                await _count_sent(seen, 4 * count, 600)  # the recorded outcome, republished
                elapsed = time.perf_counter() - started
                extra = len(sms.requests) + len(zalo.requests) - before
                print(
                    f"  same events again     {2 * count / elapsed:8.1f} deliveries/s "
                    f"({elapsed:.1f} s), extra provider requests: {extra}"
                )
            async with httpx.AsyncClient() as client:
                started = time.perf_counter()
                for _ in range(2 * count):
                    await client.post(f"{sms.url}/baseline", json={"to": "84912345678"})
                elapsed = time.perf_counter() - started
            print(f"  baseline bare POSTs   {2 * count / elapsed:8.1f} requests/s")
            metrics = httpx.get(f"{url}/metrics").text.splitlines()
            _print_round_trips(metrics, 4 * count)
            for line in metrics:
                handler = line.startswith("motcua_event_handler_seconds_")
                if handler and "dossier.approved" in line and ("_sum" in line or "_count" in line):
                    print("  " + line)
        finally:
            notify.terminate()
            notify.wait(30)


def _print_round_trips(metrics: list[str], deliveries: int) -> None:
    """Database commands per delivery handled (first time and again), from the shared client's
    `motcua_db_commands_total` counter when this build has it."""
    counted: dict[str, float] = {}
    for line in metrics:
        if line.startswith("motcua_db_commands_total{"):
            labels, _, value = line.rpartition(" ")
            command = labels.partition('command="')[2].partition('"')[0]
            collection = labels.partition('collection="')[2].partition('"')[0]
            key = f"{command} {collection}"
            counted[key] = counted.get(key, 0.0) + float(value)
    if not counted:
        print("  round trips           (no motcua_db_commands_total metric in this build)")
        return
    total = sum(counted.values())
    print(f"  round trips           {total / deliveries:8.2f} per delivery handled (incl. idle)")
    for key, commands in sorted(counted.items()):
        print(f"    {key:40} {commands / deliveries:6.2f}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.notify_deliveries")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    with stack("bench", free_port(), free_port(), fresh=True) as s:
        assert s.rabbitmq and s.mongo
        asyncio.run(run(s.rabbitmq.url, s.mongo.url, args.count))


if __name__ == "__main__":
    main()
