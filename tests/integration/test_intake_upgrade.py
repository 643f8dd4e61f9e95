"""Intake on a database written before dossiers held their steps, against the real server: the
upgrade folds the old `statuses` in and versions the dossiers, pointers of the old outbox source
are still published, a day's counter first made mid-day starts past the numbers already taken,
and a late holder of an idempotency key neither overwrites the answer nor files twice."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from services.intake import handlers
from services.intake.domain import code_series, dossier_code
from services.intake.handlers import Intake, Proof, Submit
from services.intake.idempotency import LEASE, fingerprint
from services.intake.store import DossierStore, KeyStore, create_indexes
from services.intake.upgrade import MARKER, upgrade
from shared.calendar import VIETNAM
from shared.contracts import Event
from shared.storage import Document
from tests.conftest import Isolation
from tests.factories import VALID_FORM, approved_event, submitted_event
from tests.integration.test_intake_store import (  # noqa: F401 (`counted`: a fixture)
    Commands,
    counted,
    required_files,
)

pytestmark = pytest.mark.integration

# The fields the store of before (7754a1c) did not write: a dossier of the old shape lacks them.
NEW_FIELDS = ("version", "steps", "correlation_id", "idempotency_key")


def _status(event_id: str, code: str, status: str, at: datetime) -> Document:
    """A step as the store of before wrote it: one document of `statuses` per event."""
    return {
        "_id": event_id,
        "dossier_code": code,
        "status": status,
        "at": at,
        "promised_at": None,
        "outbox": [],
    }


async def _old_dossier(intake: Intake, db: Any, refs: list[dict[str, str]]) -> Proof:
    """A dossier filed, then written back in the shape of before (no version, no steps)."""
    answer, _ = await handlers.submit(Submit({**VALID_FORM, "attachments": refs}), intake=intake)
    doc = await db["dossiers"].find_one({"_id": answer["code"]})
    await db["dossiers"].replace_one(
        {"_id": doc["_id"]}, {k: v for k, v in doc.items() if k not in NEW_FIELDS}
    )
    return Proof(answer["code"], secret=answer["access_secret"])


def _db(intake: Intake) -> Any:
    assert isinstance(intake.dossiers, DossierStore)
    return intake.dossiers.dossiers.database


async def test_dossiers_of_before_show_their_status_and_take_a_withdrawal_and_a_supplement(
    counted: tuple[Intake, Commands],  # noqa: F811
) -> None:
    """Without the upgrade they all show "submitted", and the version guard never matches a
    dossier without `version`: withdraw answers 409 forever, supplements are refused."""
    intake, _ = counted
    db = _db(intake)
    refs = await required_files(intake)
    asked, assigned, late = [await _old_dossier(intake, db, refs) for _ in range(3)]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    await db["statuses"].insert_many(
        [
            _status("e1", asked.code, "assigned", t0),
            _status("e2", asked.code, "supplement_requested", t0 + timedelta(minutes=1)),
            _status("e3", assigned.code, "assigned", t0),
            _status("e4", late.code, "assigned", t0),
        ]
    )
    # A step the new code recorded on a dossier of before, ahead of the upgrade: kept.
    approved = approved_event(submitted_event(code=late.code))
    await handlers.record_review_event(approved, dossiers=intake.dossiers)

    # Two replicas starting at once.
    counts = await asyncio.gather(upgrade(db), upgrade(db))

    seen = await handlers.look_up(asked, dossiers=intake.dossiers)
    assert (seen.status, [h["status"] for h in seen.history]) == (
        "supplement_requested",
        ["submitted", "assigned", "supplement_requested"],
    )
    after_late = await handlers.look_up(late, dossiers=intake.dossiers)
    assert {s.status for s in after_late.steps} == {"assigned", "approved"}
    assert after_late.status == "approved"

    assert sum(counts) >= 3
    assert await db["intake_meta"].find_one({"_id": MARKER}) is not None
    assert await upgrade(db) == 0  # the next start: one read of the marker

    supplemented = await handlers.supplement(asked, refs[:1], "here", intake=intake)
    assert supplemented.status == "supplemented"
    withdrawn = await handlers.withdraw(assigned, "moved", intake=intake)
    assert withdrawn.status == "withdrawn"
    stored = await handlers.look_up(assigned, dossiers=intake.dossiers)
    assert stored.status == "withdrawn"


async def test_an_event_pointed_at_in_statuses_before_the_upgrade_is_still_published(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """The store of before pointed at events kept in `statuses` documents; the relay must still
    find them there, not drop the pointer as a write that never happened."""
    db = mongo[isolation.database("intake")]
    await create_indexes(db)
    published: list[Event] = []

    async def publish(event: Event) -> None:
        published.append(event)

    store = DossierStore(db, publish)
    event = approved_event(submitted_event())
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    await db["statuses"].insert_one(
        {
            **_status(event.id, event.subject, "approved", long_ago),
            "outbox": [event.model_dump(mode="json")],
        }
    )
    await db["outbox_pending"].insert_one(
        {"_id": event.id, "source": "statuses", "doc_id": event.id, "created_at": long_ago}
    )
    assert await store.outbox.relay_once() == 1
    assert [e.id for e in published] == [event.id]
    assert await db["outbox_pending"].count_documents({"_id": event.id}) == 0


async def test_a_counter_made_mid_day_starts_past_the_numbers_dossiers_already_hold(
    counted: tuple[Intake, Commands],  # noqa: F811
) -> None:
    """1,200 dossiers of today's series filed before counters: without seeding, each taken
    number costs 3 round trips and past 1,000 every submission fails until midnight."""
    intake, commands = counted
    db = _db(intake)
    day = datetime.now(UTC).astimezone(VIETNAM).date()
    series = code_series(intake.agency, day)
    await db["dossiers"].insert_many(
        [
            {"_id": dossier_code(intake.agency, day, n), "code_series": series, "code_number": n}
            for n in range(1, 1201)
        ]
    )
    body = {**VALID_FORM, "attachments": await required_files(intake)}
    commands.take()
    answer, _ = await handlers.submit(Submit(body), intake=intake)
    assert answer["code"] == dossier_code(intake.agency, day, 1201)
    assert isinstance(intake.dossiers, DossierStore)
    await intake.dossiers.outbox.drain()  # the mark's clear, written after the answer
    seen = [(name, collection) for name, collection, _ in commands.take()]
    # files, counter (none), highest of the series, counter insert, the dossier (its event
    # marked unpublished), the mark cleared once published
    assert len(seen) == 6, seen
    assert ("find", "dossiers") in seen
    answer, _ = await handlers.submit(Submit(body), intake=intake)
    assert answer["code"] == dossier_code(intake.agency, day, 1202)
    await intake.dossiers.outbox.drain()
    assert len(commands.take()) == 4  # the counter exists: no more reads of the series


async def test_a_late_holder_of_a_key_neither_overwrites_its_answer_nor_files_twice(
    counted: tuple[Intake, Commands],  # noqa: F811
) -> None:
    """The first request holds its key past the lease; a retry takes it over, files and answers;
    then the first one files and answers too. Every caller gets the retry's answer, and one
    dossier is filed under the key."""
    intake, _ = counted
    db = _db(intake)
    body = {**VALID_FORM, "attachments": await required_files(intake)}
    keys = intake.keys
    retry: dict[str, Any] = {}

    class SlowFirstHolder(KeyStore):
        async def claim(self, key: str, body_hash: str, now: datetime) -> bool:
            claimed = await keys.claim(key, body_hash, now - 2 * LEASE)
            # While it is still at work, a retry finds its lease run out.
            retry["answer"], _ = await handlers.submit(
                Submit(body, idempotency_key=key), intake=intake
            )
            return claimed

    slow = replace(intake, keys=SlowFirstHolder(db, retention=timedelta(hours=1)))
    first, _ = await handlers.submit(Submit(body, idempotency_key="k"), intake=slow)
    assert first["code"] == retry["answer"]["code"]
    assert await db["dossiers"].count_documents({"idempotency_key": "k"}) == 1
    record = await keys.get("k")
    assert record is not None and record.answer == retry["answer"]
    _, replayed = await handlers.submit(Submit(body, idempotency_key="k"), intake=intake)
    assert replayed


async def test_an_answer_is_kept_only_under_the_lease_it_was_claimed_with(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    keys = KeyStore(mongo[isolation.database("intake")], retention=timedelta(hours=1))
    now = datetime.now(UTC).replace(microsecond=0)
    assert await keys.claim("k", fingerprint({}), now - 2 * LEASE)
    record = await keys.get("k")
    assert record is not None and await keys.take_over(record, now)
    assert await keys.answer("k", {"code": "retry's"}, lease=1)
    assert not await keys.answer("k", {"code": "late first holder's"}, lease=0)
    assert not await keys.answer("k", {"code": "again"}, lease=1)  # answered: kept
    again = await keys.get("k")
    assert again is not None and again.answer == {"code": "retry's"}


async def test_the_plain_idempotency_index_of_before_becomes_unique(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """The store of before made a plain index on `idempotency_key`. MongoDB refuses the unique
    one on the same keys; nx-27017 0.8.1 silently keeps the old one (and its `listIndexes` says
    nothing of `unique`): the upgrade drops it by its keys and makes the unique one."""
    db = mongo[isolation.database("intake")]
    await db["dossiers"].create_index([("code_series", 1), ("code_number", -1)])
    await db["statuses"].create_index([("dossier_code", 1), ("at", 1)])
    await db["dossiers"].create_index("idempotency_key")
    await db["dossiers"].insert_one({"_id": "a", "idempotency_key": "k"})  # filed before
    await create_indexes(db)
    await upgrade(db)
    await db["dossiers"].insert_one({"_id": "b"})
    await db["dossiers"].insert_one({"_id": "c"})  # sparse: many without a key
    with pytest.raises(DuplicateKeyError):
        await db["dossiers"].insert_one({"_id": "d", "idempotency_key": "k"})


async def test_where_dossiers_of_before_share_a_key_the_index_stays_plain_and_intake_starts(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """The unique index's build fails (code 11000 on MongoDB; no code at all on nx-27017)."""
    db = mongo[isolation.database("intake")]
    await db["dossiers"].insert_many([{"_id": c, "idempotency_key": "twice"} for c in "ab"])
    await create_indexes(db)
    await upgrade(db)
    await create_indexes(db)  # the next start
    assert await upgrade(db) == 0
    found = db["dossiers"].find({"idempotency_key": "twice"})
    assert [d["_id"] async for d in found] == ["a", "b"]


async def test_a_new_database_is_left_as_it_is(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Nothing of before to upgrade: no marker either (a refused request leaves intake empty)."""
    db = mongo[isolation.database("intake")]
    await create_indexes(db)
    assert await upgrade(db) == 0
    assert await db["intake_meta"].count_documents({"_id": MARKER}) == 0
