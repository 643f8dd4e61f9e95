"""Benchmark: audit's statistics over a year of dossiers, folded from the records (before
`dossier_facts`) and read from the projection (after), on the same database.

    .venv/bin/python -m benchmarks.audit_statistics [--count 10000] [--repeat 3]

Starts its own MongoDB-wire server (tools.devstack, free ports; MOTCUA_DATABASE chooses which)
and loads `count` dossiers submitted over a year (about eight records each: submitted,
assigned, received, a supplement pause for one in five, an apology for one in ten, a decision
for nine in ten, a notification) straight into audit's `records` collection with the real
store, as an old database holds them. Then it builds the projection as audit does at start
over such a database (`handlers.build_facts`), and times, for the whole year, a month, and a
unit's year: the old fold (`reading.statistics_from_records`) and the projection
(`reading.statistics`, what the API handler calls), checking both give the same rows. The bare
database's `find_one` by `_id` rate of the same run is printed as a baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from pymongo import AsyncMongoClient

from services.audit import handlers
from services.audit.domain import Record
from services.audit.handlers import reading
from services.audit.store import AuditStore
from shared.calendar import WorkingCalendar
from shared.storage import Document
from tools.devstack import free_port, stack

YEAR_START = datetime(2025, 1, 1, 1, tzinfo=UTC)
UNITS = [f"U{i}" for i in range(12)]
PROCEDURES = ["1.004194", "1.004195", "2.000123", "2.000456", "1.001212"]
NOTE = "Ghi chú của cán bộ về hồ sơ, đủ dài như một ghi chú thật. " * 4


def dossier(i: int, count: int, rnd: random.Random) -> list[Record]:
    """One dossier's records, submitted on its day of the year."""
    code = f"B{i:06d}"
    submitted = YEAR_START + timedelta(days=365 * i / count, hours=rnd.randint(0, 9))
    procedure, unit, ward = rnd.choice(PROCEDURES), rnd.choice(UNITS), f"{rnd.randint(0, 99):05d}"
    promised = submitted + timedelta(days=rnd.randint(3, 15))
    out: list[Record] = []

    def add(kind: str, at: datetime, unit_id: str | None, **data: Any) -> None:
        out.append(
            {
                "_id": f"{code}-{len(out)}",
                "dossier_code": code,
                "type": kind,
                "time": at,
                "source": "urn:bench",
                "correlationid": code,
                "causationid": None,
                "actor": "o1",
                "from_state": None,
                "to_state": None,
                "status_code": None,
                "procedure_code": procedure if unit_id else None,
                "unit_id": unit_id,
                "applicant_id_hmac": None,
                "data": {
                    k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()
                }
                | {"dossier_code": code, "note": NOTE},
                "recorded_at": at,
            }
        )

    add("dossier.submitted", submitted, ward, submitted_at=submitted, promised_at=promised)
    add("dossier.assigned", submitted + timedelta(minutes=1), unit)
    add("dossier.received", submitted + timedelta(hours=2), unit)
    at = submitted + timedelta(days=1)
    if rnd.random() < 0.2:
        add("dossier.supplement_requested", at, unit, requested_at=at)
        at += timedelta(days=rnd.randint(1, 5))
        add("dossier.supplemented", at, None, supplemented_at=at)
    if rnd.random() < 0.1:
        add("dossier.apology_issued", at, unit, promised_at=promised + timedelta(days=5))
    if rnd.random() < 0.9:
        decided = at + timedelta(days=rnd.randint(0, 14))
        add(rnd.choice(["dossier.approved", "dossier.rejected"]), decided, unit, decided_at=decided)
        add("notification.sent", decided, None, channel="email")
    return out


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    """The median seconds of `repeat` calls, and what the last returned."""
    took, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await call()
        took.append(time.perf_counter() - started)
    return statistics.median(took), result


async def run(url: str, count: int, repeat: int) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(url, tz_aware=True)
    store = AuditStore(client["bench_audit_statistics"])
    await store.setup()
    calendar = WorkingCalendar()
    rnd = random.Random(1)
    started = time.perf_counter()
    records = 0
    for first in range(0, count, 500):
        batch = [r for i in range(first, min(first + 500, count)) for r in dossier(i, count, rnd)]
        await store.records.insert_many(batch, ordered=False)
        records += len(batch)
    print(f"{count} dossiers, {records} records loaded in {time.perf_counter() - started:.1f} s")

    ids = [f"B{rnd.randrange(count):06d}-0" for _ in range(2000)]
    started = time.perf_counter()
    for rid in ids:
        await store.records.find_one({"_id": rid})
    baseline = len(ids) / (time.perf_counter() - started)
    print(f"bare database: {baseline:.0f} find_one by _id per second (one at a time)")

    started = time.perf_counter()
    built = await handlers.build_facts(store=store, calendar=calendar, clock=lambda: YEAR_START)
    print(
        f"projection built over the old records: {built} dossiers in "
        f"{time.perf_counter() - started:.1f} s (audit does it once, at start)"
    )

    periods = {
        "a year": (YEAR_START, YEAR_START + timedelta(days=366), None),
        "a month": (YEAR_START + timedelta(days=150), YEAR_START + timedelta(days=180), None),
        "a unit's year": (YEAR_START, YEAR_START + timedelta(days=366), "U3"),
    }
    print(f"{'period':<14} {'old fold (records)':>19} {'projection':>11} {'speed-up':>9} rows")
    for name, (since, until, unit) in periods.items():
        before, old_rows = await timed(
            partial(reading.statistics_from_records, since, until, store=store, calendar=calendar),
            repeat,
        )
        after, rows = await timed(
            partial(reading.statistics, since, until, store=store, unit_id=unit), repeat
        )
        if unit is not None:
            old_rows = [r for r in old_rows if r["unit_id"] == unit]
        assert rows == old_rows, f"{name}: the projection's rows differ from the old fold's"
        print(
            f"{name:<14} {before * 1000:>16.0f} ms {after * 1000:>8.0f} ms "
            f"{before / after:>8.0f}x {len(rows)}"
        )
    await client.drop_database("bench_audit_statistics")
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit_statistics")
    parser.add_argument("--count", type=int, default=10000, help="dossiers over the year")
    parser.add_argument("--repeat", type=int, default=3, help="timings per figure (median)")
    args = parser.parse_args()
    with stack("bench", free_port(), free_port(), fresh=True) as s:
        assert s.mongo
        asyncio.run(run(s.mongo.url, args.count, args.repeat))


if __name__ == "__main__":
    main()
