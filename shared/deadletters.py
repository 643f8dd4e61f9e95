"""Operators' tool for dead-letter queues: see what failed and why, and send it back.

    python -m shared.deadletters list motcua.review [--limit N]
    python -m shared.deadletters replay motcua.review [--limit N]

`list` prints one JSON object per parked message (nothing is removed); `replay` moves messages
from `<queue>.dead` back to `<queue>` itself, so only the service that failed sees them again.
The broker is MOTCUA_AMQP_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from shared.messaging import (
    QUEUE_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
    connect_failover,
    copy_message,
)
from shared.settings import SharedSettings

DEAD_HEADERS = (
    REASON_HEADER,
    QUEUE_HEADER,
    ROUTING_KEY_HEADER,
    "x-death",
    "x-delivery-count",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)


def describe(message: AbstractIncomingMessage) -> dict[str, Any]:
    """What an operator needs to judge a parked message."""
    headers = message.headers or {}
    reason = headers.get(REASON_HEADER) or headers.get("x-first-death-reason") or "unknown"
    return {
        "message_id": message.message_id,
        "type": message.type,
        "routing_key": headers.get(ROUTING_KEY_HEADER),
        "reason": str(reason),
        "body": message.body.decode("utf-8", errors="replace")[:2000],
    }


async def list_dead(amqp_url: str, queue: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` parked messages of `queue`, left where they are."""
    connection = await connect_failover(amqp_url)
    try:
        channel = await connection.channel()
        dead = await channel.get_queue(f"{queue}.dead", ensure=True)
        seen = []
        for _ in range(limit):
            message = await dead.get(fail=False)
            if message is None:
                break
            seen.append(describe(message))
        # Closing the channel without acking returns every message to the queue, in order.
        await channel.close()
        return seen
    finally:
        await connection.close()


async def replay(amqp_url: str, queue: str, limit: int) -> int:
    """Move up to `limit` messages from `<queue>.dead` back to `queue`; return how many."""
    connection = await connect_failover(amqp_url)
    moved = 0
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.get_queue(queue, ensure=True)
        dead = await channel.get_queue(f"{queue}.dead", ensure=True)
        for _ in range(limit):
            message = await dead.get(fail=False)
            if message is None:
                break
            headers = {k: v for k, v in (message.headers or {}).items() if k not in DEAD_HEADERS}
            await channel.default_exchange.publish(
                copy_message(message, headers), routing_key=queue
            )
            await message.ack()  # only after the copy is confirmed: nothing is lost
            moved += 1
        return moved
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.deadletters")
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("queue", help="the service's queue, e.g. motcua.review")
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args(argv)
    url = SharedSettings().amqp_url
    if args.command == "list":
        for entry in asyncio.run(list_dead(url, args.queue, args.limit)):
            print(json.dumps(entry, ensure_ascii=False))
    else:
        moved = asyncio.run(replay(url, args.queue, args.limit))
        print(f"replayed {moved} message(s) to {args.queue}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
