"""Intake's MongoDB adapter: the `dossiers` collection (with its outbox) and daily counters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.intake.domain import STATUS_RANK, Dossier, dossier_code
from shared.contracts import Channel, Event
from shared.outbox import Outbox, Publish, outbox_fields
from shared.storage import Document


class DossierStore:
    """Dossiers keyed by their code; each document carries the events it emitted."""

    def __init__(self, db: AsyncDatabase[Document], publish: Publish) -> None:
        self.dossiers = db["dossiers"]
        self.counters = db["counters"]
        self.outbox = Outbox(self.dossiers, publish, service="intake")

    async def next_code(self, agency: str, day: date) -> str:
        """The next dossier code of `agency` on `day`; atomic, so never handed out twice."""
        key = f"{agency}-{day:%y%m%d}"
        for _ in range(3):
            try:
                counter = await self.counters.find_one_and_update(
                    {"_id": key},
                    {"$inc": {"n": 1}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                break
            except DuplicateKeyError:  # two first-of-the-day upserts raced; the loser retries
                continue
        else:
            raise RuntimeError(f"could not allocate a dossier code for {key}")
        assert counter is not None  # upsert with ReturnDocument.AFTER always returns one
        return dossier_code(agency, day, int(counter["n"]))

    async def add(self, dossier: Dossier, events: list[Event]) -> Document:
        """Store a new dossier together with the events it emits (one atomic insert)."""
        doc: Document = {
            "_id": dossier.code,
            "procedure_code": dossier.procedure_code,
            "channel": int(dossier.channel),
            "submitted_at": dossier.submitted_at,
            "submitted_by": dossier.submitted_by,
            "form": dossier.form,
            "status": dossier.status,
            "status_rank": STATUS_RANK[dossier.status],
            "history": [{"status": dossier.status, "at": dossier.submitted_at}],
            "updated_at": datetime.now(UTC),
            **outbox_fields(events),
        }
        await self.dossiers.insert_one(doc)
        return doc

    async def get(self, code: str) -> Dossier | None:
        doc = await self.dossiers.find_one({"_id": code})
        return _to_dossier(doc) if doc else None

    async def advance(self, code: str, status: str, at: datetime, event_id: str) -> bool:
        """Move the dossier to `status` unless it is already there or further on."""
        rank = STATUS_RANK[status]
        result = await self.dossiers.update_one(
            {"_id": code, "status_rank": {"$lt": rank}},
            {
                "$set": {"status": status, "status_rank": rank, "updated_at": datetime.now(UTC)},
                "$push": {"history": {"status": status, "at": at, "event_id": event_id}},
            },
        )
        return result.modified_count == 1

    async def exists(self, code: str) -> bool:
        return await self.dossiers.count_documents({"_id": code}, limit=1) > 0


def _to_dossier(doc: dict[str, Any]) -> Dossier:
    return Dossier(
        code=doc["_id"],
        procedure_code=doc["procedure_code"],
        channel=Channel(doc["channel"]),
        submitted_at=doc["submitted_at"],
        form=doc["form"],
        status=doc["status"],
        submitted_by=doc.get("submitted_by"),
        history=doc.get("history", []),
    )
