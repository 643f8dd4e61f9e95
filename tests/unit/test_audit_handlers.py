"""Every audit handler against an in-memory fake of its ports (no network, no MagicMock)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import consumer, handlers, ledger
from services.audit.batching import Batcher
from services.audit.domain import ChainHead, Link, Marker, Record, occurrence_key
from services.audit.handlers import reading
from services.audit.timerange import TimeRange
from shared.calendar import WorkingCalendar
from shared.clock import utcnow
from shared.contracts.registry import EVENT_TYPES
from tests.factories import T0, dossier_events

KEY = b"k"
GRACE = timedelta(seconds=5)
LATER = T0 + timedelta(hours=2)


class FakeAudit:
    """Audit's storage in memory: the same facts, the same one-winner rules."""

    def __init__(self, *, unique_records: bool = True) -> None:
        self.unique_records = unique_records  # the unique `chain.record_id` index
        self.records: dict[str, Record] = {}
        self.pending: dict[str, Marker] = {}
        self.chain: dict[str, Link] = {}
        self.heads: dict[str, ChainHead] = {}
        self.seals: dict[int, dict[str, Any]] = {}
        self.leases: dict[int, dict[str, Any]] = {}
        self.legacy: dict[str, dict[str, Any]] = {}
        self.quarantined: list[dict[str, Any]] = []
        self.facts: dict[str, dict[str, Any]] = {}
        self.fact_sources: dict[str, dict[str, Any]] = {}
        self.fact_changes = 0  # writes of the facts (what facts_changed counts)
        self.upgrades: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    # recording
    async def insert_records(self, records: list[Record], *, hmac_key: bytes) -> None:
        key = ledger.marker_key(hmac_key)
        for r in records:
            self.pending.setdefault(
                r["_id"],
                {
                    "_id": r["_id"],
                    "dossier_code": r["dossier_code"],
                    "recorded_at": r["recorded_at"],
                    "mac": ledger.marker_mac(key, r),
                },
            )
            self.records.setdefault(r["_id"], r)

    async def legacy_page(self, after: str | None, limit: int) -> list[dict[str, Any]]:
        ids = sorted(i for i in self.legacy if after is None or i > after)[:limit]
        return [self.legacy[i] for i in ids]

    async def quarantine(self, docs: list[dict[str, Any]]) -> None:
        self.quarantined += docs

    async def drop_legacy(self) -> None:
        self.legacy.clear()

    # settling
    async def due_markers(self, cutoff: datetime) -> list[Marker]:
        return [m for m in self.pending.values() if m["recorded_at"] < cutoff]

    async def next_due(self, after: datetime | None) -> datetime | None:
        times = [
            m["recorded_at"]
            for m in self.pending.values()
            if after is None or m["recorded_at"] > after
        ]
        return min(times, default=None)

    async def records_by_id(self, ids: list[str]) -> list[Record]:
        self.calls.append("records_by_id")
        return [self.records[i] for i in ids if i in self.records]

    async def chained_ids(self, record_ids: list[str]) -> set[str]:
        return {str(lk["record_id"]) for lk in self.chain.values()} & set(record_ids)

    async def heads_of(self, codes: list[str]) -> dict[str, ChainHead]:
        return {c: self.heads[c] for c in codes if c in self.heads}

    async def add_links(self, links: list[Link]) -> bool:
        chained = {lk["record_id"] for lk in self.chain.values()} if self.unique_records else set()
        for link in links:  # ordered: stops at the first refused link
            if link["_id"] in self.chain or link["record_id"] in chained:
                return False
            self.chain[link["_id"]] = link
        return True

    async def move_head(self, old: ChainHead | None, new: ChainHead) -> bool:
        if self.heads.get(new.dossier_code) != old:
            return False
        self.heads[new.dossier_code] = new
        return True

    async def links_from(self, dossier_code: str, seq: int) -> list[Link]:
        out: list[Link] = []
        while (link := self.chain.get(f"{dossier_code}#{seq + len(out)}")) is not None:
            out.append(link)
        return out

    async def link_after(self, dossier_code: str, seq: int) -> bool:
        return any(
            lk["dossier_code"] == dossier_code and lk["seq"] > seq for lk in self.chain.values()
        )

    async def drop_pending(self, ids: Iterable[str]) -> None:
        for i in ids:
            self.pending.pop(i, None)

    # seals
    async def last_seal(self) -> dict[str, Any] | None:
        return self.seals[max(self.seals)] if self.seals else None

    async def all_seals(self) -> list[dict[str, Any]]:
        return [self.seals[k] for k in sorted(self.seals)]

    async def seal_covering(self, settled_at: datetime) -> dict[str, Any] | None:
        return next(
            (s for s in self.seals.values() if s["period_start"] < settled_at <= s["period_end"]),
            None,
        )

    async def add_seal(self, seal: dict[str, Any]) -> bool:
        return self.seals.setdefault(seal["_id"], seal) is seal

    async def links_settled(self, after: datetime, until: datetime) -> list[Link]:
        found = [lk for lk in self.chain.values() if after < lk["settled_at"] <= until]
        return sorted(found, key=lambda lk: (lk["settled_at"], lk["_id"]))

    async def first_link_settled(self, after: datetime, until: datetime) -> Link | None:
        return next(iter(await self.links_settled(after, until)), None)

    # the statistics projection (documents copied in and out, as a database would)
    async def fact_records(self, codes: list[str]) -> dict[str, dict[str, Any]]:
        self.calls.append("fact_records")
        return {c: copy.deepcopy(self.fact_sources[c]) for c in codes if c in self.fact_sources}

    async def insert_fact_records(self, docs: list[dict[str, Any]]) -> set[str]:
        taken = {str(d["_id"]) for d in docs if d["_id"] in self.fact_sources}
        for doc in docs:
            self.fact_sources.setdefault(doc["_id"], copy.deepcopy(doc))
        return taken

    async def replace_fact_records(self, doc: dict[str, Any], version: int) -> bool:
        held = self.fact_sources.get(doc["_id"])
        if held is None or held["version"] != version:
            return False
        self.fact_sources[doc["_id"]] = copy.deepcopy(doc)
        return True

    async def put_facts(self, docs: list[dict[str, Any]]) -> None:
        self.fact_changes += 1 if docs else 0
        for doc in docs:
            held = self.facts.get(doc["_id"])
            if held is None or held["version"] < doc["version"]:
                self.facts[doc["_id"]] = copy.deepcopy(doc)

    async def facts_in(
        self,
        field: str,
        since: datetime,
        until: datetime,
        *,
        unit_id: str | None = None,
        procedure_code: str | None = None,
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(d)
            for d in self.facts.values()
            if d.get(field) is not None
            and since <= d[field] < until
            and unit_id in (None, d["unit_id"])
            and procedure_code in (None, d["procedure_code"])
        ]

    async def facts_changed(self) -> int:
        return self.fact_changes

    async def upgrade_state(self, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.upgrades.get(name))

    async def note_upgrade(self, name: str, **fields: object) -> None:
        self.upgrades.setdefault(name, {"_id": name}).update(fields)

    async def has_records(self) -> bool:
        return bool(self.records)

    # leases
    async def claim_lease(self, n: int, holder: str, now: datetime) -> bool:
        held = self.leases.setdefault(n, {"n": n, "holder": holder, "claimed_at": now})
        return bool(held["holder"] == holder)

    async def lease(self, n: int) -> dict[str, Any] | None:
        return self.leases.get(n)

    async def latest_lease(self) -> dict[str, Any] | None:
        return self.leases[max(self.leases)] if self.leases else None

    async def drop_leases_before(self, cutoff: datetime) -> None:
        for n in [n for n, d in self.leases.items() if d["claimed_at"] < cutoff]:
            del self.leases[n]

    # reading
    async def timeline(self, dossier_code: str) -> list[Record]:
        mine = [r for r in self.records.values() if r.get("dossier_code") == dossier_code]
        return sorted(mine, key=occurrence_key)

    async def links(self, dossier_code: str) -> list[Link]:
        mine = [lk for lk in self.chain.values() if lk["dossier_code"] == dossier_code]
        return sorted(mine, key=lambda lk: int(lk["seq"]))

    async def pending_of(self, dossier_code: str) -> dict[str, Marker]:
        return {k: m for k, m in self.pending.items() if m["dossier_code"] == dossier_code}

    async def record(self, record_id: str) -> Record | None:
        return self.records.get(record_id)

    async def link_of(self, record_id: str) -> Link | None:
        return next((lk for lk in self.chain.values() if lk["record_id"] == record_id), None)

    async def all_pending(self) -> dict[str, Marker]:
        return dict(self.pending)

    async def dossier_codes(self, since: datetime) -> list[str]:
        return sorted({r["dossier_code"] for r in self.records.values() if r["time"] >= since})

    async def stray_records(self, limit: int = 10) -> list[Record]:
        return [r for r in self.records.values() if r.get("dossier_code") is None][:limit]

    async def _grouped(self, docs: list[dict[str, Any]]) -> AsyncIterator[tuple[str, list[Any]]]:
        for code in sorted({d["dossier_code"] for d in docs if d.get("dossier_code")}):
            yield code, [d for d in docs if d.get("dossier_code") == code]

    def grouped_records(self, after: str | None = None) -> AsyncIterator[tuple[str, list[Record]]]:
        records = [r for r in self.records.values() if after is None or r["dossier_code"] > after]
        return self._grouped(records)

    def grouped_links(self) -> AsyncIterator[tuple[str, list[Link]]]:
        return self._grouped(sorted(self.chain.values(), key=lambda lk: int(lk["seq"])))

    async def search(
        self,
        query: dict[str, Any],
        window: TimeRange,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Record]:
        found = [
            r
            for r in sorted(self.records.values(), key=occurrence_key)
            if all(r.get(k) == v for k, v in query.items())
            and window.holds(r)
            and (after is None or occurrence_key(r) > after)
        ]
        return found[:limit]

    async def stream(
        self, query: dict[str, Any], window: TimeRange, page: int
    ) -> AsyncIterator[Record]:
        for doc in await self.search(query, window, None, 10**9):
            yield doc

    async def dossiers_records(self, codes: list[str]) -> list[Record]:
        return [r for r in self.records.values() if r["dossier_code"] in codes]

    async def codes_with(self, types: list[str], since: datetime, until: datetime) -> set[str]:
        return {
            r["dossier_code"]
            for r in self.records.values()
            if r["type"] in types and since <= r["time"] < until
        }


async def recorded(
    store: FakeAudit, codes: list[str], at: datetime = T0, events: list[Any] | None = None
) -> None:
    batcher = Batcher(lambda docs: store.insert_records(docs, hmac_key=KEY), size=8, wait=0)
    events = events or [e for code in codes for e in dossier_events(code)]
    await asyncio.gather(
        *(handlers.record(e, batcher=batcher, hmac_key=KEY, clock=lambda: at) for e in events)
    )


async def settled_and_sealed(codes: list[str]) -> tuple[FakeAudit, Ed25519PrivateKey]:
    store = FakeAudit()
    await recorded(store, codes)
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 5 * len(
        codes
    )
    key = Ed25519PrivateKey.generate()
    assert await handlers.seal(store=store, key=key, now=LATER + timedelta(seconds=1))
    return store, key


# --- record ---------------------------------------------------------------------------------


async def test_record_stores_a_masked_record_and_its_marker_once() -> None:
    store = FakeAudit()
    events = dossier_events("D1")
    await recorded(store, [], events=events)
    await recorded(store, [], at=LATER, events=events)  # redelivered
    assert len(store.records) == len(store.pending) == 5
    submitted = next(r for r in store.records.values() if r["type"] == "dossier.submitted")
    assert submitted["data"]["applicant"]["personal_id"].startswith("****")


def test_the_consumer_table_records_every_known_event_type() -> None:
    batcher = Batcher(lambda docs: asyncio.sleep(0), size=1, wait=0)
    table = consumer.handlers(batcher=batcher, hmac_key=KEY, clock=lambda: T0)
    assert set(table) == set(EVENT_TYPES)


async def test_the_consumer_dispatches_each_event_to_its_handler() -> None:
    seen: list[str] = []

    async def note(event: Any) -> None:
        seen.append(event.type)

    handle = consumer.dispatcher({"dossier.submitted": note})
    [submitted, assigned, *_] = dossier_events("D1")
    await handle(submitted)
    with pytest.raises(LookupError):
        await handle(assigned)
    assert seen == ["dossier.submitted"]


async def test_adopt_legacy_records_readable_events_quarantines_the_rest_and_drops_it() -> None:
    store = FakeAudit()
    events = dossier_events("L1")
    for e in events:
        doc = e.model_dump(mode="json")
        store.legacy[doc.pop("id")] = {**doc, "_id": e.id}
    store.legacy["zz-broken"] = {"_id": "zz-broken", "personal_id": "001099012345"}
    adopted = await handlers.adopt_legacy(store=store, hmac_key=KEY, clock=lambda: T0)
    assert adopted == 5 and set(store.records) == {e.id for e in events}
    assert store.legacy == {} and store.quarantined[0]["personal_id"] == "********2345"


# --- settle -----------------------------------------------------------------------------------


async def test_settle_chains_in_order_of_occurrence_after_the_head() -> None:
    store = FakeAudit()
    await recorded(store, ["D1"])
    assert await handlers.settle(store=store, now=T0, grace=GRACE, hmac_key=KEY) == 0  # grace
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 5
    links = await store.links("D1")
    assert [lk["record_id"] for lk in links] == [r["_id"] for r in await store.timeline("D1")]
    assert store.heads["D1"] == ChainHead("D1", 5, links[-1]["hash"]) and not store.pending
    assert await handlers.verify_dossier("D1", store=store, hmac_key=KEY) is None


async def test_settle_reads_records_once_per_round_whatever_the_chain_length() -> None:
    store = FakeAudit()
    for i in range(4):
        await recorded(store, [f"D{i}"])
    store.calls.clear()
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 20
    assert store.calls == ["records_by_id", "fact_records"]  # and the facts, once for all


async def test_settle_leaves_a_record_edited_while_waiting_and_drops_lost_markers() -> None:
    store = FakeAudit()
    await recorded(store, ["D1"])
    edited = next(iter(store.records))
    store.records[edited] = dict(store.records[edited], actor="o9")
    store.pending["lost"] = {"_id": "lost", "dossier_code": "D1", "recorded_at": T0}
    soon = T0 + timedelta(minutes=30)
    assert await handlers.settle(store=store, now=soon, grace=GRACE, hmac_key=KEY) == 4
    assert set(store.pending) == {edited, "lost"}  # the lost one waits an hour
    await handlers.settle(store=store, now=T0 + timedelta(hours=3), grace=GRACE, hmac_key=KEY)
    assert set(store.pending) == {edited}


async def test_settle_catches_a_head_up_that_a_crash_left_behind() -> None:
    store = FakeAudit()
    await recorded(store, ["D1"])
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 5
    del store.heads["D1"]  # as if it crashed before the head moved (or a chain from before)
    later = dossier_events("D1")[0].model_copy(update={"id": "later-1"})
    batcher = Batcher(lambda docs: store.insert_records(docs, hmac_key=KEY), size=1, wait=0)
    await handlers.record(later, batcher=batcher, hmac_key=KEY, clock=lambda: T0)
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 0
    assert store.heads["D1"].seq == 5  # caught up from the links, by key
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 1
    assert store.chain["D1#5"]["record_id"] == "later-1"
    assert await handlers.verify_dossier("D1", store=store, hmac_key=KEY) is None


class RacedAudit(FakeAudit):
    """A fake where another settler runs a whole round (through `rival`) right after this
    one's first read of the chain returns (its heads or which records are chained)."""

    def __init__(self, *, unique_records: bool) -> None:
        super().__init__(unique_records=unique_records)
        self.racing = False

    async def _race(self) -> None:
        if self.racing:
            self.racing = False
            rival = FakeAudit()
            rival.__dict__ = self.__dict__  # the same storage
            assert await handlers.settle(store=rival, now=LATER, grace=GRACE, hmac_key=KEY) > 0

    async def chained_ids(self, record_ids: list[str]) -> set[str]:
        read = await super().chained_ids(record_ids)
        await self._race()
        return read

    async def heads_of(self, codes: list[str]) -> dict[str, ChainHead]:
        read = await super().heads_of(codes)
        await self._race()
        return read


@pytest.mark.parametrize("unique_records", [False, True])
async def test_two_settlers_never_chain_the_same_records_twice(unique_records: bool) -> None:
    """A lease taken over while its holder was paused: the other settler runs a whole round
    between this one's reads of the chain. Heads are read first, so the records are seen
    chained and only lose their markers (even with no unique `record_id` index)."""
    store = RacedAudit(unique_records=unique_records)
    await recorded(store, ["D1"])
    await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY)  # D1#0-4
    await recorded(
        store,
        ["D1"],
        events=[e.model_copy(update={"id": f"{e.id}-b"}) for e in dossier_events("D1")],
    )
    store.racing = True
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 0
    assert not store.racing and sorted(store.chain) == [f"D1#{i}" for i in range(10)]
    assert store.heads["D1"].seq == 10 and not store.pending
    assert await handlers.verify_dossier("D1", store=store, hmac_key=KEY) is None


async def test_a_record_is_never_chained_twice_even_when_a_settler_misses_its_link() -> None:
    """Whatever a settler believes (here: none of the records chained, as a stale read),
    the unique `record_id` refuses a second link of a record; the links before the refused
    one are written and the head is caught up over them, and nothing is chained twice."""
    store = FakeAudit()
    await recorded(store, ["D1"])
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 5
    [first, *_] = await store.links("D1")
    new = dossier_events("D1")[0].model_copy(update={"id": "0-new"})  # sorts before `first`
    await recorded(store, [], events=[new])
    store.pending[first["record_id"]] = {**store.pending["0-new"], "_id": first["record_id"]}
    record = store.records[first["record_id"]]
    store.pending[first["record_id"]]["mac"] = ledger.marker_mac(ledger.marker_key(KEY), record)
    store.chained_ids = lambda ids: asyncio.sleep(0, set())  # type: ignore[method-assign,assignment]
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 0
    assert [lk["record_id"] for lk in await store.links("D1")][5:] == ["0-new"]
    assert store.heads["D1"].seq == 6
    assert await handlers.verify_dossier("D1", store=store, hmac_key=KEY) is None


async def test_a_stale_head_is_never_moved_into_the_hole_of_a_deleted_link() -> None:
    store = FakeAudit()
    await recorded(store, ["D1"])
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 5
    store.heads["D1"] = ChainHead("D1", 1, store.chain["D1#0"]["hash"])  # a crash left it
    del store.chain["D1#3"]  # and someone deleted a link
    later = dossier_events("D1")[0].model_copy(update={"id": "later-1"})
    await recorded(store, [], events=[later])
    for _ in range(2):
        assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 0
    assert "D1#3" not in store.chain and store.heads["D1"].seq == 1  # no hole filled
    assert "later-1" in store.pending
    found = await handlers.verify_dossier("D1", store=store, hmac_key=KEY)
    assert found is not None and (found.kind, found.seq) == ("deleted", 3)


async def test_a_stale_head_is_not_moved_past_a_link_that_does_not_follow() -> None:
    """A hole at the stale head itself is filled by the first link of a round; the link
    after it does not follow it, and the head is not moved past that."""
    store = FakeAudit()
    await recorded(store, ["D1"])
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 5
    store.heads["D1"] = ChainHead("D1", 2, store.chain["D1#1"]["hash"])
    del store.chain["D1#2"]
    events = [dossier_events("D1")[0].model_copy(update={"id": f"later-{i}"}) for i in (1, 2)]
    await recorded(store, [], events=events)
    for _ in range(3):
        assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 0
    assert store.heads["D1"].seq == 3  # over its own link, not past link 3
    found = await handlers.verify_dossier("D1", store=store, hmac_key=KEY)
    assert found is not None and (found.kind, found.seq) == ("broken_link", 3)


async def test_settle_never_stamps_a_link_inside_a_sealed_period() -> None:
    store, _key = await settled_and_sealed(["D1"])
    await recorded(store, ["D2"])
    behind = LATER - timedelta(minutes=5)  # a clock stepped back
    assert await handlers.settle(store=store, now=behind, grace=GRACE, hmac_key=KEY) == 5
    seal = await store.last_seal()
    assert seal is not None
    assert all(lk["settled_at"] > seal["period_end"] for lk in await store.links("D2"))


# --- seal -----------------------------------------------------------------------------------


async def test_seal_covers_what_was_settled_since_the_last_and_nothing_twice() -> None:
    store, key = await settled_and_sealed(["D1"])
    assert await handlers.seal(store=store, key=key, now=LATER + timedelta(seconds=2)) is None
    await recorded(store, ["D2"])
    await handlers.settle(store=store, now=LATER + timedelta(hours=1), grace=GRACE, hmac_key=KEY)
    second = await handlers.seal(store=store, key=key, now=LATER + timedelta(hours=2))
    assert second is not None and (second["seq"], second["count"]) == (1, 5)
    assert second["prev_seal_hash"] == store.seals[0]["hash"]
    assert await handlers.check_seals(store) is None


# --- the keeper -----------------------------------------------------------------------------


async def test_the_lease_has_one_holder_and_is_taken_over_after_its_ttl() -> None:
    store = FakeAudit()
    t = [0.0]
    a = handlers.LedgerLease("a", 3.0, monotonic=lambda: t[0])
    b = handlers.LedgerLease("b", 3.0, monotonic=lambda: t[0])
    assert await a.held(store, T0) and not await b.held(store, T0)
    for _ in range(4):  # a renews every second: b never takes over
        t[0] += 1.0
        assert await a.held(store, T0) and not await b.held(store, T0)
    t[0] += 3.1  # a stopped
    assert await b.held(store, T0)
    assert not await a.held(store, T0)
    assert {d["holder"] for d in store.leases.values()} == {"a", "b"}


def keeper(store: FakeAudit, **settings: Any) -> asyncio.Task[None]:
    """The ledger keeper of process "a" on `store`, running, settling every 10 ms."""
    return asyncio.create_task(
        handlers.keep_ledger(
            store=store,
            key=Ed25519PrivateKey.generate(),
            clock=utcnow,
            settle_every=0.01,
            hmac_key=KEY,
            margin=timedelta(0),
            holder="a",
            **settings,
        )
    )


async def test_the_keeper_settles_when_due_and_seals_only_what_was_settled() -> None:
    """Woken by its own process's writes, it settles once their grace window has passed and
    then seals; with nothing settled it never seals, and between lease renewals (an hour
    apart here) it asks the store nothing."""
    store = FakeAudit()
    grace = timedelta(milliseconds=200)
    wakeup = handlers.Wakeup()
    task = keeper(store, grace=grace, seal_every=0.05, lease_ttl=3 * 3600, wakeup=wakeup)
    try:
        await asyncio.sleep(0.3)
        assert not store.seals  # nothing settled: no seal
        store.calls.clear()
        at = utcnow()
        await recorded(store, ["D1"], at=at)
        wakeup.recorded(at)
        await asyncio.sleep(0.1)
        assert not store.chain and not store.calls  # within the grace window: not asked
        for _ in range(100):
            await asyncio.sleep(0.02)
            if store.seals:
                break
        assert len(store.chain) == 5 and store.seals[0]["count"] == 5
        assert store.calls == ["records_by_id", "fact_records"]  # one settling round
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_marker_left_pending_is_not_settled_again_at_every_lease_renewal() -> None:
    """A round that leaves a due marker behind (here a record edited while it waited: never
    chained) does not make every lease renewal a settling round: renewals look only for
    markers recorded since, which another process's records still are."""
    store = FakeAudit()
    # The grace window must exceed the time from a record's clock reading to its insert (its
    # batch): a record inserted after a round that already passed its time is, like one
    # left, looked for again only after STUCK_RETRY. Production waits 10 s; 50 ms here was
    # overtaken by a loaded CI machine (D2's second batch written after such a round).
    grace = timedelta(milliseconds=500)
    await recorded(store, ["D1"], at=utcnow() - timedelta(seconds=1))
    edited = next(iter(store.records))
    store.records[edited] = dict(store.records[edited], actor="o9")
    task = keeper(store, grace=grace, seal_every=3600, lease_ttl=0.15)  # renewed every 50 ms
    try:
        for _ in range(500):  # at most 10 s: a loaded CI machine runs the keeper late
            await asyncio.sleep(0.02)
            if len(store.chain) == 4:
                break
        assert set(store.pending) == {edited}
        store.calls.clear()
        renewals = len(store.leases)
        await asyncio.sleep(0.6)
        assert len(store.leases) - renewals >= 5
        assert store.calls == []  # no settling round for the marker left
        # Records another audit process writes (no wakeup here) are found at a renewal.
        await recorded(store, ["D2"], at=utcnow())
        for _ in range(500):
            await asyncio.sleep(0.02)
            if len(store.chain) == 9:
                break
        assert len(store.chain) == 9 and set(store.pending) == {edited}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- verify ---------------------------------------------------------------------------------


async def test_verify_names_a_modified_record_and_a_forged_one() -> None:
    store, _ = await settled_and_sealed(["D1", "D2"])
    assert await handlers.verify_all(store=store, since=None, hmac_key=KEY) is None
    target = (await store.timeline("D2"))[2]
    store.records[target["_id"]] = dict(target, actor="o2")
    found = await handlers.verify_dossier("D2", store=store, hmac_key=KEY)
    assert found is not None and (found.kind, found.record_id) == ("modified", target["_id"])
    store.records[target["_id"]] = target
    store.records["stray"] = {"_id": "stray", "type": "dossier.approved", "time": T0}
    found = await handlers.verify_all(store=store, since=None, hmac_key=KEY)
    assert found is not None and (found.kind, found.record_id) == ("inserted", "stray")
    with pytest.raises(handlers.UnknownDossier):
        await handlers.verify_dossier("D9", store=store, hmac_key=KEY)


async def test_verify_names_a_deleted_seal_and_a_re_signed_one() -> None:
    store, _key = await settled_and_sealed(["D1"])
    seal = store.seals[0]
    expect = (0, str(seal["hash"]))
    assert await handlers.check_seals(store, expect=expect) is None
    found = await handlers.check_seals(store, trusted=frozenset({"ab" * 32}))
    assert found is not None and found.kind == "bad_signature"
    del store.seals[0]
    found = await handlers.check_seals(store, expect=expect)
    assert found is not None and found.kind == "deleted"
    found = await handlers.check_seals(store, unsealed_before=LATER + timedelta(hours=1))
    assert found is not None and found.kind == "unsealed"


async def test_a_proof_leads_from_the_record_to_its_seal_root() -> None:
    store, _ = await settled_and_sealed(["D1"])
    rid = (await store.timeline("D1"))[3]["_id"]
    proof = await handlers.proof(rid, store=store)
    assert proof is not None and proof["seal"]["_id"] == 0 and proof["tree_size"] == 5
    assert await handlers.proof("unknown", store=store) is None


# --- read -----------------------------------------------------------------------------------


async def test_search_pages_with_an_opaque_cursor_and_filters() -> None:
    store = FakeAudit()
    await recorded(store, ["D1", "D2"])
    seen, cursor = [], None
    while True:
        page, cursor = await reading.search(
            reading.Filters(), cursor=cursor, limit=3, store=store, hmac_key=KEY
        )
        seen += [r["_id"] for r in page]
        if cursor is None:
            break
    assert seen == [r["_id"] for r in sorted(store.records.values(), key=occurrence_key)]
    page, _ = await reading.search(
        reading.Filters(actor="o1", dossier_code="D2"),
        cursor=None,
        limit=10,
        store=store,
        hmac_key=KEY,
    )
    assert {r["dossier_code"] for r in page} == {"D2"} and all(r["actor"] == "o1" for r in page)
    with pytest.raises(reading.BadCursor):
        await reading.search(
            reading.Filters(), cursor="not-ours", limit=3, store=store, hmac_key=KEY
        )


async def test_timeline_export_and_statistics_read_what_was_recorded() -> None:
    store = FakeAudit()
    await recorded(store, ["D1"])
    shown = await reading.timeline("D1", store=store)
    assert shown[1]["from_state"] == "submitted"
    exported = [
        r["_id"] async for r in reading.export(T0, T0 + timedelta(days=1), store=store, page=2)
    ]
    assert len(exported) == 5
    period = (T0 - timedelta(days=1), T0 + timedelta(days=30))
    assert await reading.statistics(*period, store=store) == []  # not settled yet
    assert await handlers.settle(store=store, now=LATER, grace=GRACE, hmac_key=KEY) == 5
    rows = await reading.statistics(*period, store=store)
    assert [(r["received"], r["decided"]) for r in rows] == [(1, 1)]
    assert rows == await reading.statistics_from_records(
        *period, store=store, calendar=WorkingCalendar()
    )
    assert await reading.statistics(*period, store=store, unit_id="U") == rows
    assert await reading.statistics(*period, store=store, unit_id="U9") == []
    assert await reading.statistics(*period, store=store, procedure_code="1.004194") == rows
