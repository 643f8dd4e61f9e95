"""Every review handler, over in-memory fakes of its ports (no network, no database)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.review import (
    administration,
    consumer,
    deadlines,
    handlers,
    mover,
    ownership,
    steps,
    timers,
)
from services.review.access import NO_DUE, Position, Scope, history_position, queue_position
from services.review.deadlines import Firing
from services.review.domain import Conflict, Forbidden, InvalidAction, NotFound, Task
from services.review.ports import Directory, QueueFilter, StageCount, Tasks
from services.review.roster import Officer, Roster, Unit, load_roster
from services.review.settings import DEFAULT_ROSTER
from services.review.stages import phone_of, soon_at, stage_of, timeliness, ward_of
from services.review.steps import Decision
from services.review.workflow import load_all
from shared.calendar import WorkingCalendar
from shared.contracts import DossierSubmitted, DossierWithdrawn, DossierWithdrawnData, Event
from shared.faults import FaultPoints
from shared.messaging import PermanentFailure
from tests.factories import review_task, submitted_event

WORKFLOWS = load_all()
CALENDAR = WorkingCalendar()
ROSTER = load_roster(DEFAULT_ROSTER)
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 09:00 in Hà Nội
HOLDER = Officer(id="o1", name="A", role="officer", unit="U")
COLLEAGUE = Officer(id="o2", name="B", role="officer", unit="U")
CHIEF = Officer(id="c1", name="C", role="chief", unit="U")
SUPERVISOR = Officer(id="s1", name="S", role="supervisor", unit="U")
ADMIN = Officer(id="a1", name="Q", role="admin", unit="U")
SMALL = Roster(
    default_unit="U",
    units=[Unit(id="U", name="Unit", wards=[]), Unit(id="V", name="Other", wards=[])],
    officers=[HOLDER, COLLEAGUE, CHIEF, SUPERVISOR, ADMIN],
)


def _matches(task: Task, scope: Scope) -> bool:
    return (
        (scope.unit_id is None or task.unit_id == scope.unit_id)
        and (scope.officer_id is None or task.officer_id == scope.officer_id)
        and (not scope.released or task.officer_id is None)
        and (scope.escalated_to is None or task.escalated_to == scope.escalated_to)
        and (scope.outside_unit is None or task.unit_id != scope.outside_unit)
    )


class FakeTasks:
    """The task store in memory: open tasks, finished ones, fired timers, stored events."""

    def __init__(self) -> None:
        self.open: dict[str, Task] = {}
        self.closed: dict[str, Task] = {}
        self.events: dict[str, list[Event]] = {}
        self.fired: set[str] = set()
        self.saves = 0

    async def load(self, task_id: str) -> Task | None:
        return self.open.get(task_id) or self.closed.get(task_id)

    async def by_dossier(self, dossier_code: str) -> Task | None:
        every = [*self.open.values(), *self.closed.values()]
        return next((t for t in every if t.dossier_code == dossier_code), None)

    async def stored_events(self, task_id: str, caused_by: str) -> list[Event]:
        return [e for e in self.events.get(task_id, []) if e.causationid == caused_by]

    async def open_counts(self, unit_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.open.values():
            if t.unit_id == unit_id and t.officer_id and not t.terminal:
                counts[t.officer_id] = counts.get(t.officer_id, 0) + 1
        return counts

    async def create(self, task: Task, events: list[Event]) -> tuple[Task, bool]:
        existing = await self.by_dossier(task.dossier_code)
        if existing is not None:
            return existing, False
        self.open[task.id] = task
        self.events[task.id] = list(events)
        return task, True

    async def save(self, before: Task, decision: Decision) -> bool:
        current = self.open.get(before.id)
        if current is None or current.version != before.version:
            return False
        self.open[before.id] = decision.task
        self.events[before.id] += decision.events
        self.saves += 1
        return True

    async def queue(
        self, scopes: Sequence[Scope], where: QueueFilter, after: Position | None, limit: int
    ) -> list[Task]:
        found = [
            t
            for t in self.open.values()
            if not t.terminal
            and any(_matches(t, s) for s in scopes)
            and (where.state is None or t.state == where.state)
            and (where.procedure_code is None or t.procedure_code == where.procedure_code)
            and (where.stage is None or stage_of(t) == where.stage)
            and (where.ward_code is None or ward_of(t) == where.ward_code)
            and (where.soon_by is None or (soon_at(t) or NO_DUE) <= where.soon_by)
            and (where.due_before is None or (t.due_at is not None and t.due_at < where.due_before))
            and (where.due_from is None or t.due_at is None or t.due_at >= where.due_from)
            and (after is None or queue_position(t) > after)
        ]
        return sorted(found, key=queue_position)[:limit]

    async def finished(self, scope: Scope, after: Position | None, limit: int) -> list[Task]:
        found = [
            t
            for t in self.closed.values()
            if _matches(t, scope) and (after is None or history_position(t) < after)
        ]
        return sorted(found, key=history_position, reverse=True)[:limit]

    async def counts(self, scopes: Sequence[Scope], now: datetime) -> dict[str, StageCount]:
        totals: dict[str, StageCount] = {}
        for t in self.open.values():
            if t.terminal or not any(_matches(t, s) for s in scopes):
                continue
            before = totals.get(stage_of(t), StageCount())
            late = timeliness(t, now)
            totals[stage_of(t)] = StageCount(
                before.total + 1,
                before.overdue + (late == "overdue"),
                before.due_soon + (late == "due_soon"),
            )
        return totals

    async def by_phone(self, phone: str, limit: int) -> list[Task]:
        live = sorted(self.open.values(), key=queue_position)
        done = sorted(self.closed.values(), key=history_position, reverse=True)
        return [t for t in [*live, *done] if phone_of(t) == phone][:limit]

    async def due_timers(self, now: datetime, limit: int) -> list[Task]:
        due = [t for t in self.open.values() if t.timer_at is not None and t.timer_at <= now]
        return sorted(due, key=lambda t: t.timer_at or now)[:limit]

    async def next_timer(self) -> datetime | None:
        return min((t.timer_at for t in self.open.values() if t.timer_at), default=None)

    async def fire(self, firing: Firing) -> bool:
        if firing.key in self.fired:
            return False
        self.fired.add(firing.key)
        return True

    async def timer_fired(self, before: Task, after: Task) -> bool:
        current = self.open.get(before.id)
        if current is None or current.version != before.version:
            return False
        self.open[before.id] = after
        return True

    async def close_finished(self, limit: int) -> int:
        done = [t for t in self.open.values() if t.terminal][:limit]
        for t in done:
            self.closed[t.id] = self.open.pop(t.id)
        return len(done)


class FakeDirectory:
    def __init__(self, roster: Roster = SMALL) -> None:
        self.snapshot = roster
        self.changes: list[dict[str, Any]] = []

    async def roster(self) -> Roster:
        return self.snapshot

    async def put_unit(self, unit: Unit, *, by: str) -> Unit:
        units = [u for u in self.snapshot.units if u.id != unit.id] + [unit]
        self.snapshot = self.snapshot.model_copy(update={"units": units})
        self.changes.append({"kind": "unit", "key": unit.id, "by": by})
        return unit

    async def put_officer(self, officer: Officer, *, by: str) -> Officer:
        officers = [o for o in self.snapshot.officers if o.id != officer.id] + [officer]
        self.snapshot = self.snapshot.model_copy(update={"officers": officers})
        self.changes.append({"kind": "officer", "key": officer.id, "by": by})
        return officer

    async def history(self, kind: str, key: str) -> list[dict[str, Any]]:
        return [c for c in self.changes if (c["kind"], c["key"]) == (kind, key)]


class Published:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.down = False

    async def __call__(self, events: list[Event]) -> list[Event]:
        if self.down:
            raise ConnectionError("broker away")
        self.events += events
        return events

    def types(self) -> list[str]:
        return [e.type for e in self.events]


def _typed(tasks: FakeTasks, directory: FakeDirectory) -> tuple[Tasks, Directory]:
    return tasks, directory  # the fakes satisfy the ports (checked by mypy here)


def _task(**changes: Any) -> Task:
    fields: dict[str, Any] = {"unit_id": "U", "officer_id": "o1", "state": "checking"}
    fields.update(changes)
    return review_task(created_at=T0, **fields)


async def _act(tasks: FakeTasks, publish: Published, action: str, **kw: Any) -> Task:
    return await handlers.act(
        kw.pop("task_id", "t1"),
        action,
        kw.pop("reason", None),
        officer=kw.pop("officer", HOLDER),
        tasks=tasks,
        workflows=WORKFLOWS,
        calendar=CALENDAR,
        clock=lambda: T0,
        publish=publish,
        source="urn:test",
        missing=kw.pop("missing", ()),
        expected_version=kw.pop("expected_version", None),
    )


async def test_assign_creates_the_task_once_for_the_least_loaded_and_publishes_each_time() -> None:
    tasks, publish = FakeTasks(), Published()
    await tasks.create(
        _task(id="busy", dossier_code="B", unit_id="CAP-BADINH", officer_id="cb-badinh-01"), []
    )
    event = submitted_event("G01.99-261201-0001")
    data = event.data.model_copy(update={"ward_code": "00004", "procedure_name": "Đăng ký tạm trú"})
    event = event.model_copy(update={"data": data})
    for _ in range(2):  # a redelivery publishes the same event again, creates nothing
        await handlers.assign(
            event,
            tasks=tasks,
            directory=FakeDirectory(ROSTER),
            workflows=WORKFLOWS,
            calendar=CALENDAR,
            clock=lambda: T0,
            publish=publish,
            source="urn:test",
            faults=FaultPoints(""),
        )
    task = await tasks.by_dossier("G01.99-261201-0001")
    assert task is not None and task.unit_id == "CAP-BADINH"
    assert task.officer_id != "cb-badinh-01"  # the other one held a task already
    assert task.procedure_name == "Đăng ký tạm trú" and task.timer_at is not None
    assert len(tasks.open) == 2
    assert publish.types() == ["dossier.assigned"] * 2
    assert publish.events[0].id == publish.events[1].id
    assert publish.events[0].data.procedure_name == "Đăng ký tạm trú"  # type: ignore[attr-defined]


async def test_assign_refuses_another_event_and_a_procedure_without_workflow() -> None:
    tasks, publish = FakeTasks(), Published()
    common: dict[str, Any] = {
        "tasks": tasks,
        "directory": FakeDirectory(ROSTER),
        "workflows": WORKFLOWS,
        "calendar": CALENDAR,
        "clock": lambda: T0,
        "publish": publish,
        "source": "s",
        "faults": FaultPoints(""),
    }
    unknown = submitted_event("D9")
    unknown = unknown.model_copy(
        update={"data": unknown.data.model_copy(update={"procedure_code": "none"})}
    )
    with pytest.raises(PermanentFailure):
        await handlers.assign(unknown, **common)
    with pytest.raises(PermanentFailure):
        await handlers.assign(_withdrawn("D9"), **common)
    assert tasks.open == {} and publish.events == []


def _withdrawn(code: str) -> DossierWithdrawn:
    return DossierWithdrawn.create(
        source="urn:intake",
        subject=code,
        time=T0 + timedelta(hours=1),
        data=DossierWithdrawnData(dossier_code=code, withdrawn_at=T0 + timedelta(hours=1)),
    )


async def test_an_action_saves_one_step_publishes_its_event_with_the_procedure_name() -> None:
    tasks, publish = FakeTasks(), Published()
    await tasks.create(_task(procedure_name="Đăng ký thường trú"), [])
    done = await _act(tasks, publish, "approve")
    assert (done.state, done.version, len(done.steps)) == ("decided", 2, 1)
    assert done.steps[0].decided_by == "o1"
    assert publish.types() == ["dossier.approved"]
    assert publish.events[0].data.procedure_name == "Đăng ký thường trú"  # type: ignore[attr-defined]


async def test_of_two_actions_on_one_version_one_wins_the_other_is_told_what_is_allowed() -> None:
    tasks, publish = FakeTasks(), Published()
    await tasks.create(_task(), [])
    results = await asyncio.gather(
        _act(tasks, publish, "approve"),
        _act(tasks, publish, "reject", reason="thiếu giấy tờ"),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Task) for r in results) == 1
    [lost] = [r for r in results if isinstance(r, Conflict)]
    assert "deliver" in lost.allowed and tasks.saves == 1 and len(publish.events) == 1


async def test_a_step_stored_while_the_broker_is_away_still_answers() -> None:
    tasks, publish = FakeTasks(), Published()
    await tasks.create(_task(), [])
    publish.down = True
    done = await _act(tasks, publish, "approve")
    assert done.state == "decided" and tasks.saves == 1  # the relay publishes it later


async def test_an_action_on_no_task_or_anothers_task_changes_nothing() -> None:
    tasks, publish = FakeTasks(), Published()
    await tasks.create(_task(), [])
    with pytest.raises(NotFound):
        await _act(tasks, publish, "approve", task_id="nope")
    with pytest.raises(Forbidden):
        await _act(tasks, publish, "approve", officer=COLLEAGUE)
    with pytest.raises(InvalidAction):
        await _act(tasks, publish, "reject")  # a rejection needs a reason
    assert tasks.saves == 0 and publish.events == []


async def test_a_supplement_request_names_the_documents_the_citizen_must_add() -> None:
    tasks, publish = FakeTasks(), Published()
    await tasks.create(_task(), [])
    with pytest.raises(InvalidAction, match="asks the citizen for nothing"):
        await _act(tasks, publish, "approve", missing=["ct01"])  # a decision names none
    assert tasks.saves == 0 and publish.events == []
    asked = await _act(
        tasks,
        publish,
        "request_supplement",
        reason="Ảnh chụp mờ",
        missing=["ct01", "legal_residence_proof", "ct01"],
    )
    assert asked.state == "supplement"
    assert asked.steps[-1].missing == ("ct01", "legal_residence_proof")  # once each, in order
    assert asked.steps[-1].view()["missing"] == ["ct01", "legal_residence_proof"]
    [event] = publish.events
    assert event.type == "dossier.supplement_requested"
    assert event.data.missing == ["ct01", "legal_residence_proof"]  # type: ignore[attr-defined]
    assert event.data.note == "Ảnh chụp mờ"  # type: ignore[attr-defined]


async def test_an_action_on_the_task_as_it_was_shown_is_refused_once_it_moved_on() -> None:
    tasks, publish = FakeTasks(), Published()
    await tasks.create(_task(), [])
    with pytest.raises(Forbidden):  # another unit learns nothing of it
        await _act(
            tasks,
            publish,
            "approve",
            officer=HOLDER.model_copy(update={"unit": "V"}),
            expected_version=9,
        )
    with pytest.raises(Conflict) as stale:
        await _act(tasks, publish, "approve", expected_version=9)
    assert stale.value.code == "task_changed" and "tải lại" in stale.value.message_vi
    assert "approve" in stale.value.allowed  # what it allows now
    assert tasks.saves == 0 and publish.events == []
    # A print since the page was shown leaves the dossier where it was: the action goes.
    printed = await ownership.print_slip(
        "t1", "control", officer=HOLDER, tasks=tasks, clock=lambda: T0, publish=publish,
        source="urn:test",
    )  # fmt: skip
    assert printed.version == 2
    done = await _act(tasks, publish, "approve", expected_version=1)
    assert done.version == 3 and publish.types()[-1] == "dossier.approved"
    with pytest.raises(Conflict):  # the approval moved it: a page from before it is stale
        await _act(tasks, publish, "deliver", expected_version=2)


async def test_following_the_citizen_takes_the_triggered_step_or_nothing() -> None:
    tasks, publish = FakeTasks(), Published()
    common: dict[str, Any] = {
        "tasks": tasks,
        "workflows": WORKFLOWS,
        "calendar": CALENDAR,
        "publish": publish,
        "source": "s",
    }
    with pytest.raises(RuntimeError):  # no task yet: retried until it comes
        await handlers.follow_citizen(_withdrawn("D1"), **common)
    await tasks.create(_task(), [])
    await handlers.follow_citizen(_withdrawn("D1"), **common)
    task = await tasks.load("t1")
    assert task is not None and task.state == "withdrawn" and task.terminal
    await handlers.follow_citizen(_withdrawn("D1"), **common)  # again: nothing more
    assert tasks.saves == 1


async def test_show_answers_the_unit_and_who_it_was_escalated_to_only() -> None:
    tasks = FakeTasks()
    await tasks.create(_task(escalated_to="gs"), [])
    assert (await handlers.show("t1", officer=COLLEAGUE, tasks=tasks)).id == "t1"
    far = Officer(id="gs", name="G", role="supervisor", unit="PROVINCE")
    assert (await handlers.show("t1", officer=far, tasks=tasks)).id == "t1"
    with pytest.raises(Forbidden):
        await handlers.show("t1", officer=replace_unit(COLLEAGUE, "V"), tasks=tasks)
    with pytest.raises(NotFound):
        await handlers.show("t9", officer=COLLEAGUE, tasks=tasks)


def replace_unit(officer: Officer, unit: str) -> Officer:
    return officer.model_copy(update={"unit": unit})


async def test_queues_page_soonest_due_first_with_a_cursor_and_filters() -> None:
    tasks = FakeTasks()
    dues = [T0 + timedelta(hours=h) for h in (3, 1, 2, 2)] + [None]
    holders = ["o1", "o1", None, "o2", "o1"]
    for i, (due, holder) in enumerate(zip(dues, holders, strict=True)):
        await tasks.create(
            _task(id=f"t{i}", dossier_code=f"D{i}", due_at=due, officer_id=holder), []
        )
    await tasks.create(_task(id="x", dossier_code="X", unit_id="V", officer_id="z", due_at=T0), [])

    async def ids(officer: Officer, **kw: Any) -> tuple[list[str], str | None]:
        page = await handlers.queue(officer, tasks=tasks, clock=lambda: T0, **kw)
        return [t.id for t in page.tasks], page.next_cursor

    first, cursor = await ids(CHIEF, limit=2)
    assert first == ["t1", "t2"] and cursor
    rest, end = await ids(CHIEF, limit=10, cursor=cursor)
    assert rest == ["t3", "t0", "t4"] and end is None
    assert (await ids(HOLDER))[0] == ["t1", "t2", "t0", "t4"]  # own and released
    assert (await ids(CHIEF, due_before=T0 + timedelta(hours=2)))[0] == ["t1"]
    late = await handlers.queue(CHIEF, tasks=tasks, clock=lambda: T0 + timedelta(hours=2.5))
    assert [t.id for t in late.tasks][:3] == ["t1", "t2", "t3"]
    overdue = await handlers.queue(
        CHIEF, tasks=tasks, clock=lambda: T0 + timedelta(hours=2.5), overdue=True
    )
    assert [t.id for t in overdue.tasks] == ["t1", "t2", "t3"]
    on_time = await handlers.queue(
        CHIEF, tasks=tasks, clock=lambda: T0 + timedelta(hours=2.5), overdue=False
    )
    assert [t.id for t in on_time.tasks] == ["t0", "t4"]
    with pytest.raises(InvalidAction):
        await handlers.queue(CHIEF, tasks=tasks, clock=lambda: T0, cursor="not-a-cursor")


async def test_finished_work_pages_latest_first_for_the_unit_or_the_officer() -> None:
    tasks, publish = FakeTasks(), Published()
    for i in range(3):
        await tasks.create(_task(id=f"t{i}", dossier_code=f"D{i}", state="receiving"), [])
        await handlers.act(
            f"t{i}",
            "refuse",
            "x",
            officer=HOLDER,
            tasks=tasks,
            workflows=WORKFLOWS,
            calendar=CALENDAR,
            clock=lambda i=i: T0 + timedelta(minutes=i),  # type: ignore[misc]
            publish=publish,
            source="s",
        )
    assert await mover.move_all(tasks) == 3 and tasks.open == {}
    page = await handlers.finished(CHIEF, tasks=tasks, limit=2)
    assert [t.id for t in page.tasks] == ["t2", "t1"]
    rest = await handlers.finished(CHIEF, tasks=tasks, limit=2, cursor=page.next_cursor)
    assert [t.id for t in rest.tasks] == ["t0"] and rest.next_cursor is None
    assert (await handlers.finished(COLLEAGUE, tasks=tasks)).tasks == []


async def test_claim_release_reassign_and_apology_are_steps_with_their_events() -> None:
    tasks, publish = FakeTasks(), Published()
    await tasks.create(_task(promised_at=T0 + timedelta(hours=2)), [])
    common: dict[str, Any] = {"tasks": tasks, "clock": lambda: T0, "publish": publish}
    released = await ownership.release("t1", "nghỉ phép", officer=HOLDER, source="s", **common)
    assert released.officer_id is None
    claimed = await ownership.claim("t1", officer=COLLEAGUE, source="s", **common)
    assert claimed.officer_id == "o2"
    with pytest.raises(Conflict):
        await ownership.claim("t1", officer=HOLDER, source="s", **common)
    back = await ownership.reassign(
        "t1", "o1", None, officer=SUPERVISOR, directory=FakeDirectory(), source="s", **common
    )
    assert back.officer_id == "o1"
    sorry = await ownership.apologise(
        "t1",
        T0 + timedelta(days=3),
        "cần xác minh",
        officer=CHIEF,
        calendar=CALENDAR,
        source="s",
        **common,
    )
    assert sorry.promised_at == T0 + timedelta(days=3)
    assert [s.action for s in sorry.steps] == ["release", "claim", "reassign", "apologise"]
    assert publish.types() == ["dossier.reassigned"] * 3 + ["dossier.apology_issued"]


async def test_timers_fire_once_move_on_and_escalate() -> None:
    tasks, publish = FakeTasks(), Published()
    directory = FakeDirectory()
    remind, due = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    await tasks.create(
        _task(remind_at=remind, due_at=due, timer_at=remind, timer_kind="reminder"), []
    )
    now = [T0]

    async def fire() -> list[str]:
        fired = await timers.fire_due(
            tasks=tasks, directory=directory, clock=lambda: now[0], publish=publish, source="s"
        )
        return [e.type for e in fired]

    assert await fire() == []
    clock = timers.Timers(tasks, directory, clock=lambda: now[0], source="s", publish=publish)
    assert await clock.pause(7200) == 3600  # sleeps until the reminder
    now[0] = T0 + timedelta(hours=3)
    assert await fire() == ["dossier.due_soon"]
    assert await fire() == ["dossier.overdue"]
    assert await fire() == []
    task = await tasks.load("t1")
    assert task is not None and task.escalated_to == "s1" and task.timer_at is None
    assert await clock.pause(600) == 600  # nothing pending: the long poll


async def test_a_timer_fired_before_a_crash_is_not_fired_again_but_moves_on() -> None:
    tasks, publish = FakeTasks(), Published()
    remind = T0 + timedelta(hours=1)
    task = _task(remind_at=remind, due_at=T0 + timedelta(hours=2), timer_at=remind)
    task = replace(task, timer_kind="reminder")
    await tasks.create(task, [])
    firing = deadlines.due_timer(task, now=remind, supervisor=None, source="s")
    assert firing is not None and await tasks.fire(firing)  # ... and the process died here
    fired = await timers.fire_due(
        tasks=tasks, directory=FakeDirectory(), clock=lambda: remind, publish=publish, source="s"
    )
    assert fired == []
    moved = await tasks.load("t1")
    assert moved is not None and moved.timer_kind == "overdue"


async def test_admins_manage_the_directory_within_their_reach() -> None:
    directory = FakeDirectory()
    ADMIN_PORTS: dict[str, Any] = {
        "tasks": FakeTasks(),
        "clock": lambda: T0,
        "publish": Published(),
        "source": "s",
    }
    assert [u.id for u in await administration.list_units(ADMIN, directory=directory)] == [
        "U",
        "V",
    ]
    with pytest.raises(Forbidden):
        await administration.list_units(CHIEF, directory=directory)
    await administration.put_unit(ADMIN, Unit(id="W", name="New"), directory=directory)
    ward_admin = Officer(id="a2", name="W", role="admin", unit="V")
    await directory.put_officer(ward_admin, by="seed")
    with pytest.raises(Forbidden):
        await administration.put_unit(ward_admin, Unit(id="X", name="X"), directory=directory)
    with pytest.raises(Forbidden):  # not their unit's officer
        await administration.put_officer(ward_admin, HOLDER, directory=directory, **ADMIN_PORTS)
    newcomer = Officer(id="o9", name="N", role="officer", unit="V")
    assert await administration.put_officer(
        ward_admin, newcomer, directory=directory, **ADMIN_PORTS
    )
    mine = await administration.list_officers(ward_admin, directory=directory)
    assert {o.id for o in mine} == {"a2", "o9"}
    with pytest.raises(administration.SelfDemotion):
        await administration.put_officer(
            ADMIN,
            ADMIN.model_copy(update={"role": "officer"}),
            directory=directory,
            **ADMIN_PORTS,
        )
    changes = await administration.officer_changes(ADMIN, "o9", directory=directory)
    assert [c["by"] for c in changes] == ["a2"]
    with pytest.raises(Forbidden):
        await administration.officer_changes(ward_admin, "o1", directory=directory)


async def test_the_consumer_table_routes_each_event_type_and_refuses_others() -> None:
    seen: list[str] = []

    async def assign(event: Event) -> None:
        seen.append(f"assign:{event.type}")

    async def follow(event: Event) -> None:
        seen.append(f"follow:{event.type}")

    routes = consumer.table(assign=assign, follow_citizen=follow)
    assert set(routes) == {"dossier.submitted", "dossier.withdrawn", "dossier.supplemented"}
    handle = consumer.dispatcher(routes)
    await handle(submitted_event("D1"))
    await handle(_withdrawn("D1"))
    assert seen == ["assign:dossier.submitted", "follow:dossier.withdrawn"]
    approved = steps.take_action(
        _task(),
        WORKFLOWS.get("one-level", 1),
        HOLDER,
        "approve",
        None,
        now=T0,
        calendar=CALENDAR,
        source="s",
    ).events[0]
    with pytest.raises(PermanentFailure):
        await handle(approved)
    assert isinstance(submitted_event("D1"), DossierSubmitted)


def test_the_fakes_satisfy_the_ports() -> None:
    assert _typed(FakeTasks(), FakeDirectory())


def test_a_timer_set_later_than_the_loop_sleeps_towards_wakes_nothing() -> None:
    alarm = timers.Alarm()
    # The loop is awake (nothing planned): timers set meanwhile wake nothing, the soonest of
    # them shortens the sleep it plans next.
    alarm.set_for(T0 + timedelta(minutes=10))
    alarm.set_for(T0 + timedelta(minutes=2))
    assert not alarm.is_set()
    assert alarm.plan(T0, 15.0 * 60) == 120.0
    assert alarm.planned == T0 + timedelta(minutes=2)
    assert alarm.plan(T0, 15.0 * 60) == 900.0  # taken into account once
    alarm.set_for(T0 + timedelta(days=3))  # a step's next timer, days away: no wake-up
    assert not alarm.is_set()
    alarm.set_for(T0 + timedelta(minutes=5))  # sooner than the loop would look: wake it
    assert alarm.is_set()
    alarm.clear()
    alarm.planned = None  # awake again; a timer already due makes the next sleep the floor
    alarm.set_for(T0 - timedelta(minutes=1))
    assert not alarm.is_set() and alarm.plan(T0, 900.0) == timers.MIN_PAUSE
