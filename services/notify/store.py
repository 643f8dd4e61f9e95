"""Notify's MongoDB adapter: applicants' contacts and the delivery log (with its outbox)."""

from __future__ import annotations

import contextlib
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.clock import utcnow
from shared.contracts import Event
from shared.outbox import Outbox, Publish, outbox_fields
from shared.storage import Document


class NotifyStore:
    def __init__(self, db: AsyncDatabase[Document], publish: Publish) -> None:
        self.recipients = db["recipients"]
        self.deliveries = db["deliveries"]
        self.attempts = db["delivery_attempts"]
        self.outbox = Outbox(db, publish, service="notify", sources=[self.deliveries])

    async def setup(self) -> None:
        await self.deliveries.create_index("dossier_code")
        await self.attempts.create_index("delivery_id")

    async def remember(self, dossier_code: str, contact: dict[str, Any]) -> None:
        """Keep the applicant's contact for later notifications (idempotent)."""
        await self.recipients.update_one(
            {"_id": dossier_code}, {"$setOnInsert": contact}, upsert=True
        )

    async def recipient(self, dossier_code: str) -> Document | None:
        return await self.recipients.find_one({"_id": dossier_code})

    async def begin(self, delivery_id: str, fields: dict[str, Any]) -> tuple[Document, bool]:
        """Record an attempt before sending. Returns the delivery, and whether this caller holds
        the attempt and so may send: of two handlers of the same event at once, only one does."""
        now = utcnow()
        with contextlib.suppress(DuplicateKeyError):
            await self.deliveries.insert_one(
                {
                    "_id": delivery_id,
                    **fields,
                    "status": "sending",
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "outbox": [],
                }
            )
        delivery = await self.deliveries.find_one({"_id": delivery_id})
        assert delivery is not None
        if delivery["status"] != "sending":
            return delivery, False
        number = await self.attempts.count_documents({"delivery_id": delivery_id}) + 1
        try:
            await self.attempts.insert_one(
                {"_id": f"{delivery_id}#{number}", "delivery_id": delivery_id, "at": now}
            )
        except DuplicateKeyError:
            return delivery, False
        delivery["attempts"] = number
        return delivery, True

    async def settle(
        self, delivery: Document, *, status: str, fields: dict[str, Any], event: Event
    ) -> Document:
        """Record the outcome and its event in one update; only the attempt's holder calls it."""
        update = {
            "status": status,
            "attempts": delivery["attempts"],
            **fields,
            "updated_at": utcnow(),
            **outbox_fields([event]),
        }
        await self.outbox.expect(self.deliveries, delivery["_id"], [event])
        await self.deliveries.update_one({"_id": delivery["_id"]}, {"$set": update})
        return {**delivery, **update}
