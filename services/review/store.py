"""Review's MongoDB adapter: the `tasks` collection, one document per dossier with its outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.review.domain import Task, TaskState
from shared.contracts import Event
from shared.outbox import Outbox, Publish, outbox_fields, outbox_push
from shared.storage import Document


class TaskStore:
    def __init__(self, db: AsyncDatabase[Document], publish: Publish) -> None:
        self.tasks = db["tasks"]
        self.outbox = Outbox(self.tasks, publish, service="review")

    async def setup(self) -> None:
        await self.tasks.create_index("dossier_code", unique=True)
        await self.tasks.create_index([("officer_id", 1), ("state", 1)])
        await self.tasks.create_index("unpublished")

    async def by_dossier(self, dossier_code: str) -> Document | None:
        return await self.tasks.find_one({"dossier_code": dossier_code})

    async def get(self, task_id: str) -> Task | None:
        doc = await self.tasks.find_one({"_id": task_id})
        return to_task(doc) if doc else None

    async def create(self, task: Task, events: list[Event]) -> tuple[Document, bool]:
        """Insert the task with its events; if the dossier already has one, return that."""
        doc: Document = {
            "_id": task.id,
            "dossier_code": task.dossier_code,
            "procedure_code": task.procedure_code,
            "unit_id": task.unit_id,
            "officer_id": task.officer_id,
            "state": task.state,
            "created_at": task.created_at,
            "correlation_id": task.correlation_id,
            "dossier": dict(task.dossier),
            "history": [{"state": task.state, "at": task.created_at, "by": "system"}],
            "updated_at": datetime.now(UTC),
            **outbox_fields(events),
        }
        try:
            await self.tasks.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.by_dossier(task.dossier_code)
            assert existing is not None
            return existing, False
        return doc, True

    async def open_counts(self, officer_ids: list[str]) -> dict[str, int]:
        return {
            oid: await self.tasks.count_documents({"officer_id": oid, "state": "assigned"})
            for oid in officer_ids
        }

    async def decide(
        self,
        task_id: str,
        *,
        state: TaskState,
        officer_id: str,
        at: datetime,
        reason: str | None,
        events: list[Event],
    ) -> Document | None:
        """Close an open task in one conditional update; None if it was not open any more."""
        return await self.tasks.find_one_and_update(
            {"_id": task_id, "state": "assigned"},
            {
                "$set": {
                    "state": state,
                    "decided_by": officer_id,
                    "decided_at": at,
                    "reason": reason,
                    "updated_at": datetime.now(UTC),
                },
                "$push": {
                    **outbox_push(events),
                    "history": {"state": state, "at": at, "by": officer_id},
                },
            },
            return_document=ReturnDocument.AFTER,
        )

    async def open_tasks(self, query: dict[str, Any]) -> list[Task]:
        cursor = self.tasks.find({**query, "state": "assigned"}).sort("created_at", 1)
        return [to_task(doc) async for doc in cursor]


def to_task(doc: Document) -> Task:
    return Task(
        id=doc["_id"],
        dossier_code=doc["dossier_code"],
        procedure_code=doc["procedure_code"],
        unit_id=doc["unit_id"],
        officer_id=doc["officer_id"],
        state=doc["state"],
        created_at=doc["created_at"],
        correlation_id=doc["correlation_id"],
        dossier=doc.get("dossier", {}),
        decided_by=doc.get("decided_by"),
        decided_at=doc.get("decided_at"),
        reason=doc.get("reason"),
    )
