"""Audit's batcher: a write that never ends fails its batch within `limit`, so its messages
are retried (a chaos run once saw audit hold a message unacknowledged for good after a
database restart); a cancelled batcher leaves no handler waiting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.audit.batching import Batcher


async def test_a_write_that_never_ends_fails_its_batch_and_the_next_one_goes() -> None:
    never = asyncio.Event()
    written: list[list[dict[str, Any]]] = []

    async def write(docs: list[dict[str, Any]]) -> None:
        if docs[0]["_id"] == "stuck":
            await never.wait()  # the database took the command and never answers
        written.append(docs)

    batcher = Batcher(write, size=1, wait=0, limit=0.2)
    stuck = asyncio.create_task(batcher.submit({"_id": "stuck"}))
    await asyncio.wait({stuck}, timeout=5)
    assert stuck.done() and isinstance(stuck.exception(), TimeoutError)  # failed, to be retried
    await asyncio.wait_for(batcher.submit({"_id": "next"}), 5)
    assert written == [[{"_id": "next"}]]


async def test_a_cancelled_batcher_leaves_no_handler_waiting() -> None:
    started = asyncio.Event()

    async def write(docs: list[dict[str, Any]]) -> None:
        started.set()
        await asyncio.Event().wait()

    batcher = Batcher(write, size=1, wait=0, limit=60)
    first = asyncio.create_task(batcher.submit({"_id": "a"}))
    await asyncio.wait_for(started.wait(), 5)
    second = asyncio.create_task(batcher.submit({"_id": "b"}))  # waits behind the first
    await asyncio.sleep(0)
    assert batcher._task is not None
    batcher._task.cancel()
    for waiting in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 5)
