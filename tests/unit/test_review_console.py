"""What the officer console reads from review: stages, timeliness and time left, the queue by
scope, stage and ward, the counts, the search, prints in the history, and the task's view
(over the in-memory fakes of tests/unit/test_review_handlers.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from services.review import handlers, lookup, ownership, steps
from services.review.access import ScopeRefused, scopes_for
from services.review.domain import Conflict, Forbidden, Task
from services.review.roster import Officer
from services.review.stages import phone_key, stage_of, time_left, timeliness
from services.review.views import view
from shared.contracts import DossierSlipPrinted
from tests.factories import submitted_event
from tests.unit.test_review_handlers import (
    CALENDAR,
    CHIEF,
    COLLEAGUE,
    HOLDER,
    SMALL,
    SUPERVISOR,
    T0,
    WORKFLOWS,
    FakeDirectory,
    FakeTasks,
    Published,
)

ONE = WORKFLOWS.for_new("1.004194")  # one level: receiving (4 h), checking (2 days), ...
FOREIGN = Officer(id="x1", name="X", role="officer", unit="V")


def _new(code: str = "D1", *, ward: str = "00004", phone: str = "+84912345678") -> Task:
    """A task as review creates it for a submitted dossier, at T0, held by HOLDER."""
    event = submitted_event(code, ward=ward)
    applicant = event.data.applicant.model_copy(update={"phone": phone})
    data = event.data.model_copy(
        update={"procedure_code": "1.004194", "ward_code": ward, "applicant": applicant}
    )
    event = event.model_copy(update={"data": data})
    task, _ = steps.new_task(
        event,
        workflow=ONE,
        unit_id="U",
        officer=HOLDER,
        now=T0,
        calendar=CALENDAR,
        source="urn:test",
    )
    return replace(task, id=f"t-{code}")


async def _take(tasks: FakeTasks, task: Task, *actions: tuple[str, str | None]) -> Task:
    for action, reason in actions:
        task = await handlers.act(
            task.id,
            action,
            reason,
            officer=HOLDER,
            tasks=tasks,
            workflows=WORKFLOWS,
            calendar=CALENDAR,
            clock=lambda: T0 + timedelta(minutes=10),
            publish=Published(),
            source="urn:test",
        )
    return task


@pytest.mark.parametrize(
    ("actions", "stage"),
    [
        ((), "reception"),
        ((("receive", None),), "in_process"),
        ((("receive", None), ("request_supplement", "Thiếu giấy tờ")), "waiting_citizen"),
        ((("receive", None), ("request_payment", None)), "waiting_citizen"),
        ((("receive", None), ("approve", None)), "handover"),
        ((("refuse", "Không thuộc địa bàn"),), "closed"),
    ],
)
async def test_each_workflow_state_falls_in_one_stage(
    actions: tuple[tuple[str, str | None], ...], stage: str
) -> None:
    tasks = FakeTasks()
    task, _ = await tasks.create(_new(), [])
    assert stage_of(await _take(tasks, task, *actions)) == stage


def test_a_step_is_on_time_then_due_soon_at_its_reminder_then_overdue_in_working_time() -> None:
    task = _new()  # received at Tuesday 09:00; the receipt step has 4 working hours
    assert task.due_at is not None and task.remind_at is not None
    assert timeliness(task, T0) == "on_time"
    left = time_left(task, T0, CALENDAR)
    assert left is not None and (left.working_hours, left.days, left.hours) == (4.0, 0, 4.0)
    assert timeliness(task, task.remind_at) == "due_soon"  # 80 % of its SLA used
    late = task.due_at + timedelta(days=1)  # Wednesday 15:00: a working day after
    assert timeliness(task, late) == "overdue"
    left = time_left(task, late, CALENDAR)
    assert left is not None and (left.working_hours, left.days, left.hours) == (-8.0, 1, 0.0)


def test_a_step_without_a_reminder_is_due_soon_at_once_and_a_paused_one_has_no_clock() -> None:
    task = _new()
    resumed = replace(task, remind_at=None)  # resumed with less than 20 % of its SLA left
    assert timeliness(resumed, T0) == "due_soon"
    paused = replace(task, due_at=None, remind_at=None, paused_at=T0)
    assert timeliness(paused, T0) is None and time_left(paused, T0, CALENDAR) is None


def test_a_search_reads_a_mobile_number_in_any_common_form() -> None:
    assert phone_key("0912 345 678") == phone_key("+84912345678") == "+84912345678"
    assert phone_key("G01.99-261201-0001") is None


def test_an_officer_may_not_ask_for_the_whole_unit_a_chief_may() -> None:
    with pytest.raises(ScopeRefused):
        scopes_for(HOLDER, "unit")
    assert [s.unit_id for s in scopes_for(CHIEF, "unit")] == ["U"]
    # A supervisor's escalated tasks of their own unit are counted once, in the unit.
    assert [s.outside_unit for s in scopes_for(SUPERVISOR, None)] == [None, "U"]


async def _queue(tasks: FakeTasks, officer: Officer, **filters: Any) -> list[str]:
    page = await handlers.queue(officer, tasks=tasks, clock=lambda: T0, **filters)
    return [t.dossier_code for t in page.tasks]


async def test_the_queue_narrows_by_scope_stage_and_ward() -> None:
    tasks = FakeTasks()
    mine, _ = await tasks.create(_new("A"), [])
    await tasks.create(replace(_new("B", ward="00070"), officer_id=None), [])  # released
    await tasks.create(replace(_new("C"), officer_id=COLLEAGUE.id), [])
    await _take(tasks, mine, ("receive", None))
    assert await _queue(tasks, HOLDER) == ["B", "A"]  # mine and the released one, due first
    assert await _queue(tasks, HOLDER, scope="mine") == ["A"]
    assert await _queue(tasks, HOLDER, scope="unassigned") == ["B"]
    assert await _queue(tasks, CHIEF, scope="unit", stage="reception") == ["B", "C"]
    assert await _queue(tasks, CHIEF, stage="in_process") == ["A"]
    assert await _queue(tasks, CHIEF, ward="00070") == ["B"]
    c = await tasks.load("t-C")
    assert c is not None and c.remind_at is not None
    assert await _queue(tasks, CHIEF, due_soon=True) == []
    tasks.open[c.id] = replace(c, remind_at=T0 - timedelta(minutes=1))
    assert await _queue(tasks, CHIEF, due_soon=True) == ["C"]


async def test_the_counts_give_every_stage_with_its_overdue_and_due_soon() -> None:
    tasks = FakeTasks()
    for code in ("A", "B", "C"):
        await tasks.create(_new(code), [])
    b = await tasks.load("t-B")
    assert b is not None
    await _take(tasks, b, ("receive", None), ("request_supplement", "Thiếu giấy tờ"))
    c = await tasks.load("t-C")
    assert c is not None and c.due_at is not None
    tasks.open[c.id] = replace(c, due_at=T0 - timedelta(hours=1))  # overdue
    counts = await lookup.counts(CHIEF, tasks=tasks, clock=lambda: T0, scope=None)
    assert {s: c.total for s, c in counts.stages.items()} == {
        "reception": 2,
        "in_process": 0,
        "waiting_citizen": 1,
        "handover": 0,
    }
    assert (counts.total, counts.overdue, counts.due_soon) == (3, 1, 0)
    assert counts.stages["reception"].overdue == 1
    with pytest.raises(ScopeRefused):
        await lookup.counts(HOLDER, tasks=tasks, clock=lambda: T0, scope="unit")
    mine = await lookup.counts(HOLDER, tasks=tasks, clock=lambda: T0, scope="mine")
    assert (
        mine.total == 3
        and (await lookup.counts(FOREIGN, tasks=tasks, clock=lambda: T0, scope=None)).total == 0
    )


async def test_a_search_finds_by_exact_code_or_phone_only_what_the_officer_may_see() -> None:
    tasks = FakeTasks()
    await tasks.create(_new("A", phone="+84912345678"), [])
    await tasks.create(_new("B", phone="+84987654321"), [])
    await tasks.create(replace(_new("C", phone="+84912345678"), unit_id="V"), [])
    found = await lookup.search(CHIEF, "0912.345.678", tasks=tasks)
    assert [t.dossier_code for t in found] == ["A"]  # C is another unit's
    assert [t.dossier_code for t in await lookup.search(HOLDER, "B", tasks=tasks)] == ["B"]
    assert await lookup.search(HOLDER, "A-nope", tasks=tasks) == []
    assert [t.dossier_code for t in await lookup.search(FOREIGN, "C", tasks=tasks)] == ["C"]


async def _print(tasks: FakeTasks, officer: Officer, form: Any, published: Published) -> Task:
    return await ownership.print_slip(
        "t-D1",
        form,
        officer=officer,
        tasks=tasks,
        clock=lambda: T0 + timedelta(minutes=5),
        publish=published,
        source="urn:test",
    )


async def test_a_print_is_a_step_of_the_history_and_one_event_with_who_printed_it() -> None:
    tasks, published = FakeTasks(), Published()
    task, _ = await tasks.create(_new(), [])
    printed = await _print(tasks, COLLEAGUE, "receipt", published)
    assert (printed.state, printed.officer_id, printed.version) == (task.state, "o1", 2)
    step = printed.steps[-1]
    assert (step.action, step.form, step.decided_by, step.due_at) == (
        "print",
        "receipt",
        "o2",
        None,
    )
    [event] = published.events
    assert isinstance(event, DossierSlipPrinted)
    assert (event.data.form, event.data.actor, event.data.unit_id) == ("receipt", "o2", "U")
    assert event.data.promised_at == task.promised_at


async def test_a_print_is_refused_to_another_unit_without_an_apology_or_once_closed() -> None:
    tasks, published = FakeTasks(), Published()
    task, _ = await tasks.create(_new(), [])
    with pytest.raises(Forbidden):
        await _print(tasks, FOREIGN, "control", published)
    with pytest.raises(Conflict):
        await _print(tasks, HOLDER, "apology", published)  # no apology was issued
    tasks.open[task.id] = replace(task, terminal=True, state="refused")
    with pytest.raises(Conflict):
        await _print(tasks, HOLDER, "receipt", published)
    assert published.events == [] and tasks.saves == 0


async def test_the_view_says_whose_move_it_is_the_reasons_required_and_each_deadline() -> None:
    tasks = FakeTasks()
    task, _ = await tasks.create(_new(), [])
    seen = view(task, HOLDER, WORKFLOWS, CALENDAR, T0)
    assert (seen.stage, seen.timeliness, seen.due_at) == ("reception", "on_time", task.due_at)
    assert seen.waiting is not None and seen.waiting.officer_id == "o1"
    assert seen.waiting.whose_move_name == "Cán bộ tiếp nhận, xử lý hồ sơ"
    assert [(a.action, a.requires_reason) for a in seen.actions] == [
        ("receive", False),
        ("refuse", True),
        ("request_supplement", True),
    ]
    assert [a.action for a in seen.actions] == seen.allowed_actions
    assert view(task, FOREIGN, WORKFLOWS, CALENDAR, T0).actions == []
    received = await _take(tasks, task, ("receive", None))
    [step] = view(received, HOLDER, WORKFLOWS, CALENDAR, T0).history
    assert (step["due_at"], step["on_time"], step["name_vi"]) == (
        task.due_at,
        True,
        "Tiếp nhận hồ sơ",
    )
    waiting = await _take(tasks, received, ("request_supplement", "Thiếu giấy tờ"))
    shown = view(waiting, HOLDER, WORKFLOWS, CALENDAR, T0).waiting
    assert shown is not None and (shown.whose_move, shown.officer_id) == ("citizen", None)


async def test_an_officer_learns_their_unit_and_its_officers_active_first() -> None:
    retired = Officer(id="o0", name="R", role="officer", unit="U", active=False)
    roster = SMALL.model_copy(update={"officers": [*SMALL.officers, retired, FOREIGN]})
    found = await lookup.colleagues(HOLDER, directory=FakeDirectory(roster))
    assert found.unit is not None and found.unit.id == "U" and found.province
    assert [o.id for o in found.officers] == ["a1", "c1", "o1", "o2", "s1", "o0"]
    other = await lookup.colleagues(FOREIGN, directory=FakeDirectory(roster))
    assert [o.id for o in other.officers] == ["x1"] and not other.province
