"""A range of times on one field, as audit asks the database for it (see `TimeRange`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

SECOND = timedelta(seconds=1)


def floor_second(at: datetime) -> datetime:
    return at.replace(microsecond=0)


@dataclass(frozen=True)
class TimeRange:
    """A range of times on one field, asked of the database to the whole second around it and
    then cut exactly here.

    nx-27017 0.8.1 defect: it compares datetimes (`$gt`, `$gte`, `$lt`, `$lte`, `$eq`) through
    SQLite's `datetime()`, which drops the fraction of a second: `{"t": {"$gt": 12:00:00.000}}`
    misses 12:00:00.500, so a seal missed the links settled in the same second as the previous
    seal's end. On MongoDB the widened query returns at most the extra documents of the two
    edge seconds, which `holds` leaves out."""

    field: str
    after: datetime | None = None  # exclusive
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    through: datetime | None = None  # inclusive

    def query(self) -> dict[str, Any]:
        lower = [t for t in (self.after, self.since) if t is not None]
        upper = [t for t in (self.until, self.through) if t is not None]
        bounds: dict[str, datetime] = {}
        if lower:
            bounds["$gte"] = floor_second(min(lower))
        if upper:
            bounds["$lt"] = floor_second(max(upper)) + SECOND
        return {self.field: bounds} if bounds else {}

    def holds(self, doc: dict[str, Any]) -> bool:
        at = doc.get(self.field)
        if not isinstance(at, datetime):
            return False
        return (
            (self.after is None or at > self.after)
            and (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
            and (self.through is None or at <= self.through)
        )
