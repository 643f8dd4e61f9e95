"""Notify's MongoDB adapter: applicants' contacts and the delivery log (with its outbox)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.contracts import Event
from shared.outbox import Outbox, Publish, outbox_push
from shared.storage import Document


class NotifyStore:
    def __init__(self, db: AsyncDatabase[Document], publish: Publish) -> None:
        self.recipients = db["recipients"]
        self.deliveries = db["deliveries"]
        self.outbox = Outbox(self.deliveries, publish, service="notify")

    async def setup(self) -> None:
        await self.deliveries.create_index("dossier_code")
        await self.deliveries.create_index("unpublished")

    async def remember(self, dossier_code: str, contact: dict[str, Any]) -> None:
        """Keep the applicant's contact for later notifications (idempotent)."""
        await self.recipients.update_one(
            {"_id": dossier_code}, {"$setOnInsert": contact}, upsert=True
        )

    async def recipient(self, dossier_code: str) -> Document | None:
        return await self.recipients.find_one({"_id": dossier_code})

    async def begin(self, delivery_id: str, fields: dict[str, Any]) -> Document:
        """Record an attempt before sending: create the delivery or count one more try."""
        now = datetime.now(UTC)
        try:
            doc: Document = {
                "_id": delivery_id,
                **fields,
                "status": "sending",
                "attempts": 1,
                "created_at": now,
                "updated_at": now,
                "outbox": [],
                "unpublished": [],
            }
            await self.deliveries.insert_one(doc)
            return doc
        except DuplicateKeyError:
            pass
        found = await self.deliveries.find_one_and_update(
            {"_id": delivery_id, "status": "sending"},
            {"$inc": {"attempts": 1}, "$set": {"updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if found is None:  # already settled: hand back the settled record
            found = await self.deliveries.find_one({"_id": delivery_id})
        assert found is not None
        return found

    async def settle(
        self, delivery_id: str, *, status: str, fields: dict[str, Any], event: Event
    ) -> Document | None:
        """Record the outcome and its event in one update (only once)."""
        return await self.deliveries.find_one_and_update(
            {"_id": delivery_id, "status": "sending"},
            {
                "$set": {"status": status, **fields, "updated_at": datetime.now(UTC)},
                "$push": outbox_push([event]),
            },
            return_document=ReturnDocument.AFTER,
        )
