"""The public-service index (QĐ 766/QĐ-TTg) as Prometheus gauges, for dashboards and alerts.

Refreshed from the statistics projection (`dossier_facts`, two queries on its period indexes,
no record read): per unit and procedure, the dossiers received and decided (on time or late)
since the start of the current month, Vietnam time.

Those two queries read every dossier of the month, so they run only when there is something
new: each minute one keyed read of the facts' change count (every write of the facts counts,
whichever audit process wrote them), and the month is read again when that count moved, when
a new month began, or once an hour whatever it says (a count lost to a crash between a write
and its count is then caught up). Idle, the gauges cost one command a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Gauge

from services.audit.handlers.reading import statistics
from services.audit.ports import Search
from shared.calendar import VIETNAM

log = logging.getLogger(__name__)

REFRESH_SECONDS = 60.0  # how often the change count is looked at
FULL_SECONDS = 3600.0  # the longest the month goes unread, whatever the count says
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
    *,
    store: Search,
    clock: Callable[[], datetime],
    every: float = REFRESH_SECONDS,
    full_every: float = FULL_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Refresh the gauges now, then whenever the facts changed (looked at every `every`
    seconds), a month began, or `full_every` seconds went by; until cancelled."""
    read: tuple[int, datetime] | None = None  # the change count and month last read
    read_at = 0.0
    while True:
        try:
            now = clock()
            # The count before the facts: a write counted after this read is read next round.
            seen = (await store.facts_changed(), month_start(now))
            if seen != read or monotonic() - read_at >= full_every:
                await refresh(store=store, now=now)
                read, read_at = seen, monotonic()
        except Exception:  # a database blip: keep the last values, try at the next round
            log.exception("refreshing the public-service index gauges failed")
        await asyncio.sleep(every)
