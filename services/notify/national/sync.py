"""The sync loop and the event handler: events queue operations in the dossier's sync document;
the loop claims due dossiers (a batch at a time), sends each one's next operation, and records
the outcome. It wakes on new work or at the next due retry (read from the `due` index)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from services.notify.national import domain
from services.notify.national.metrics import BACKLOG, LAST_SUCCESS
from services.notify.national.portal import Exists, Portal, PortalError
from services.notify.national.store import SyncStore
from shared.contracts import DossierSubmitted, Event

log = logging.getLogger(__name__)
LONGEST_SLEEP = 300.0  # a safety net: a write by another replica does not wake this one


class Sync:
    def __init__(
        self,
        store: SyncStore,
        portal: Portal,
        statuses: domain.StatusMap,
        clock: Callable[[], datetime],
        *,
        batch_size: int,
        lease: timedelta,
        retry_base_seconds: float,
        retry_max_seconds: float,
    ) -> None:
        self.store = store
        self.portal = portal
        self.statuses = statuses
        self.clock = clock
        self.batch_size = batch_size
        self.lease = lease
        self.retry_base = retry_base_seconds
        self.retry_max = retry_max_seconds
        self.wake = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        """The queue's handler: queue what the event asks of the portal (once per event id)."""
        ops = domain.operations(event)
        if not ops:
            return
        dossier = domain.snapshot(event) if isinstance(event, DossierSubmitted) else None
        if await self.store.enqueue(event.subject, event.id, ops, self.clock(), dossier):
            self.wake.set()

    async def resync(self, since: datetime, limit: int, marker: str) -> None:
        """Queue add, update and progress again for dossiers changed since `since`: each at its
        last known status (the portal takes an add of a known dossier as an update)."""
        now = self.clock()
        for doc in await self.store.changed_since(since, limit):
            dossier = doc.get("dossier")
            if dossier is None:
                continue
            status = int(doc.get("status", 1))
            marked = f"{marker}:{now.isoformat()}"
            base: dict[str, Any] = {
                "event_id": marked,
                "status": status,
                "at": now.isoformat(),
            }
            step = {**base, "who": "system", "what": "resync", "promised_at": None}
            # No progress step: a re-sync is ours, not a step of the dossier the citizen
            # should see in the portal's history.
            ops = [{**base, "kind": "add", "seq": 0}, {**step, "kind": "update", "seq": 0}]
            await self.store.enqueue(doc["_id"], marked, ops, now)
        self.wake.set()

    async def round(self) -> int:
        """Claim and send up to a batch of due dossiers, one operation each; how many."""
        claimed = []
        for _ in range(self.batch_size):
            got = await self.store.claim(self.clock(), self.lease)
            if got is None:
                break
            claimed.append(got)
        await asyncio.gather(*(self._one(claim, doc) for claim, doc in claimed))
        return len(claimed)

    async def _one(self, claim: str, doc: dict[str, Any]) -> None:
        code, ops, dossier = doc["_id"], list(doc.get("ops", [])), doc.get("dossier")
        index = domain.next_operation(ops, dossier)
        if index is None or dossier is None:
            await self.store.idle(code, claim, self.clock())
            return
        op = ops[index]
        kind = op["kind"]
        try:
            try:
                await self.portal.send(kind, domain.request(op, dossier, self.statuses, kind))
            except Exists:
                await self.portal.send(
                    "update", domain.request(op, dossier, self.statuses, "update")
                )
        except PortalError as exc:
            now = self.clock()
            delay = domain.backoff(int(doc.get("attempts", 0)) + 1, self.retry_base, self.retry_max)
            await self.store.failed(code, claim, now, now + delay, str(exc))
            log.warning("dvcqg: %s %s failed, retry in %s: %s", code, kind, delay, exc)
            return
        now = self.clock()
        await self.store.sent(code, claim, op, now)
        LAST_SUCCESS.set(now.timestamp())

    async def run_forever(self) -> None:
        while True:
            try:
                self.wake.clear()
                while await self.round():
                    pass
                BACKLOG.set(await self.store.backlog())
                due = await self.store.next_due()
                timeout = LONGEST_SLEEP
                if due is not None:
                    timeout = min(LONGEST_SLEEP, max(0.05, (due - self.clock()).total_seconds()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away for a moment: try again shortly
                log.exception("dvcqg: sync round failed")
                await asyncio.sleep(5)
