"""Review's task store against the real MongoDB-wire server (and RabbitMQ for publishing):
one winner of racing steps, the crash between store and publish, finished tasks leaving the
live collection, queue pages by cursor, and the round trips an officer action costs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.review import handlers, mover, steps
from services.review.domain import Task
from services.review.roster import Officer
from services.review.store import TaskStore, to_doc
from services.review.upgrade import upgrade
from services.review.workflow import load_all
from shared.calendar import WorkingCalendar
from shared.contracts import Event
from shared.messaging import Broker
from shared.outbox import INLINE_PENDING, INLINE_SINCE
from shared.storage import Document
from tests.amqp import observe
from tests.conftest import Isolation
from tests.factories import review_task, submitted_event

pytestmark = pytest.mark.integration

WORKFLOWS = load_all()
ONE = WORKFLOWS.for_new("1.004194")
CALENDAR = WorkingCalendar()
HOLDER = Officer(id="o1", name="A", role="officer", unit="U")
CHIEF = Officer(id="c1", name="C", role="chief", unit="U")


async def _nowhere(event: Event) -> None:
    raise AssertionError("must not publish")


@dataclass
class Commands(monitoring.CommandListener):
    """Every command a client sends, as (command, collection), while recording."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    recording: bool = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.recording:
            name = event.command_name
            self.seen.append((name, str(event.command.get(name, ""))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    @contextmanager
    def record(self) -> Iterator[list[tuple[str, str]]]:
        self.seen = []
        self.recording = True
        try:
            yield self.seen
        finally:
            self.recording = False


@asynccontextmanager
async def counted(
    isolation: Isolation,
) -> AsyncIterator[tuple[AsyncMongoClient[Document], Commands]]:
    listener = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        isolation.mongodb_url, tz_aware=True, event_listeners=[listener]
    )
    try:
        yield client, listener
    finally:
        await client.close()


async def _store(
    mongo: AsyncMongoClient[Document], isolation: Isolation, publish: object = _nowhere
) -> TaskStore:
    store = TaskStore(mongo[isolation.database("review")], publish)  # type: ignore[arg-type]
    await store.setup()
    return store


async def test_two_concurrent_decisions_one_wins(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await _store(mongo, isolation)
    task = review_task(state="checking", created_at=datetime.now(UTC))
    await store.create(task, [])
    now = datetime.now(UTC)
    officers = [CHIEF.model_copy(update={"id": f"c{i}"}) for i in range(20)]
    decisions = [
        steps.take_action(
            task, ONE, o, "approve", None, now=now, calendar=CALENDAR, source="urn:test"
        )
        for o in officers
    ]
    results = await asyncio.gather(*(store.save(task, d) for d in decisions))
    assert results.count(True) == 1
    winner = decisions[results.index(True)]
    decided = await store.load("t1")
    assert decided is not None
    assert (decided.state, decided.version) == ("decided", 2)
    assert decided.decided_by == winner.task.decided_by
    assert [s.decided_by for s in decided.steps] == [winner.task.decided_by]  # one step kept
    raw = await store.tasks.find_one({"_id": "t1"})
    assert raw is not None and [e["id"] for e in raw["outbox"]] == [winner.events[0].id]
    # Only the winner's event is marked unpublished, by its own write: the losers wrote nothing.
    assert raw[INLINE_PENDING] == [winner.events[0].id]
    assert await store.outbox.pending.count_documents({}) == 0  # no pointers: the inline scheme


async def test_a_step_keeps_the_events_of_the_steps_before_it_until_they_are_published(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """A broker blip: `receive`'s publish failed, then the officer refuses at once. The second
    write must keep `receive`'s event in the task, or the relay finds its pointer with nothing
    to publish and drops it as never written: the event would be lost."""
    store = await _store(mongo, isolation)
    task = review_task(state="receiving", created_at=datetime.now(UTC))
    await store.create(task, [])
    now = datetime.now(UTC)
    received = steps.take_action(
        task, ONE, HOLDER, "receive", None, now=now, calendar=CALENDAR, source="s"
    )
    assert await store.save(task, received)  # stored; its publish fails (not attempted here)
    loaded = await store.load("t1")
    assert loaded is not None
    refused = steps.take_action(
        loaded, ONE, CHIEF, "reject", "x", now=now, calendar=CALENDAR, source="s"
    )
    assert await store.save(loaded, refused)
    raw = await store.tasks.find_one({"_id": "t1"})
    assert raw is not None
    stored = [e["id"] for e in raw["outbox"]]
    assert stored == [received.events[0].id, refused.events[0].id]
    assert raw[INLINE_PENDING] == stored  # both still marked unpublished, for the relay


async def test_a_step_stored_but_not_published_is_published_by_the_relay_once(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    broker = Broker(isolation.amqp_url, service="test")
    await broker.connect()
    store = await _store(mongo, isolation, broker.publish)
    task = review_task(state="receiving", created_at=datetime.now(UTC))
    await store.create(task, [])
    decision = steps.take_action(
        task, ONE, CHIEF, "refuse", "x", now=datetime.now(UTC), calendar=CALENDAR, source="s"
    )
    async with observe(isolation.amqp_url) as seen:
        assert await store.save(task, decision)  # ... and the process dies before publishing
        await mover.move_all(store)
        assert await store.tasks.count_documents({"_id": "t1"}) == 1  # kept until published
        await asyncio.sleep(0.01)  # the relay takes marks older than now - 0 (epoch ms)
        assert await store.outbox.relay_once(older_than=timedelta(0)) == 1
        assert await store.outbox.relay_once(older_than=timedelta(0)) == 0
        await seen.wait_for("dossier.refused")
    assert [e["id"] for e in seen.events()] == [decision.events[0].id]
    await broker.close()


async def test_a_batch_of_finished_tasks_moves_in_four_commands_and_a_half_done_copy_is_finished(
    isolation: Isolation,
) -> None:
    async with counted(isolation) as (client, commands):
        store = await _store(client, isolation)
        now = datetime.now(UTC)
        for i in range(6):
            task = review_task(
                id=f"t{i}", dossier_code=f"D{i}", state="receiving", created_at=now, unit_id="U"
            )
            await store.create(task, [])
            decided = steps.take_action(
                task, ONE, CHIEF, "refuse", "x", now=now, calendar=CALENDAR, source="s"
            )
            assert await store.save(task, replace(decided, events=[]))
        # An earlier round copied t0 and died before deleting it.
        left = await store.tasks.find_one({"_id": "t0"})
        assert left is not None
        await store.closed.insert_one(left)
        with commands.record() as sent:
            assert await store.close_finished() == 6
        assert [name for name, _ in sent][:2] == ["find", "find"]
        assert sent[0] == ("find", "tasks") and sent[1] == ("find", "outbox_pending")
        assert ("insert", "tasks_history") in sent and sent[-1] == ("delete", "tasks")
        assert await store.tasks.count_documents({"unit_id": "U"}) == 0
        assert await store.closed.count_documents({"unit_id": "U"}) == 6
        for i in range(6, 10):  # a batch with nothing copied before: four commands
            task = review_task(
                id=f"t{i}", dossier_code=f"D{i}", state="receiving", created_at=now, unit_id="U"
            )
            await store.create(task, [])
            decided = steps.take_action(
                task, ONE, CHIEF, "refuse", "x", now=now, calendar=CALENDAR, source="s"
            )
            assert await store.save(task, replace(decided, events=[]))
        with commands.record() as sent:
            assert await store.close_finished() == 4
        assert sent == [
            ("find", "tasks"),
            ("find", "outbox_pending"),
            ("insert", "tasks_history"),
            ("delete", "tasks"),
        ]


async def test_finished_tasks_move_to_history_once_even_with_two_movers(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    one = await _store(mongo, isolation)
    two = TaskStore(mongo[isolation.database("review")], _nowhere)  # a second replica
    now = datetime.now(UTC)
    for i in range(5):
        task = review_task(
            id=f"t{i}", dossier_code=f"D{i}", state="receiving", created_at=now, unit_id="U"
        )
        await one.create(task, [])
        if i < 3:  # three finish, two stay open
            decided = steps.take_action(
                task, ONE, CHIEF, "refuse", "x", now=now, calendar=CALENDAR, source="s"
            )
            assert await one.save(task, replace(decided, events=[]))
    moved = await asyncio.gather(mover.move_all(one), mover.move_all(two))
    assert sum(moved) >= 3  # both may copy; each task leaves `tasks` once
    live = [d["_id"] async for d in one.tasks.find({"_id": {"$gte": ""}})]
    assert sorted(live) == ["t3", "t4"]
    assert await one.closed.count_documents({"unit_id": "U"}) == 3
    finished = await one.load("t0")
    assert finished is not None and finished.state == "refused" and not finished.is_open
    by_code = await one.by_dossier("D1")
    assert by_code is not None and by_code.id == "t1"
    assert await mover.move_all(one) == 0
    page = await handlers.finished(CHIEF, tasks=one, limit=2)
    rest = await handlers.finished(CHIEF, tasks=one, cursor=page.next_cursor, limit=2)
    assert len(page.tasks) == 2 and len(rest.tasks) == 1 and rest.next_cursor is None
    assert {t.id for t in page.tasks + rest.tasks} == {"t0", "t1", "t2"}


async def test_a_queue_pages_by_due_time_stable_under_ties_and_a_chiefs_page_is_one_query(
    isolation: Isolation,
) -> None:
    async with counted(isolation) as (client, commands):
        store = await _store(client, isolation)
        t0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
        dues = [t0 + timedelta(hours=h) for h in (5, 1, 3, 3, 3, 2)] + [None, None]
        for i, due in enumerate(dues):
            holder = "o1" if i % 2 else "o2"
            await store.create(
                review_task(
                    id=f"t{i}", dossier_code=f"D{i}", unit_id="U", officer_id=holder, due_at=due
                ),
                [],
            )
        await store.create(review_task(id="x", dossier_code="X", unit_id="OTHER", due_at=t0), [])
        pages, cursor = [], None
        while True:
            with commands.record() as sent:
                page = await handlers.queue(
                    CHIEF, tasks=store, clock=lambda: t0, cursor=cursor, limit=3
                )
            assert sent == [("find", "tasks")]  # one indexed query per page
            pages.append([t.id for t in page.tasks])
            cursor = page.next_cursor
            if cursor is None:
                break
        # Not overdue: due later than now, or never (a task without a deadline is never late).
        later = await handlers.queue(
            CHIEF, tasks=store, clock=lambda: t0 + timedelta(hours=2, minutes=30), overdue=False
        )
        assert [t.id for t in later.tasks] == ["t2", "t3", "t4", "t0", "t6", "t7"]
    flat = [i for p in pages for i in p]
    assert flat == ["t1", "t5", "t2", "t3", "t4", "t0", "t6", "t7"]
    assert [len(p) for p in pages] == [3, 3, 2]


async def _chief_approves(store: TaskStore) -> Task:
    """The chief approves task t1, as the action route does."""
    return await handlers.act(
        "t1",
        "approve",
        None,
        officer=CHIEF,
        tasks=store,
        workflows=WORKFLOWS,
        calendar=CALENDAR,
        clock=lambda: datetime.now(UTC),
        publish=store.publish,
        source="urn:test",
    )


async def test_an_officer_action_costs_three_round_trips_and_one_publish(
    isolation: Isolation,
) -> None:
    broker = Broker(isolation.amqp_url, service="test")
    await broker.connect()
    published: list[Event] = []

    async def publish(event: Event) -> None:
        published.append(event)
        await broker.publish(event)

    async with counted(isolation) as (client, commands):
        store = await _store(client, isolation, publish)
        task = review_task(state="checking", created_at=datetime.now(UTC))
        await store.create(task, [])
        async with observe(isolation.amqp_url):
            with commands.record() as sent:
                done = await _chief_approves(store)
                answered = list(sent)
                await store.outbox.drain()
        raw = await store.tasks.find_one({"_id": "t1"})
    await broker.close()
    assert raw is not None and INLINE_PENDING not in raw and INLINE_SINCE not in raw
    assert done.state == "decided"
    assert sent == [
        ("find", "tasks"),  # load the open task by key
        ("update", "tasks"),  # the step, guarded by the version, its event marked unpublished
        ("update", "tasks"),  # published: clear the mark (with others asked for meanwhile)
    ]
    assert answered == sent[:2]  # the officer has the answer before the clear is written
    assert [e.type for e in published] == ["dossier.approved"]


async def test_a_step_that_follows_before_the_last_clear_leaves_its_ids_out_and_no_clear_goes(
    isolation: Isolation,
) -> None:
    """An officer's next click often comes before the last step's clear is written (it waits
    to go with others). The step's write leaves the published ids out of the mark it carries
    forward, so the waiting clear has nothing left to do and is dropped: a clear that landed
    between the load and the write is not undone, and the relay publishes nothing twice."""
    published: list[Event] = []

    async def publish(event: Event) -> None:
        published.append(event)

    async with counted(isolation) as (client, commands):
        store = await _store(client, isolation, publish)
        task = review_task(state="checking", created_at=datetime.now(UTC))
        created = submitted_event()
        stored, _ = await store.create(task, [created])
        store.outbox.linger = 2.0  # its clear waits longer than the action takes, however slow
        await store.publish([created])  # published; its clear waits
        assert store.outbox.published(store.tasks, "t1") == {created.id}
        with commands.record() as sent:
            done = await _chief_approves(store)
        stepped = [e.id for e in published[1:]]  # the action's events
        marked = await store.tasks.find_one({"_id": "t1"})
        assert marked is not None and marked[INLINE_PENDING] == stepped  # created left out
        clears = store.outbox._clears["tasks"]
        assert [ids for _, ids in clears.waiting] == [stepped]  # the created one's was dropped
        with commands.record() as cleared:
            await store.outbox.drain()
        raw = await store.tasks.find_one({"_id": "t1"})
        assert await store.outbox.relay_once(older_than=timedelta(0)) == 0
    assert stored.unpublished == (created.id,)  # the action loaded the mark still there
    assert done.state == "decided"
    assert raw is not None and INLINE_PENDING not in raw and INLINE_SINCE not in raw
    assert sent == [("find", "tasks"), ("update", "tasks")]  # load, the step
    assert cleared == [("update", "tasks")]  # one clear, exactly the step's events
    assert [e.type for e in published][:2] == ["dossier.submitted", "dossier.approved"]


async def test_a_clear_that_lands_between_a_steps_load_and_its_write_is_not_undone(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """The step loaded the task while its mark still held a published event; the clear
    landed before the step's write (a slow decision). The write must not mark it again, or
    the relay would publish it a second time."""
    published: list[Event] = []

    async def publish(event: Event) -> None:
        published.append(event)

    store = await _store(mongo, isolation, publish)
    created = submitted_event()
    await store.create(review_task(state="checking", created_at=datetime.now(UTC)), [created])
    await store.publish([created])
    before = await store.load("t1")
    assert before is not None and before.unpublished == (created.id,)
    await store.outbox.drain()  # the clear lands
    decided = steps.take_action(
        before, ONE, CHIEF, "approve", None, now=datetime.now(UTC), calendar=CALENDAR, source="s"
    )
    assert await store.save(before, replace(decided, events=[]))
    raw = await store.tasks.find_one({"_id": "t1"})
    assert raw is not None and INLINE_PENDING not in raw and INLINE_SINCE not in raw
    assert await store.outbox.relay_once(older_than=timedelta(0)) == 0
    assert published == [created]


async def test_a_database_of_the_old_shape_is_upgraded_once_at_start(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Tasks written before tasks held their steps: the task a projection left behind by a
    crash, its steps in `transitions`, its reminder already fired."""
    db = mongo[isolation.database("review")]
    store = await _store(mongo, isolation)
    t0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    old = to_doc(
        review_task(
            state="receiving",
            created_at=t0,
            remind_at=t0 + timedelta(hours=1),
            due_at=t0 + timedelta(hours=2),
        )
    )
    for field_name in ("queue_key", "queue_at", "steps", "timer_at", "timer_kind"):
        old.pop(field_name)
    old["outbox"] = []
    await db["tasks"].insert_one(old)
    await db["transitions"].insert_one(
        {
            "_id": "t1:2",
            "task_id": "t1",
            "version": 2,
            "action": "receive",
            "state": "checking",
            "terminal": False,
            "status_code": 4,
            "decided_by": "o1",
            "decided_at": t0,
            "officer_id": "o1",
            "remind_at": t0 + timedelta(hours=1),
            "due_at": t0 + timedelta(hours=2),
            "outbox": [],
        }
    )
    await db["timers_fired"].insert_one({"_id": "t1:checking:20261201T030000:reminder"})
    assert await upgrade(db) == 1
    assert await upgrade(db) == 0  # once
    task = await store.load("t1")
    assert task is not None and (task.state, task.version) == ("checking", 2)
    assert [s.action for s in task.steps] == ["receive"]
    assert (task.timer_at, task.timer_kind) == (t0 + timedelta(hours=2), "overdue")
    page = await handlers.queue(CHIEF, tasks=store, clock=lambda: t0)
    assert [t.id for t in page.tasks] == ["t1"]


async def test_a_supplement_requests_documents_are_kept_and_older_steps_load_without(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await _store(mongo, isolation)
    task = review_task(state="checking", created_at=datetime.now(UTC))
    await store.create(task, [])
    asked = steps.take_action(
        task,
        ONE,
        HOLDER,
        "request_supplement",
        "Ảnh chụp mờ",
        now=datetime.now(UTC),
        calendar=CALENDAR,
        source="urn:test",
        missing=["ct01"],
    )
    assert await store.save(task, asked)
    loaded = await store.load("t1")
    assert loaded is not None and loaded.steps[-1].missing == ("ct01",)
    # A step stored before supplement requests named documents has no `missing`: none.
    raw = await store.tasks.find_one({"_id": "t1"})
    assert raw is not None
    for step in raw["steps"]:
        del step["missing"]
    await store.tasks.replace_one({"_id": "t1"}, raw)
    older = await store.load("t1")
    assert older is not None and older.steps[-1].missing == ()


async def test_open_counts_are_read_once_kept_current_by_own_writes_and_read_again_when_old(
    isolation: Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The least-loaded choice reads a unit's counts with one `$group`, then follows this
    process's own writes (an assignment, a step to a decision) without reading again; another
    replica's writes are seen once the counts are `LOADS_KEPT` old; callers that find them old
    at once share one read."""
    async with counted(isolation) as (client, commands):
        store = await _store(client, isolation)
        now = datetime.now(UTC)
        await store.create(review_task(id="t1", dossier_code="D1", created_at=now), [])
        with commands.record() as sent:
            assert await store.open_counts("U") == {"o1": 1}
            await store.create(
                review_task(id="t2", dossier_code="D2", officer_id="o2", created_at=now), []
            )
            assert await store.open_counts("U") == {"o1": 1, "o2": 1}
            receiving = review_task(id="t3", dossier_code="D3", created_at=now)
            await store.create(receiving, [])
            assert await store.open_counts("U") == {"o1": 2, "o2": 1}
            decision = steps.take_action(
                receiving, ONE, HOLDER, "refuse", "thiếu", now=now, calendar=CALENDAR, source="u"
            )
            assert await store.save(receiving, decision)  # refused: no longer open
            assert await store.open_counts("U") == {"o1": 1, "o2": 1}
            # Another replica assigns t4 to o2: not seen until the counts are old.
            other = review_task(id="t4", dossier_code="D4", officer_id="o2", created_at=now)
            await client[isolation.database("review")]["tasks"].insert_one(to_doc(other))
            assert await store.open_counts("U") == {"o1": 1, "o2": 1}
            monkeypatch.setattr("services.review.store.LOADS_KEPT", 0.0)
            assert await store.open_counts("U") == {"o1": 1, "o2": 2}
            # Ten assignments at once find the counts old: they share one read.
            together = await asyncio.gather(*(store.open_counts("U") for _ in range(10)))
            assert together == [{"o1": 1, "o2": 2}] * 10
    assert [c for c in sent if c[0] == "aggregate"] == [("aggregate", "tasks")] * 3
