"""Audit's use case: record every event exactly once."""

from __future__ import annotations

import logging

from services.audit.store import AuditStore
from shared.contracts import Event

log = logging.getLogger(__name__)


async def record(event: Event, *, store: AuditStore) -> None:
    if not await store.record(event):
        log.info("event already recorded", extra={"event_id": event.id, "type": event.type})
