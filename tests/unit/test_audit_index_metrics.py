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
