"""Audit's round trips, counted with a PyMongo CommandListener on the real MongoDB-wire
server: an event's record and its chain link cost a small fixed number of commands, each by
key or on the live tail, whatever the dossier's chain length; an idle ledger keeper sends
next to nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymongo import AsyncMongoClient, monitoring

from services.audit import handlers
from services.audit.batching import Batcher
from services.audit.store import AuditStore
from shared.storage import Document
from tests.conftest import Isolation
from tests.factories import T0, dossier_events

pytestmark = pytest.mark.integration
KEY = b"k"
GRACE = timedelta(seconds=5)
# Per event recorded alone and then settled alone: 2 inserts (marker, record), then 12 to
# settle it (due markers, last seal, records by id, links by record id, heads by id, links
# inserted, head moved, its dossier's statistics: the summaries read by id and saved, the
# facts written and the write counted for the index gauges; markers dropped); 8 for an event
# that bears on no statistics fact (a notification's).
RECORD_BUDGET = 2
SETTLE_BUDGET = 12
FACTS_COST = 4


class Commands(monitoring.CommandListener):
    """Every command sent, as (command name, collection)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.filters: list[tuple[str, set[str]]] = []  # (collection, the fields a find names)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name in ("ping", "hello", "isMaster", "endSessions", "serverStatus"):
            return
        self.sent.append((name, str(event.command.get(name))))
        if name == "find":
            self.filters.append((str(event.command["find"]), set(event.command.get("filter", {}))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> list[tuple[str, str]]:
        sent, self.sent = self.sent, []
        return sent


@pytest.fixture
async def counted(isolation: Isolation) -> AsyncIterator[tuple[AuditStore, Commands]]:
    commands = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        isolation.mongodb_url, tz_aware=True, event_listeners=[commands]
    )
    store = AuditStore(client[isolation.database("audit")])
    await store.setup()
    commands.take()
    yield store, commands
    await client.drop_database(isolation.database("audit"))
    await client.close()


async def _record(store: AuditStore, events: list[object], at: timedelta) -> None:
    batcher = Batcher(partial(store.insert_records, hmac_key=KEY), size=1, wait=0)
    for event in events:
        await handlers.record(event, batcher=batcher, hmac_key=KEY, clock=lambda: T0 + at)  # type: ignore[arg-type]


async def test_an_event_and_its_link_cost_the_same_few_round_trips_however_long_the_chain(
    counted: tuple[AuditStore, Commands],
) -> None:
    store, commands = counted
    code = "D-long"
    events = [
        e.model_copy(update={"id": f"{code}-{i}-{e.id}", "time": e.time + timedelta(hours=i)})
        for i in range(12)
        for e in dossier_events(code)
    ]
    costs = []
    for i, event in enumerate(events):
        at = timedelta(hours=1, seconds=10 * i)
        await _record(store, [event], at)
        recorded = commands.take()
        assert recorded == [("insert", "pending"), ("insert", "records")]
        later = T0 + at + GRACE + timedelta(seconds=1)
        assert await handlers.settle(store=store, now=later, grace=GRACE, hmac_key=KEY) == 1
        settled = commands.take()
        assert len(settled) <= SETTLE_BUDGET, settled
        costs.append(len(recorded) + len(settled))
    # Every read of history names a key; the tail is read on its index.
    served_by = {
        "records": "_id",
        "heads": "_id",
        "chain": "record_id",
        "pending": "recorded_at",
        "dossier_fact_records": "_id",
    }
    for collection, fields in commands.filters:
        if collection == "seals":  # the last seal: sorted by `_id`, limit 1
            continue
        assert served_by[collection] in fields, (collection, fields)
    assert len(await store.links(code)) == 60
    # The 1st link costs the 60th's; a notification's skips the facts.
    full = RECORD_BUDGET + SETTLE_BUDGET
    assert Counter(costs) == {full: 48, full - FACTS_COST: 12}, costs
    assert await handlers.verify_dossier(code, store=store, hmac_key=KEY) is None


async def test_a_batch_of_dossiers_settles_in_a_round_trip_count_fixed_per_dossier(
    counted: tuple[AuditStore, Commands],
) -> None:
    store, commands = counted
    events = [e for i in range(10) for e in dossier_events(f"D{i}")]
    batcher = Batcher(partial(store.insert_records, hmac_key=KEY), size=50, wait=0.01)
    clock = lambda: T0 + timedelta(hours=1)  # noqa: E731
    await asyncio.gather(
        *(handlers.record(e, batcher=batcher, hmac_key=KEY, clock=clock) for e in events)
    )
    assert Counter(commands.take()) == {("insert", "pending"): 1, ("insert", "records"): 1}
    settled = await handlers.settle(
        store=store, now=T0 + timedelta(hours=2), grace=GRACE, hmac_key=KEY
    )
    assert settled == 50
    sent = Counter(commands.take())
    # Ten for the round (the new dossiers' summaries read together and inserted together,
    # their facts written together and counted once), two per dossier (its links, its head).
    assert sum(sent.values()) == 10 + 2 * 10, sent
    assert sent[("update", "fact_changes")] == 1
    assert sent[("find", "dossier_fact_records")] == 1
    assert sent[("insert", "dossier_fact_records")] == 1 and sent[("insert", "dossier_facts")] == 1
    assert sent[("insert", "chain")] == 10 and sent[("update", "heads")] == 0
    assert sent[("insert", "heads")] == 10  # first links: the heads are created


async def test_an_idle_ledger_keeper_sends_about_one_command_per_lease_renewal(
    counted: tuple[AuditStore, Commands],
) -> None:
    store, commands = counted
    ttl = 0.6  # renewal every 0.2 s
    task = asyncio.create_task(
        handlers.keep_ledger(
            store=store,
            key=Ed25519PrivateKey.generate(),
            clock=lambda: T0,
            grace=GRACE,
            settle_every=0.01,
            seal_every=0.05,
            hmac_key=KEY,
            lease_ttl=ttl,
            margin=timedelta(0),
            holder="a",
        )
    )
    try:
        await asyncio.sleep(0.5)
        commands.take()  # started: took the lease, read the last seal
        await asyncio.sleep(2.0)  # ten renewals
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    sent = Counter(commands.take())
    renewals = sent[("insert", "leases")]
    assert 8 <= renewals <= 12, sent
    # Each renewal: the lease (one insert) and one indexed look at the live tail.
    assert sum(sent.values()) <= 2 * renewals + 1, sent
    assert set(sent) <= {("insert", "leases"), ("find", "pending"), ("delete", "pending")}
