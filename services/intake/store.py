"""Intake's MongoDB adapter: `dossiers` (each with its outbox) and their `statuses`.

Every write here is an insert, never a read-modify-write update: FerretDB 1.24 applies updates
(even conditional ones and `$inc`) as read-then-write without isolation, so concurrent updates
of one document can both "win" or lose each other's changes. A unique `_id` is enforced
atomically on both FerretDB and MongoDB, so inserts are what we build on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.intake.domain import Dossier, current_status, dossier_code, promised_date
from shared.clock import utcnow
from shared.contracts import Channel, Event
from shared.outbox import Outbox, Publish, outbox_fields
from shared.storage import Document

Build = Callable[[str], tuple[Dossier, list[Event]]]
MAX_CODE_TRIES = 1000


class DossierStore:
    """Dossiers keyed by their code; each document carries the events it emitted."""

    def __init__(self, db: AsyncDatabase[Document], publish: Publish) -> None:
        self.dossiers = db["dossiers"]
        self.statuses = db["statuses"]
        self.outbox = Outbox(db, publish, service="intake", sources=[self.dossiers, self.statuses])
        self._code_lock = asyncio.Lock()
        self._next_number: dict[str, int] = {}

    async def setup(self) -> None:
        await self.dossiers.create_index([("code_series", 1), ("code_number", DESCENDING)])
        await self.statuses.create_index([("dossier_code", 1), ("at", 1)])
        await self.dossiers.create_index("idempotency_key")

    async def add_new(
        self,
        agency: str,
        day: date,
        build: Build,
        *,
        idempotency_key: str | None = None,
        secret_sha256: str | None = None,
    ) -> tuple[Dossier, Document]:
        """Insert a dossier under the next free code of `agency` on `day`, with its events.

        The code is the document's `_id`, so two writers (even two intake replicas) can never
        take the same one: the loser of a race gets a duplicate key and takes the next number.
        """
        series = f"{agency}-{day:%y%m%d}"
        async with self._code_lock:  # one allocation at a time within this process
            number = self._next_number.get(series) or await self._highest(series) + 1
            for _ in range(MAX_CODE_TRIES):
                code = dossier_code(agency, day, number)
                dossier, events = build(code)
                doc = self._document(dossier, events, series, number)
                if idempotency_key is not None:
                    doc["idempotency_key"] = idempotency_key
                if secret_sha256 is not None:
                    doc["secret_sha256"] = secret_sha256
                await self.outbox.expect(self.dossiers, dossier.code, events)
                try:
                    await self.dossiers.insert_one(doc)
                except DuplicateKeyError:  # another replica took it: skip past its numbers
                    number = max(number + 1, await self._highest(series) + 1)
                    continue
                self._next_number[series] = number + 1
                return dossier, doc
        raise RuntimeError(f"no free dossier code in series {series}")

    async def _highest(self, series: str) -> int:
        doc = await self.dossiers.find_one(
            {"code_series": series}, sort=[("code_number", DESCENDING)], projection=["code_number"]
        )
        return int(doc["code_number"]) if doc else 0

    @staticmethod
    def _document(dossier: Dossier, events: list[Event], series: str, number: int) -> Document:
        return {
            "_id": dossier.code,
            "code_series": series,
            "code_number": number,
            "procedure_code": dossier.procedure_code,
            "channel": int(dossier.channel),
            "submitted_at": dossier.submitted_at,
            "submitted_by": dossier.submitted_by,
            "form": dossier.form,
            "procedure_version": dossier.procedure_version,
            "received_at": dossier.received_at,
            "promised_at": dossier.promised_at,
            "fee": dossier.fee,
            "notify_by": list(dossier.notify_by),
            "attachments": list(dossier.attachments),
            "updated_at": utcnow(),
            **outbox_fields(events),
        }

    async def get(self, code: str) -> Dossier | None:
        found = await self.get_with_access(code)
        return found[0] if found else None

    async def get_with_access(self, code: str) -> tuple[Dossier, Document] | None:
        """The dossier and what proves a citizen's access to it (secret hash, phone)."""
        doc = await self.dossiers.find_one({"_id": code})
        if doc is None:
            return None
        cursor = self.statuses.find({"dossier_code": code}).sort([("at", 1), ("_id", 1)])
        access = {
            "secret_sha256": doc.get("secret_sha256"),
            "phone": doc["form"].get("applicant", {}).get("phone"),
        }
        return _to_dossier(doc, [s async for s in cursor]), access

    async def by_idempotency_key(self, key: str) -> Dossier | None:
        doc = await self.dossiers.find_one({"idempotency_key": key}, projection=["_id"])
        return await self.get(doc["_id"]) if doc else None

    async def record_status(
        self,
        code: str,
        status: str,
        at: datetime,
        event_id: str,
        events: list[Event] = (),  # type: ignore[assignment]
        promised_at: datetime | None = None,
    ) -> Document | None:
        """Note that the dossier reached `status` (once per event id), with the events this
        emits; None if it was already noted."""
        doc: Document = {
            "_id": event_id,
            "dossier_code": code,
            "status": status,
            "at": at,
            "promised_at": promised_at,
            **outbox_fields(events),
        }
        await self.outbox.expect(self.statuses, event_id, events)
        try:
            await self.statuses.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

    async def correlation_id(self, code: str) -> str | None:
        """The correlation id of the dossier's events (that of its `dossier.submitted`)."""
        doc = await self.dossiers.find_one({"_id": code}, projection=["outbox"])
        outbox = (doc or {}).get("outbox") or [{}]
        value = outbox[0].get("correlationid")
        return str(value) if value else None

    async def exists(self, code: str) -> bool:
        return await self.dossiers.count_documents({"_id": code}, limit=1) > 0


def _to_dossier(doc: dict[str, Any], statuses: list[dict[str, Any]]) -> Dossier:
    history = [{"status": "submitted", "at": doc["submitted_at"]}] + [
        {"status": s["status"], "at": s["at"]} for s in statuses
    ]
    return Dossier(
        code=doc["_id"],
        procedure_code=doc["procedure_code"],
        channel=Channel(doc["channel"]),
        submitted_at=doc["submitted_at"],
        form=doc["form"],
        status=current_status(statuses),
        submitted_by=doc.get("submitted_by"),
        history=history,
        procedure_version=doc.get("procedure_version", 1),
        received_at=doc.get("received_at"),
        promised_at=promised_date(statuses, doc.get("promised_at")),
        fee=doc.get("fee"),
        notify_by=tuple(doc.get("notify_by", ())),
        attachments=tuple(doc.get("attachments", ())),
    )
