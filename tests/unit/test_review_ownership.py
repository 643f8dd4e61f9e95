"""Who holds a task, apologies for late dossiers, and the clock across a citizen's pause."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.review.domain import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidAction,
    Task,
    check_apology,
    check_claim,
    check_reassign,
    check_release,
    schedule,
)
from services.review.roster import Officer
from services.review.workflow import load_all
from shared.calendar import WorkingCalendar

TWO = load_all().for_new("1.004222")
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR = WorkingCalendar()
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=HANOI)  # a Tuesday morning, no holiday near

HOLDER = Officer(id="o1", name="A", role="officer", unit="U1")
COLLEAGUE = Officer(id="o2", name="B", role="officer", unit="U1")
CHIEF = Officer(id="c1", name="C", role="chief", unit="U1")
SUPERVISOR = Officer(id="s1", name="S", role="supervisor", unit="U1")
ADMIN = Officer(id="a1", name="Q", role="admin", unit="U1")
FOREIGN_OFFICER = Officer(id="x1", name="D", role="officer", unit="U2")
FOREIGN_CHIEF = Officer(id="x2", name="E", role="chief", unit="U2")
PROVINCE_SUPERVISOR = Officer(id="gs", name="G", role="supervisor", unit="PROVINCE")
RETIRED = Officer(id="o3", name="R", role="officer", unit="U1", active=False)


def _task(state: str = "checking", **changes: object) -> Task:
    base = Task(
        id="t1",
        dossier_code="D1",
        procedure_code="1.004222",
        unit_id="U1",
        officer_id="o1",
        state=state,
        created_at=T0,
        correlation_id="c",
        dossier={},
        workflow="two-level",
        terminal=TWO.state(state).terminal,
        promised_at=CALENDAR.add_working_hours(T0, 7 * 8),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# who × (held by them / released / someone else's) → claim allowed?
@pytest.mark.parametrize(
    ("officer", "holder", "outcome"),
    [
        (COLLEAGUE, None, None),
        (CHIEF, None, None),
        (HOLDER, "o1", Conflict),  # already theirs
        (COLLEAGUE, "o1", Conflict),  # held: it must be released first
        (SUPERVISOR, None, Forbidden),  # supervisors and admins do not hold tasks
        (ADMIN, None, Forbidden),
        (FOREIGN_OFFICER, None, Forbidden),
    ],
)
def test_claim_matrix(officer: Officer, holder: str | None, outcome: type[Exception]) -> None:
    task = _task(officer_id=holder)
    if outcome is None:
        check_claim(task, officer)
    else:
        with pytest.raises(outcome):
            check_claim(task, officer)


def test_only_the_holder_releases_an_open_task() -> None:
    check_release(_task(), HOLDER)
    for other in (COLLEAGUE, CHIEF, SUPERVISOR, FOREIGN_OFFICER):
        with pytest.raises(Forbidden):
            check_release(_task(), other)
    with pytest.raises(Conflict):
        check_release(_task("delivered"), HOLDER)


@pytest.mark.parametrize(
    ("officer", "target", "escalated_to", "outcome"),
    [
        (SUPERVISOR, COLLEAGUE, None, None),
        (SUPERVISOR, CHIEF, None, None),
        (PROVINCE_SUPERVISOR, COLLEAGUE, None, None),  # the unit has none of its own: "gs" is
        (PROVINCE_SUPERVISOR, COLLEAGUE, "gs", None),
        (CHIEF, COLLEAGUE, None, Forbidden),
        (HOLDER, COLLEAGUE, None, Forbidden),
        (ADMIN, COLLEAGUE, None, Forbidden),
        (SUPERVISOR, FOREIGN_OFFICER, None, InvalidAction),  # not of the task's unit
        (SUPERVISOR, ADMIN, None, InvalidAction),  # not a role that holds tasks
        (SUPERVISOR, RETIRED, None, InvalidAction),
        (SUPERVISOR, None, None, InvalidAction),  # nobody of that id
        (SUPERVISOR, HOLDER, None, Conflict),  # already theirs
    ],
)
def test_reassign_matrix(
    officer: Officer,
    target: Officer | None,
    escalated_to: str | None,
    outcome: type[Exception] | None,
) -> None:
    task = _task(escalated_to=escalated_to)
    supervisor = "gs" if officer is PROVINCE_SUPERVISOR else "s1"
    if outcome is None:
        assert check_reassign(task, officer, target, supervisor=supervisor) == target
    else:
        with pytest.raises(outcome):
            check_reassign(task, officer, target, supervisor=supervisor)


def test_a_foreign_supervisor_not_responsible_for_the_unit_may_not_reassign() -> None:
    with pytest.raises(Forbidden):
        check_reassign(_task(), PROVINCE_SUPERVISOR, COLLEAGUE, supervisor="s1")


LATE = T0 + timedelta(days=20)


def test_an_apology_is_for_a_late_dossier_by_its_chief_or_supervisor_with_a_later_date() -> None:
    task = _task(due_at=T0 + timedelta(days=3))
    new_date = LATE + timedelta(days=5)
    for officer in (CHIEF, SUPERVISOR):
        check_apology(
            task, officer, now=LATE, promised_at=new_date, reason="Chờ xác minh", calendar=CALENDAR
        )
    for officer in (HOLDER, ADMIN, FOREIGN_CHIEF, PROVINCE_SUPERVISOR):
        with pytest.raises(Forbidden):
            check_apology(
                task, officer, now=LATE, promised_at=new_date, reason="x", calendar=CALENDAR
            )
    check_apology(  # the supervisor it was escalated to, from another unit
        replace(task, escalated_to="gs"),
        PROVINCE_SUPERVISOR,
        now=LATE,
        promised_at=new_date,
        reason="Chờ xác minh",
        calendar=CALENDAR,
    )


@pytest.mark.parametrize(
    ("now", "promised_at", "reason", "outcome"),
    [
        (T0 + timedelta(hours=1), T0 + timedelta(days=30), "x", Conflict),  # on time
        (LATE, LATE - timedelta(hours=1), "x", InvalidAction),  # not later than now
        (LATE, LATE + timedelta(days=2), "  ", InvalidAction),  # no reason
    ],
)
def test_an_apology_refused(
    now: datetime, promised_at: datetime, reason: str, outcome: type[DomainError]
) -> None:
    with pytest.raises(outcome):
        check_apology(
            _task(), CHIEF, now=now, promised_at=promised_at, reason=reason, calendar=CALENDAR
        )


def test_an_apology_may_come_a_working_day_before_the_promised_date() -> None:
    task = _task()
    assert task.promised_at is not None
    day_before = CALENDAR.add_working_hours(T0, 7 * 8 - 6)
    check_apology(
        task,
        CHIEF,
        now=day_before,
        promised_at=task.promised_at + timedelta(days=3),
        reason="Chờ kết quả xác minh",
        calendar=CALENDAR,
    )


def test_a_supplement_pause_keeps_the_steps_remaining_time_and_moves_the_promised_date() -> None:
    entered = schedule(TWO, _task("receiving"), "checking", T0, CALENDAR)
    assert entered.due_at == CALENDAR.add_working_hours(T0, 24)
    checking = _task("checking", due_at=entered.due_at, remind_at=entered.remind_at)
    asked = CALENDAR.add_working_hours(T0, 4)  # 4 of the step's 24 working hours used
    paused = schedule(TWO, checking, "supplement", asked, CALENDAR)
    assert (paused.due_at, paused.remind_at) == (None, None)
    assert (paused.paused_at, paused.paused_from) == (asked, "checking")
    waiting = replace(checking, state="supplement", due_at=None, remind_at=None, **_paused(paused))
    answered = datetime(2026, 12, 8, 9, 0, tzinfo=HANOI)  # a week later
    resumed = schedule(TWO, waiting, "checking", answered, CALENDAR)
    assert resumed.due_at == CALENDAR.add_working_hours(answered, 20)  # not a fresh 24
    assert CALENDAR.working_hours_between(answered, resumed.due_at) == pytest.approx(20)
    assert resumed.remind_at == CALENDAR.add_working_hours(answered, 20 - 24 * 0.2)
    assert resumed.promised_at == CALENDAR.add_working_hours(answered, 7 * 8 - 4)
    assert resumed.paused_at is None


def test_a_step_overdue_before_the_pause_stays_due_when_it_was() -> None:
    due = CALENDAR.add_working_hours(T0, 24)
    late = CALENDAR.add_working_hours(T0, 30)
    checking = _task("checking", due_at=due)
    paused = schedule(TWO, checking, "supplement", late, CALENDAR)
    waiting = replace(checking, state="supplement", due_at=None, **_paused(paused))
    resumed = schedule(TWO, waiting, "checking", late + timedelta(days=7), CALENDAR)
    assert (resumed.due_at, resumed.remind_at) == (due, None)


def test_leaving_a_pause_for_a_new_step_gives_that_step_its_own_sla() -> None:
    receiving = _task("receiving", due_at=CALENDAR.add_working_hours(T0, 8))
    paused = schedule(TWO, receiving, "supplement", T0 + timedelta(hours=1), CALENDAR)
    waiting = replace(receiving, state="supplement", **_paused(paused))
    answered = datetime(2026, 12, 8, 9, 0, tzinfo=HANOI)
    resumed = schedule(TWO, waiting, "checking", answered, CALENDAR)
    assert resumed.due_at == CALENDAR.add_working_hours(answered, 24)


def _paused(planned: object) -> dict[str, Any]:
    return {k: getattr(planned, k) for k in ("paused_at", "paused_from", "paused_due_at")}
