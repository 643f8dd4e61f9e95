"""The statistics projection (`dossier_facts`) on the real MongoDB-wire server: kept by
settling whatever the arrival order, right when two settlers and two folds race on one
dossier, built once over an old database (statistics answer 503 until then), and answering
the rows the old fold over the records answered."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from services.audit import handlers
from services.audit.api import router
from services.audit.domain import Record
from services.audit.handlers import reading
from services.audit.statistics import bears_on_facts, facts, facts_document, facts_of_document
from services.audit.store import AuditStore
from shared import problems
from shared.storage import Document
from tests.conftest import Isolation
from tests.unit.test_audit_facts import CALENDAR, PERIOD, at, mixed_dossiers

pytestmark = pytest.mark.integration
KEY = b"k"
GRACE = timedelta(seconds=5)


@pytest.fixture
async def stores(isolation: Isolation) -> AsyncIterator[tuple[AuditStore, AuditStore]]:
    """Two audit processes' stores on one database, each with its own client."""
    clients: list[AsyncMongoClient[Document]] = [
        AsyncMongoClient(isolation.mongodb_url, tz_aware=True) for _ in range(2)
    ]
    name = isolation.database("auditfacts")
    first, second = (AuditStore(c[name]) for c in clients)
    await first.setup()
    yield first, second
    await clients[0].drop_database(name)
    for client in clients:
        await client.close()


def by_dossier(records: list[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = {}
    for r in records:
        out.setdefault(r["dossier_code"], []).append(r)
    return out


async def facts_docs(store: AuditStore, codes: list[str]) -> dict[str, Document]:
    return {d["_id"]: d async for d in store.facts.find({"_id": {"$in": codes}})}


async def assert_facts_of_records(store: AuditStore, records: list[Record]) -> None:
    docs = await facts_docs(store, sorted({r["dossier_code"] for r in records}))
    sources = await store.fact_records(sorted(docs))
    for code, mine in by_dossier(records).items():
        assert facts_of_document(docs[code]) == facts(mine, CALENDAR), code
        assert docs[code]["version"] == sources[code]["version"], code


async def test_settling_in_any_order_keeps_facts_and_statistics_are_the_old_folds_rows(
    stores: tuple[AuditStore, AuditStore],
) -> None:
    store, _ = stores
    records = mixed_dossiers()
    arrived = records + records[::5]  # some delivered twice
    random.Random(11).shuffle(arrived)
    now = at(10, 0)
    for i in range(4):
        await store.insert_records(arrived[i::4], hmac_key=KEY)
        now += GRACE * 2
        await handlers.settle(store=store, now=now, grace=GRACE, hmac_key=KEY, calendar=CALENDAR)
    assert await store.pending.count_documents({"recorded_at": {"$gte": at(1, 0)}}) == 0
    await assert_facts_of_records(store, records)
    rows = await reading.statistics(*PERIOD, store=store)
    assert rows and rows == await reading.statistics_from_records(
        *PERIOD, store=store, calendar=CALENDAR
    )
    assert {r["unit_id"] for r in await reading.statistics(*PERIOD, store=store, unit_id="U2")} == {
        "U2"
    }
    for code in ("A0", "R1"):
        assert await handlers.verify_dossier(code, store=store, hmac_key=KEY) is None


async def test_two_settlers_at_once_keep_every_dossier_s_facts(
    stores: tuple[AuditStore, AuditStore],
) -> None:
    """Two audit processes record and settle the same dossiers' records at once (say, a
    paused lease holder waking up after another took over)."""
    records = mixed_dossiers()
    arrived = list(records)
    random.Random(5).shuffle(arrived)
    now = at(10, 0)
    for i in range(3):
        batch = arrived[i::3]
        await asyncio.gather(
            *(s.insert_records(batch[j::2], hmac_key=KEY) for j, s in enumerate(stores))
        )
        now += GRACE * 2
        await asyncio.gather(
            *(
                handlers.settle(store=s, now=now, grace=GRACE, hmac_key=KEY, calendar=CALENDAR)
                for s in stores
            )
        )
    left = now
    for _ in range(5):  # what a lost race left pending, the next rounds settle
        left += GRACE
        await handlers.settle(
            store=stores[0], now=left, grace=GRACE, hmac_key=KEY, calendar=CALENDAR
        )
    await assert_facts_of_records(stores[0], records)
    for code in by_dossier(records):
        assert await handlers.verify_dossier(code, store=stores[0], hmac_key=KEY) is None


class Counting(AuditStore):
    """An audit store that counts the facts writes it lost to another writer."""

    lost = 0

    async def replace_fact_records(self, doc: Document, version: int) -> bool:
        won = await super().replace_fact_records(doc, version)
        Counting.lost += not won
        return won

    async def insert_fact_records(self, docs: list[Document]) -> set[str]:
        taken = await super().insert_fact_records(docs)
        Counting.lost += len(taken)
        return taken


async def test_folds_racing_on_one_dossier_from_two_clients_all_land(
    stores: tuple[AuditStore, AuditStore],
) -> None:
    records = [r for r in mixed_dossiers() if r["dossier_code"] == "A2"]
    racers = [Counting(s.records.database) for s in stores]
    Counting.lost = 0
    todo = [(racers[i % 2], [r]) for i, r in enumerate(records)]
    while todo:  # each writer folds its record, again while another writer beat it
        lost = await asyncio.gather(
            *(handlers.fold_facts({"A2": recs}, store=s, calendar=CALENDAR) for s, recs in todo)
        )
        todo = [job for job, left in zip(todo, lost, strict=True) if left]
    assert Counting.lost >= 1  # they did race: the version guard turned writers away
    await assert_facts_of_records(stores[0], records)
    [sources] = (await stores[0].fact_records(["A2"])).values()
    assert len(sources["records"]) == sum(map(bears_on_facts, records))


def statistics_app(store: AuditStore, projection: handlers.Projection) -> httpx.AsyncClient:
    app = FastAPI()
    problems.install(app)
    app.include_router(router)
    app.state.store, app.state.projection = store, projection
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://audit")


async def test_an_old_database_is_built_once_and_statistics_answer_503_until_then(
    stores: tuple[AuditStore, AuditStore],
) -> None:
    store, other = stores
    records = mixed_dossiers()
    await store.records.insert_many([dict(r) for r in records])  # stored before dossier_facts
    params: dict[str, Any] = {"since": "2026-11-02", "until": "2026-11-07"}
    async with statistics_app(other, handlers.Projection()) as api:  # another replica
        waiting = await api.get("/v1/audit/statistics", params=params)
        assert waiting.status_code == 503, waiting.text
        assert waiting.headers["content-type"].startswith("application/problem+json")
        assert waiting.json()["code"] == "statistics_being_built"
        assert waiting.headers["retry-after"] == "60"
        vi = await api.get("/v1/audit/statistics", params=params, headers={"accept-language": "vi"})
        assert "đang được xây dựng" in vi.json()["detail"]

        assert await handlers.facts_to_build(store=store, clock=lambda: at(10, 0))
        built = await handlers.build_facts(
            store=store, calendar=CALENDAR, clock=lambda: at(10, 0), page=5
        )
        assert built == len(by_dossier(records))
        assert not await handlers.facts_to_build(store=store, clock=lambda: at(10, 0))
        await assert_facts_of_records(store, records)

        answered = await api.get("/v1/audit/statistics", params=params)
        assert answered.status_code == 200, answered.text
        expected = await reading.statistics_from_records(*PERIOD, store=store, calendar=CALENDAR)
        assert answered.json()["rows"] == expected
        unit = await api.get("/v1/audit/statistics", params={**params, "unit_id": "U2"})
        assert [r["unit_id"] for r in unit.json()["rows"]] == ["U2"]


async def test_a_new_database_answers_statistics_at_once(
    stores: tuple[AuditStore, AuditStore],
) -> None:
    store, _ = stores
    assert not await handlers.facts_to_build(store=store, clock=lambda: at(10, 0))
    async with statistics_app(store, handlers.Projection()) as api:
        answered = await api.get(
            "/v1/audit/statistics", params={"since": "2026-11-02", "until": "2026-11-07"}
        )
    assert (answered.status_code, answered.json()["rows"]) == (200, [])


async def test_facts_are_written_only_over_an_older_version(
    stores: tuple[AuditStore, AuditStore],
) -> None:
    """The facts of the summaries a writer saved land even when another writer's newer ones
    landed first: an upsert guarded by the version, its duplicate insert refused."""
    store, _ = stores
    [rec] = [r for r in mixed_dossiers() if r["_id"] == "A0-00"]
    newer = {**facts_document("A0", [rec], CALENDAR, 2), "unit_id": "newer"}
    await store.put_facts([newer])
    await store.put_facts([{**newer, "version": 1, "unit_id": "older"}, newer | {"_id": "B0"}])
    docs = await facts_docs(store, ["A0", "B0"])
    assert (docs["A0"]["unit_id"], docs["B0"]["version"]) == ("newer", 2)
    await store.put_facts([{**newer, "version": 3, "unit_id": "newest"}])
    assert (await facts_docs(store, ["A0"]))["A0"]["unit_id"] == "newest"


async def test_every_write_of_the_facts_is_counted_whichever_process_wrote_it(
    stores: tuple[AuditStore, AuditStore],
) -> None:
    """The index gauges read the month again only when this count moved: each process's
    writes count on one keyed document, the first ever of two at once included."""
    first, second = stores
    assert await first.facts_changed() == 0  # set up at 0, so a round counts in one $inc
    await first.fact_changes.delete_many({})  # a database set up before the count existed
    assert await first.facts_changed() == 0
    [rec] = [r for r in mixed_dossiers() if r["_id"] == "A0-00"]
    doc = facts_document("A0", [rec], CALENDAR, 1)
    await asyncio.gather(first.put_facts([doc]), second.put_facts([doc | {"_id": "B0"}]))
    assert await second.facts_changed() == 2
    await asyncio.gather(*(s.put_facts([doc | {"version": 2}]) for s in (first, second) * 5))
    assert await first.facts_changed() == 12
    await first.put_facts([])  # nothing written: nothing counted
    assert await first.facts_changed() == 12
    assert await first.fact_changes.count_documents({}) == 1
