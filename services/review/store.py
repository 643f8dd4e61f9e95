"""Review's MongoDB adapter: open tasks live in `tasks`, finished ones in `tasks_history`.

A task is one document holding its state, its own bounded history (`steps`) and every event
it emitted (`outbox`). Queues sort by one string field, `queue_key` (due moment, then id),
because nx-27017 refuses an index with `_id` among its keys ("JSON path error near '_id'").
A step is one conditional update guarded by the version it was decided
on: of two officers deciding at once exactly one update matches (MongoDB and nx-27017 isolate
single-document updates), the other gets a conflict. The update itself marks the step's
events unpublished (shared.outbox's inline scheme: `outbox_pending` ids and
`outbox_pending_since` in the task), so a crash between the write and the publish leaves the
relay something to publish. An officer action is thus: load (1), update (2), publish, clear
the mark (3). (Pointers in the `outbox_pending` collection, the scheme before, are still
relayed, and a timer's firing still uses one.)

Finished tasks are moved to `tasks_history` by a background mover (woken by the terminal step,
idempotent: copy, then delete while finished), once no event of theirs waits in the
outbox (no mark, no pointer). Timers are the open tasks' `timer_at`, indexed; their firing is
an insert into `timers_fired` keyed by the deadline, so it happens once across replicas and
restarts.
This module records facts only: every decision was made in domain.py / steps.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.review.access import NO_DUE, Position, Scope, history_position, queue_position
from services.review.deadlines import Firing
from services.review.directory import INDEXES as DIRECTORY_INDEXES
from services.review.domain import Task, Transition
from services.review.ports import QueueFilter, StageCount
from services.review.stages import phone_of, soon_at, stage_count, stage_of, ward_of
from services.review.steps import Decision
from services.review.timers import Alarm
from shared.clock import utcnow
from shared.contracts import Event
from shared.outbox import (
    INLINE_PENDING,
    INLINE_SINCE,
    Outbox,
    Publish,
    events_of,
    inline_fields,
    inline_indexes,
    inline_set,
    outbox_fields,
)
from shared.storage import Document, Indexes, ensure_indexes

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LOADS_KEPT = 2.0  # seconds a unit's open counts are used before they are read again

INDEXES: Indexes = {
    "tasks": [
        IndexModel("dossier_code", unique=True),
        IndexModel([("unit_id", ASCENDING), ("queue_key", ASCENDING)]),
        IndexModel([("officer_id", ASCENDING), ("queue_key", ASCENDING)]),
        IndexModel([("escalated_to", ASCENDING), ("queue_key", ASCENDING)]),
        # A stage's queue, and its counts (by the prefix unit or holder, then stage).
        IndexModel([("unit_id", ASCENDING), ("stage", ASCENDING), ("queue_key", ASCENDING)]),
        IndexModel([("officer_id", ASCENDING), ("stage", ASCENDING), ("queue_key", ASCENDING)]),
        IndexModel([("applicant_phone", ASCENDING), ("queue_key", ASCENDING)]),  # search
        IndexModel("timer_at"),
        IndexModel("terminal"),
        IndexModel("promised_at"),  # overdue now, for the public-service index
    ],
    "tasks_history": [
        IndexModel("dossier_code", unique=True),
        IndexModel([("unit_id", ASCENDING), ("closed_key", DESCENDING)]),
        IndexModel([("officer_id", ASCENDING), ("closed_key", DESCENDING)]),
        IndexModel([("applicant_phone", ASCENDING), ("closed_key", DESCENDING)]),  # search
    ],
    "timers_fired": [],  # by _id only
    # Before tasks held their own steps (read once by upgrade.py, then never).
    "transitions": [IndexModel([("task_id", ASCENDING), ("version", DESCENDING)])],
    "outbox_pending": [IndexModel("created_at"), IndexModel("doc_id")],
    **DIRECTORY_INDEXES,
}
INDEXES = {**INDEXES, "tasks": [*INDEXES["tasks"], *inline_indexes("tasks")["tasks"]]}  # relay

_NOT_FIELDS = ("id", "steps", "dossier", "emitted", "unpublished", "unpublished_since")
_TASK_FIELDS = [f.name for f in fields(Task) if f.name not in _NOT_FIELDS]
_STEP_FIELDS = [f.name for f in fields(Transition)]


class TaskStore:
    def __init__(self, db: AsyncDatabase[Document], publish: Publish) -> None:
        self.db = db
        self.tasks = db["tasks"]
        self.closed = db["tasks_history"]
        self.fired = db["timers_fired"]
        # `transitions` held the events of the previous shape: a pointer left at one before an
        # upgrade is still published from there.
        self.outbox = Outbox(
            db,
            publish,
            service="review",
            sources=[self.tasks, self.fired, db["transitions"]],
            inline=[self.tasks],
        )
        self.timers_changed = Alarm()  # wakes the timer loop of this process, if it must
        self.task_finished = asyncio.Event()  # wakes the mover of this process
        self.loads: dict[str, tuple[float, Counter[str]]] = {}
        """Unit → (when read, its officers' open tasks): `open_counts`, kept current by this
        process's own writes and read again once `LOADS_KEPT` old (another replica's writes)."""
        self._reading: dict[str, asyncio.Future[Counter[str]]] = {}
        """Unit → its `$group` under way, shared by the callers that come meanwhile."""

    async def setup(self) -> None:
        await ensure_indexes(self.db, INDEXES)

    async def publish(self, events: list[Event]) -> list[Event]:
        """Publish stored events with confirms, in order, clearing their mark in the task this
        process wrote them into, or dropping their pointers (a timer's firing)."""
        return await self.outbox.publish_written(events)

    async def load(self, task_id: str) -> Task | None:
        doc = await self.tasks.find_one({"_id": task_id})
        if doc is None:
            doc = await self.closed.find_one({"_id": task_id})
        return to_task(doc) if doc else None

    async def by_dossier(self, dossier_code: str) -> Task | None:
        doc = await self.tasks.find_one({"dossier_code": dossier_code})
        if doc is None:
            doc = await self.closed.find_one({"dossier_code": dossier_code})
        return to_task(doc) if doc else None

    async def stored_events(self, task_id: str, caused_by: str) -> list[Event]:
        """The events the task recorded because of `caused_by` (for a redelivered input)."""
        doc = await self.tasks.find_one({"_id": task_id}, {"outbox": 1})
        if doc is None:
            doc = await self.closed.find_one({"_id": task_id}, {"outbox": 1})
        return events_of(doc or {}, caused_by=caused_by)

    async def open_counts(self, unit_id: str) -> dict[str, int]:
        """Each officer's open tasks in the unit, for the least-loaded choice. One `$group`
        per unit at a time, read again once `LOADS_KEPT` seconds old (it reads every open
        task of the unit: on nx-27017 it parses each whole document, the costliest command of
        an assignment); callers meanwhile share the read under way. In between, the count as
        read plus this process's own writes since: another replica's writes are seen at the
        next read, and one of ours that lands while the read is under way may be counted
        twice or not at all until then. A choice of who is least loaded, not a rule."""
        kept = self.loads.get(unit_id)
        if kept is not None and time.monotonic() - kept[0] < LOADS_KEPT:
            return {officer: n for officer, n in kept[1].items() if n > 0}
        reading = self._reading.get(unit_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read_counts(unit_id))
            self._reading[unit_id] = reading
            reading.add_done_callback(lambda done: self._read(unit_id, done))
        counts = await asyncio.shield(reading)  # a cancelled caller leaves it to the others
        return {officer: n for officer, n in counts.items() if n > 0}

    def _read(self, unit_id: str, done: asyncio.Future[Counter[str]]) -> None:
        """A read ended: the next stale caller starts another (its failure went to each
        caller waiting; retrieved here too, in case all of them were cancelled)."""
        self._reading.pop(unit_id, None)
        if not done.cancelled():
            done.exception()

    async def _read_counts(self, unit_id: str) -> Counter[str]:
        pipeline: list[Document] = [
            {"$match": {"unit_id": unit_id, "terminal": False}},
            {"$group": {"_id": "$officer_id", "n": {"$sum": 1}}},
        ]
        cursor = await self.tasks.aggregate(pipeline)
        counts = Counter({doc["_id"]: doc["n"] async for doc in cursor if doc["_id"] is not None})
        self.loads[unit_id] = (time.monotonic(), counts)
        return counts

    def _count(self, before: Task | None, after: Task) -> None:
        """Keep the kept open counts current with a write of ours (`before` → `after`)."""
        for task, change in ((before, -1), (after, 1)):
            if task is None or task.terminal or task.officer_id is None:
                continue
            kept = self.loads.get(task.unit_id)
            if kept is not None:
                kept[1][task.officer_id] += change

    async def create(self, task: Task, events: list[Event]) -> tuple[Task, bool]:
        doc = to_doc(task)
        doc.update(inline_fields(events))
        try:
            await self.tasks.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.by_dossier(task.dossier_code)
            assert existing is not None
            return existing, False
        self.outbox.marked(self.tasks, task.id, events)
        self._count(None, task)
        if task.timer_at is not None:
            self.timers_changed.set_for(task.timer_at)
        marked = tuple(doc.get(INLINE_PENDING, ()))
        since = doc.get(INLINE_SINCE)
        return replace(
            task, emitted=tuple(doc["outbox"]), unpublished=marked, unpublished_since=since
        ), True

    async def save(self, before: Task, decision: Decision) -> bool:
        if not await self._replace(before, decision.task, decision.events):
            return False  # lost the race: nothing written
        self.outbox.marked(self.tasks, before.id, decision.events)
        if decision.task.timer_at is not None:
            self.timers_changed.set_for(decision.task.timer_at)
        if decision.task.terminal:
            self.task_finished.set()
        return True

    async def _replace(self, before: Task, after: Task, events: list[Event]) -> bool:
        # A whole-document replace, not `$set`/`$push`: nx-27017 0.8.1 stores a datetime given
        # to `$set` as a string and a sub-document given to `$push` as a JSON string.
        doc = to_doc(after)
        loaded: Document = {"outbox": list(before.emitted)}
        # Still marked: the mark stays until they are published, except those this process
        # published (their clear goes after the step that published them, or went already).
        published = self.outbox.published(self.tasks, before.id)
        unpublished = [i for i in before.unpublished if i not in published]
        if unpublished:
            loaded |= {INLINE_PENDING: unpublished}
            loaded |= {INLINE_SINCE: before.unpublished_since or 0}
        doc |= loaded | inline_set(loaded, events)
        result = await self.tasks.replace_one({"_id": before.id, "version": before.version}, doc)
        if result.matched_count != 1:
            return False
        self.outbox.superseded(self.tasks, before.id, published & set(before.unpublished))
        self._count(before, after)
        return True

    async def queue(
        self, scopes: Sequence[Scope], where: QueueFilter, after: Position | None, limit: int
    ) -> list[Task]:
        found: dict[str, Task] = {}
        for scope in scopes:  # each an indexed range read; merged in the same order
            query: Document = {**_scope(scope), "terminal": False, **_where(where)}
            if after is not None:
                query["queue_key"] = {"$gt": after}
            cursor = self.tasks.find(query).sort("queue_key", ASCENDING).limit(limit)
            async for doc in cursor:
                found[doc["_id"]] = to_task(doc)
        return sorted(found.values(), key=queue_position)[:limit]

    async def finished(self, scope: Scope, after: Position | None, limit: int) -> list[Task]:
        query: Document = _scope(scope)
        if after is not None:
            query["closed_key"] = {"$lt": after}
        cursor = self.closed.find(query).sort("closed_key", DESCENDING).limit(limit)
        return [to_task(doc) async for doc in cursor]

    async def counts(self, scopes: Sequence[Scope], now: datetime) -> dict[str, StageCount]:
        # Per scope: the open tasks per stage (one `$group`, which nx-27017 runs in SQL), then
        # those due soon or overdue by now (one range read; only they come back). Not one
        # `$group` with `$cond`s: nx-27017 0.8.1 evaluates those document by document (600 ms
        # for 2,000 open tasks), and matches nothing for a datetime range in a `$match`.
        totals: dict[str, int] = {}
        late: dict[str, list[datetime]] = {}
        for scope in scopes:
            query: Document = {**_scope(scope), "terminal": False}
            grouped = [{"$match": query}, {"$group": {"_id": "$stage", "n": {"$sum": 1}}}]
            async for doc in await self.tasks.aggregate(grouped):
                totals[str(doc["_id"])] = totals.get(str(doc["_id"]), 0) + int(doc["n"])
            near = self.tasks.find({**query, "soon_at": {"$lte": now}}, {"stage": 1, "queue_at": 1})
            async for doc in near:
                late.setdefault(str(doc["stage"]), []).append(doc["queue_at"])
        return {stage: stage_count(n, late.get(stage, []), now) for stage, n in totals.items()}

    def past_promised(self, now: datetime) -> Any:
        """The open tasks past their promised date (only what the gauge needs of each)."""
        return self.tasks.find(
            {"promised_at": {"$lt": now}, "terminal": False},
            {"unit_id": 1, "procedure_code": 1, "paused_at": 1},
        )

    async def by_phone(self, phone: str, limit: int) -> list[Task]:
        query: Document = {"applicant_phone": phone}
        live = self.tasks.find(query).sort("queue_key", ASCENDING).limit(limit)
        found = [to_task(doc) async for doc in live]
        done = self.closed.find(query).sort("closed_key", DESCENDING).limit(limit)
        found += [to_task(doc) async for doc in done]
        return found[:limit]

    async def due_timers(self, now: datetime, limit: int) -> list[Task]:
        cursor = self.tasks.find({"timer_at": {"$lte": now}}).sort("timer_at", 1).limit(limit)
        return [to_task(doc) async for doc in cursor]

    async def next_timer(self) -> datetime | None:
        doc = await self.tasks.find_one(
            {"timer_at": {"$gt": EPOCH}}, {"timer_at": 1}, sort=[("timer_at", 1)]
        )
        return doc["timer_at"] if doc else None

    async def fire(self, firing: Firing) -> bool:
        doc: Document = {"_id": firing.key, "fired_at": utcnow(), **outbox_fields([firing.event])}
        await self.outbox.expect(self.fired, firing.key, [firing.event])
        try:
            await self.fired.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def timer_fired(self, before: Task, after: Task) -> bool:
        return await self._replace(before, after, [])

    async def close_finished(self, limit: int = 100) -> int:
        """Move up to `limit` finished tasks to history: a batch costs four commands however
        many it holds (find them, find which still have an unpublished event pointed at — those
        stay, as do those marked, for the relay reads them here —, copy, delete). A finished
        task never changes again, so a copy made twice (a crash between copy and delete, two
        replicas) is the same document."""
        docs = [doc async for doc in self.tasks.find({"terminal": True}).limit(limit)]
        if not docs:
            return 0
        ids = [doc["_id"] for doc in docs]
        pointed = self.outbox.pending.find({"doc_id": {"$in": ids}}, {"doc_id": 1})
        held = {pointer["doc_id"] async for pointer in pointed}
        moving = [doc for doc in docs if doc["_id"] not in held and not doc.get(INLINE_PENDING)]
        if not moving:
            return 0
        for doc in moving:
            doc["closed_key"] = history_position(to_task(doc))
        try:
            await self.closed.insert_many(moving, ordered=True)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
            # Some were copied by an earlier round that did not delete them: copy the rest one
            # by one (a whole document with its `_id`: nx-27017 takes none from an upsert's filter).
            for doc in moving:
                await self.closed.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        await self.tasks.delete_many({"_id": {"$in": [d["_id"] for d in moving]}, "terminal": True})
        return len(moving)


def _queue_at(task: Task) -> datetime:
    return task.due_at or NO_DUE


def _scope(scope: Scope) -> Document:
    query: Document = {}
    if scope.unit_id is not None:
        query["unit_id"] = scope.unit_id
    if scope.officer_id is not None:
        query["officer_id"] = scope.officer_id
    if scope.released:
        # `$eq`, not a bare None: nx-27017 0.8.1 matches nothing for a bare None in a `$match`
        # whose `$group` takes parameters (the counts); the same on MongoDB.
        query["officer_id"] = {"$eq": None}
    if scope.escalated_to is not None:
        query["escalated_to"] = scope.escalated_to
    if scope.outside_unit is not None:
        query["unit_id"] = {"$ne": scope.outside_unit}
    return query


def _where(where: QueueFilter) -> Document:
    query: Document = {}
    if where.state:
        query["state"] = where.state
    if where.procedure_code:
        query["procedure_code"] = where.procedure_code
    if where.stage:
        query["stage"] = where.stage
    if where.ward_code:
        query["ward_code"] = where.ward_code
    if where.soon_by is not None:
        query["soon_at"] = {"$lte": where.soon_by}
    due: Document = {}
    if where.due_before is not None:
        due["$lt"] = where.due_before
    if where.due_from is not None:
        due["$gte"] = where.due_from
    if due:
        query["queue_at"] = due
    return query


def step_doc(step: Transition) -> Document:
    doc = {k: getattr(step, k) for k in _STEP_FIELDS}
    doc["missing"] = list(step.missing)
    return doc


def _step(doc: Document) -> Transition:
    """A stored step; one stored before supplement requests named documents has none."""
    known: dict[str, Any] = {k: doc.get(k) for k in _STEP_FIELDS}
    known["missing"] = tuple(doc.get("missing") or ())
    return Transition(**known)


def to_doc(task: Task) -> Document:
    doc: Document = {"_id": task.id, **{k: getattr(task, k) for k in _TASK_FIELDS}}
    doc.update(
        dossier=dict(task.dossier),
        steps=[step_doc(s) for s in task.steps],
        queue_at=_queue_at(task),
        queue_key=queue_position(task),
        # Derived, for the console's queues, counts and search (see stages.py).
        stage=stage_of(task),
        soon_at=soon_at(task) or NO_DUE,
        ward_code=ward_of(task),
        applicant_phone=phone_of(task),
        updated_at=utcnow(),
    )
    return doc


def to_task(doc: Document) -> Task:
    known = {k: doc[k] for k in _TASK_FIELDS if k in doc}
    steps = tuple(_step(s) for s in doc.get("steps", []))
    return Task(
        id=doc["_id"],
        dossier=doc.get("dossier", {}),
        steps=steps,
        emitted=tuple(doc.get("outbox", [])),  # the next write keeps them: the relay reads them
        unpublished=tuple(doc.get(INLINE_PENDING, ())),
        unpublished_since=doc.get(INLINE_SINCE),
        **known,
    )
