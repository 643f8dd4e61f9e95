"""The MongoDB adapter of partner accounts, their endpoints, the messages each endpoint sends,
the attempt log and the change log. It records what `endpoints` decided; every write that two
notify replicas could race on is one conditional update (the arbiter)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.notify.endpoints import (
    Endpoint,
    PartnerAccount,
    PartnerMessage,
    millis,
)
from services.notify.partners import SigningKeys
from shared.outbox import INLINE_PENDING, inline_indexes, inline_set
from shared.storage import Document, Indexes

PARTNERS = "partners"
ENDPOINTS = "partner_endpoints"
MESSAGES = "partner_messages"
ATTEMPTS = "partner_attempts"
CHANGES = "partner_changes"
KEPT = timedelta(days=30)  # messages and attempts: a recovery reaches 14 days back

INDEXES: Indexes = {
    PARTNERS: [IndexModel([("api_key_hash", ASCENDING)], name="api_key", unique=True)],
    ENDPOINTS: [
        IndexModel([("partner_id", ASCENDING)], name="of_partner"),
        IndexModel([("enabled", ASCENDING)], name="enabled"),  # an event's subscribers
        IndexModel([("due_ms", ASCENDING)], name="due", sparse=True),  # the sender's work
        IndexModel([("failing_since_ms", ASCENDING)], name="failing"),
        # The disabled event, published through the inline outbox (its relay's query).
        *inline_indexes(ENDPOINTS)[ENDPOINTS],
    ],
    MESSAGES: [
        # An endpoint's next message, a recovery's failed ones, in order.
        IndexModel(
            [("endpoint_id", ASCENDING), ("state", ASCENDING), ("seq", ASCENDING)], name="queue"
        ),
        IndexModel(
            [("created_at", ASCENDING)], name="ttl", expireAfterSeconds=int(KEPT.total_seconds())
        ),
    ],
    ATTEMPTS: [
        IndexModel([("endpoint_id", ASCENDING), ("at_key", DESCENDING)], name="log"),
        IndexModel([("at", ASCENDING)], name="ttl", expireAfterSeconds=int(KEPT.total_seconds())),
    ],
    CHANGES: [IndexModel([("partner_id", ASCENDING), ("at_key", DESCENDING)], name="log")],
}


def _partner_doc(p: PartnerAccount) -> Document:
    return {
        "_id": p.id,
        "name": p.name,
        "contact_email": p.contact_email,
        "scopes": sorted(p.scopes),
        "api_key_hash": p.api_key_hash,
        "created_at": p.created_at,
        "created_by": p.created_by,
        "version": p.version,
    }


def partner_of(doc: Mapping[str, Any]) -> PartnerAccount:
    return PartnerAccount(
        id=doc["_id"],
        name=doc["name"],
        contact_email=doc["contact_email"],
        scopes=frozenset(doc.get("scopes", [])),
        api_key_hash=doc["api_key_hash"],
        created_at=_aware(doc["created_at"]),
        created_by=doc.get("created_by", ""),
        version=int(doc.get("version", 1)),
    )


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # nx-27017 0.8.1: a datetime written by an operator
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def endpoint_fields(e: Endpoint) -> Document:
    """The fields an endpoint's own writes set (not the sender's `due_ms`, `queued`, lease)."""
    return {
        "partner_id": e.partner_id,
        "url": e.url,
        "event_types": list(e.event_types),
        "units": list(e.units),
        "description": e.description,
        "rate_limit_per_second": e.rate_limit_per_second,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "secret": e.keys.current,
        "previous_secret": e.keys.previous,
        "previous_until_ms": millis(e.keys.previous_until) if e.keys.previous_until else 0,
        "failing_since_ms": e.failing_since_ms,
        "next_send_ms": e.next_send_ms,
        "last_status": e.last_status,
        "version": e.version,
    }


def endpoint_of(doc: Mapping[str, Any]) -> Endpoint:
    until = int(doc.get("previous_until_ms") or 0)
    return Endpoint(
        id=doc["_id"],
        partner_id=doc["partner_id"],
        url=doc["url"],
        event_types=tuple(doc.get("event_types", [])),
        units=tuple(doc.get("units", [])),
        description=doc.get("description", ""),
        rate_limit_per_second=float(doc.get("rate_limit_per_second", 10.0)),
        enabled=bool(doc.get("enabled", True)),
        keys=SigningKeys(
            doc["secret"],
            doc.get("previous_secret"),
            datetime.fromtimestamp(until / 1000, UTC) if until else None,
        ),
        created_at=_aware(doc["created_at"]),
        disabled_reason=doc.get("disabled_reason"),
        failing_since_ms=int(doc.get("failing_since_ms") or 0),
        next_send_ms=int(doc.get("next_send_ms") or 0),
        last_status=doc.get("last_status"),
        version=int(doc.get("version", 1)),
    )


def _message_doc(m: PartnerMessage) -> Document:
    return {
        "_id": m.id,
        "endpoint_id": m.endpoint_id,
        "partner_id": m.partner_id,
        "event_id": m.event_id,
        "event_type": m.event_type,
        "dossier": m.dossier,
        "seq": m.seq,
        "body": m.body.decode(),
        "created_at": m.created_at,
        "state": m.state,
        "tries": m.tries,
        "try_limit": m.try_limit,
        "last_status": m.last_status,
        "reason": m.reason,
        "recovered": m.recovered,
        "ready_ms": m.ready_ms,
        "version": m.version,
    }


def message_of(doc: Mapping[str, Any]) -> PartnerMessage:
    return PartnerMessage(
        id=doc["_id"],
        endpoint_id=doc["endpoint_id"],
        partner_id=doc["partner_id"],
        event_id=doc["event_id"],
        event_type=doc["event_type"],
        dossier=doc["dossier"],
        seq=doc["seq"],
        body=str(doc["body"]).encode(),
        created_at=_aware(doc["created_at"]),
        state=doc.get("state", "pending"),
        tries=int(doc.get("tries", 0)),
        try_limit=int(doc.get("try_limit", 1)),
        last_status=doc.get("last_status"),
        reason=doc.get("reason"),
        recovered=int(doc.get("recovered", 0)),
        ready_ms=int(doc.get("ready_ms", 0)),
        version=int(doc.get("version", 0)),
    )


def at_key(at: datetime) -> str:
    """A log's order: the moment (basic ISO form, UTC), then a random tail for uniqueness."""
    return f"{at.astimezone(UTC):%Y%m%dT%H%M%S%f}|{uuid.uuid4().hex[:8]}"


class EndpointStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.partners = db[PARTNERS]
        self.endpoints = db[ENDPOINTS]
        self.messages = db[MESSAGES]
        self.attempts = db[ATTEMPTS]
        self.changes = db[CHANGES]

    # --- partners ---------------------------------------------------------------------------

    async def add_partner(self, partner: PartnerAccount) -> bool:
        """Store a new partner; False if one has its id already."""
        try:
            await self.partners.insert_one(_partner_doc(partner))
        except DuplicateKeyError:
            return False
        return True

    async def partner(self, partner_id: str) -> PartnerAccount | None:
        doc = await self.partners.find_one({"_id": partner_id})
        return partner_of(doc) if doc else None

    async def partner_by_key(self, key_hash: str) -> PartnerAccount | None:
        doc = await self.partners.find_one({"api_key_hash": key_hash})
        return partner_of(doc) if doc else None

    async def all_partners(self, limit: int) -> list[PartnerAccount]:
        cursor = self.partners.find({}).sort("_id", 1).limit(limit)
        return [partner_of(doc) async for doc in cursor]

    async def save_partner(self, previous: PartnerAccount, new: PartnerAccount) -> bool:
        """Replace `previous` as it was read; False if it changed meanwhile."""
        doc = _partner_doc(new)
        found = await self.partners.replace_one({"_id": new.id, "version": previous.version}, doc)
        return found.matched_count == 1

    async def delete_partner(self, partner: PartnerAccount) -> bool:
        found = await self.partners.delete_one({"_id": partner.id, "version": partner.version})
        return found.deleted_count == 1

    # --- endpoints --------------------------------------------------------------------------

    async def add_endpoint(self, endpoint: Endpoint) -> None:
        doc = {
            "_id": endpoint.id,
            "created_at": endpoint.created_at,
            **endpoint_fields(endpoint),
            "queued": 0,
            "lease_ms": 0,
        }
        await self.endpoints.insert_one(doc)

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        doc = await self.endpoints.find_one({"_id": endpoint_id})
        return endpoint_of(doc) if doc else None

    async def endpoint_doc(self, endpoint_id: str) -> Document | None:
        return await self.endpoints.find_one({"_id": endpoint_id})

    async def endpoints_of(self, partner_id: str) -> list[Endpoint]:
        cursor = self.endpoints.find({"partner_id": partner_id}).sort("partner_id", 1)
        return sorted([endpoint_of(doc) async for doc in cursor], key=lambda e: e.created_at)

    async def enabled_endpoints(self) -> list[Endpoint]:
        """Every enabled endpoint: an event's subscribers are among them (a province has tens)."""
        return [endpoint_of(doc) async for doc in self.endpoints.find({"enabled": True})]

    async def save_endpoint(
        self,
        previous: Endpoint,
        new: Endpoint,
        *,
        events: Iterable[Any] = (),
        loaded: Document | None = None,
    ) -> bool:
        """Write `new` over `previous` as it was read (its version); False if another write
        came first. `events` are recorded in the document's inline outbox in the same write."""
        fields = endpoint_fields(new) | {"version": previous.version + 1}
        listed = list(events)
        if listed:
            fields |= inline_set(loaded or {}, listed)
        found = await self.endpoints.update_one(
            {"_id": new.id, "version": previous.version}, {"$set": fields}
        )
        return found.matched_count == 1

    async def delete_endpoint(self, endpoint: Endpoint) -> bool:
        found = await self.endpoints.delete_one({"_id": endpoint.id, "version": endpoint.version})
        return found.deleted_count == 1

    # --- the sender's schedule --------------------------------------------------------------

    async def queue(self, messages: list[PartnerMessage]) -> int:
        """Store new messages (a redelivered event's are there already) and tell their
        endpoints they have work. Returns how many were new."""
        if not messages:
            return 0
        fresh = {m.id for m in messages}
        try:
            await self.messages.insert_many([_message_doc(m) for m in messages], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(err.get("code") != 11000 for err in errors):
                raise
            fresh -= {messages[err["index"]].id for err in errors}
        for message in messages:
            if message.id in fresh:
                await self.wake(message.endpoint_id, message.ready_ms)
        return len(fresh)

    async def wake(self, endpoint_id: str, now_ms: int) -> None:
        """The endpoint has work from `now_ms` on (`queued` counts the wake-ups: the sender goes
        idle only when none came since it looked)."""
        await self.endpoints.update_one(
            {"_id": endpoint_id}, {"$min": {"due_ms": now_ms}, "$inc": {"queued": 1}}
        )

    async def due(self, now_ms: int, *, limit: int) -> list[Document]:
        cursor = self.endpoints.find({"due_ms": {"$lte": now_ms}}).sort("due_ms", 1)
        return [doc async for doc in cursor.limit(limit)]

    async def next_due_ms(self) -> int | None:
        cursor = self.endpoints.find({"due_ms": {"$gte": 0}}, {"due_ms": 1}).sort("due_ms", 1)
        async for doc in cursor.limit(1):
            return int(doc["due_ms"])
        return None

    async def claim(self, endpoint_id: str, owner: str, *, now_ms: int, lease_ms: int) -> bool:
        """Take the endpoint's sending for `lease_ms`: of two replicas, one gets it."""
        found = await self.endpoints.update_one(
            {"_id": endpoint_id, "lease_ms": {"$lt": now_ms}},
            {"$set": {"lease_ms": now_ms + lease_ms, "lease_owner": owner}},
        )
        return found.matched_count == 1

    async def release(self, endpoint_id: str, owner: str) -> None:
        await self.endpoints.update_one(
            {"_id": endpoint_id, "lease_owner": owner}, {"$set": {"lease_ms": 0}}
        )

    async def later(self, endpoint_id: str, due_ms: int) -> None:
        """Its next message waits until `due_ms` (a retry, the rate limit)."""
        await self.endpoints.update_one({"_id": endpoint_id}, {"$set": {"due_ms": due_ms}})

    async def idle(self, endpoint_id: str, queued: int) -> bool:
        """Nothing to send: no longer due, unless work came since `queued` was read."""
        found = await self.endpoints.update_one(
            {"_id": endpoint_id, "queued": queued}, {"$unset": {"due_ms": ""}}
        )
        return found.matched_count == 1

    async def failing_count(self) -> int:
        return await self.endpoints.count_documents(
            {"failing_since_ms": {"$gt": 0}, "enabled": True}
        )

    async def pending_events(self, endpoint_id: str) -> list[Document]:
        doc = await self.endpoints.find_one({"_id": endpoint_id})
        if not doc:
            return []
        ids = set(doc.get(INLINE_PENDING, []))
        return [e for e in doc.get("outbox", []) if e.get("id") in ids]

    # --- messages ---------------------------------------------------------------------------

    async def head(self, endpoint_id: str) -> PartnerMessage | None:
        """The endpoint's oldest pending message."""
        query = {"endpoint_id": endpoint_id, "state": "pending"}
        async for doc in self.messages.find(query).sort("seq", 1).limit(1):
            return message_of(doc)
        return None

    async def message(self, message_id: str) -> PartnerMessage | None:
        doc = await self.messages.find_one({"_id": message_id})
        return message_of(doc) if doc else None

    async def save_message(self, previous: PartnerMessage, new: PartnerMessage) -> bool:
        doc = _message_doc(new) | {"version": previous.version + 1}
        found = await self.messages.replace_one({"_id": new.id, "version": previous.version}, doc)
        return found.matched_count == 1

    async def fail_pending(self, endpoint_id: str, reason: str) -> int:
        """A disabled endpoint's pending messages fail (a recovery sends them again)."""
        found = await self.messages.update_many(
            {"endpoint_id": endpoint_id, "state": "pending"},
            {"$set": {"state": "failed", "reason": reason}, "$inc": {"version": 1}},
        )
        return found.modified_count

    async def recover(self, endpoint_id: str, since: datetime) -> int:
        """Every failed message of the endpoint queued since `since` goes again, once (one more try
        each). Each is one guarded write: of two recoveries at once, each message moves once."""
        query = {"endpoint_id": endpoint_id, "state": "failed", "created_at": {"$gte": since}}
        moved = 0
        async for doc in self.messages.find(query).sort("seq", 1):
            failed = message_of(doc)
            again = replace(
                failed, state="pending", try_limit=failed.tries + 1, recovered=failed.recovered + 1
            )
            moved += await self.save_message(failed, again)
        return moved

    # --- logs -------------------------------------------------------------------------------

    async def log_attempt(self, attempt: Document, at: datetime) -> None:
        await self.attempts.insert_one(
            {"_id": uuid.uuid4().hex, "at": at, "at_key": at_key(at), **attempt}
        )

    async def attempts_of(
        self, endpoint_id: str, *, before: str | None, limit: int
    ) -> list[Document]:
        query: Document = {"endpoint_id": endpoint_id}
        if before:
            query["at_key"] = {"$lt": before}
        cursor = self.attempts.find(query).sort("at_key", -1).limit(limit)
        return [doc async for doc in cursor]

    async def log_change(self, change: Document, at: datetime) -> None:
        await self.changes.insert_one(
            {"_id": uuid.uuid4().hex, "at": at, "at_key": at_key(at), **change}
        )

    async def changes_of(
        self, partner_id: str, *, before: str | None, limit: int
    ) -> list[Document]:
        query: Document = {"partner_id": partner_id}
        if before:
            query["at_key"] = {"$lt": before}
        cursor = self.changes.find(query).sort("at_key", -1).limit(limit)
        return [doc async for doc in cursor]
