"""The time, as Motcua stores it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now in UTC, cut to the millisecond that MongoDB keeps, so what an API answers at once
    and what it answers later from the database are the same instant."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
