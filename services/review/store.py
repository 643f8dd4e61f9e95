"""Review's MongoDB adapter: `tasks` (one per dossier) and their `transitions`.

A task changes state by inserting its next transition with `_id = "<task id>:<version>"`: of two
officers deciding at once, exactly one insert succeeds, on MongoDB and FerretDB alike (FerretDB
1.24 does not isolate conditional updates, so they cannot be the arbiter). Each transition
carries the events it emits (its outbox). The task document is a projection of its latest
transition, refreshed after each one and repaired on read if a crash left it behind.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.review.domain import Schedule, Task
from shared.clock import utcnow
from shared.contracts import Event
from shared.outbox import Outbox, Publish, outbox_fields
from shared.storage import Document

PROJECTED = (
    "officer_id",
    "promised_at",
    "paused_at",
    "paused_from",
    "paused_due_at",
    "state",
    "version",
    "terminal",
    "status_code",
    "decided_by",
    "decided_at",
    "reason",
    "state_since",
    "remind_at",
    "due_at",
)


class TaskStore:
    def __init__(self, db: AsyncDatabase[Document], publish: Publish) -> None:
        self.tasks = db["tasks"]
        self.transitions = db["transitions"]
        self.fired = db["timers_fired"]
        self.outbox = Outbox(
            db, publish, service="review", sources=[self.tasks, self.transitions, self.fired]
        )

    async def setup(self) -> None:
        await self.tasks.create_index("dossier_code", unique=True)
        await self.tasks.create_index([("officer_id", 1), ("terminal", 1)])
        await self.transitions.create_index([("task_id", 1), ("version", DESCENDING)])

    async def by_dossier(self, dossier_code: str) -> Document | None:
        return await self.tasks.find_one({"dossier_code": dossier_code})

    async def get(self, task_id: str) -> Task | None:
        doc = await self.tasks.find_one({"_id": task_id})
        if doc is None:
            return None
        latest = await self.transitions.find_one(
            {"task_id": task_id}, sort=[("version", DESCENDING)]
        )
        if latest is not None and latest["version"] > doc.get("version", 1):
            doc.update({k: latest.get(k) for k in PROJECTED})
            await self._project(task_id, latest)
        return to_task(doc)

    async def create(self, task: Task, events: list[Event]) -> tuple[Document, bool]:
        """Insert the task with its events; if the dossier already has one, return that."""
        doc: Document = {
            "_id": task.id,
            "dossier_code": task.dossier_code,
            "procedure_code": task.procedure_code,
            "unit_id": task.unit_id,
            "officer_id": task.officer_id,
            "state": task.state,
            "version": task.version,
            "workflow": task.workflow,
            "workflow_version": task.workflow_version,
            "terminal": task.terminal,
            "status_code": task.status_code,
            "state_since": task.created_at,
            "remind_at": task.remind_at,
            "due_at": task.due_at,
            "promised_at": task.promised_at,
            "created_at": task.created_at,
            "correlation_id": task.correlation_id,
            "dossier": dict(task.dossier),
            "updated_at": utcnow(),
            **outbox_fields(events),
        }
        await self.outbox.expect(self.tasks, task.id, events)
        try:
            await self.tasks.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.by_dossier(task.dossier_code)
            assert existing is not None
            return existing, False
        return doc, True

    async def open_counts(self, officer_ids: list[str]) -> dict[str, int]:
        return {
            oid: await self.tasks.count_documents({"officer_id": oid, "terminal": False})
            for oid in officer_ids
        }

    async def transition(
        self,
        task: Task,
        *,
        state: str,
        actor: str,
        at: datetime,
        reason: str | None,
        events: list[Event],
        schedule: Schedule,
        action: str = "",
        terminal: bool = False,
        status_code: int = 0,
        officer_id: str | None,
    ) -> Document | None:
        """Move `task` from its current version to the next; None if someone else did first.
        `officer_id` is who holds the task after it (None: released to the unit)."""
        version = task.version + 1
        doc: Document = {
            "_id": f"{task.id}:{version}",
            "task_id": task.id,
            "version": version,
            "state": state,
            "action": action,
            "terminal": terminal,
            "status_code": status_code,
            "state_since": at if state != task.state else task.state_since or task.created_at,
            "officer_id": officer_id,
            **schedule.fields(),
            "decided_by": actor,
            "decided_at": at,
            "reason": reason,
            "updated_at": utcnow(),
            **outbox_fields(events),
        }
        await self.outbox.expect(self.transitions, doc["_id"], events)
        try:
            await self.transitions.insert_one(doc)
        except DuplicateKeyError:
            return None
        await self._project(task.id, doc)
        return doc

    async def _project(self, task_id: str, transition: Document) -> None:
        # Best effort: if this is lost (crash, or a racing write on FerretDB), reads repair it.
        with contextlib.suppress(Exception):
            await self.tasks.update_one(
                {"_id": task_id, "version": {"$lt": transition["version"]}},
                {"$set": {k: transition.get(k) for k in PROJECTED}},
            )

    async def fire(self, claim_id: str, events: list[Event]) -> Document | None:
        """Record a timer's firing once (an insert: one winner across replicas and restarts),
        with the events it emits; None if it had fired already."""
        doc: Document = {"_id": claim_id, "fired_at": utcnow(), **outbox_fields(events)}
        await self.outbox.expect(self.fired, claim_id, events)
        try:
            await self.fired.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

    async def escalate(self, task_id: str, supervisor: str) -> None:
        # Only the timer that won the firing writes this field.
        await self.tasks.update_one({"_id": task_id}, {"$set": {"escalated_to": supervisor}})

    async def history(self, task_id: str) -> list[Document]:
        """The task's transitions, oldest first."""
        cursor = self.transitions.find({"task_id": task_id}).sort("version", 1)
        return [
            {
                k: doc.get(k)
                for k in (
                    "version",
                    "action",
                    "state",
                    "officer_id",
                    "decided_by",
                    "decided_at",
                    "reason",
                    "promised_at",
                )
            }
            async for doc in cursor
        ]

    async def open_tasks(self, query: dict[str, Any]) -> list[Task]:
        cursor = self.tasks.find({**query, "terminal": False}).sort("created_at", 1)
        tasks = [to_task(doc) async for doc in cursor]
        # Drop any whose projection lags behind a transition already taken.
        fresh = [await self.get(t.id) for t in tasks]
        return [t for t in fresh if t is not None and t.is_open]


def to_task(doc: Document) -> Task:
    return Task(
        id=doc["_id"],
        dossier_code=doc["dossier_code"],
        procedure_code=doc["procedure_code"],
        unit_id=doc["unit_id"],
        officer_id=doc.get("officer_id"),
        state=doc["state"],
        version=doc.get("version", 1),
        workflow=doc.get("workflow", "one-level"),
        workflow_version=doc.get("workflow_version", 1),
        terminal=doc.get("terminal", False),
        status_code=doc.get("status_code", 1),
        state_since=doc.get("state_since", doc["created_at"]),
        remind_at=doc.get("remind_at"),
        due_at=doc.get("due_at"),
        escalated_to=doc.get("escalated_to"),
        promised_at=doc.get("promised_at"),
        paused_at=doc.get("paused_at"),
        paused_from=doc.get("paused_from"),
        paused_due_at=doc.get("paused_due_at"),
        created_at=doc["created_at"],
        correlation_id=doc["correlation_id"],
        dossier=doc.get("dossier", {}),
        decided_by=doc.get("decided_by"),
        decided_at=doc.get("decided_at"),
        reason=doc.get("reason"),
    )
