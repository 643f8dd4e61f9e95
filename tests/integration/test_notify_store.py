"""Notify's store against the real MongoDB-wire server: guarded writes as the arbiter of racing
handlers (two replicas' stores on one database), the move to history, the paged log, and what a
delivery costs in database round trips (counted with PyMongo command monitoring)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import NetworkTimeout

from services.notify import handlers, operators
from services.notify.domain import (
    Delivery,
    claim,
    decode_cursor,
    failed,
    new_delivery,
    retrying,
    sent,
)
from services.notify.ports import Notifier, Unreadable
from services.notify.retries import RetryQueues
from services.notify.routing import ChannelRoute, Planned
from services.notify.store import HISTORY, LIVE, RECIPIENTS, NotifyStore, document
from shared.clock import Clock
from shared.messaging import Broker
from shared.storage import Document
from tests.amqp import observe
from tests.conftest import Isolation
from tests.factories import approved_event, submitted_event
from tests.unit.test_notify_handlers import ROUTING, TEMPLATES, FakeChannel, submitted, world

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=60)


async def _store(mongo: AsyncMongoClient[Document], isolation: Isolation) -> NotifyStore:
    store = NotifyStore(mongo[isolation.database("notify")])
    await store.setup()
    return store


def _fresh(delivery_id: str, now: datetime, code: str = "D1") -> Delivery:
    planned = Planned(delivery_id, "applicant", "sms", route=ChannelRoute(template="approved"))
    return new_delivery(submitted_event(code=code), planned, "+849*****678", now=now)


def at(moment: datetime) -> Clock:
    return lambda: moment


async def take(
    store: NotifyStore, fresh: Delivery, moment: datetime, *, tries: int = 5, reopen: int = 0
) -> tuple[str, Delivery]:
    decision, delivery = await handlers.take(
        fresh, deliveries=store, clock=at(moment), lease=LEASE, tries=tries, reopen=reopen
    )
    return decision.kind, delivery


async def test_a_contact_is_read_once_per_replica_and_the_first_stored_stays(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await _store(mongo, isolation)
    await store.remember("D1", {"phone": "0912345678"})
    other = NotifyStore(store.db, contacts_kept=2)  # another replica, which saw no submission
    await other.remember("D1", {"phone": "0999999999"})  # a second submission event: refused
    assert (await other.recipient("D1") or {})["phone"] == "0912345678"
    await store.db[RECIPIENTS].delete_one({"_id": "D1"})  # both now answer from their copy
    assert (await store.recipient("D1") or {})["phone"] == "0912345678"
    assert (await other.recipient("D1") or {})["phone"] == "0912345678"
    for code in ("D2", "D3"):  # the oldest copy goes beyond `contacts_kept`
        await other.remember(code, {"phone": "0900000000"})
    assert "D1" not in other.contacts and await other.recipient("D1") is None


async def test_of_concurrent_claims_on_one_delivery_exactly_one_may_send(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await _store(mongo, isolation)
    replicas = [store, NotifyStore(store.db)]  # two replicas' adapters on one database
    now = datetime.now(UTC).replace(microsecond=0)
    fresh = _fresh("e1:applicant:sms", now)
    claims = await asyncio.gather(*(take(replicas[i % 2], fresh, now) for i in range(8)))
    assert [kind for kind, _ in claims].count("send") == 1
    assert {kind for kind, _ in claims} <= {"send", "busy"}
    [mine] = [d for kind, d in claims if kind == "send"]
    assert (mine.attempts, mine.status, mine.version) == (1, "sending", 1)

    # A try whose outcome was never recorded is taken over once its lease has passed.
    kind, later = await take(store, fresh, now + LEASE)
    assert (kind, later.attempts) == ("send", 2)
    # A transient failure waits for its retry; a recorded outcome is final.
    waiting = await store.save(
        later, retrying(later, reason="HTTP 503", next_at=now + 2 * LEASE, now=now + LEASE)
    )
    assert waiting is not None and waiting.status == "retrying"
    assert (await take(store, fresh, now + LEASE))[0] == "not_due"
    kind, due = await take(store, fresh, now + 2 * LEASE)
    assert (kind, due.attempts) == ("send", 3)
    done = await store.save(due, sent(due, provider_id="p1", now=now, source="urn:test"))
    assert done is not None
    assert (await store.save(due, sent(due, provider_id="p2", now=now, source="u"))) is None
    kind, final = await take(store, fresh, now + 9 * LEASE)
    assert (kind, final.status, final.attempts) == ("finished", "sent", 3)
    # The live document is the whole aggregate: state, tries and the outcome's event.
    raw = await store.live.find_one({"_id": "e1:applicant:sms"})
    assert raw is not None and (raw["status"], raw["attempts"], raw["version"]) == ("sent", 3, 5)
    assert [e["type"] for e in raw["outbox"]] == ["notification.sent"]

    # Finished, it moves to history; claims find it there, finished, however many at once. (A
    # claim inserts before it reads: one that loads another's insert before that steps back
    # finds it unchecked, looks in history too, and finds it finished as well.)
    await store.archive(final)
    assert await store.live.find_one({"_id": "e1:applicant:sms"}) is None
    kinds = await asyncio.gather(*(take(replicas[i % 2], fresh, now) for i in range(4)))
    assert {(k, d.archived, d.provider_message_id) for k, d in kinds} == {("finished", True, "p1")}
    assert await store.live.count_documents({"_id": "e1:applicant:sms"}) == 0
    assert (await take(store, fresh, now))[0] == "finished"


async def test_a_delivery_whose_every_try_crashed_is_exhausted_not_retried_forever(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await _store(mongo, isolation)
    now = datetime.now(UTC).replace(microsecond=0)
    fresh = _fresh("e2:applicant:sms", now, code="D2")
    kind, first = await take(store, fresh, now, tries=2)
    assert (kind, first.attempts) == ("send", 1)
    # Neither try records an outcome (the sender crashes each time).
    kind, second = await take(store, fresh, now + LEASE, tries=2)
    assert (kind, second.attempts) == ("send", 2)
    assert (await take(store, fresh, now + LEASE, tries=2))[0] == "busy"
    kind, last = await take(store, fresh, now + 2 * LEASE, tries=2)
    assert (kind, last.attempts) == ("exhausted", 2)


async def test_a_replay_reopens_a_failed_delivery_once_with_its_tries_afresh(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await _store(mongo, isolation)
    now = datetime.now(UTC).replace(microsecond=0)
    fresh = _fresh("e3:applicant:sms", now, code="D3")
    _, first = await take(store, fresh, now, tries=1)
    gave_up = failed(first, reason="HTTP 400", permanent=True, now=now, source="urn:test")
    saved = await store.save(first, gave_up)
    assert saved is not None
    await store.archive(saved)
    plain = await take(store, fresh, now, tries=1)
    assert plain[0] == "finished"  # a redelivery without the replay's header changes nothing
    # Two replicas, two copies each of the same replayed message: one reopens and sends.
    replicas = [store, NotifyStore(store.db)]
    claims = await asyncio.gather(
        *(take(replicas[i % 2], fresh, now, tries=1, reopen=1) for i in range(4))
    )
    [mine] = [d for kind, d in claims if kind == "send"]
    assert (mine.attempts, mine.base, mine.reopens) == (2, 1, 1)
    # Its try is the first since the reopening: not exhausted by the earlier one.
    kind, later = await take(store, fresh, now + 2 * LEASE, tries=1, reopen=1)
    assert (kind, later.attempts) == ("exhausted", 2)


async def test_history_is_never_written_over_by_an_older_version(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Relies on an upsert whose filter misses an existing _id failing as a duplicate key (as on
    MongoDB); checked here on the embedded server too."""
    store = await _store(mongo, isolation)
    now = datetime.now(UTC).replace(microsecond=0)
    _, claimed = await take(store, _fresh("e4:applicant:sms", now), now)
    older = await store.save(
        claimed, failed(claimed, reason="x", permanent=True, now=now, source="u")
    )
    assert older is not None
    _, reopened = await take(store, older, now, reopen=1)  # reopened before `older` moved
    newer = await store.save(reopened, sent(reopened, provider_id="p", now=now, source="u"))
    assert newer is not None
    await store.archive(newer)
    await store.archive(older)  # a stale mover, late
    kept = await store.history.find_one({"_id": "e4:applicant:sms"})
    assert kept is not None and (kept["status"], kept["version"]) == ("sent", newer.version)
    assert await store.live.count_documents({"_id": "e4:applicant:sms"}) == 0


async def test_deliveries_finished_at_once_move_in_two_commands_never_over_a_later_version(
    counted: tuple[Notifier, Commands, dict[str, FakeChannel]],
) -> None:
    """Moves asked for while one is under way go together: one bulk write to history, one
    bulk delete from live. In the same batch, a stale mover's older version of a delivery
    history already holds later is refused (a duplicate key), and the others still move."""
    notifier, commands, _ = counted
    store = notifier.deliveries
    assert isinstance(store, NotifyStore)
    now = datetime.now(UTC).replace(microsecond=0)
    finished: list[Delivery] = []
    for i in range(10):
        _, claimed = await take(store, _fresh(f"m{i}:applicant:sms", now), now)
        done = await store.save(claimed, sent(claimed, provider_id="p", now=now, source="u"))
        assert done is not None
        finished.append(done)
    stale = replace(finished[0], version=finished[0].version - 1, status="failed")
    await store.archive(finished[0])  # alone: a copy and a delete, sent at once
    commands.take()
    await asyncio.gather(*(store.archive(d) for d in [stale, *finished[1:]]))
    assert [(name, coll) for name, coll, _ in commands.take()] == [
        ("update", HISTORY),
        ("delete", LIVE),
    ]
    ids = {"_id": {"$in": [d.id for d in finished]}}
    kept = {doc["_id"]: doc async for doc in store.history.find(ids)}
    assert {key: doc["version"] for key, doc in kept.items()} == {d.id: d.version for d in finished}
    assert kept["m0:applicant:sms"]["status"] == "sent"  # not written over by the stale one
    assert await store.live.count_documents(ids) == 0


async def test_a_new_delivery_already_in_history_is_not_created_again(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await _store(mongo, isolation)
    now = datetime.now(UTC).replace(microsecond=0)
    fresh = _fresh("e5:applicant:sms", now)
    done = sent(replace(fresh, attempts=1, version=3), provider_id="p", now=now, source="u")
    # As if another handler created, sent and moved it between our two reads and our insert.
    await store.history.insert_one(document(done))
    claimed = replace(fresh, attempts=1, status="sending", lease_until=now + LEASE)
    assert await store.save(fresh, claimed) is None
    assert await store.live.count_documents({"_id": fresh.id}) == 0


class FailingOnce:
    """A collection whose next `find_one` fails (a timeout, a stopping service), then works."""

    def __init__(self, collection: object) -> None:
        self.collection = collection
        self.failed = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.collection, name)

    async def find_one(self, *args: object, **kwargs: object) -> object:
        if not self.failed:
            self.failed = True
            raise NetworkTimeout("the history read did not answer")
        return await self.collection.find_one(*args, **kwargs)  # type: ignore[attr-defined]


@pytest.mark.parametrize("found_by", ["a redelivery", "the sweep", "the delivery log"])
async def test_an_insert_whose_history_check_failed_never_hides_the_finished_delivery(
    mongo: AsyncMongoClient[Document], isolation: Isolation, found_by: str
) -> None:
    """A redelivered event's insert lands, then its check of history fails: the copy left in
    live is marked unchecked, and whoever reads it next (the redelivery, the sweep once its due
    moment passed) finds the finished delivery in history, drops it, and sends nothing."""
    store = await _store(mongo, isolation)
    now = datetime.now(UTC).replace(microsecond=0)
    fresh = _fresh("e7:applicant:sms", now)
    done = sent(replace(fresh, attempts=1, version=1), provider_id="p", now=now, source="u")
    await store.history.insert_one(document(replace(done, version=2)))
    real = store.history
    store.history = FailingOnce(real)  # type: ignore[assignment]
    with pytest.raises(NetworkTimeout):
        await take(store, fresh, now, tries=1)
    store.history = real
    assert await store.live.count_documents({"_id": fresh.id, "unchecked": True}) == 1
    later = now + 10 * LEASE  # past the left copy's lease and due moment
    if found_by == "a redelivery":
        kind, delivery = await take(store, fresh, later, tries=1)
        assert (kind, delivery.archived, delivery.provider_message_id) == ("finished", True, "p")
    elif found_by == "the sweep":
        assert await store.stuck(later, limit=10) == []
    else:  # an operator's view: the left copy is not shown beside the finished one
        in_flight, finished = await store.log(fresh.dossier_code, after=None, limit=10)
        assert in_flight == [] and [d.id for d in finished] == [fresh.id]
    assert await store.live.count_documents({"_id": fresh.id}) == 0
    kept = await store.history.find_one({"_id": fresh.id})
    assert kept is not None and (kept["status"], kept["version"]) == ("sent", 2)


async def test_a_reopen_inserted_after_another_replica_reopened_sent_and_moved_it_steps_back(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Two replicas decide "reopen, send" from the same history copy; the first reopens, sends,
    records and moves it (deleting its live copy) before the second's insert lands: that insert
    meets no duplicate key, and must step back instead of sending again."""
    store = await _store(mongo, isolation)
    other = NotifyStore(store.db)
    now = datetime.now(UTC).replace(microsecond=0)
    fresh = _fresh("e7:applicant:sms", now, code="D7")
    _, first = await take(store, fresh, now, tries=1)
    gave_up = await store.save(
        first, failed(first, reason="x", permanent=True, now=now, source="u")
    )
    assert gave_up is not None
    await store.archive(gave_up)
    read_a, read_b = await store.load(fresh.id), await other.load(fresh.id)
    assert read_a is not None and read_b is not None and read_b.archived
    mine, theirs = (
        claim(read, now=now, lease=LEASE, tries=1, reopen=1) for read in (read_a, read_b)
    )
    assert (mine.kind, theirs.kind) == ("send", "send")  # both decided from version V
    reopened = await store.save(read_a, mine.delivery)
    assert reopened is not None
    done = await store.save(reopened, sent(reopened, provider_id="p", now=now, source="u"))
    assert done is not None
    await store.archive(done)
    assert await store.live.count_documents({"_id": fresh.id}) == 0
    assert await other.save(read_b, theirs.delivery) is None  # so it does not send
    assert await store.live.count_documents({"_id": fresh.id}) == 0
    kept = await store.history.find_one({"_id": fresh.id})
    assert kept is not None and (kept["status"], kept["version"]) == ("sent", done.version)


async def test_a_stored_delivery_that_cannot_be_read_is_put_off_and_the_others_are_swept(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Also the workaround of an nx-27017 0.8.1 defect: a datetime given to `$set` is stored as
    a naive string, which `check_at < now` never matches again; the put-off document is
    written whole."""
    store = await _store(mongo, isolation)
    now = datetime.now(UTC).replace(microsecond=0)
    good, bad = _fresh("e8:applicant:sms", now, code="D8"), _fresh("e9:applicant:sms", now)
    for delivery, due in ((good, now), (bad, now - timedelta(days=1))):  # the bad one first
        done = sent(replace(delivery, attempts=1, version=2), provider_id="p", now=due, source="u")
        doc = document(replace(done, check_at=due))
        if delivery is bad:
            doc["trigger"] = {**doc["trigger"], "type": "dossier.no_such_event"}
        await store.live.insert_one(doc)
    w = world()
    later = now + timedelta(hours=1)
    notifier = replace(w.notifier, deliveries=store, recipients=store, clock=at(later))
    assert await handlers.sweep(notifier=notifier) == 2
    assert [e.type for e in w.published] == ["notification.sent"]  # the good one, finished
    assert await store.live.count_documents({"_id": good.id}) == 0
    assert await store.history.count_documents({"_id": good.id}) == 1
    assert await handlers.sweep(notifier=notifier) == 0  # put off: not read at every sweep
    raw = await store.live.find_one({"_id": bad.id})
    assert raw is not None and raw["trigger"]["type"] == "dossier.no_such_event"
    assert raw["check_at"] == later + handlers.UNREADABLE_AFTER
    past = replace(notifier, clock=at(later + handlers.UNREADABLE_AFTER + timedelta(seconds=1)))
    [again] = await store.stuck(past.clock(), limit=10)  # then looked at again
    assert isinstance(again, Unreadable) and again.id == bad.id
    # A guarded write: not over a version written since it was read.
    await store.live.update_one({"_id": bad.id}, {"$inc": {"version": 1}})
    assert not await store.postpone(again, later)


async def test_the_delivery_log_pages_through_deliveries_in_flight_and_finished(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Also the workarounds of two nx-27017 0.8.1 defects: a compound index naming `_id` makes
    every insert fail ("JSON path error near '_id'"), and `$gt` on a string that starts like an
    extended ISO date matches nothing; the log's key is one string in ISO 8601's basic form."""
    store = await _store(mongo, isolation)
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(5):
        _, claimed = await take(store, _fresh(f"e{i}:applicant:sms", now, code="D9"), now)
        if i % 2 == 0:  # three of them finished and moved
            done = await store.save(claimed, sent(claimed, provider_id="p", now=now, source="u"))
            assert done is not None
            await store.archive(done)
    seen: list[str] = []
    after = None
    for expected in (2, 2, 1):
        page, cursor = await operators.delivery_log("D9", after=after, limit=2, deliveries=store)
        assert len(page) == expected
        seen += [d.id for d in page]
        after = decode_cursor(cursor) if cursor else None
    assert cursor is None
    assert seen == [f"e{i}:applicant:sms" for i in range(5)]  # same instant: ordered by id


# --- round trips -----------------------------------------------------------------------------


class Commands(monitoring.CommandListener):
    """Every command the client sends, with its collection and filter."""

    IGNORED = frozenset({"hello", "isMaster", "ismaster", "ping", "endSessions", "buildInfo"})

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Document]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name in self.IGNORED:
            return
        command = event.command
        query: Document = {}
        if name == "find":
            query = dict(command.get("filter", {}))
        elif name in ("update", "delete"):
            statements = command.get("updates") or command.get("deletes") or [{}]
            query = dict(statements[0].get("q", {}))
        elif name == "insert":
            query = {"_id": command["documents"][0]["_id"]}
        self.sent.append((name, str(command.get(name)), query))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None: ...

    def failed(self, event: monitoring.CommandFailedEvent) -> None: ...

    def take(self) -> list[tuple[str, str, Document]]:
        sent, self.sent = self.sent, []
        return sent


@pytest.fixture
async def counted(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> AsyncIterator[tuple[Notifier, Commands, dict[str, FakeChannel]]]:
    commands = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        isolation.mongodb_url, tz_aware=True, event_listeners=[commands]
    )
    broker = Broker(isolation.amqp_url, service="notify")
    await broker.connect()
    store = NotifyStore(client[isolation.database("notify")])
    await store.setup()
    retries = RetryQueues(broker.channel, queue="motcua.notify", delays=[0.5, 1.0])
    await retries.setup()
    channels = {"sms": FakeChannel(), "email": FakeChannel()}
    notifier = Notifier(
        deliveries=store,
        recipients=store,
        channels=channels,
        templates=TEMPLATES,
        routing=ROUTING,
        partners=[],
        retries=retries,
        publish=broker.publish,
        clock=lambda: datetime.now(UTC),
        source="urn:notify",
        tries=3,
        delays=[0.5, 1.0],
        lease=LEASE,
    )
    async with observe(isolation.amqp_url):  # something is bound to what notify publishes
        commands.take()
        yield notifier, commands, channels
    await broker.close()
    await client.close()


def _by_key_or_live(sent: list[tuple[str, str, Document]]) -> list[tuple[str, str, Document]]:
    """The commands that are neither by key nor on the live collection (none allowed)."""
    return [(n, c, q) for n, c, q in sent if "_id" not in q and c != LIVE]


async def test_a_delivery_costs_a_fixed_number_of_round_trips_whatever_is_stored(
    counted: tuple[Notifier, Commands, dict[str, FakeChannel]],
) -> None:
    notifier, commands, channels = counted
    budget = {"first": 5, "again": 5}
    measured: list[dict[str, int]] = []
    for number in range(1, 22):  # the last with twenty dossiers' deliveries in history
        first = submitted(f"G01.99-261102-{number:04d}")
        await handlers.on_submitted(first, notifier=notifier)
        commands.take()
        decision = approved_event(first)
        await handlers.on_event(decision, notifier=notifier)
        once = commands.take()
        await handlers.on_event(decision, notifier=notifier)  # redelivered: finds it done
        again = commands.take()
        assert _by_key_or_live(once + again) == []
        measured.append({"first": len(once), "again": len(again)})
    assert len(channels["sms"].sent) == 21
    assert measured[-1] == measured[0], measured  # flat as history grows
    assert measured[-1]["first"] <= budget["first"], once
    assert measured[-1]["again"] <= budget["again"], again
    # What the first delivery's round trips are: the claim (its insert, and a read by key of
    # history that guards the insert), the outcome, the move to history. The contact is the
    # replica's own copy, kept from the submission.
    assert [(n, c) for n, c, _ in once] == [
        ("insert", LIVE),
        ("find", HISTORY),
        ("update", LIVE),
        ("update", HISTORY),
        ("delete", LIVE),
    ]
    # A redelivery (rare: a lost ack) costs more than it did with a read of history first, for
    # one command less on every delivery: the insert steps back, then the delivery is loaded.
    assert [(n, c) for n, c, _ in again] == [
        ("insert", LIVE),
        ("find", HISTORY),
        ("delete", LIVE),
        ("find", LIVE),
        ("find", HISTORY),
    ]


async def test_a_retried_delivery_costs_two_round_trips_more_per_try(
    counted: tuple[Notifier, Commands, dict[str, FakeChannel]],
) -> None:
    notifier, commands, channels = counted
    from services.notify.messages import SendError

    channels["sms"].failures.append(SendError("HTTP 503", permanent=False))
    first = submitted("G01.99-261102-0100")
    await handlers.on_submitted(first, notifier=notifier)
    commands.take()
    decision = approved_event(first)
    await handlers.on_event(decision, notifier=notifier)
    failing = commands.take()
    await asyncio.sleep(0.5)
    # The retry, back from its delay queue (the consumer says so: `x-death`).
    await handlers.on_event(decision, notifier=notifier, returned=True)
    retried = commands.take()
    assert _by_key_or_live(failing + retried) == []
    assert [(n, c) for n, c, _ in failing][-1] == ("update", LIVE)  # recorded `retrying`
    assert len(failing) == 3 and len(retried) == 5, (failing, retried)
    page, _ = await operators.delivery_log(
        first.subject, after=None, limit=50, deliveries=notifier.deliveries
    )
    assert [(d.status, d.attempts) for d in page] == [("sent", 2)]
    assert len(commands.take()) == 2  # a log page: one indexed query on each collection


async def test_idle_the_sweep_is_one_indexed_query_and_it_finishes_what_a_crash_left(
    counted: tuple[Notifier, Commands, dict[str, FakeChannel]], isolation: Isolation
) -> None:
    notifier, commands, _ = counted
    store = notifier.deliveries
    assert isinstance(store, NotifyStore)
    now = datetime.now(UTC)
    for number in range(30):  # history the sweep must not read
        _, claimed = await take(store, _fresh(f"h{number}:applicant:sms", now), now)
        done = await store.save(claimed, sent(claimed, provider_id="p", now=now, source="u"))
        assert done is not None
        await store.archive(done)
    commands.take()
    assert await handlers.sweep(notifier=notifier) == 0
    assert [(n, c) for n, c, _ in commands.take()] == [("find", LIVE)]

    # As if notify died between recording an outcome and publishing it.
    _, claimed = await take(store, _fresh("c1:applicant:sms", now, code="DC"), now)
    done = await store.save(claimed, sent(claimed, provider_id="p", now=now, source="u"))
    assert done is not None
    await store.live.update_one({"_id": done.id}, {"$set": {"check_at": now - LEASE}})
    commands.take()
    async with observe(isolation.amqp_url) as seen:
        assert await handlers.sweep(notifier=notifier) == 1
        [published] = await seen.wait_for("notification.sent")
    assert published["id"] == done.outbox[0].id
    assert [(n, c) for n, c, _ in commands.take()] == [
        ("find", LIVE),
        ("update", HISTORY),
        ("delete", LIVE),
    ]
    assert await store.live.count_documents({"_id": done.id}) == 0


async def test_the_sweep_goes_on_when_an_unchecked_copy_cannot_be_checked(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """A failed history read about one unchecked copy skips that one for this round; the
    sweep still takes up the others (each is taken up on its own)."""
    store = await _store(mongo, isolation)
    now = datetime.now(UTC).replace(microsecond=0)
    for i, name in enumerate(("e8:applicant:sms", "e9:applicant:sms")):  # e8 due first
        moment = now + timedelta(seconds=i)
        kind, _ = await take(store, _fresh(name, moment), moment)
        assert kind == "send"  # both inserted, still unchecked (no outcome saved)
    real = store.history
    store.history = FailingOnce(real)  # type: ignore[assignment]
    later = now + 10 * LEASE
    swept = await store.stuck(later, limit=10)
    assert [d.id for d in swept if isinstance(d, Delivery)] == ["e9:applicant:sms"]
    store.history = real
    assert {d.id for d in await store.stuck(later, limit=10) if isinstance(d, Delivery)} == {
        "e8:applicant:sms",
        "e9:applicant:sms",
    }
