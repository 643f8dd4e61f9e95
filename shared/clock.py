"""The time, as Motcua stores it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now in UTC, cut to the millisecond that MongoDB keeps, so what an API answers at once
    and what it answers later from the database are the same instant."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def shifted(offset_seconds: float) -> Clock:
    """The clock moved by a fixed offset: a training or test environment can live on another
    day (e.g. a working Monday morning) and keep that time across restarts."""
    if not offset_seconds:
        return utcnow
    delta = timedelta(seconds=offset_seconds)

    def now() -> datetime:
        moved = datetime.now(UTC) + delta
        return moved.replace(microsecond=moved.microsecond // 1000 * 1000)

    return now
