"""Intake's MongoDB adapter: dossiers (each with its steps and its outbox), the per-day code
counters, the idempotency keys, and the declared indexes of every collection intake queries.

The store records facts and decides nothing. Every hot path is keyed:
- a dossier is one document under its code: what was filed, each status it reached (a map keyed
  by event id, so a redelivered event is recorded once), and the events it emitted;
- the next number of a day's series is one `$inc` on that series' counter (which MongoDB
  isolates, so two replicas never share a code), and counters expire after their day;
- an idempotency key expires after its retention window (a TTL index).
A finished dossier stays where it is and costs a lookup by key, like any other.

nx-27017 0.8.1 stores a subdocument `$push`ed into an array as a JSON string, and silently
ignores `$set` of an array element (`outbox.1`): so a citizen's step writes the dossier's whole
`steps` map and `outbox` list under a version guard, which is as correct on MongoDB.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, WriteError

from services.intake.domain import Access, Dossier, code_series, dossier_code
from services.intake.idempotency import KeyRecord
from services.intake.ports import FiledBefore
from services.intake.status import Step
from shared.clock import utcnow
from shared.contracts import Channel, Event
from shared.outbox import (
    OUTBOX_INDEXES,
    Outbox,
    Publish,
    inline_fields,
    inline_indexes,
    outbox_fields,
)
from shared.storage import Coalesced, Document, Indexes, ensure_indexes

log = logging.getLogger(__name__)
COUNTER_DAYS = timedelta(days=3)  # a day's counter outlives the day in every time zone

INDEXES: Indexes = {
    # By `_id` (the code) on every hot path; by idempotency key only when a retry takes over
    # the key of a request that died, or a second filing under one key is refused (unique).
    # By series, highest number first, once per series: to seed a counter that does not exist
    # yet past the numbers dossiers of that series already hold.
    # By the moment a new dossier's events were marked unpublished: the relay's (sparse).
    "dossiers": [
        IndexModel([("idempotency_key", ASCENDING)], sparse=True, unique=True),
        IndexModel([("code_series", ASCENDING), ("code_number", DESCENDING)]),
        *inline_indexes("dossiers")["dossiers"],
    ],
    # Before dossiers held their steps: one document per step, read by dossier by the upgrade
    # only, and by `_id` by the relay (pointers written before the upgrade).
    "statuses": [IndexModel([("dossier_code", ASCENDING), ("at", ASCENDING)])],
    "counters": [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
    "idempotency_keys": [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
    # GridFS's own indexes: chunks are read by file in order; files are read by `_id`.
    "attachments.chunks": [IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)],
    "attachments.files": [IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)])],
    **OUTBOX_INDEXES,  # the relay reads the pointers older than a few seconds
}

TTL_COLLECTIONS = ("counters", "idempotency_keys")
CLEANUP_INTERVAL = timedelta(minutes=10)


async def create_indexes(db: AsyncDatabase[Document]) -> bool:
    """Create the declared indexes; False if the server refused TTL indexes (FerretDB 1.24:
    "Index option expireAfterSeconds is not implemented yet"): then they are made without it,
    and `remove_expired` must run now and then."""
    try:
        await _create_each(db, INDEXES)
    except OperationFailure as exc:
        if "expireAfterSeconds" not in str(exc):
            raise
        plain = {
            name: [IndexModel(list(m.document["key"].items())) for m in models]
            if name in TTL_COLLECTIONS
            else models
            for name, models in INDEXES.items()
        }
        await _create_each(db, plain)
        return False
    return True


# MongoDB refuses an index on keys that an index of other options already covers
# (IndexOptionsConflict, IndexKeySpecsConflict): the old plain `idempotency_key` index, until
# the upgrade replaces it (`replace_unique`).
_CHANGED_OPTIONS = (85, 86)
_DUPLICATE = 11000


async def _create_each(db: AsyncDatabase[Document], indexes: Indexes) -> None:
    for name, models in indexes.items():
        for model in models:
            try:
                await _create_or_plain(db, name, model)
            except OperationFailure as exc:
                if exc.code not in _CHANGED_OPTIONS:
                    raise
                log.warning("%s: an index of before on %s is kept", name, model.document["key"])


async def _create_or_plain(db: AsyncDatabase[Document], name: str, model: IndexModel) -> None:
    """Create `model`; where stored documents already share its keys (dossiers filed twice
    under one key before the index was unique), a plain one instead, and a warning. The build
    fails with code 11000 on MongoDB, with no code on nx-27017 0.8.1 ("UNIQUE constraint")."""
    try:
        await ensure_indexes(db, {name: [model]})
    except OperationFailure as exc:
        if not model.document.get("unique") or (
            exc.code != _DUPLICATE and "UNIQUE constraint" not in str(exc)
        ):
            raise
        keys = list(model.document["key"].items())
        log.warning("%s: stored documents share %s, index left plain", name, keys)
        await ensure_indexes(db, {name: [IndexModel(keys, sparse=True)]})


async def replace_unique(db: AsyncDatabase[Document]) -> None:
    """Make the declared unique indexes in place of whatever index of before has their keys.

    Once, by the upgrade: nx-27017 0.8.1 silently keeps the old index when asked for one on the
    same keys with other options, and its `listIndexes` reports neither `unique` nor `sparse`
    (nor MongoDB's names), so the old index is dropped by its keys, whatever it reports."""
    for name, models in INDEXES.items():
        for model in [m for m in models if m.document.get("unique")]:
            keys = dict(model.document["key"])
            async for index in await db[name].list_indexes():
                if dict(index["key"]) == keys:
                    await db[name].drop_index(index["name"])
            await _create_or_plain(db, name, model)


async def remove_expired(db: AsyncDatabase[Document], now: datetime) -> int:
    """What a TTL index would have removed: one indexed delete per expiring collection."""
    removed = 0
    for name in TTL_COLLECTIONS:
        result = await db[name].delete_many({"expires_at": {"$lt": now}})
        removed += result.deleted_count
    return removed


_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def step_key(event_id: str) -> str:
    """The field name a step is kept under: its event id, or a hash of an id that could not
    be a field name (dots, dollars)."""
    return (
        event_id
        if _SAFE_KEY.match(event_id)
        else "h" + hashlib.sha256(event_id.encode()).hexdigest()
    )


class _AlreadyRecorded(Exception):
    """add_step's outcome: the step was recorded before (a redelivery)."""


class _NoSuchDossier(Exception):
    """add_step's outcome: no dossier has that code."""


class DossierStore:
    """Dossiers keyed by their code; each document carries its steps and the events it emitted."""

    def __init__(self, db: AsyncDatabase[Document], publish: Publish) -> None:
        self.dossiers = db["dossiers"]
        self._steps = Coalesced(self._add_steps)  # review's steps, written together (add_step)
        self.counters = db["counters"]
        # `statuses`: pointers written before the upgrade name it; its documents keep their events.
        # A new dossier marks its events unpublished in its own insert (the inline scheme); a
        # later step of the citizen's points at its events in `outbox_pending`.
        self.outbox = Outbox(
            db,
            publish,
            service="intake",
            sources=[self.dossiers, db["statuses"]],
            inline=[self.dossiers],
        )

    async def next_number(self, series: str, day: date) -> int:
        """The next number of `series` (one isolated `$inc`, so never the same one twice).

        The day's first number inserts the counter, past the highest number a dossier of the
        series already holds (stored before counters, or after the counter expired): one
        indexed read. `expires_at` is written by an insert, as nx-27017 0.8.1 stores a
        datetime given to `$set` as a naive string, which no TTL index expires."""
        for _ in range(3):  # the first of a day: insert the counter, or lose to who did
            doc = await self.counters.find_one_and_update(
                {"_id": series}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
            )
            if doc is not None:
                return int(doc["n"])
            top = await self.dossiers.find_one(
                {"code_series": series},
                sort=[("code_number", DESCENDING)],
                projection={"code_number": 1},
            )
            number = int((top or {}).get("code_number") or 0) + 1
            try:
                await self.counters.insert_one(
                    {"_id": series, "n": number, "expires_at": _midnight(day) + COUNTER_DAYS}
                )
            except DuplicateKeyError:
                continue
            return number
        raise RuntimeError(f"could not count series {series}")

    async def add(self, dossier: Dossier, events: list[Event], *, series: str, number: int) -> bool:
        """Insert a new dossier with its events; False if its code is already taken,
        `FiledBefore` if a dossier was filed under its idempotency key already."""
        return await self._insert(_document(dossier, events, series, number), events)

    async def add_new(
        self, agency: str, day: date, build: Callable[[str], tuple[Dossier, list[Event]]]
    ) -> tuple[Dossier, Document]:
        """Insert the dossier `build` makes under the next code of `agency` on `day` (for
        tests and tools; the submit handler does the same through `next_number` and `add`)."""
        series = code_series(agency, day)
        while True:
            number = await self.next_number(series, day)
            dossier, events = build(dossier_code(agency, day, number))
            doc = _document(dossier, events, series, number)
            if await self._insert(doc, events):
                return dossier, doc

    async def _insert(self, doc: Document, events: list[Event]) -> bool:
        try:
            await self.dossiers.insert_one(doc)  # its events marked unpublished in it
        except DuplicateKeyError:
            # The code, or the idempotency key (unique): told apart by one read by that key.
            key = doc.get("idempotency_key")
            if key is not None:
                first = await self.by_idempotency_key(key)
                if first is not None and first.code != doc["_id"]:
                    raise FiledBefore(first) from None
            return False
        self.outbox.marked(self.dossiers, doc["_id"], events)
        return True

    async def get(self, code: str, *, with_outbox: bool = True) -> Dossier | None:
        """The dossier `code` (one read by key); without its recorded events for a lookup."""
        projection = None if with_outbox else {"outbox": 0}
        doc = await self.dossiers.find_one({"_id": code}, projection=projection)
        return _to_dossier(doc) if doc else None

    async def by_idempotency_key(self, key: str) -> Dossier | None:
        doc = await self.dossiers.find_one({"idempotency_key": key}, projection={"outbox": 0})
        return _to_dossier(doc) if doc else None

    async def save(self, dossier: Dossier, events: list[Event]) -> bool:
        """Write the dossier's steps and its new events, if nothing changed it since it was
        loaded (its version); False otherwise."""
        if dossier.outbox is None:
            raise ValueError("a dossier loaded without its outbox cannot be saved")
        outbox = list(dossier.outbox) + outbox_fields(events)["outbox"]
        await self.outbox.expect(self.dossiers, dossier.code, events)
        result = await self.dossiers.update_one(
            {"_id": dossier.code, "version": dossier.version - 1},
            {
                "$set": {
                    "steps": _steps_field(dossier.steps),
                    "outbox": outbox,
                    "version": dossier.version,
                    "updated_at": utcnow(),
                }
            },
        )
        return result.matched_count == 1

    async def add_step(self, code: str, step: Step, *, unit_id: str | None = None) -> bool | None:
        """Record that the dossier reached `step` (once per event id), and the unit that
        receives it if the step names one (its assignment): True if recorded (now; or, in a
        batch, possibly before: a redelivery), False if it was already (known alone), None if
        there is no such dossier.

        The steps asked for while one write is under way go together (`Coalesced`): one
        unordered bulk update, and one read by key of those that did not match, instead of a
        keyed write each (review's events for different dossiers arrive at once under load)."""
        try:
            await self._steps((code, step, unit_id))
        except _AlreadyRecorded:
            return False
        except _NoSuchDossier:
            return None
        return True

    async def _add_steps(
        self, steps: list[tuple[str, Step, str | None]]
    ) -> list[BaseException | None]:
        def update(code: str, step: Step, unit_id: str | None) -> tuple[Document, Document]:
            key = f"steps.{step_key(step.event_id)}"
            changes: Document = {key: _step_field(step), "updated_at": utcnow()}
            if unit_id is not None:
                changes.update(unit_id=unit_id, unit_since=unit_since(step.at))
            return {"_id": code, key: {"$exists": False}}, {"$set": changes, "$inc": {"version": 1}}

        if len(steps) == 1:
            alone = await self.dossiers.update_one(*update(*steps[0]))
            if alone.matched_count:
                return [None]
            known = await self._known(steps[0][0])
            return [_AlreadyRecorded() if known is False else _NoSuchDossier()]
        ops = [UpdateOne(*update(*step)) for step in steps]
        outcomes: list[BaseException | None] = [None] * len(steps)
        try:
            matched = (await self.dossiers.bulk_write(ops, ordered=False)).matched_count
        except BulkWriteError as exc:  # the others are written: only those refused fail
            if exc.details.get("writeConcernErrors"):
                raise
            for error in exc.details.get("writeErrors", []):
                outcomes[error["index"]] = WriteError(
                    error.get("errmsg", "refused"), error.get("code"), error
                )
            matched = int(exc.details.get("nMatched", 0))
        written = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if matched == len(written):
            return outcomes
        # Some did not match: a redelivered step (recorded before), or no such dossier.
        codes = list(dict.fromkeys(steps[i][0] for i in written))
        found = {d["_id"] async for d in self.dossiers.find({"_id": {"$in": codes}}, {"_id": 1})}
        for i in written:
            if steps[i][0] not in found:
                outcomes[i] = _NoSuchDossier()
        return outcomes

    async def set_unit(self, code: str, unit_id: str, at: datetime) -> bool | None:
        """Record the unit that holds the dossier's task since `at` (a claim, release or
        reassignment), unless a later change is recorded: one guarded keyed write. True if
        recorded, False if a later one stands, None if there is no such dossier."""
        since = unit_since(at)
        result = await self.dossiers.update_one(
            {
                "_id": code,
                "$or": [{"unit_since": {"$exists": False}}, {"unit_since": {"$lt": since}}],
            },
            {"$set": {"unit_id": unit_id, "unit_since": since, "updated_at": utcnow()}},
        )
        if result.matched_count:
            return True
        return await self._known(code)

    async def _known(self, code: str) -> bool | None:
        known = await self.dossiers.find_one({"_id": code}, projection={"_id": 1})
        return False if known is not None else None

    async def publish(self, events: list[Event]) -> None:
        """Publish stored events (confirmed), then clear their mark in the new dossier this
        process inserted them with, or drop their pointers (a citizen's later step)."""
        await self.outbox.publish_written(events)


class KeyStore:
    """Idempotency keys: claimed by inserting them, answered by a keyed update, expired by TTL."""

    def __init__(self, db: AsyncDatabase[Document], *, retention: timedelta) -> None:
        self.keys = db["idempotency_keys"]
        self.retention = retention

    async def claim(self, key: str, body_hash: str, now: datetime) -> bool:
        """Take `key` for this request; False if someone has it already."""
        doc = {
            "_id": key,
            "body_hash": body_hash,
            "claimed_at": now,
            "lease": 0,
            "expires_at": now + self.retention,
        }
        try:
            await self.keys.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def get(self, key: str) -> KeyRecord | None:
        doc = await self.keys.find_one({"_id": key})
        if doc is None:
            return None
        return KeyRecord(
            key=key,
            body_hash=doc["body_hash"],
            claimed_at=_instant(doc["claimed_at"]),
            lease=int(doc.get("lease", 0)),
            answer=doc.get("answer"),
        )

    async def take_over(self, record: KeyRecord, now: datetime) -> bool:
        """Hold the key of a holder that never answered; exactly one retry per lease wins."""
        result = await self.keys.update_one(
            {"_id": record.key, "lease": record.lease, "answer": {"$exists": False}},
            {"$set": {"claimed_at": now, "lease": record.lease + 1}},
        )
        return result.matched_count == 1

    async def answer(self, key: str, answer: dict[str, Any], *, lease: int) -> bool:
        """Keep the answer that every retry with this key gets, if the key is still held under
        `lease` and unanswered; False if a retry took it over meanwhile (its answer stands)."""
        result = await self.keys.update_one(
            {"_id": key, "lease": lease, "answer": {"$exists": False}},
            {"$set": {"answer": answer}},
        )
        return result.matched_count == 1


def _document(dossier: Dossier, events: list[Event], series: str, number: int) -> Document:
    doc = {
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
        "promised_at": dossier.receipt_promised_at,
        "fee": dossier.fee,
        "notify_by": list(dossier.notify_by),
        "attachments": list(dossier.attachments),
        "secret_sha256": dossier.access.secret_sha256,
        "correlation_id": dossier.correlation_id,
        "steps": _steps_field(dossier.steps),
        "version": dossier.version,
        "updated_at": utcnow(),
        **inline_fields(events),
    }
    if dossier.idempotency_key is not None:
        doc["idempotency_key"] = dossier.idempotency_key
    return doc


def unit_since(at: datetime) -> str:
    """When a unit took the dossier, as a string that sorts in time. Not a datetime:
    nx-27017 0.8.1 stores one given to `$set` as a string; and it starts with a letter, as
    nx-27017 reads a string that begins like an ISO date as a date."""
    return f"t{at.astimezone(UTC):%Y%m%dT%H%M%S%f}"


def _instant(value: Any) -> datetime:
    """A stored moment as a datetime: nx-27017 0.8.1 reads a datetime that `$set` wrote (a
    taken-over key's `claimed_at`) back as a naive string."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return cast(datetime, value)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=utcnow().tzinfo)


def _step_field(step: Step) -> dict[str, Any]:
    return {
        "event_id": step.event_id,
        "status": step.status,
        "at": step.at,
        "promised_at": step.promised_at,
        **({"reason": step.reason} if step.reason else {}),
        **({"missing": list(step.missing)} if step.missing else {}),
    }


def _steps_field(steps: tuple[Step, ...]) -> dict[str, Any]:
    return {step_key(s.event_id): _step_field(s) for s in steps}


def _to_dossier(doc: dict[str, Any]) -> Dossier:
    steps = tuple(
        Step(
            s["event_id"],
            s["status"],
            s["at"],
            s.get("promised_at"),
            reason=s.get("reason"),
            missing=tuple(s.get("missing") or ()),
        )
        for s in (doc.get("steps") or {}).values()
    )
    outbox = doc.get("outbox")
    return Dossier(
        code=doc["_id"],
        procedure_code=doc["procedure_code"],
        channel=Channel(doc["channel"]),
        submitted_at=doc["submitted_at"],
        form=doc["form"],
        submitted_by=doc.get("submitted_by"),
        procedure_version=doc.get("procedure_version", 1),
        received_at=doc.get("received_at"),
        receipt_promised_at=doc.get("promised_at"),
        fee=doc.get("fee"),
        notify_by=tuple(doc.get("notify_by", ())),
        attachments=tuple(doc.get("attachments", ())),
        steps=steps,
        access=Access(doc.get("secret_sha256"), doc["form"].get("applicant", {}).get("phone")),
        correlation_id=doc.get("correlation_id")
        or ((outbox or [{}])[0].get("correlationid") if outbox else None),
        version=int(doc.get("version", 1)),
        idempotency_key=doc.get("idempotency_key"),
        unit_id=doc.get("unit_id"),
        outbox=tuple(outbox) if outbox is not None else None,
    )
