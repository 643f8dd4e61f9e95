"""Recording: every event stored once, masked, its pending marker first."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from services.audit import ledger
from services.audit.batching import Batcher
from services.audit.domain import Record, build_record
from services.audit.ports import LegacyLog
from services.audit.privacy import scrub
from services.audit.store import QUARANTINE
from shared.clock import Clock
from shared.contracts import Event, UndecodableEvent, load

log = logging.getLogger(__name__)
LEGACY_PAGE = 500


async def record(event: Event, *, batcher: Batcher, hmac_key: bytes, clock: Clock) -> None:
    """Store the event's record (masked) once; returns when it is durable."""
    await batcher.submit(record_of(event, hmac_key, clock))


def record_of(event: Event, hmac_key: bytes, clock: Clock) -> Record:
    """The record of `event` as stored, its time cut to the millisecond as MongoDB keeps it."""
    doc = build_record(event, hmac_key=hmac_key, recorded_at=clock())
    at: datetime = doc["time"]
    doc["time"] = ledger.to_millis(at if at.tzinfo else at.replace(tzinfo=UTC))
    return doc


async def adopt_legacy(*, store: LegacyLog, hmac_key: bytes, clock: Clock) -> int:
    """Record (masked) every event of the pre-ledger `events` collection, then drop it: its
    history joins the chains and no full identifier stays behind. A document that is no event
    any more is copied, scrubbed of identifiers, into `legacy_quarantine` for someone to look
    at. Safe to run again after a crash halfway: records and quarantined copies are stored
    once, and the old collection goes only at the end. Read a page at a time by `_id`."""
    adopted = 0
    unreadable: list[dict[str, Any]] = []
    after: str | None = None
    while page := await store.legacy_page(after, LEGACY_PAGE):
        batch: list[Record] = []
        for doc in page:
            fields = {
                k: v for k, v in doc.items() if k not in ("_id", "dossier_code", "recorded_at")
            }
            try:
                event = load({**fields, "id": doc["_id"]})
            except UndecodableEvent:
                log.error(
                    "legacy audit event %s cannot be read; kept, scrubbed, in %s",
                    doc["_id"],
                    QUARANTINE,
                )
                unreadable.append(scrub(doc, hmac_key))
                continue
            batch.append(record_of(event, hmac_key, clock))
        if batch:
            await store.insert_records(batch, hmac_key=hmac_key)
            adopted += len(batch)
        after = str(page[-1]["_id"])
    await store.quarantine(unreadable)
    if adopted or unreadable:
        log.info(
            "adopted %d events of the old audit log (%d unreadable, quarantined)",
            adopted,
            len(unreadable),
        )
    await store.drop_legacy()
    return adopted
