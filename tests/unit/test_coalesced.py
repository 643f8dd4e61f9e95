"""`Coalesced`: writes asked for while one is under way go together in the next."""

from __future__ import annotations

import asyncio

import pytest

from shared.storage import Coalesced


async def test_items_asked_for_meanwhile_go_in_the_next_write_and_a_lone_one_at_once() -> None:
    writes: list[list[int]] = []
    gate = asyncio.Event()

    async def write(batch: list[int]) -> None:
        writes.append(batch)
        if len(writes) == 1:
            await gate.wait()  # the first write is under way while the others are asked for

    send = Coalesced(write, most=3)
    first = asyncio.create_task(send(0))
    await asyncio.sleep(0)
    others = [asyncio.create_task(send(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *others)
    assert writes == [[0], [1, 2, 3], [4, 5]]  # at most `most` in one write
    await send(6)
    assert writes[-1] == [6]


async def test_each_caller_gets_the_failure_of_its_write_and_a_cancelled_one_is_written() -> None:
    writes: list[list[str]] = []

    async def write(batch: list[str]) -> None:
        writes.append(batch)
        await asyncio.sleep(0.01)
        if "bad" in batch:
            raise RuntimeError("refused")

    send = Coalesced(write)
    waiters = [asyncio.create_task(send(item)) for item in ("a", "bad", "c")]
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError] * 3  # one write: all three get it
    quitter = asyncio.create_task(send("d"))
    await asyncio.sleep(0)
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    await send("e")  # the write of "d" went on; "e" follows it
    assert writes[1:] == [["d"], ["e"]]
