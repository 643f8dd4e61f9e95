"""Overdue now, for the public-service index (QĐ 766/QĐ-TTg) and its alert: the open dossiers
past their promised result date (ngày hẹn trả), by unit and procedure, as a Prometheus gauge.

Refreshed at most once a minute by one query on the `promised_at` index of the live tasks
(only the dossiers already past their date come back). A dossier waiting for the citizen (a
supplement, a payment) is not counted: its clock is stopped and its date will move.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import Gauge

log = logging.getLogger(__name__)

REFRESH_SECONDS = 60.0
INDEX_OVERDUE = Gauge(
    "motcua_index_overdue",
    "Open dossiers past their promised result date now (not counting those waiting for the "
    "citizen), by unit and procedure.",
    ["unit", "procedure"],
)


class PastDue(Protocol):
    def past_promised(self, now: datetime) -> Any:
        """The open tasks whose promised date is before `now` (async iterable of documents
        with `unit_id`, `procedure_code`, `paused_at`)."""


def overdue_counts(tasks: Iterable[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """How many of `tasks` count as overdue, by (unit, procedure)."""
    return Counter(
        (str(t["unit_id"]), str(t["procedure_code"])) for t in tasks if t.get("paused_at") is None
    )


async def refresh(*, store: PastDue, now: datetime) -> int:
    """Set the gauge from the live tasks; how many (unit, procedure) series it holds."""
    counts = overdue_counts([doc async for doc in store.past_promised(now)])
    INDEX_OVERDUE.clear()
    for (unit, procedure), n in counts.items():
        INDEX_OVERDUE.labels(unit, procedure).set(n)
    return len(counts)


async def keep_refreshing(
    *, store: PastDue, clock: Callable[[], datetime], every: float = REFRESH_SECONDS
) -> None:
    """Refresh now, then every `every` seconds, until cancelled (a failure keeps the values)."""
    while True:
        try:
            await refresh(store=store, now=clock())
        except Exception:  # a database blip: the next round tries again
            log.exception("refreshing the overdue gauge failed")
        await asyncio.sleep(every)
