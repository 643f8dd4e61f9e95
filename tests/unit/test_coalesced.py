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


async def test_a_write_naming_one_item_s_failure_fails_only_that_caller() -> None:
    async def write(batch: list[str]) -> list[BaseException | None]:
        await asyncio.sleep(0)
        return [ValueError(item) if item == "bad" else None for item in batch]

    send = Coalesced(write)
    results = await asyncio.gather(
        *(send(item) for item in ("a", "bad", "c")), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad"


async def test_a_write_that_hangs_fails_its_callers_and_the_next_items_are_written() -> None:
    writes: list[list[str]] = []

    async def write(batch: list[str]) -> None:
        writes.append(batch)
        if "stuck" in batch:
            await asyncio.Event().wait()  # a half-open connection: no answer ever

    send = Coalesced(write, limit=0.05)
    stuck = asyncio.create_task(send("stuck"))
    await asyncio.sleep(0)
    after = asyncio.create_task(send("after"))
    with pytest.raises(TimeoutError):
        await stuck
    await after  # not held behind the hung write for longer than its limit
    assert writes == [["stuck"], ["after"]]


async def test_callers_waiting_when_the_sender_is_cancelled_are_cancelled_not_left_waiting() -> (
    None
):
    started = asyncio.Event()

    async def write(batch: list[str]) -> None:
        started.set()
        await asyncio.Event().wait()

    send = Coalesced(write)
    first = asyncio.create_task(send("a"))
    await started.wait()
    queued = asyncio.create_task(send("b"))  # waits for the next write
    await asyncio.sleep(0)
    assert send.sender is not None
    send.sender.cancel()  # the service stops
    for caller in (first, queued):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(caller, 1.0)
    assert send.queued == []
