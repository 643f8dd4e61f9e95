"""Review's overdue gauge for the public-service index: dossiers past their promised date, by
unit and procedure; those waiting for the citizen are not counted; a refresh replaces the
previous series (a unit no longer late disappears)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY

from services.review import index_metrics

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


class PastDue:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.asked: list[datetime] = []

    async def past_promised(self, now: datetime) -> AsyncIterator[dict[str, Any]]:
        self.asked.append(now)
        for doc in self.docs:
            yield doc


def overdue(unit: str, procedure: str) -> float | None:
    return REGISTRY.get_sample_value("motcua_index_overdue", {"unit": unit, "procedure": procedure})


async def test_the_gauge_counts_late_dossiers_but_not_those_waiting_for_the_citizen() -> None:
    store = PastDue(
        [
            {"unit_id": "CAP-BADINH", "procedure_code": "1.004194", "paused_at": None},
            {"unit_id": "CAP-BADINH", "procedure_code": "1.004194"},
            {"unit_id": "CAP-BADINH", "procedure_code": "1.001612", "paused_at": NOW},
            {"unit_id": "CAP-HOANKIEM", "procedure_code": "1.004194"},
        ]
    )
    assert await index_metrics.refresh(store=store, now=NOW) == 2
    assert store.asked == [NOW]
    assert overdue("CAP-BADINH", "1.004194") == 2
    assert overdue("CAP-HOANKIEM", "1.004194") == 1
    assert overdue("CAP-BADINH", "1.001612") is None  # paused: its clock is stopped

    store.docs = store.docs[:1]
    await index_metrics.refresh(store=store, now=NOW)
    assert overdue("CAP-BADINH", "1.004194") == 1
    assert overdue("CAP-HOANKIEM", "1.004194") is None  # no longer late: the series is gone
