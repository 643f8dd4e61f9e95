"""Service adapters against the real MongoDB-wire server (and RabbitMQ for the outbox)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from services.audit.domain import build_record
from services.audit.store import AuditStore
from services.intake.domain import Dossier
from services.intake.store import DossierStore
from shared.contracts import (
    Channel,
    Event,
)
from shared.messaging import Broker
from shared.outbox import (
    RELAY_BATCH,
    Clears,
    ClearsFailed,
    Outbox,
    inline_fields,
    inline_set,
    outbox_fields,
)
from shared.storage import Document, mongo_client
from tests.amqp import observe
from tests.conftest import Isolation
from tests.factories import submitted_event

pytestmark = pytest.mark.integration


async def _nowhere(event: Event) -> None:
    raise AssertionError("must not publish")


def _builder(day: datetime) -> Callable[[str], tuple[Dossier, list[Event]]]:
    def build(code: str) -> tuple[Dossier, list[Event]]:
        event = submitted_event(code=code)
        dossier = Dossier(
            code=code,
            procedure_code="1.004194",
            channel=Channel.ONLINE,
            submitted_at=day,
            form={},
        )
        return dossier, [event]

    return build


async def test_audit_records_an_event_once(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = AuditStore(mongo[isolation.database("audit")])
    await store.setup()
    event = submitted_event()
    record = build_record(event, hmac_key=b"k", recorded_at=datetime.now(UTC))
    await store.insert_records([record], hmac_key=b"k")
    await store.insert_records([record], hmac_key=b"k")  # a redelivery changes nothing
    [doc] = await store.timeline(event.subject)
    assert doc["_id"] == event.id and doc["type"] == "dossier.submitted"
    assert await store.pending_ids(event.subject) == {event.id}


async def test_the_outbox_relay_publishes_what_a_failed_publish_left_behind(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    broker = Broker(isolation.amqp_url, service="test")
    await broker.connect()
    store = DossierStore(mongo[isolation.database("intake")], broker.publish)
    # Stored, never published (as if the broker had been down).
    dossier, doc = await store.add_new("G01.99", date(2026, 11, 28), _builder(datetime.now(UTC)))
    event_id = doc["outbox"][0]["id"]
    marked = await store.dossiers.find_one({"_id": dossier.code})
    assert marked is not None and marked["outbox_pending"] == [event_id]  # by its own insert
    async with observe(isolation.amqp_url) as seen:
        assert await store.outbox.relay_once(older_than=timedelta(0)) == 1
        [published] = await seen.wait_for("dossier.submitted")
        assert await store.outbox.relay_once(older_than=timedelta(0)) == 0
    assert published["id"] == event_id
    assert await store.outbox.pending.count_documents({}) == 0
    stored = await store.dossiers.find_one({"_id": dossier.code})
    assert stored is not None and stored["outbox"][0]["id"] == event_id  # kept for redelivery
    assert "outbox_pending" not in stored and "outbox_pending_since" not in stored  # cleared
    await broker.close()


async def test_the_relay_drops_pointers_whose_write_never_happened(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Also the nx-27017 0.8.1 defect: the `$set` below stores `created_at` as a string."""
    store = DossierStore(mongo[isolation.database("intake")], _nowhere)
    # As if the process died between pointing at an event and writing the dossier.
    await store.outbox.expect(store.dossiers, "G01.99-261128-0042", [submitted_event()])
    assert await store.outbox.relay_once(older_than=timedelta(0)) == 0
    assert await store.outbox.pending.count_documents({}) == 1  # kept a while: it may come
    await store.outbox.pending.update_many(
        {}, {"$set": {"created_at": datetime.now(UTC) - timedelta(minutes=5)}}
    )
    assert await store.outbox.relay_once(older_than=timedelta(0)) == 0
    assert await store.outbox.pending.count_documents({}) == 0


def _commands_of(service: str) -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "motcua_db_commands"
        for sample in metric.samples
        if sample.name == "motcua_db_commands_total" and sample.labels["service"] == service
    )


async def test_the_outbox_relay_sends_no_command_between_long_interval_rounds(
    isolation: Isolation,
) -> None:
    service = f"relay-{uuid.uuid4().hex[:8]}"
    client = mongo_client(isolation.mongodb_url, service=service)
    db = client[isolation.database("relay")]
    outbox = Outbox(db, _nowhere, service=service, sources=[db["things"]])
    relay = asyncio.create_task(outbox.run(interval=60))
    try:
        await asyncio.sleep(0.5)
        started = _commands_of(service)
        assert started == 1  # the start-up round: one query on the created_at index
        await asyncio.sleep(2.0)
        assert _commands_of(service) == started
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        await client.drop_database(isolation.database("relay"))
        await client.close()


async def test_the_outbox_relay_wakes_on_a_failed_flush_and_publishes_it(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    db = mongo[isolation.database("relay")]
    published: list[Event] = []
    down = True

    async def publish(event: Event) -> None:
        if down:
            raise ConnectionError("broker away")
        published.append(event)

    outbox = Outbox(db, publish, service="test", sources=[db["things"]])
    relay = asyncio.create_task(outbox.run(interval=60, grace=timedelta(milliseconds=200)))
    try:
        await asyncio.sleep(0.3)  # the start-up round found nothing: the relay now waits
        event = submitted_event()
        await outbox.expect(db["things"], "d1", [event])
        await db["things"].insert_one({"_id": "d1", **outbox_fields([event])})
        with pytest.raises(ConnectionError):
            await outbox.flush([event])
        down = False
        for _ in range(50):  # well before the 60 s interval
            if published:
                break
            await asyncio.sleep(0.1)
        assert [e.id for e in published] == [event.id]
        assert await outbox.pending.count_documents({}) == 0
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)


def _inline_outbox(
    isolation: Isolation, name: str
) -> tuple[str, AsyncMongoClient[Document], Any, list[Event], Outbox]:
    """An outbox over one inline collection `things` of database `name`, publishing into a
    list; its service name (for its command count) and client."""
    service = f"{name}-{uuid.uuid4().hex[:8]}"
    client = mongo_client(isolation.mongodb_url, service=service)
    things = client[isolation.database(name)]["things"]
    published: list[Event] = []

    async def publish(event: Event) -> None:
        published.append(event)

    outbox = Outbox(things.database, publish, service=service, sources=[], inline=[things])
    return service, client, things, published, outbox


async def test_the_outbox_relay_publishes_what_an_inline_write_left_marked(
    isolation: Isolation,
) -> None:
    """Works around three nx-27017 0.8.1 defects: a datetime written by an update operator
    reads back as a string (the mark is epoch milliseconds), an array-equality filter is
    refused (settle matches with $all + $size), and `$push` onto an array of sub-documents
    turns them into JSON strings (inline_set sets whole values)."""
    service, client, things, published, outbox = _inline_outbox(isolation, "inline")
    try:
        # A step that completes: the insert marks its event, settle clears the mark.
        first, second, third = submitted_event(), submitted_event(), submitted_event()
        await things.insert_one({"_id": "a", **inline_fields([first])})
        before = _commands_of(service)
        assert await outbox.settle(things, "a", [first]) == [first]
        assert _commands_of(service) == before  # the clear is off the step's path
        await outbox.drain()
        assert _commands_of(service) == before + 1  # one update clears the only mark
        doc = await things.find_one({"_id": "a"})
        assert doc is not None and "outbox_pending" not in doc and "outbox_pending_since" not in doc
        # A step whose process died after its conditional update appended an event.
        old = datetime.now(UTC) - timedelta(minutes=1)
        loaded = await things.find_one({"_id": "a"})
        assert loaded is not None
        changed = {"v": 2, **inline_set(loaded, [second], at=old)}
        await things.update_one({"_id": "a", "v": None}, {"$set": changed})
        await things.insert_one({"_id": "b", **inline_fields([third])})  # in flight: too young
        assert await outbox.relay_once() == 1
        assert [e.id for e in published] == [first.id, second.id]
        assert outbox.next_due is not None  # "b" comes of age in a few seconds
        doc = await things.find_one({"_id": "a"})
        assert doc is not None and "outbox_pending" not in doc
        assert [e["id"] for e in doc["outbox"]] == [first.id, second.id]  # kept for redelivery
        assert await outbox.relay_once(older_than=timedelta(0)) == 1
        assert await things.count_documents({"outbox_pending_since": {"$exists": True}}) == 0
    finally:
        await client.drop_database(isolation.database("inline"))
        await client.close()


async def test_clears_asked_for_at_once_go_in_one_write_and_a_mark_holding_more_keeps_the_rest(
    isolation: Isolation,
) -> None:
    """Settles of many documents at once: each clear asked for while a write is under way
    goes in the next one (an unordered bulk update), so 20 settles cost far fewer than 20
    updates. A document that a later write marked with another event meanwhile keeps that
    event's mark (only the published id is pulled), and the relay publishes it. Two clears of
    one document (two of its writes published meanwhile) go as one: apart, neither matches a
    mark that holds both, and both pulls would leave an empty mark behind."""
    service, client, things, published, outbox = _inline_outbox(isolation, "clears")
    try:
        events = [submitted_event() for _ in range(20)]
        for i, event in enumerate(events):
            await things.insert_one({"_id": f"d{i}", **inline_fields([event])})
        x, y = submitted_event(), submitted_event()
        await things.insert_one({"_id": "twice", **inline_fields([x, y])})
        # d5 is marked again by a later write before its first event is settled.
        later = submitted_event()
        loaded = await things.find_one({"_id": "d5"})
        assert loaded is not None
        old = datetime.now(UTC) - timedelta(minutes=1)
        await things.update_one({"_id": "d5"}, {"$set": inline_set(loaded, [later], at=old)})
        before = _commands_of(service)
        settled = await asyncio.gather(
            *(outbox.settle(things, f"d{i}", [e]) for i, e in enumerate(events)),
            outbox.settle(things, "twice", [x]),
            outbox.settle(things, "twice", [y]),
        )
        assert settled == [[e] for e in events] + [[x], [y]]
        await outbox.drain()
        # All 22 clears are asked for before the first write goes: one bulk update (the two
        # of "twice" as one); then one read finds d5's mark holding more, and one update pulls
        # its published id.
        assert _commands_of(service) - before == 3
        marked = [doc async for doc in things.find({"outbox_pending": {"$exists": True}})]
        assert [(d["_id"], d["outbox_pending"]) for d in marked] == [("d5", [later.id])]
        assert await outbox.relay_once() == 1
        assert published[-1].id == later.id
        assert await things.count_documents({"outbox_pending_since": {"$exists": True}}) == 0
    finally:
        await client.drop_database(isolation.database("clears"))
        await client.close()


async def test_a_clear_that_fails_is_logged_and_its_mark_left_to_the_relay(
    isolation: Isolation, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The clear runs after the step answered: its failure reaches no caller. The mark stays,
    so the relay publishes the event again (consumers deduplicate by id) and clears it."""
    _, client, things, published, outbox = _inline_outbox(isolation, "clearfails")
    try:
        event = submitted_event()
        await things.insert_one({"_id": "a", **inline_fields([event])})
        write = Clears._write
        failures = [RuntimeError("the database went away")]

        async def failing_once(self: Clears, batch: list[tuple[Any, list[str]]]) -> None:
            if failures:
                raise failures.pop()
            await write(self, batch)

        monkeypatch.setattr(Clears, "_write", failing_once)
        assert await outbox.settle(things, "a", [event]) == [event]  # no error for the step
        await outbox.drain()
        assert "clearing 1 outbox mark(s) in things failed" in caplog.text
        doc = await things.find_one({"_id": "a"})
        assert doc is not None and doc["outbox_pending"] == [event.id]  # left to the relay
        assert await outbox.relay_once(older_than=timedelta(0)) == 1
        assert [e.id for e in published] == [event.id, event.id]
        doc = await things.find_one({"_id": "a"})
        assert doc is not None and "outbox_pending" not in doc  # the relay awaited its clear
        assert await outbox.relay_once(older_than=timedelta(0)) == 0
    finally:
        await client.drop_database(isolation.database("clearfails"))
        await client.close()


async def test_a_relay_round_whose_clears_fail_fails_so_that_the_relay_backs_off(
    isolation: Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads served, writes refused: a round that published but could not clear would read
    the same marks again at once (a backlog) and publish them again and again."""
    _, client, things, published, outbox = _inline_outbox(isolation, "clearsdown")
    try:
        event = submitted_event()
        await things.insert_one({"_id": "a", **inline_fields([event])})

        async def refused(self: Clears, batch: list[tuple[Any, list[str]]]) -> None:
            raise RuntimeError("not writable")

        monkeypatch.setattr(Clears, "_write", refused)
        with pytest.raises(ClearsFailed):
            await outbox.relay_once(older_than=timedelta(0))
        assert [e.id for e in published] == [event.id]  # published once, then the round failed
    finally:
        await client.drop_database(isolation.database("clearsdown"))
        await client.close()


async def test_clears_all_superseded_count_as_written(isolation: Isolation) -> None:
    """A clear dropped because the document was written again without those ids has nothing
    left to do: whoever waits for it (a relay round) is told it is done, not failed."""
    _, client, things, _, _ = _inline_outbox(isolation, "superseded")
    try:
        clears = Clears(things, linger=0.05)
        alone = clears.later("a", ["e1"])
        clears.superseded("a", {"e1"})
        assert await alone is True
        writing = clears.later("b", ["e2"])  # b's clear is written while c's waits
        await asyncio.sleep(0.06)
        dropped = clears.later("c", ["e3"])
        clears.superseded("c", {"e3"})
        assert await writing is True and await dropped is True
    finally:
        await client.drop_database(isolation.database("superseded"))
        await client.close()


async def test_a_stopping_relay_writes_the_clears_asked_for_before_it_ends(
    isolation: Isolation,
) -> None:
    """A service stops by cancelling its relay, then closes its database client: the clears
    still waiting are written first, so the next start publishes nothing twice."""
    service, client, things, published, _ = _inline_outbox(isolation, "clearstop")
    outbox = Outbox(
        things.database,
        published_to(published),
        service=service,
        sources=[],
        inline=[things],
        linger=0.5,
    )
    try:
        events = [submitted_event() for _ in range(3)]
        for i, event in enumerate(events):
            await things.insert_one({"_id": f"d{i}", **inline_fields([event])})
        relay = asyncio.create_task(outbox.run(60))
        await asyncio.sleep(0.2)  # its first round: the marks are too young
        for i, event in enumerate(events):
            assert await outbox.settle(things, f"d{i}", [event]) == [event]
        assert await things.count_documents({"outbox_pending": {"$exists": True}}) == 3
        relay.cancel()  # long before the clears' half-second linger is over
        await asyncio.gather(relay, return_exceptions=True)
        assert await things.count_documents({"outbox_pending": {"$exists": True}}) == 0
    finally:
        await client.drop_database(isolation.database("clearstop"))
        await client.close()


def published_to(published: list[Event]) -> Callable[[Event], Any]:
    async def publish(event: Event) -> None:
        published.append(event)

    return publish


async def test_the_outbox_relay_drains_a_backlog_larger_than_a_batch_at_once(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """After a broker outage, what piled up goes out at once, not one batch per interval."""
    db = mongo[isolation.database("relay")]
    published: list[Event] = []

    async def publish(event: Event) -> None:
        published.append(event)

    outbox = Outbox(db, publish, service="test", sources=[db["things"]])
    events = [submitted_event(code=f"D{i}") for i in range(RELAY_BATCH + 50)]
    old = datetime.now(UTC) - timedelta(minutes=1)
    await db["things"].insert_many([{"_id": e.subject, **outbox_fields([e])} for e in events])
    await outbox.pending.insert_many(
        [{"_id": e.id, "source": "things", "doc_id": e.subject, "created_at": old} for e in events]
    )
    relay = asyncio.create_task(outbox.run(interval=60))
    try:
        for _ in range(100):  # well before the 60 s interval
            if len(published) == len(events):
                break
            await asyncio.sleep(0.1)
        assert sorted(e.id for e in published) == sorted(e.id for e in events)
        assert await outbox.pending.count_documents({}) == 0
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
