"""Notify's MongoDB adapter: applicants' contacts and the delivery log (with its outbox)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.contracts import Event, load
from shared.outbox import Outbox, Publish, outbox_fields
from shared.storage import Document

FINISHED = ("sent", "failed")


@dataclass(frozen=True)
class Claim:
    """What a handler may do with a delivery now.

    `send`: this handler holds a new attempt; `finished`: the outcome is recorded;
    `busy`: another attempt started less than a lease ago (`wait` seconds left);
    `not_due`: a retry is scheduled and will come back by itself;
    `exhausted`: every try was started and the last never recorded its outcome (the sender
    crashed or hung each time): the holder settles it as failed."""

    kind: Literal["send", "finished", "busy", "not_due", "exhausted"]
    delivery: Document
    wait: float = 0.0


class NotifyStore:
    def __init__(self, db: AsyncDatabase[Document], publish: Publish) -> None:
        self.recipients = db["recipients"]
        self.deliveries = db["deliveries"]
        self.attempts = db["delivery_attempts"]
        # One document per recorded outcome, `<delivery>#<n>`: inserted, never updated (updates
        # cost O(collection) on FerretDB; inserts and reads by _id do not).
        self.outcomes = db["delivery_outcomes"]
        self.triggers = db["trigger_events"]
        self.outbox = Outbox(
            db, publish, service="notify", sources=[self.deliveries, self.outcomes]
        )

    async def setup(self) -> None:
        await self.deliveries.create_index("dossier_code")
        await self.attempts.create_index("delivery_id")

    async def remember(self, dossier_code: str, contact: dict[str, Any]) -> None:
        """Keep the applicant's contact for later notifications (idempotent: the first stays)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.recipients.insert_one({"_id": dossier_code, **contact})

    async def recipient(self, dossier_code: str) -> Document | None:
        return await self.recipients.find_one({"_id": dossier_code})

    async def delivery(self, delivery_id: str) -> Document | None:
        doc = await self.deliveries.find_one({"_id": delivery_id})
        return await self.current(doc) if doc else None

    async def current(self, delivery: Document) -> Document:
        """The delivery as its latest recorded outcome and reopening leave it (read by _id)."""
        delivery_id = delivery["_id"]
        started = await self._started(delivery_id, 0)
        merged = dict(delivery)
        for number in (started, started - 1):  # the latest try, or the one before if under way
            outcome = await self.outcomes.find_one({"_id": f"{delivery_id}#{number}"})
            if number > 0 and outcome:
                merged.update({k: v for k, v in outcome.items() if k not in ("_id", "delivery_id")})
                break
        reopen = await self._latest_reopen(delivery_id)
        if reopen is not None:
            merged.update(base=reopen["after"], reopens=reopen["number"])
            if merged["status"] == "failed" and reopen["after"] >= int(merged["attempts"]):
                merged.update(status="pending", next_at=None)
        return merged

    async def _latest_reopen(self, delivery_id: str) -> Document | None:
        latest, number = None, 1
        while marker := await self.attempts.find_one({"_id": f"{delivery_id}:reopen{number}"}):
            latest, number = {**marker, "number": number}, number + 1
        return latest

    async def last_resend(self, root: str) -> tuple[int, Document | None]:
        """How many resends of `root` were created, and the latest (probed by _id: cheap)."""
        count, latest = 0, None
        while doc := await self.deliveries.find_one({"_id": f"{root}:resend{count + 1}"}):
            count, latest = count + 1, doc
        return count, await self.current(latest) if latest else None

    async def create(self, delivery_id: str, fields: dict[str, Any], *, now: datetime) -> bool:
        """Insert the delivery if it is new; True if this call created it."""
        try:
            await self.deliveries.insert_one(
                {
                    "_id": delivery_id,
                    **fields,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "outbox": [],
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def claim(
        self,
        delivery_id: str,
        fields: dict[str, Any],
        *,
        now: datetime,
        lease: timedelta,
        tries: int,
        reopen: int = 0,
    ) -> Claim:
        """Record an attempt before sending (by insert: of two handlers only one wins).

        An attempt whose outcome was never recorded (the process died mid-send) is taken over
        once its lease has passed; the provider's tracking id lets it spot the resend."""
        await self.create(delivery_id, fields, now=now)
        delivery = await self.delivery(delivery_id)
        assert delivery is not None
        if reopen and delivery["status"] == "failed":
            delivery = await self._reopen(delivery, reopen, now=now)
        if delivery["status"] in FINISHED:
            return Claim("finished", delivery)
        started = await self._started(delivery_id, int(delivery["attempts"]))  # from the outcome
        if started > int(delivery["attempts"]):  # an attempt without a recorded outcome
            last = await self.attempts.find_one({"_id": f"{delivery_id}#{started}"})
            age = now - last["at"] if last else lease
            if age < lease:
                return Claim("busy", delivery, wait=(lease - age).total_seconds())
            if started - int(delivery.get("base", 0)) >= tries:  # no try left to take over
                return Claim("exhausted", {**delivery, "attempts": started})
        elif delivery["status"] == "retrying":
            due = delivery["next_at"]
            if now < due:
                return Claim("not_due", delivery)
        number = started + 1
        try:
            await self.attempts.insert_one(
                {"_id": f"{delivery_id}#{number}", "delivery_id": delivery_id, "at": now}
            )
        except DuplicateKeyError:
            return Claim("busy", delivery, wait=lease.total_seconds())
        return Claim("send", {**delivery, "attempts": number})

    async def _reopen(self, delivery: Document, reopen: int, *, now: datetime) -> Document:
        """Reopen a failed delivery for its `reopen`-th replay (by insert: once per replay, one
        winner); its tries count afresh from the attempts made so far."""
        after = await self._started(delivery["_id"], int(delivery["attempts"]))
        try:
            await self.attempts.insert_one(
                {
                    "_id": f"{delivery['_id']}:reopen{reopen}",
                    "delivery_id": delivery["_id"],
                    "after": after,
                    "at": now,
                }
            )
        except DuplicateKeyError:  # this replay reopened it already
            return delivery
        return {**delivery, "status": "pending", "base": after, "reopens": reopen, "next_at": None}

    async def _started(self, delivery_id: str, recorded: int) -> int:
        """How many attempts were started: those recorded, plus any begun since (probed by
        _id, which stays cheap as the log grows, unlike counting)."""
        started = recorded
        while await self.attempts.find_one({"_id": f"{delivery_id}#{started + 1}"}, {"_id": 1}):
            started += 1
        return started

    async def keep_trigger(self, event: Event) -> None:
        """Keep the event a delivery is for (once), so an operator can resend it later."""
        with contextlib.suppress(DuplicateKeyError):
            await self.triggers.insert_one(
                {"_id": event.id, "event": event.model_dump(mode="json")}
            )

    async def trigger(self, event_id: str) -> Event | None:
        doc = await self.triggers.find_one({"_id": event_id})
        return load(doc["event"]) if doc else None

    async def retry_later(
        self, delivery: Document, *, reason: str, next_at: datetime, now: datetime
    ) -> Document:
        """Record a transient failure; the retry message is already on its way."""
        update = {
            "status": "retrying",
            "attempts": delivery["attempts"],
            "reason": reason,
            "next_at": next_at,
            "updated_at": now,
        }
        await self._record(delivery, update)
        return {**delivery, **update}

    async def settle(
        self,
        delivery: Document,
        *,
        status: str,
        fields: dict[str, Any],
        event: Event,
        now: datetime,
    ) -> Document:
        """Record the outcome and its event in one insert; only the attempt's holder calls it."""
        update = {
            "status": status,
            "attempts": delivery["attempts"],
            **fields,
            "updated_at": now,
            **outbox_fields([event]),
        }
        await self.outbox.expect(
            self.outcomes, f"{delivery['_id']}#{delivery['attempts']}", [event]
        )
        await self._record(delivery, update)
        return {**delivery, **update}

    async def _record(self, delivery: Document, outcome: dict[str, Any]) -> None:
        """Insert the outcome of the delivery's current attempt (a repeat is a no-op)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.outcomes.insert_one(
                {
                    "_id": f"{delivery['_id']}#{delivery['attempts']}",
                    "delivery_id": delivery["_id"],
                    **outcome,
                }
            )
