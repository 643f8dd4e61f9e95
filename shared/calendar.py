"""The Vietnamese working-day calendar that promised dates and SLAs are counted in.

Working time is Monday to Friday, 07:00–11:30 and 13:30–17:00 (8 hours a day), Asia/Ho_Chi_Minh,
less the public holidays of the Labour Code (art. 112) — New Year, Tết (lunar), Hùng Kings' day
(lunar), 30 April, 1 May, National Day — with their observed and substituted days, as the
`holidays` package publishes them, plus an operator's overrides: extra days off, and make-up
working days (a Saturday worked to bridge a holiday). A procedure whose desks open on Saturday
morning may count Saturday 07:00–11:30 as working time too.

A dossier received outside working time is counted from the next working moment (so one received
after 17:00 starts the next working morning); `n` working days are `n × 8` working hours.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import yaml
from pydantic import BaseModel, ConfigDict, Field

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
WORKDAY_PERIODS = ((time(7, 0), time(11, 30)), (time(13, 30), time(17, 0)))
SATURDAY_PERIODS = ((time(7, 0), time(11, 30)),)
HOURS_PER_DAY = 8


class CalendarOverrides(BaseModel):
    """What an operator changes in the published calendar (deploy/calendar.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days_off: list[date] = Field(
        default_factory=list, description="Extra days off (e.g. a Tết day the government adds)."
    )
    working_days: list[date] = Field(
        default_factory=list, description="Make-up working days (e.g. a Saturday worked)."
    )


def load_overrides(path: Path | None) -> CalendarOverrides:
    """Read overrides from YAML; no file means none."""
    if path is None or not path.exists():
        return CalendarOverrides()
    try:
        return CalendarOverrides.model_validate(yaml.safe_load(path.read_text("utf-8")) or {})
    except (yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"invalid calendar overrides {path}: {exc}") from exc


@functools.lru_cache(maxsize=64)
def _public_holidays(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(days off, make-up working days) that the `holidays` package lists for `year`; a year
    it has no table for is an error, not a year of weekdays all worked."""
    vn = holidays.country_holidays("VN")
    if not vn.start_year <= year <= vn.end_year:
        raise ValueError(
            f"no public-holiday table for {year}: the holidays package covers "
            f"{vn.start_year}-{vn.end_year}"
        )
    vn = holidays.country_holidays("VN", years=year)
    off = frozenset(d for d in vn if d.year == year)
    worked = frozenset(d for d in getattr(vn, "weekend_workdays", ()) if d.year == year)
    return off, worked


@dataclass(frozen=True)
class WorkingCalendar:
    overrides: CalendarOverrides = field(default_factory=CalendarOverrides)

    def is_day_off(self, day: date) -> bool:
        if day in self.overrides.days_off:
            return True
        if day in self.overrides.working_days:
            return False
        off, worked = _public_holidays(day.year)
        if day in off:
            return True
        return day.weekday() >= 5 and day not in worked

    def is_working_day(self, day: date) -> bool:
        """A full working day (Saturday mornings never make one)."""
        return not self.is_day_off(day)

    def periods(
        self, day: date, *, saturday_morning: bool = False
    ) -> tuple[tuple[time, time], ...]:
        """The working periods of `day` (none on a day off)."""
        if self.is_working_day(day):
            return WORKDAY_PERIODS
        if saturday_morning and day.weekday() == 5 and day not in self.overrides.days_off:
            off, _ = _public_holidays(day.year)
            if day not in off:
                return SATURDAY_PERIODS
        return ()

    def _intervals(
        self, start: datetime, *, saturday_morning: bool, until: date | None = None
    ) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals from `start` on, in Vietnam time (the first one clipped): to the
        day `until`, or for at most ten years of days (far beyond any legal deadline)."""
        local = start.astimezone(VIETNAM)
        day = local.date()
        days = 3660 if until is None else max(0, (until - day).days + 1)
        for _ in range(days):
            for begin, end in self.periods(day, saturday_morning=saturday_morning):
                lo = datetime.combine(day, begin, VIETNAM)
                hi = datetime.combine(day, end, VIETNAM)
                if hi <= local:
                    continue
                yield max(lo, local), hi
            day += timedelta(days=1)
        if until is None:
            raise RuntimeError("no working time within ten years")

    def next_working_moment(self, at: datetime, *, saturday_morning: bool = False) -> datetime:
        """`at` itself if it is working time, else the start of the next working period."""
        begin, _ = next(self._intervals(at, saturday_morning=saturday_morning))
        return begin

    def add_working_hours(
        self, start: datetime, hours: float, *, saturday_morning: bool = False
    ) -> datetime:
        """The moment `hours` of working time after `start` (ending at a period's close, not at
        the next opening, when it falls exactly on one)."""
        remaining = timedelta(hours=hours)
        for begin, end in self._intervals(start, saturday_morning=saturday_morning):
            if remaining <= end - begin:
                return begin + remaining
            remaining -= end - begin
        raise AssertionError("unreachable")

    def promised_at(
        self, received_at: datetime, working_days: float, *, saturday_morning: bool = False
    ) -> datetime:
        """Ngày hẹn trả: `working_days` of working time after receipt (0: at once)."""
        start = self.next_working_moment(received_at, saturday_morning=saturday_morning)
        if working_days <= 0:
            return start
        return self.add_working_hours(
            start, working_days * HOURS_PER_DAY, saturday_morning=saturday_morning
        )

    def working_hours_between(
        self, start: datetime, end: datetime, *, saturday_morning: bool = False
    ) -> float:
        """Working hours from `start` to `end` (0 if `end` is not later)."""
        total = timedelta()
        last = end.astimezone(VIETNAM).date()  # a task ten years late still has its figure
        for begin, stop in self._intervals(start, saturday_morning=saturday_morning, until=last):
            if begin >= end:
                break
            total += min(stop, end) - begin
        return total.total_seconds() / 3600

    def days_off_in(self, days: Iterable[date]) -> list[date]:
        return [d for d in days if self.is_day_off(d)]
