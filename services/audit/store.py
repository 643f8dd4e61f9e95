"""Audit's MongoDB adapter: the `events` collection, one document per event id."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.clock import utcnow
from shared.contracts import Event
from shared.storage import Document


class AuditStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.events = db["events"]

    async def setup(self) -> None:
        await self.events.create_index([("dossier_code", 1), ("time", 1), ("recorded_at", 1)])

    async def record(self, event: Event) -> bool:
        """Store the event once; False if it was already recorded (a redelivery)."""
        doc = event.model_dump(mode="json")
        doc.update(
            _id=event.id,
            dossier_code=event.subject,
            time=event.time,
            recorded_at=utcnow(),
        )
        doc.pop("id", None)
        try:
            await self.events.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def timeline(self, dossier_code: str) -> list[Document]:
        """The dossier's events in order of occurrence."""
        cursor = self.events.find({"dossier_code": dossier_code}).sort(
            [("time", 1), ("recorded_at", 1)]
        )
        return [doc async for doc in cursor]
