"""Intake's adapters against the real MongoDB-wire server (and RabbitMQ where they publish):
codes, the status history fed by events, attachments, idempotency keys, and the round trips of
every hot path, counted with PyMongo's command monitoring."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from gridfs import AsyncGridFSBucket
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import WriteError

from services.intake import handlers
from services.intake.attachments import CHUNK_BYTES, AttachmentStore
from services.intake.domain import Dossier, NotAllowedNow
from services.intake.handlers import Intake, Proof, Submit
from services.intake.status import Step
from services.intake.store import INDEXES, DossierStore, KeyStore, create_indexes, remove_expired
from shared.calendar import WorkingCalendar
from shared.contracts import (
    Channel,
    DossierSupplementRequested,
    DossierSupplementRequestedData,
    Event,
)
from shared.messaging import Broker
from shared.storage import Document
from tests.amqp import observe
from tests.conftest import Isolation
from tests.e2e.flows import SAMPLES
from tests.factories import CATALOGUE, VALID_FORM, approved_event, submitted_event

pytestmark = pytest.mark.integration


async def _nowhere(event: Event) -> None:
    raise AssertionError("must not publish")


def _builder(day: datetime) -> Callable[[str], tuple[Dossier, list[Event]]]:
    def build(code: str) -> tuple[Dossier, list[Event]]:
        event = submitted_event(code=code)
        dossier = Dossier(
            code=code, procedure_code="1.004194", channel=Channel.ONLINE, submitted_at=day, form={}
        )
        return dossier, [event]

    return build


async def test_concurrent_submissions_on_two_replicas_never_share_a_code(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    db = mongo[isolation.database("intake")]
    await create_indexes(db)
    replicas = [DossierStore(db, _nowhere), DossierStore(db, _nowhere)]
    now = datetime(2026, 11, 28, 3, tzinfo=UTC)
    day = date(2026, 11, 28)
    results = await asyncio.gather(
        *(replicas[i % 2].add_new("G01.99", day, _builder(now)) for i in range(100))
    )
    codes = [dossier.code for dossier, _ in results]
    assert len(set(codes)) == 100
    assert await db["dossiers"].count_documents({}) == 100
    assert min(codes) == "G01.99-261128-0001" and max(codes) == "G01.99-261128-0100"
    # Every stored event names the code its dossier got.
    for dossier, doc in results:
        assert doc["outbox"][0]["subject"] == dossier.code
    next_day, _ = await replicas[0].add_new("G01.99", day + timedelta(days=1), _builder(now))
    assert next_day.code == "G01.99-261129-0001"


async def test_a_series_counted_from_scratch_skips_the_codes_already_taken(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Dossiers stored before their series had a counter (or after it expired) keep their
    codes: the next dossier takes the next free number."""
    db = mongo[isolation.database("intake")]
    store = DossierStore(db, _nowhere)
    now = datetime(2026, 11, 28, 3, tzinfo=UTC)
    await db["dossiers"].insert_many([{"_id": f"G01.99-261128-000{n}"} for n in (1, 2)])
    dossier, _ = await store.add_new("G01.99", date(2026, 11, 28), _builder(now))
    assert dossier.code == "G01.99-261128-0003"


async def test_steps_arriving_at_once_go_in_one_write_and_an_unknown_dossier_is_told(
    counted: tuple[Intake, Commands],
) -> None:
    """Review's events for many dossiers arrive at once under load: the steps asked for while
    a write is under way go in one unordered bulk update. A batch in which some did not match
    costs one read by key more, which tells an unknown dossier (None) from a redelivered step
    (recorded before: True, which only a step written alone tells apart, as False)."""
    intake, commands = counted
    store, t0, codes = await _new_dossiers(intake, 6)
    await store.outbox.drain()
    assert await store.add_step(codes[0], Step("e0", "assigned", t0)) is True
    commands.take()
    first = asyncio.create_task(store.add_step(codes[1], Step("e1", "assigned", t0)))
    await _write_under_way(store)
    together = await asyncio.gather(
        *(store.add_step(code, Step(f"e{i}", "assigned", t0)) for i, code in enumerate(codes)),
        store.add_step("G01.99-261128-9999", Step("e9", "assigned", t0)),
    )
    assert await first is True
    assert together == [True] * 6 + [None]  # e0 and e1 again: redeliveries, recorded before
    sent = [(name, collection) for name, collection, _ in commands.take()]
    assert sent == [("update", "dossiers"), ("update", "dossiers"), ("find", "dossiers")]
    for i, code in enumerate(codes):
        found = await store.get(code, with_outbox=False)
        assert found is not None and found.status == "assigned"
        assert [h["status"] for h in found.history] == ["submitted", "assigned"], i


async def _new_dossiers(intake: Intake, n: int) -> tuple[DossierStore, datetime, list[str]]:
    """`n` dossiers submitted now: their store, the moment, their codes."""
    assert isinstance(intake.dossiers, DossierStore)
    t0 = datetime.now(UTC).replace(microsecond=0)
    codes = []
    for _ in range(n):
        dossier, _ = await intake.dossiers.add_new("G01.99", date(2026, 11, 28), _builder(t0))
        codes.append(dossier.code)
    return intake.dossiers, t0, codes


async def _write_under_way(store: DossierStore) -> None:
    """Return once a step's write is under way: the steps asked for next go together."""
    steps = store._steps
    async with asyncio.timeout(5):
        while steps.sender is None or steps.sender.done() or steps.queued:  # noqa: ASYNC110
            await asyncio.sleep(0)


async def test_a_step_the_database_refuses_fails_alone_in_its_batch(
    counted: tuple[Intake, Commands],
) -> None:
    """One refused update of an unordered bulk write (here a dossier whose version is not a
    number) fails its own caller; the others of its batch are written and told so, and are not
    retried as failures."""
    intake, _ = counted
    store, t0, codes = await _new_dossiers(intake, 3)
    await store.dossiers.update_one({"_id": codes[1]}, {"$set": {"version": "x"}})
    first = asyncio.create_task(store.add_step(codes[0], Step("e0", "assigned", t0)))
    await _write_under_way(store)
    together = await asyncio.gather(
        *(store.add_step(code, Step(f"f{i}", "assigned", t0)) for i, code in enumerate(codes)),
        return_exceptions=True,
    )
    assert await first is True
    assert together[0] is True and together[2] is True
    assert isinstance(together[1], WriteError)  # its own failure, retried by the consumer
    for code in (codes[0], codes[2]):
        found = await store.get(code, with_outbox=False)
        assert found is not None and found.status == "assigned"


async def test_status_follows_events_whatever_their_arrival_order(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = DossierStore(mongo[isolation.database("intake")], _nowhere)
    t0 = datetime.now(UTC).replace(microsecond=0)
    dossier, _ = await store.add_new("G01.99", date(2026, 11, 28), _builder(t0))
    at = [t0 + timedelta(minutes=m) for m in range(5)]
    code = dossier.code
    # A supplement loop, then the decision; delivered out of order and once twice.
    assert await store.add_step(code, Step("e4", "supplement_requested", at[3]))
    assert await store.add_step(code, Step("e1", "assigned", at[0]))
    assert await store.add_step(code, Step("e2", "supplement_requested", at[1]))
    assert await store.add_step(code, Step("e3", "supplemented", at[2]))
    assert await store.add_step(code, Step("e1", "assigned", at[0])) is False
    assert await store.add_step("G01.99-261128-9999", Step("e9", "assigned", at[0])) is None
    found = await store.get(code)
    assert found is not None
    assert (found.status, int(found.status_code)) == ("supplement_requested", 5)
    assert await store.add_step(code, Step("e5", "approved", at[4]))
    assert await store.add_step(code, Step("e6", "delivered", at[4]))
    assert await store.add_step(code, Step("e7", "supplemented", at[4]))  # late: ignored
    found = await store.get(code, with_outbox=False)
    assert found is not None
    assert (found.status, int(found.status_code)) == ("delivered", 10)
    assert [h["status"] for h in found.history][:5] == [
        "submitted",
        "assigned",
        "supplement_requested",
        "supplemented",
        "supplement_requested",
    ]


async def test_nx27017_gridfs_defect_attachments_keep_no_datetime_in_metadata(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """nx-27017 0.8.1 refuses a GridFS file whose metadata holds a datetime ("Object of type
    datetime is not JSON serializable") and gives `uploadDate` back as a string: the upload time
    is an ISO string in the metadata, nothing reads `uploadDate`, and any GridFS reader still
    reads the file, whose SHA-256 is that of the bytes stored."""
    db = mongo[isolation.database("intake")]
    await create_indexes(db)
    files = AttachmentStore(db)
    data = bytes(range(256)) * (CHUNK_BYTES // 256 * 2 + 7)  # three chunks, the last one short
    stored = await files.put(data, media_type="application/pdf", document_type="ct01")
    assert stored["sha256"] == hashlib.sha256(data).hexdigest() and stored["size"] == len(data)
    doc = await db["attachments.files"].find_one({"_id": {"$in": [_oid(stored["id"])]}})
    assert doc is not None
    uploaded = datetime.fromisoformat(doc["metadata"]["uploaded_at"])
    assert abs(datetime.now(UTC) - uploaded) < timedelta(minutes=1)
    assert not any(isinstance(v, datetime) for v in doc["metadata"].values())
    # (nx-27017 0.8.1 cannot count GridFS chunks, "no such column: id": they are found instead)
    chunks = await db["attachments.chunks"].find({"files_id": doc["_id"]}).to_list()
    assert sorted(c["n"] for c in chunks) == [0, 1, 2]
    assert await files.read(stored["id"]) == data
    bucket = AsyncGridFSBucket(db, bucket_name="attachments")
    assert await (await bucket.open_download_stream(doc["_id"])).read() == data
    found = await files.describe([stored["id"], "not-an-id", "0" * 24])
    assert found == {
        stored["id"]: {
            "id": stored["id"],
            "size": len(data),
            "media_type": "application/pdf",
            "sha256": stored["sha256"],
            "uploaded_at": doc["metadata"]["uploaded_at"],
        }
    }


async def test_a_partial_upload_never_becomes_a_visible_attachment(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    db = mongo[isolation.database("intake")]
    files = AttachmentStore(db)

    tried: list[Document] = []

    class FailingFiles:  # the file document's write fails after every chunk was stored
        def __getattr__(self, name: str) -> Any:
            return getattr(db["attachments.files"], name)

        async def insert_one(self, doc: Document) -> None:
            tried.append(doc)
            chunks = await db["attachments.chunks"].find({"files_id": doc["_id"]}).to_list()
            assert len(chunks) == 2  # the chunks are all there before the file is written
            raise ConnectionError("the database went away")

    files.files = FailingFiles()  # type: ignore[assignment]
    data = b"%PDF-1.4 " * (CHUNK_BYTES // 9 + 10)
    with pytest.raises(ConnectionError):
        await files.put(data, media_type="application/pdf", document_type="ct01")
    [doc] = tried
    assert await AttachmentStore(db).describe([str(doc["_id"])]) == {}
    assert await AttachmentStore(db).read(str(doc["_id"])) is None
    assert await db["attachments.chunks"].find({"files_id": doc["_id"]}).to_list() == []


async def test_idempotency_keys_expire_after_their_retention_window(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Keys are live only for their retention window: a TTL index on `expires_at` removes
    them (nx-27017 0.8.1 honours TTL indexes, within seconds; MongoDB within a minute). Where
    the server refuses TTL indexes (FerretDB 1.24), intake's own cleanup does it."""
    db = mongo[isolation.database("intake")]
    ttl_honoured = await create_indexes(db)
    if ttl_honoured:
        ttl = [
            i
            async for i in await db["idempotency_keys"].list_indexes()
            if "expireAfterSeconds" in i
        ]
        assert [(dict(i["key"]), i["expireAfterSeconds"]) for i in ttl] == [({"expires_at": 1}, 0)]
    keys = KeyStore(db, retention=timedelta(hours=24))
    now = datetime.now(UTC).replace(microsecond=0)
    assert await keys.claim("fresh", "h", now)
    assert not await keys.claim("fresh", "h", now)
    fresh = await db["idempotency_keys"].find_one({"_id": "fresh"})
    assert fresh is not None and fresh["expires_at"] == now + timedelta(hours=24)
    assert await KeyStore(db, retention=timedelta(seconds=1)).claim(
        "old", "h", now - timedelta(hours=1)
    )
    if not ttl_honoured:
        await remove_expired(db, datetime.now(UTC))
    for _ in range(150):
        if await db["idempotency_keys"].count_documents({"_id": "old"}) == 0:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError("an expired key was not removed within 75 s")
    assert await db["idempotency_keys"].count_documents({"_id": "fresh"}) == 1


async def test_a_taken_over_key_reads_back_when_it_was_claimed(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """nx-27017 0.8.1 stores a datetime given to `$set` as a naive string: a key's claim time,
    rewritten when a retry takes a dead holder's key over, is still read as a moment."""
    keys = KeyStore(mongo[isolation.database("intake")], retention=timedelta(hours=1))
    now = datetime.now(UTC).replace(microsecond=0)
    assert await keys.claim("k", "h", now - timedelta(minutes=5))
    record = await keys.get("k")
    assert record is not None and record.claimed_at == now - timedelta(minutes=5)
    assert await keys.take_over(record, now)
    assert not await keys.take_over(record, now)  # one retry per lease wins
    again = await keys.get("k")
    assert again is not None and (again.claimed_at, again.lease) == (now, 1)


@dataclass
class Commands(monitoring.CommandListener):
    """Every command a client sends (without the handshakes)."""

    seen: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("ping", "hello", "isMaster", "endSessions", "listIndexes"):
            return
        command = event.command
        query = command.get("filter") or command.get("query") or {}
        for key in ("updates", "deletes"):
            if key in command:
                query = command[key][0].get("q", {})
        self.seen.append((event.command_name, str(command.get(event.command_name)), query))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> list[tuple[str, str, dict[str, Any]]]:
        seen, self.seen = self.seen, []
        return seen


@pytest.fixture
async def counted(isolation: Isolation) -> AsyncIterator[tuple[Intake, Commands]]:
    commands = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        isolation.mongodb_url, tz_aware=True, event_listeners=[commands]
    )
    db: AsyncDatabase[Document] = client[isolation.database("intake")]
    await create_indexes(db)
    broker = Broker(isolation.amqp_url, service="intake")
    await broker.connect()
    store = DossierStore(db, broker.publish)
    intake = Intake(
        dossiers=store,
        files=AttachmentStore(db),
        keys=KeyStore(db, retention=timedelta(hours=1)),
        catalogue=CATALOGUE,
        publish=store.publish,
        calendar=WorkingCalendar(),
    )
    try:
        async with observe(isolation.amqp_url):  # so that intake's events are routed
            commands.take()
            yield intake, commands
    finally:
        await broker.close()
        await client.drop_database(db.name)
        await client.close()


async def required_files(intake: Intake) -> list[dict[str, str]]:
    """The references to one stored file of each document the sample procedure requires."""
    procedure = CATALOGUE.procedures[VALID_FORM["procedure_code"]]
    refs = []
    for spec in [d for d in procedure.documents if d.required]:
        media = spec.media_types[0]
        put = await intake.files.put(SAMPLES[media], media_type=media, document_type=spec.type)
        refs.append({"document_type": spec.type, "id": put["id"]})
    return refs


def _oid(raw: str) -> ObjectId:
    return ObjectId(raw)


async def test_every_hot_path_makes_a_small_fixed_number_of_keyed_round_trips(
    counted: tuple[Intake, Commands],
) -> None:
    intake, commands = counted
    budgets: dict[str, int] = {}

    async def spent(step: str) -> list[tuple[str, str, dict[str, Any]]]:
        # A step's mark clear is written after it returns (off its path): counted with it.
        assert isinstance(intake.dossiers, DossierStore)
        await intake.dossiers.outbox.drain()
        seen = commands.take()
        budgets[step] = len(seen)
        for name, collection, query in seen:
            if name in ("insert",):
                continue
            if (step, collection) == ("the day's first submit", "dossiers") and name == "find":
                assert set(query) == {"code_series"}  # the series' highest number, indexed
                continue
            assert "_id" in query, (step, name, collection, query)  # all else by key
        return seen

    procedure = CATALOGUE.procedures[VALID_FORM["procedure_code"]]
    refs = []
    for spec in [d for d in procedure.documents if d.required]:
        media = spec.media_types[0]
        put = await handlers.upload(
            SAMPLES[media],
            media_type=media,
            document_type=spec.type,
            files=intake.files,
            catalogue=intake.catalogue,
        )
        refs.append({"document_type": spec.type, "id": put["id"]})
        await spent("upload")
    body = {**VALID_FORM, "attachments": refs}
    await handlers.submit(Submit(body, idempotency_key="k0"), intake=intake)
    await spent("the day's first submit")  # and its counter
    for n in range(1, 3):
        await handlers.submit(Submit(body, idempotency_key=f"k{n}"), intake=intake)
        await spent("submit with Idempotency-Key")
    _, replayed = await handlers.submit(Submit(body, idempotency_key="k2"), intake=intake)
    assert replayed
    await spent("submit replayed")
    first, _ = await handlers.submit(Submit(body), intake=intake)
    submitted = await spent("submit without key")
    # The new dossier's insert marked its event; once published, the last write cleared it.
    assert [(n, c) for n, c, _ in submitted][-2:] == [
        ("insert", "dossiers"),
        ("update", "dossiers"),
    ]
    assert isinstance(intake.dossiers, DossierStore)
    stored = await intake.dossiers.dossiers.find_one({"_id": first["code"]})
    assert stored is not None and "outbox_pending" not in stored
    assert "outbox_pending_since" not in stored
    commands.take()
    code, secret = first["code"], first["access_secret"]
    await handlers.look_up(Proof(code, secret=secret), dossiers=intake.dossiers)
    await spent("status by secret")
    phone = VALID_FORM["applicant"]["phone"]
    await handlers.look_up(Proof(code, phone=phone), dossiers=intake.dossiers)
    await spent("status by phone")
    asked = DossierSupplementRequested.create(
        source="review",
        subject=code,
        data=DossierSupplementRequestedData(
            dossier_code=code, task_id="t1", officer_id="o1", requested_at=datetime.now(UTC)
        ),
    )
    await handlers.record_review_event(asked, dossiers=intake.dossiers)
    await spent("review's event recorded")
    await handlers.record_review_event(asked, dossiers=intake.dossiers)
    await spent("review's event redelivered")
    await handlers.supplement(Proof(code, secret=secret), refs[:1], None, intake=intake)
    await spent("supplement")
    withdrawn = await handlers.withdraw(Proof(code, secret=secret), "moved", intake=intake)
    assert withdrawn.status == "withdrawn"
    await spent("withdraw")
    assert budgets == {
        "upload": 2,  # chunks, file
        "the day's first submit": 8,  # + the series' highest number, the counter's insert
        # files, claim, counter, the dossier (its event marked), the mark cleared, the answer
        "submit with Idempotency-Key": 6,
        "submit replayed": 3,  # files, claim (taken), key
        "submit without key": 4,
        "status by secret": 1,
        "status by phone": 1,
        "review's event recorded": 1,
        "review's event redelivered": 2,  # the keyed write that changes nothing, then the check
        "supplement": 5,  # dossier, files, pointer, dossier, unpoint
        "withdraw": 4,  # dossier, pointer, dossier, unpoint
    }


async def test_of_concurrent_withdrawals_one_wins_and_emits_one_event(
    counted: tuple[Intake, Commands], isolation: Isolation, mongo: AsyncMongoClient[Document]
) -> None:
    intake, _ = counted
    if "ferretdbVersion" in await mongo.admin.command("buildInfo"):
        pytest.skip("FerretDB 1.24 does not isolate conditional updates (no longer supported)")
    refs = await required_files(intake)
    answer, _ = await handlers.submit(Submit({**VALID_FORM, "attachments": refs}), intake=intake)
    proof = Proof(answer["code"], secret=answer["access_secret"])
    async with observe(isolation.amqp_url) as seen:
        results = await asyncio.gather(
            *(handlers.withdraw(proof, None, intake=intake) for _ in range(5)),
            handlers.record_review_event(
                approved_event(submitted_event(code=proof.code)), dossiers=intake.dossiers
            ),
            return_exceptions=True,
        )
        withdrawals = results[:5]
        assert sum(isinstance(r, Dossier) for r in withdrawals) == 1, withdrawals
        assert all(isinstance(r, (Dossier, NotAllowedNow)) for r in withdrawals), withdrawals
        await seen.wait_for("dossier.withdrawn")
        await asyncio.sleep(0.5)
        assert len(seen.events("dossier.withdrawn")) == 1
    stored = await intake.dossiers.get(proof.code)
    assert stored is not None and stored.status == "withdrawn"
    assert {s.status for s in stored.steps} == {"withdrawn", "approved"}
    # nx-27017 0.8.1 stores a `$push`ed subdocument as a JSON string: the outbox list is
    # written whole, and keeps every event as a document, the submission's first.
    assert stored.outbox is not None
    assert [e["type"] for e in stored.outbox] == ["dossier.submitted", "dossier.withdrawn"]


async def test_every_declared_index_can_be_created(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    db = mongo[isolation.database("intake")]
    await create_indexes(db)
    await create_indexes(db)  # again at the next start: a no-op
    for collection in INDEXES:
        names = [i["name"] async for i in await db[collection].list_indexes()]
        assert len(names) >= 2, (collection, names)


async def test_where_ttl_indexes_are_refused_expired_keys_are_removed_by_one_delete_each(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """FerretDB 1.24 refuses TTL indexes: intake then removes what has expired itself, at a
    long interval, with one indexed delete per expiring collection."""
    db = mongo[isolation.database("intake")]
    assert await create_indexes(db) in (True, False)
    now = datetime.now(UTC).replace(microsecond=0)
    keys = KeyStore(db, retention=timedelta(hours=1))
    assert await keys.claim("old", "h", now - timedelta(hours=2))
    assert await keys.claim("fresh", "h", now)
    store = DossierStore(db, _nowhere)
    await store.next_number("G01.99-261128", date(2026, 11, 28))
    await store.next_number("G01.99-991231", date(2099, 12, 31))
    await remove_expired(db, now)
    assert [
        d["_id"] async for d in db["idempotency_keys"].find({"_id": {"$in": ["old", "fresh"]}})
    ] == ["fresh"]
    assert await db["counters"].find_one({"_id": "G01.99-261128"}) is None
    assert await db["counters"].find_one({"_id": "G01.99-991231"}) is not None
