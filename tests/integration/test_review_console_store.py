"""Review's store serving the officer console, against the real MongoDB-wire server: queues by
stage and ward, the counts per stage (with overdue and due soon) in one indexed aggregate per
scope, the search by phone over open and finished tasks, and the upgrade that gives tasks of
before their stage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.review import handlers, lookup, mover
from services.review.roster import Officer
from services.review.store import TaskStore, to_doc
from services.review.upgrade import upgrade
from shared.contracts import Event
from shared.storage import Document
from tests.conftest import Isolation
from tests.factories import review_task

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # Tuesday 10:00 in Hà Nội
CHIEF = Officer(id="c1", name="C", role="chief", unit="U")
HOLDER = Officer(id="o1", name="A", role="officer", unit="U")


async def _nowhere(event: Event) -> None:
    raise AssertionError("must not publish")


def _task(task_id: str, **changes: Any) -> Any:
    phone = changes.pop("phone", "+84912345678")
    ward = changes.pop("ward", "00004")
    fields: dict[str, Any] = {
        "id": task_id,
        "dossier_code": f"D-{task_id}",
        "created_at": NOW - timedelta(hours=3),
        "state_since": NOW - timedelta(hours=3),
        "status_code": 1,
        "due_at": NOW + timedelta(days=2),
        "remind_at": NOW + timedelta(days=1),
        "dossier": {"ward_code": ward, "applicant": {"full_name": "Nguyễn Văn A", "phone": phone}},
    }
    fields.update(changes)
    return review_task(**fields)


async def _store(mongo: AsyncMongoClient[Document], isolation: Isolation) -> TaskStore:
    store = TaskStore(mongo[isolation.database("review")], _nowhere)
    await store.setup()
    return store


async def _seed(store: TaskStore) -> None:
    for task in [
        _task("a", due_at=NOW - timedelta(hours=1), remind_at=NOW - timedelta(hours=2)),
        _task("b", remind_at=NOW - timedelta(minutes=5), due_at=NOW + timedelta(hours=1)),
        _task("c", state="checking", status_code=4, officer_id=None, ward="00070"),
        _task(
            "d",
            state="supplement",
            status_code=5,
            due_at=None,
            remind_at=None,
            paused_at=NOW - timedelta(hours=1),
            phone="+84987654321",
        ),
        _task("e", unit_id="V", officer_id="x1"),
    ]:
        await store.create(task, [])


async def test_the_counts_per_stage_come_from_one_aggregate_over_open_tasks(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await _store(mongo, isolation)
    await _seed(store)
    counts = await lookup.counts(CHIEF, tasks=store, clock=lambda: NOW, scope=None)
    assert {s: (c.total, c.overdue, c.due_soon) for s, c in counts.stages.items()} == {
        "reception": (2, 1, 1),
        "in_process": (1, 0, 0),
        "waiting_citizen": (1, 0, 0),
        "handover": (0, 0, 0),
    }
    mine = await lookup.counts(HOLDER, tasks=store, clock=lambda: NOW, scope="mine")
    assert mine.total == 3  # a, b and d: c was released to the unit
    pool = await lookup.counts(HOLDER, tasks=store, clock=lambda: NOW, scope="unassigned")
    assert (pool.total, pool.stages["in_process"].total) == (1, 1)


async def test_the_queue_pages_one_stage_or_ward_soonest_due_first(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await _store(mongo, isolation)
    await _seed(store)

    async def codes(**filters: Any) -> list[str]:
        page = await handlers.queue(CHIEF, tasks=store, clock=lambda: NOW, **filters)
        return [t.id for t in page.tasks]

    assert await codes(stage="reception") == ["a", "b"]
    assert await codes(stage="waiting_citizen") == ["d"]
    assert await codes(ward="00070") == ["c"]
    assert await codes(due_soon=True) == ["b"]
    assert await codes(overdue=True) == ["a"]
    assert await codes(stage="reception", limit=1) == ["a"]
    first = await handlers.queue(CHIEF, tasks=store, clock=lambda: NOW, stage="reception", limit=1)
    assert first.next_cursor is not None
    rest = await handlers.queue(
        CHIEF, tasks=store, clock=lambda: NOW, stage="reception", cursor=first.next_cursor
    )
    assert [t.id for t in rest.tasks] == ["b"] and rest.next_cursor is None


async def test_a_phone_search_finds_open_and_finished_tasks_of_the_unit(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await _store(mongo, isolation)
    await _seed(store)
    done = await store.load("b")
    assert done is not None
    closed = replace(done, terminal=True, state="refused", status_code=3, due_at=None)
    await store.tasks.replace_one({"_id": "b"}, to_doc(closed))
    assert await mover.move_all(store) == 1
    found = await lookup.search(CHIEF, "0912 345 678", tasks=store)
    assert [t.id for t in found] == ["a", "c", "b"]  # open soonest due first, then finished
    assert [t.id for t in await lookup.search(CHIEF, "D-d", tasks=store)] == ["d"]
    assert await lookup.search(CHIEF, "D-e", tasks=store) == []  # another unit's


async def test_the_upgrade_gives_open_tasks_of_before_their_stage_once(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await _store(mongo, isolation)
    db = store.db
    old = to_doc(_task("a", state="checking", status_code=4))
    for derived in ("stage", "soon_at", "ward_code", "applicant_phone"):
        old.pop(derived)
    old["outbox"] = []
    await db["tasks"].insert_one(old)
    assert await upgrade(db) == 1
    assert await upgrade(db) == 0
    raw = await db["tasks"].find_one({"_id": "a"})
    assert raw is not None
    assert (raw["stage"], raw["ward_code"], raw["applicant_phone"]) == (
        "in_process",
        "00004",
        "+84912345678",
    )
    page = await handlers.queue(CHIEF, tasks=store, clock=lambda: NOW, stage="in_process")
    assert [t.id for t in page.tasks] == ["a"]
