"""Audit's public-service index gauges: this month's decided (on time, late) and received
dossiers per unit and procedure, from the statistics projection."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY

from services.audit import index_metrics
from tests.unit.test_audit_handlers import FakeAudit

NOW = datetime(2026, 3, 10, 5, 0, tzinfo=UTC)


def fact(
    code: str, unit: str, received: datetime, decided: datetime | None, on_time: bool | None
) -> dict[str, Any]:
    return {
        "_id": code,
        "procedure_code": "1.004194",
        "unit_id": unit,
        "received_at": received,
        "decided_at": decided,
        "on_time": on_time,
        "working_days": None,
        "version": 1,
    }


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_the_gauges_count_this_months_dossiers_per_unit_and_procedure() -> None:
    store = FakeAudit()
    march = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    february = datetime(2026, 2, 20, 3, 0, tzinfo=UTC)
    # 1 March 00:00 in Vietnam is 28 February 17:00 UTC: this one is March's.
    first_local = datetime(2026, 2, 28, 18, 0, tzinfo=UTC)
    for doc in [
        fact("A", "U1", march, march, True),
        fact("B", "U1", march, march, False),
        fact("C", "U1", first_local, first_local, True),
        fact("D", "U2", march, None, None),
        fact("E", "U2", february, february, True),  # last month: counted nowhere
    ]:
        store.facts[doc["_id"]] = doc
    assert await index_metrics.refresh(store=store, now=NOW) == 2
    decided = "motcua_index_decided"
    assert sample(decided, unit="U1", procedure="1.004194", on_time="true") == 2
    assert sample(decided, unit="U1", procedure="1.004194", on_time="false") == 1
    assert sample(decided, unit="U2", procedure="1.004194", on_time="true") == 0
    assert sample("motcua_index_received", unit="U1", procedure="1.004194") == 3
    assert sample("motcua_index_received", unit="U2", procedure="1.004194") == 1

    # A new month starts from zero: last month's series are gone, not left at their value.
    del store.facts["D"]
    assert await index_metrics.refresh(store=store, now=datetime(2026, 4, 1, tzinfo=UTC)) == 0
    assert sample(decided, unit="U1", procedure="1.004194", on_time="true") is None


async def test_the_loop_keeps_refreshing_after_a_failure() -> None:
    store = FakeAudit()
    calls: list[datetime] = []

    def clock() -> datetime:
        calls.append(NOW)
        if len(calls) == 1:
            raise ConnectionError("the database went away")
        return NOW

    task = asyncio.create_task(index_metrics.keep_refreshing(store=store, clock=clock, every=0))
    for _ in range(200):
        if len(calls) >= 3:
            break
        await asyncio.sleep(0.005)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(calls) >= 3


class CountingFacts(FakeAudit):
    """The fake store, counting the month's readings (two facts_in each)."""

    def __init__(self) -> None:
        super().__init__()
        self.readings = 0

    async def facts_in(self, field: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if field == "received_at":
            self.readings += 1
        return await super().facts_in(field, *args, **kwargs)


async def rounds(counted: list[int], n: int) -> None:
    """Let the loop (every=0) take `n` more rounds."""
    target = len(counted) + n
    for _ in range(500):
        if len(counted) >= target:
            return
        await asyncio.sleep(0)
    raise AssertionError("the loop did not go round")


async def test_the_month_is_read_again_only_on_a_change_a_new_month_or_after_an_hour() -> None:
    store = CountingFacts()
    march = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    store.facts["A"] = fact("A", "U1", march, march, True)
    counted: list[int] = []  # one entry per round (the clock is read once a round)
    now = [NOW]
    ticks = [0.0]

    def clock() -> datetime:
        counted.append(1)
        return now[0]

    task = asyncio.create_task(
        index_metrics.keep_refreshing(
            store=store, clock=clock, every=0, full_every=3600, monotonic=lambda: ticks[0]
        )
    )
    try:
        await rounds(counted, 5)
        assert store.readings == 1  # at start only: nothing changed since
        decided = "motcua_index_decided"
        assert sample(decided, unit="U1", procedure="1.004194", on_time="true") == 1

        await store.put_facts([fact("B", "U1", march, march, True)])  # a settling round wrote
        await rounds(counted, 5)
        assert store.readings == 2
        assert sample(decided, unit="U1", procedure="1.004194", on_time="true") == 2

        now[0] = datetime(2026, 4, 1, tzinfo=UTC)  # a new month: its gauges start from zero
        await rounds(counted, 5)
        assert store.readings == 3
        assert sample(decided, unit="U1", procedure="1.004194", on_time="true") is None

        # A write whose count was lost (a crash between them): read within the hour anyway.
        april = datetime(2026, 4, 2, tzinfo=UTC)
        now[0] = datetime(2026, 4, 3, tzinfo=UTC)  # the same month: no reading for that
        store.facts["C"] = fact("C", "U1", april, april, False)
        await rounds(counted, 5)
        assert store.readings == 3
        ticks[0] += 3600
        await rounds(counted, 5)
        assert store.readings == 4
        assert sample(decided, unit="U1", procedure="1.004194", on_time="false") == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class WrittenDuringTheReading(CountingFacts):
    """A settling round writes (and counts) while the gauges read the month; the first reading
    also fails once, after the count was read."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = True
        self.late: dict[str, Any] | None = None

    async def facts_in(self, field: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the database went away mid-reading")
        found = await super().facts_in(field, *args, **kwargs)
        if self.late is not None and field == "decided_at":  # after both queries' reads
            late, self.late = self.late, None
            await self.put_facts([late])
        return found


async def test_a_write_during_a_reading_and_a_failed_reading_are_read_next_round() -> None:
    store = WrittenDuringTheReading()
    march = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    store.facts["A"] = fact("A", "U2", march, march, True)
    store.late = fact("B", "U2", march, march, True)
    counted: list[int] = []

    def clock() -> datetime:
        counted.append(1)
        return NOW

    task = asyncio.create_task(index_metrics.keep_refreshing(store=store, clock=clock, every=0))
    try:
        await rounds(counted, 6)
        # The failed reading was tried again; the write counted during the next one moved
        # the count read before it, so one more reading saw B (the count is read first).
        assert store.readings == 2
        decided = "motcua_index_decided"
        assert sample(decided, unit="U2", procedure="1.004194", on_time="true") == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
