"""The statistics projection (`dossier_facts`): folding a dossier's records in any order, any
number of times, in any batches, gives `statistics.facts` of all of them; settling keeps it;
two writers racing both land; an old database's is built once; statistics read it and answer
what the old fold over the records answered."""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit import handlers
from services.audit.domain import Record
from services.audit.handlers import projecting, reading
from services.audit.statistics import (
    DossierFacts,
    bears_on_facts,
    facts,
    facts_document,
    facts_of_document,
    folded,
)
from services.audit.store_reading import nested
from shared.calendar import VIETNAM, WorkingCalendar
from tests.unit.test_audit_handlers import GRACE, KEY, FakeAudit

CALENDAR = WorkingCalendar()
START = datetime(2026, 11, 2, 7, tzinfo=VIETNAM).astimezone(UTC)  # a Monday, 07:00 in Vietnam
FOLLOWING = (
    "dossier.assigned",
    "dossier.received",
    "dossier.reassigned",
    "dossier.supplement_requested",
    "dossier.supplemented",
    "dossier.apology_issued",
    "dossier.approved",
    "dossier.rejected",
    "notification.sent",
)
TIME_FIELD = {
    "dossier.supplement_requested": "requested_at",
    "dossier.supplemented": "supplemented_at",
    "dossier.approved": "decided_at",
    "dossier.rejected": "decided_at",
}


def record(
    code: str,
    n: int,
    kind: str,
    at: datetime,
    unit: str | None,
    *,
    procedure: str = "P1",
    **data: Any,
) -> Record:
    """A record as audit stores it (what facts read, and a little more)."""
    return {
        "_id": f"{code}-{n:02d}",
        "dossier_code": code,
        "type": kind,
        "time": at,
        "source": "urn:test",
        "actor": "system",
        "procedure_code": procedure if kind != "notification.sent" else None,
        "unit_id": unit,
        "data": {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()},
        "recorded_at": at,
    }


@st.composite
def dossiers(draw: st.DrawFn, code: str = "D") -> list[Record]:
    """One dossier's records: a submission, then up to ten events of any kind, at any
    moments (ties included), naming units or not, stating promised dates or not."""
    units = st.sampled_from([None, "U1", "U2", "00004"])
    hours = st.integers(min_value=0, max_value=24 * 20)
    received = START + timedelta(hours=draw(hours))
    data: dict[str, Any] = {"submitted_at": received}
    if draw(st.booleans()):
        data["received_at"] = received + timedelta(hours=draw(st.integers(0, 30)))
    if draw(st.booleans()):
        data["promised_at"] = received + timedelta(hours=draw(hours))
    out = [record(code, 0, "dossier.submitted", received, draw(units), **data)]
    for n in range(1, draw(st.integers(0, 10)) + 1):
        kind = draw(st.sampled_from(FOLLOWING))
        at = received + timedelta(hours=draw(st.integers(0, 24 * 30)))
        extra: dict[str, Any] = {}
        if kind in TIME_FIELD and draw(st.booleans()):
            extra[TIME_FIELD[kind]] = at
        if kind in ("dossier.apology_issued", *TIME_FIELD) and draw(st.booleans()):
            extra["promised_at"] = at + timedelta(hours=draw(hours))
        unit = draw(units) if kind != "notification.sent" else None
        out.append(record(code, n, kind, at, unit, **extra))
    return out


def fold_all(batches: list[list[Record]]) -> tuple[list[Record], dict[str, Any] | None]:
    """The dossier's summaries and facts document after folding `batches` one after
    another."""
    summaries: list[Record] = []
    doc: dict[str, Any] | None = None
    for batch in batches:
        more = folded(summaries, batch)
        if more is not None:
            summaries = more
            doc = facts_document("D", summaries, CALENDAR, doc["version"] + 1 if doc else 0)
    return summaries, doc


@settings(max_examples=200, deadline=None)
@given(dossiers(), st.randoms(use_true_random=False), st.integers(1, 6))
def test_folding_records_in_any_order_and_again_gives_facts_of_them_all(
    records: list[Record], rnd: random.Random, pieces: int
) -> None:
    arrived = records + [rnd.choice(records) for _ in range(rnd.randint(0, 4))]  # redelivered
    rnd.shuffle(arrived)
    cuts = sorted(rnd.sample(range(1, len(arrived)), min(pieces - 1, len(arrived) - 1)))
    batches = [arrived[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrived)], strict=True)]
    summaries, doc = fold_all(batches)
    expected = facts(records, CALENDAR)
    assert doc is not None  # a submission always bears on the facts
    assert facts_of_document(doc) == expected
    assert sorted(s["_id"] for s in summaries) == sorted(
        {r["_id"] for r in records if bears_on_facts(r)}
    )
    assert fold_all([*batches, records]) == (summaries, doc)  # all again: nothing changes


@settings(max_examples=200, deadline=None)
@given(dossiers())
def test_records_that_bear_on_nothing_change_no_fact(records: list[Record]) -> None:
    kept = [r for r in records if bears_on_facts(r)]
    assert facts(kept, CALENDAR) == facts(records, CALENDAR)


def test_a_dossier_without_records_that_bear_on_facts_gets_no_document() -> None:
    sent = record("D", 1, "notification.sent", START, None)
    assert not bears_on_facts(sent)
    assert folded([], [sent]) is None


# --- a mixed set of dossiers: the projection answers what the old fold answered ------------


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """November 2026 (2nd–6th: Monday to Friday), Vietnam time."""
    return datetime(2026, 11, day, hour, minute, tzinfo=VIETNAM).astimezone(UTC)


def mixed_dossiers() -> list[Record]:
    """On time after a supplement pause, late with an apology, undecided, reassigned to
    another unit, decided before a period it was received in, of another procedure."""
    out: list[Record] = []

    def add(code: str, *events: tuple[str, datetime, str | None, dict[str, Any]]) -> None:
        for n, (kind, when, unit, data) in enumerate(events):
            procedure = "P2" if code.startswith("Q") else "P1"
            out.append(record(code, n, kind, when, unit, procedure=procedure, **data))

    for i in range(3):
        d = i % 2
        add(
            f"A{i}",
            (
                "dossier.submitted",
                at(2, 7),
                "00004",
                {"received_at": at(2, 7), "promised_at": at(4, 17)},
            ),
            ("dossier.assigned", at(2, 7, 5), "U1", {}),
            ("dossier.supplement_requested", at(2, 13, 30), "U1", {"requested_at": at(2, 13, 30)}),
            ("dossier.supplemented", at(4, 7), None, {"supplemented_at": at(4, 7)}),
            ("dossier.approved", at(5 + d, 9), "U1", {"decided_at": at(5 + d, 9)}),
            ("notification.sent", at(5 + d, 9), None, {}),
        )
        add(
            f"B{i}",
            (
                "dossier.submitted",
                at(2, 8),
                "00004",
                {"received_at": at(2, 8), "promised_at": at(3, 17)},
            ),
            ("dossier.assigned", at(2, 8, 1), "U1", {}),
            ("dossier.apology_issued", at(3, 16), "U1", {"promised_at": at(5, 17)}),
            ("dossier.rejected", at(4, 11, 30), "U1", {"decided_at": at(4, 11, 30)}),
        )
        add(f"C{i}", ("dossier.submitted", at(3, 9), "00004", {"received_at": at(3, 9)}))
        add(
            f"R{i}",
            (
                "dossier.submitted",
                at(3, 7),
                "00007",
                {"received_at": at(3, 7), "promised_at": at(3, 17)},
            ),
            ("dossier.assigned", at(3, 7, 1), "U1", {}),
            ("dossier.reassigned", at(3, 9), "U2", {}),
            ("dossier.approved", at(3, 15 + i), "U2", {"decided_at": at(3, 15 + i)}),
        )
        add(
            f"E{i}",
            (
                "dossier.submitted",
                at(2, 7) - timedelta(days=3),
                "00004",
                {"received_at": at(2, 7) - timedelta(days=3), "promised_at": at(2, 17)},
            ),
            ("dossier.approved", at(2, 8 + i), "U1", {"decided_at": at(2, 8 + i)}),
        )
        add(
            f"Q{i}",
            (
                "dossier.submitted",
                at(4, 8),
                "00004",
                {"submitted_at": at(4, 8), "promised_at": at(6, 17)},
            ),
            ("dossier.assigned", at(4, 8, 1), "U1", {}),
            ("dossier.approved", at(6, 10), "U1", {"decided_at": at(6, 10)}),
        )
    return out


PERIOD = (at(2, 0), at(7, 0))


async def settled_store(records: list[Record], rounds: int = 3) -> FakeAudit:
    """A fake store that recorded `records` in a shuffled order, settling between batches."""
    store = FakeAudit()
    arrived = list(records)
    random.Random(3).shuffle(arrived)
    now = at(10, 0)
    for i in range(rounds):
        await store.insert_records(arrived[i::rounds], hmac_key=KEY)
        now += GRACE * 2
        await handlers.settle(store=store, now=now, grace=GRACE, hmac_key=KEY, calendar=CALENDAR)
    assert not store.pending
    return store


async def test_statistics_from_the_projection_are_the_old_folds_rows() -> None:
    records = mixed_dossiers()
    store = await settled_store(records)
    rows = await reading.statistics(*PERIOD, store=store)
    assert rows == await reading.statistics_from_records(*PERIOD, store=store, calendar=CALENDAR)
    by_key = {(r["procedure_code"], r["unit_id"]): r for r in rows}
    assert set(by_key) == {("P1", "U1"), ("P1", "U2"), ("P1", "00004"), ("P2", "U1")}
    u1 = by_key["P1", "U1"]
    assert (u1["received"], u1["decided"], u1["on_time"], u1["late"]) == (6, 9, 6, 3)
    assert (by_key["P1", "U2"]["decided"], by_key["P1", "U2"]["on_time"]) == (3, 3)
    # The unit and procedure filters give that unit's or procedure's rows only.
    assert await reading.statistics(*PERIOD, store=store, unit_id="U2") == [by_key["P1", "U2"]]
    assert await reading.statistics(*PERIOD, store=store, procedure_code="P2") == [
        by_key["P2", "U1"]
    ]
    # Each dossier's document holds `facts` of its records.
    for code in {r["dossier_code"] for r in records}:
        mine = [r for r in records if r["dossier_code"] == code]
        assert facts_of_document(store.facts[code]) == facts(mine, CALENDAR)


# --- settling keeps it; racing writers; the build over an old database --------------------


async def test_a_failed_fold_keeps_the_markers_and_the_next_round_folds_the_chained_records() -> (
    None
):
    store = FakeAudit()
    records = [r for r in mixed_dossiers() if r["dossier_code"] == "A0"]
    await store.insert_records(records, hmac_key=KEY)
    real = store.put_facts

    async def broken(docs: list[dict[str, Any]]) -> None:
        raise ConnectionError("the database went away")

    store.put_facts = broken  # type: ignore[method-assign]
    now = at(10, 0)
    with pytest.raises(ConnectionError):
        await handlers.settle(store=store, now=now, grace=GRACE, hmac_key=KEY)
    assert len(store.chain) == len(records) and len(store.pending) == len(records)
    assert (
        len(store.fact_sources["A0"]["records"]) == 5
    )  # saved before the crash (6 but a notification)
    store.put_facts = real  # type: ignore[method-assign]
    assert await handlers.settle(store=store, now=now, grace=GRACE, hmac_key=KEY) == 0
    assert not store.pending
    assert facts_of_document(store.facts["A0"]) == facts(records, CALENDAR)


class RacingFacts(FakeAudit):
    """A store where another writer folds into a dossier's facts right after each read."""

    def __init__(self, rival: list[Record]) -> None:
        super().__init__()
        self.rival = rival
        self.lost = 0

    async def fact_records(self, codes: list[str]) -> dict[str, dict[str, Any]]:
        docs = await super().fact_records(codes)
        if self.rival:
            rival, self.rival = self.rival, []
            plain = FakeAudit()
            plain.facts, plain.fact_sources = self.facts, self.fact_sources
            assert not await handlers.fold_facts({"D": rival}, store=plain, calendar=CALENDAR)
        return docs

    async def replace_fact_records(self, doc: dict[str, Any], version: int) -> bool:
        won = await super().replace_fact_records(doc, version)
        self.lost += not won
        return won

    async def insert_fact_records(self, docs: list[dict[str, Any]]) -> set[str]:
        taken = await super().insert_fact_records(docs)
        self.lost += len(taken)
        return taken


@pytest.mark.parametrize("first", [True, False], ids=["both-first", "after-one"])
async def test_two_writers_folding_one_dossier_at_once_both_land(first: bool) -> None:
    records = [{**r, "dossier_code": "D"} for r in mixed_dossiers() if r["dossier_code"] == "A1"]
    mine, theirs = records[::2], records[1::2]
    store = RacingFacts(theirs)
    if not first:  # the dossier has facts already: the rival wins a conditional replace
        store.fact_sources["D"] = {"_id": "D", "records": folded([], records[:1]), "version": 0}
    assert not await handlers.fold_facts({"D": mine}, store=store, calendar=CALENDAR)
    assert store.lost == 1  # this writer lost the race once, read again and folded again
    assert facts_of_document(store.facts["D"]) == facts(records, CALENDAR)
    assert len(store.fact_sources["D"]["records"]) == sum(map(bears_on_facts, records))
    assert store.facts["D"]["version"] == store.fact_sources["D"]["version"]


async def test_a_writer_that_loses_every_try_says_so_and_folds_nothing_wrong() -> None:
    store = FakeAudit()
    store.fact_sources["D"] = {"_id": "D", "records": [], "version": 0}

    async def always_lost(doc: dict[str, Any], version: int) -> bool:
        return False

    store.replace_fact_records = always_lost  # type: ignore[method-assign]
    rec = record("D", 0, "dossier.submitted", START, "U1", received_at=START)
    assert await handlers.fold_facts({"D": [rec]}, store=store, calendar=CALENDAR) == {"D"}
    assert "D" not in store.facts


async def test_an_old_database_builds_its_projection_once_and_statistics_wait_for_it() -> None:
    records = mixed_dossiers()
    store = FakeAudit()
    for r in records:  # recorded and settled before the projection existed
        store.records[r["_id"]] = r
    projection = handlers.Projection()
    assert not await projection.ready(store)
    assert await handlers.facts_to_build(store=store, clock=lambda: START)
    # Interrupted after its first page: it goes on from there.
    store.upgrades["dossier_facts"] = {"_id": "dossier_facts", "done": False, "after": "B2"}
    read = await handlers.build_facts(
        store=store, calendar=CALENDAR, clock=lambda: START, page=4, projection=projection
    )
    assert read == len({r["dossier_code"] for r in records if r["dossier_code"] > "B2"})
    assert projection.built and await handlers.Projection().ready(store)
    assert "A0" not in store.facts
    store.upgrades.clear()
    assert await handlers.build_facts(store=store, calendar=CALENDAR, clock=lambda: START) == 18
    rows = await reading.statistics(*PERIOD, store=store)
    assert rows == await reading.statistics_from_records(*PERIOD, store=store, calendar=CALENDAR)
    assert not await handlers.facts_to_build(store=store, clock=lambda: START)
    assert await handlers.build_facts(store=store, calendar=CALENDAR, clock=lambda: START) == 0


async def test_a_new_database_is_noted_built_at_once() -> None:
    store = FakeAudit()
    assert not await handlers.facts_to_build(store=store, clock=lambda: START)
    assert await handlers.Projection().ready(store)


async def test_a_failed_build_is_tried_again_from_where_it_got() -> None:
    store = FakeAudit()
    for r in mixed_dossiers():
        store.records[r["_id"]] = r
    failures = [ConnectionError("gone")]
    real = store.insert_fact_records

    async def flaky(docs: list[dict[str, Any]]) -> set[str]:
        if failures:
            raise failures.pop()
        return await real(docs)

    store.insert_fact_records = flaky  # type: ignore[method-assign]
    projection = handlers.Projection()
    await asyncio.wait_for(
        handlers.keep_building_facts(
            store=store,
            calendar=CALENDAR,
            clock=lambda: START,
            projection=projection,
            retry_every=0.01,
        ),
        timeout=5,
    )
    assert projection.built and len(store.facts) == 18


def test_facts_documents_hold_every_fact_field() -> None:
    doc = facts_document("D", [], CALENDAR, 3)
    assert set(doc) == {*asdict(DossierFacts()), "_id", "version"} and doc["version"] == 3
    assert projecting.FACTS_BUILD == "dossier_facts"


def test_dotted_projection_keys_are_nested_back_as_mongodb_returns_them() -> None:
    """nx-27017 0.8.1 returns a projection on `data.x` as a top-level key `"data.x"`."""
    flat = {"_id": "a", "type": "t", "data.received_at": "r", "data.decided_at": "d"}
    assert nested(flat) == {
        "_id": "a",
        "type": "t",
        "data": {"received_at": "r", "decided_at": "d"},
    }
    plain = {"_id": "a", "data": {"received_at": "r"}}
    assert nested(plain) is plain
