from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.calendar import (
    HOURS_PER_DAY,
    VIETNAM,
    CalendarOverrides,
    WorkingCalendar,
    load_overrides,
)

CALENDAR = WorkingCalendar()


def vn(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VIETNAM)


def test_weekends_and_public_holidays_are_days_off() -> None:
    assert CALENDAR.is_working_day(date(2026, 11, 30))  # Monday
    assert not CALENDAR.is_working_day(date(2026, 11, 28))  # Saturday
    for tet in (date(2026, 2, 16), date(2026, 2, 17), date(2026, 2, 20)):  # Tết Bính Ngọ
        assert not CALENDAR.is_working_day(tet)
    assert not CALENDAR.is_working_day(date(2026, 9, 2))  # National Day
    assert not CALENDAR.is_working_day(date(2027, 4, 16))  # Hùng Kings' day, 10/3 lunar
    assert not CALENDAR.is_working_day(date(2027, 5, 3))  # 1 May on a Saturday, observed Monday


def test_a_published_make_up_saturday_is_a_working_day() -> None:
    assert CALENDAR.is_working_day(date(2026, 8, 22))


def test_operator_overrides_win() -> None:
    calendar = WorkingCalendar(
        CalendarOverrides(days_off=[date(2026, 12, 31)], working_days=[date(2026, 12, 5)])
    )
    assert not calendar.is_working_day(date(2026, 12, 31))
    assert calendar.is_working_day(date(2026, 12, 5))  # a Saturday
    assert calendar.promised_at(vn(2026, 12, 30, 16, 0), 1) == vn(2027, 1, 4, 16, 0)


def test_overrides_load_from_yaml_and_bad_files_are_named(tmp_path: Path) -> None:
    good = tmp_path / "calendar.yaml"
    good.write_text("days_off: [2026-12-31]\nworking_days: []\n")
    assert load_overrides(good).days_off == [date(2026, 12, 31)]
    assert load_overrides(tmp_path / "absent.yaml") == CalendarOverrides()
    bad = tmp_path / "bad.yaml"
    bad.write_text("days_off: [someday]\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        load_overrides(bad)


@pytest.mark.parametrize(
    ("received", "days", "promised"),
    [
        (vn(2026, 11, 30, 9, 0), 3, vn(2026, 12, 3, 9, 0)),  # Monday morning, 3 days
        (vn(2026, 11, 30, 17, 30), 3, vn(2026, 12, 3, 17, 0)),  # after 17:00: next morning
        (vn(2026, 11, 30, 12, 0), 1, vn(2026, 12, 1, 11, 30)),  # lunch: counted from 13:30
        (vn(2026, 11, 28, 9, 0), 7, vn(2026, 12, 8, 17, 0)),  # Saturday: from Monday 07:00
        (vn(2026, 2, 13, 16, 0), 1, vn(2026, 2, 23, 16, 0)),  # across Tết
        (vn(2026, 12, 31, 10, 0), 1, vn(2027, 1, 4, 10, 0)),  # across New Year and a weekend
        (vn(2026, 11, 30, 9, 0), 0, vn(2026, 11, 30, 9, 0)),  # accepted at once
    ],
)
def test_promised_dates(received: datetime, days: int, promised: datetime) -> None:
    assert CALENDAR.promised_at(received, days) == promised


def test_saturday_morning_counts_where_the_desk_opens_then() -> None:
    saturday = vn(2026, 11, 28, 9, 0)
    assert CALENDAR.promised_at(saturday, 1, saturday_morning=True) == vn(2026, 11, 30, 14, 30)
    assert CALENDAR.promised_at(saturday, 1) == vn(2026, 11, 30, 17, 0)
    # Never on a Saturday that is a public holiday (Tết 2027 falls on Saturday 6 February).
    tet = vn(2027, 2, 6, 8, 0)
    assert CALENDAR.next_working_moment(tet, saturday_morning=True) == vn(2027, 2, 11, 7, 0)


moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2031, 12, 31)).map(
    lambda d: d.replace(tzinfo=VIETNAM, second=0, microsecond=0)
)


@settings(max_examples=300, deadline=None)
@given(received=moments, days=st.integers(min_value=1, max_value=15), saturday=st.booleans())
def test_a_promised_date_is_working_time_and_gives_the_whole_deadline(
    received: datetime, days: int, saturday: bool
) -> None:
    promised = CALENDAR.promised_at(received, days, saturday_morning=saturday)
    day = promised.date()
    periods = CALENDAR.periods(day, saturday_morning=saturday)
    assert periods, f"{promised} is not a working day"
    assert any(begin < promised.timetz().replace(tzinfo=None) <= end for begin, end in periods)
    # Exactly the deadline's working hours lie between receipt and the promise: never less.
    worked = CALENDAR.working_hours_between(received, promised, saturday_morning=saturday)
    assert worked == pytest.approx(days * 8)
    assert promised > received


@settings(max_examples=200, deadline=None)
@given(received=moments, days=st.integers(min_value=1, max_value=10))
def test_later_receipt_never_gets_an_earlier_promise(received: datetime, days: int) -> None:
    later = received + timedelta(minutes=37)
    assert CALENDAR.promised_at(later, days) >= CALENDAR.promised_at(received, days)


@settings(max_examples=100, deadline=None)
@given(year=st.integers(min_value=2025, max_value=2031), days=st.integers(1, 7))
def test_promises_across_year_end_and_tet_skip_every_day_off(year: int, days: int) -> None:
    for received in (vn(year, 12, 31, 16, 0), vn(year, 1, 1, 9, 0)):
        promised = CALENDAR.promised_at(received, days)
        span = (promised.date() - received.date()).days
        counted = [
            received.date() + timedelta(d)
            for d in range(span + 1)
            if CALENDAR.is_working_day(received.date() + timedelta(d))
        ]
        assert len(counted) >= days
        assert CALENDAR.is_working_day(promised.date())


def test_working_hours_between_moments_more_than_ten_years_apart_are_counted() -> None:
    """A task far overdue still gets its figure (supervision's lateness), not an error."""
    start = datetime(2026, 3, 13, 9, 0, tzinfo=UTC)
    ten_years = CALENDAR.working_hours_between(start, start.replace(year=2036))
    twelve_years = CALENDAR.working_hours_between(start, start.replace(year=2038))
    assert ten_years > 2400 * HOURS_PER_DAY and twelve_years > ten_years + 400 * HOURS_PER_DAY


def test_a_year_without_a_public_holiday_table_is_an_error_not_all_worked() -> None:
    with pytest.raises(ValueError, match="no public-holiday table for 2101"):
        CALENDAR.is_day_off(date(2101, 1, 1))
