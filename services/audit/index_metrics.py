"""The public-service index (QĐ 766/QĐ-TTg) as Prometheus gauges, for dashboards and alerts.

Refreshed from the statistics projection (`dossier_facts`, two queries on its period indexes,
no record read) at most once a minute: per unit and procedure, the dossiers received and
decided (on time or late) since the start of the current month, Vietnam time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Gauge

from services.audit.handlers.reading import statistics
from services.audit.ports import Search
from shared.calendar import VIETNAM

log = logging.getLogger(__name__)

REFRESH_SECONDS = 60.0
INDEX_DECIDED = Gauge(
    "motcua_index_decided",
    "Dossiers decided this month (Vietnam time), by unit, procedure and on time (true, false).",
    ["unit", "procedure", "on_time"],
)
INDEX_RECEIVED = Gauge(
    "motcua_index_received",
    "Dossiers received this month (Vietnam time), by unit and procedure.",
    ["unit", "procedure"],
)


def month_start(now: datetime) -> datetime:
    """The first instant of `now`'s month in Vietnam, as an aware datetime."""
    local = now.astimezone(VIETNAM)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def refresh(*, store: Search, now: datetime) -> int:
    """Set the gauges from this month's statistics; return how many (unit, procedure) rows."""
    rows = await statistics(month_start(now), now, store=store)
    INDEX_DECIDED.clear()
    INDEX_RECEIVED.clear()
    for row in rows:
        unit, procedure = row["unit_id"], row["procedure_code"]
        INDEX_RECEIVED.labels(unit, procedure).set(row["received"])
        INDEX_DECIDED.labels(unit, procedure, "true").set(row["on_time"])
        INDEX_DECIDED.labels(unit, procedure, "false").set(row["late"])
    return len(rows)


async def keep_refreshing(
    *, store: Search, clock: Callable[[], datetime], every: float = REFRESH_SECONDS
) -> None:
    """Refresh the gauges now, then every `every` seconds, until cancelled."""
    while True:
        try:
            await refresh(store=store, now=clock())
        except Exception:  # a database blip: keep the last values, try at the next round
            log.exception("refreshing the public-service index gauges failed")
        await asyncio.sleep(every)
