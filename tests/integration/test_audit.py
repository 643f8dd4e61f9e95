"""Audit's ledger against the real MongoDB-wire server: records written in batches, chained in
order of occurrence whatever the arrival order, sealed, and tampering named by verification."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymongo import AsyncMongoClient

from services.audit import handlers, ledger
from services.audit.batching import Batcher
from services.audit.signing import public_hex
from services.audit.store import QUARANTINE, AuditStore
from shared.clock import Clock, utcnow
from shared.contracts import Event
from shared.storage import Document
from tests.conftest import Isolation
from tests.factories import T0, dossier_events
from tools.devstack import ROOT

KEY = b"k"


def fixed_clock(at: datetime) -> Callable[[], datetime]:
    return lambda: at


async def record_all(
    store: AuditStore, events: list[Event], *, size: int = 3, clock: Clock | None = None
) -> Batcher:
    batcher = Batcher(partial(store.insert_records, hmac_key=KEY), size=size, wait=0.01)
    clock = clock or fixed_clock(T0 + timedelta(hours=1))
    await asyncio.gather(
        *(handlers.record(e, batcher=batcher, hmac_key=KEY, clock=clock) for e in events)
    )
    return batcher


async def fresh_store(
    mongo: AsyncMongoClient[Document], isolation: Isolation, name: str
) -> AuditStore:
    store = AuditStore(mongo[isolation.database(name)])
    await store.setup()
    return store


async def test_shuffled_arrivals_give_the_same_timeline_and_chain(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    code = "G01.99-261102-0001"
    events = dossier_events(code)
    expected = [e.id for e in sorted(events, key=lambda e: (e.time, e.id))]
    chains = []
    for attempt in range(3):
        shuffled = events[:]
        random.Random(attempt).shuffle(shuffled)
        store = await fresh_store(mongo, isolation, f"audit{attempt}")
        await record_all(store, shuffled)
        await record_all(store, shuffled[:2])  # redeliveries change nothing
        settled = T0 + timedelta(hours=2)
        assert (
            await handlers.settle(
                hmac_key=KEY, store=store, now=settled, grace=timedelta(seconds=5)
            )
            == 5
        )
        await record_all(store, shuffled[3:])  # and once chained, they are not chained again
        assert (
            await handlers.settle(
                hmac_key=KEY, store=store, now=settled, grace=timedelta(seconds=5)
            )
            == 0
        )
        assert await store.pending.count_documents({}) == 0
        assert [r["_id"] for r in await store.timeline(code)] == expected
        links = await store.links(code)
        assert [lk["record_id"] for lk in links] == expected
        chains.append([lk["hash"] for lk in links])
        assert await handlers.verify_dossier(code, store=store, hmac_key=KEY) is None
    assert chains[0] == chains[1] == chains[2]


async def test_records_wait_for_the_grace_window_before_being_chained(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    events = dossier_events("D-late")
    await record_all(store, events[2:])
    recorded = T0 + timedelta(hours=1)
    # Within the grace window nothing is chained, and unchained records still verify.
    assert (
        await handlers.settle(hmac_key=KEY, store=store, now=recorded, grace=timedelta(seconds=5))
        == 0
    )
    assert await handlers.verify_dossier("D-late", store=store, hmac_key=KEY) is None
    await handlers.settle(
        hmac_key=KEY, store=store, now=recorded + timedelta(seconds=6), grace=timedelta(seconds=5)
    )
    # Events that arrive after their dossier's later ones were chained are appended, in order.
    await record_all(store, events[:2])
    await handlers.settle(
        hmac_key=KEY, store=store, now=recorded + timedelta(seconds=6), grace=timedelta(seconds=5)
    )
    links = await store.links("D-late")

    def order(evs: list[Event]) -> list[str]:
        return [e.id for e in sorted(evs, key=lambda e: (e.time, e.id))]

    assert [lk["record_id"] for lk in links] == order(events[2:]) + order(events[:2])
    assert [r["_id"] for r in await store.timeline("D-late")] == order(events)
    assert await handlers.verify_dossier("D-late", store=store, hmac_key=KEY) is None


async def sealed(store: AuditStore, codes: list[str]) -> tuple[Ed25519PrivateKey, dict[str, Any]]:
    key = Ed25519PrivateKey.generate()
    for code in codes:
        await record_all(store, dossier_events(code))
    now = T0 + timedelta(hours=2)
    await handlers.settle(hmac_key=KEY, store=store, now=now, grace=timedelta(seconds=5))
    seal = await handlers.seal(store=store, key=key, now=now + timedelta(seconds=1))
    assert seal is not None and seal["count"] == 5 * len(codes)
    return key, seal


Tamper = Callable[[AuditStore, str], Any]


async def _modify(store: AuditStore, code: str) -> str:
    target = (await store.timeline(code))[2]
    await store.records.update_one({"_id": target["_id"]}, {"$set": {"actor": "o2"}})
    return str(target["_id"])


async def _delete(store: AuditStore, code: str) -> str:
    target = (await store.timeline(code))[1]
    await store.records.delete_one({"_id": target["_id"]})
    return str(target["_id"])


async def _insert(store: AuditStore, code: str) -> str:
    forged = dict((await store.timeline(code))[1], _id="forged-1", actor="o9")
    await store.records.insert_one(forged)
    return "forged-1"


@pytest.mark.parametrize(
    ("tamper", "kind"), [(_modify, "modified"), (_delete, "deleted"), (_insert, "inserted")]
)
async def test_a_record_changed_deleted_or_inserted_in_mongodb_is_named(
    mongo: AsyncMongoClient[Document], isolation: Isolation, tamper: Tamper, kind: str
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    await sealed(store, ["D1", "D2"])
    assert await handlers.verify_all(store=store, hmac_key=KEY, since=None) is None
    record_id = await tamper(store, "D2")
    assert await handlers.verify_dossier("D1", store=store, hmac_key=KEY) is None
    for found in (
        await handlers.verify_dossier("D2", store=store, hmac_key=KEY),
        await handlers.verify_all(store=store, hmac_key=KEY, since=None),
    ):
        assert found is not None
        assert (found.kind, found.dossier_code, found.record_id) == (kind, "D2", record_id)


async def test_a_whole_link_removed_or_added_is_caught_by_the_seal(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    await sealed(store, ["D1"])
    [*_, last_link] = await store.links("D1")
    await store.chain.delete_one({"_id": last_link["_id"]})
    await store.records.delete_one({"_id": last_link["record_id"]})
    found = await handlers.verify_dossier("D1", store=store, hmac_key=KEY)
    assert found is not None and (found.kind, found.seal) == ("deleted", 0)

    await store.chain.insert_one(dict(last_link))
    await store.chain.insert_one(dict(last_link, _id="D1#99", seq=99))
    found = await handlers.verify_all(store=store, hmac_key=KEY, since=None)
    assert found is not None and (found.kind, found.seal) == ("inserted", 0)


async def test_seals_are_chained_signed_and_checked(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    key, first = await sealed(store, ["D1"])
    ours = public_hex(key)
    await record_all(store, dossier_events("D2"))
    later = T0 + timedelta(hours=3)
    await handlers.settle(hmac_key=KEY, store=store, now=later, grace=timedelta(seconds=5))
    second = await handlers.seal(store=store, key=key, now=later + timedelta(seconds=1))
    assert second is not None
    assert (second["seq"], second["prev_seal_hash"], second["count"]) == (1, first["hash"], 5)
    assert await handlers.seal(store=store, key=key, now=later + timedelta(seconds=2)) is None
    assert await handlers.verify_all(store=store, hmac_key=KEY, since=None) is None
    assert (
        await handlers.verify_all(store=store, hmac_key=KEY, since=None, trusted=frozenset({ours}))
        is None
    )
    # Seals re-signed by someone else's key hold together, but not with the operator's key.
    found = await handlers.verify_dossier(
        "D1", store=store, hmac_key=KEY, trusted=frozenset({"ab" * 32})
    )
    assert found is not None and (found.kind, found.seal) == ("bad_signature", 0)

    await store.seals.update_one({"_id": 0}, {"$set": {"root": "00" * 32}})
    found = await handlers.verify_all(store=store, hmac_key=KEY, since=None)
    assert found is not None and (found.kind, found.seal) == ("modified", 0)


async def test_batches_are_bounded_and_every_record_is_written(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    events = [e for i in range(40) for e in dossier_events(f"D{i}")]
    batcher = await record_all(store, events, size=50)
    assert await store.records.count_documents({}) == 200
    assert await store.pending.count_documents({}) == 200
    assert 4 <= batcher.batches < 200


async def test_the_verify_command_reports_all_holds_then_the_first_break(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    _, seal = await sealed(store, ["D1"])
    env = {**os.environ, **isolation.service_env()}
    command = [sys.executable, "-m", "services.audit", "verify", "--since", "2026-11-01"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    ok = await asyncio.to_thread(run)
    assert (ok.returncode, ok.stdout.strip()) == (0, '{"ok": true}'), ok.stderr
    command += ["--expect-seal", f"0:{seal['hash']}"]
    ok = await asyncio.to_thread(run)
    assert (ok.returncode, ok.stdout.strip()) == (0, '{"ok": true}'), ok.stderr
    record_id = await _modify(store, "D1")
    bad = await asyncio.to_thread(run)
    assert bad.returncode == 1
    assert '"kind": "modified"' in bad.stdout and record_id in bad.stdout
    await store.seals.delete_one({"_id": 0})
    bad = await asyncio.to_thread(run)
    assert bad.returncode == 1
    assert '"kind": "deleted"' in bad.stdout and '"seal": 0' in bad.stdout


async def test_a_marker_whose_record_is_late_waits_for_it(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    [first, second, *_] = dossier_events("D-slow")
    await record_all(store, [first])
    recorded = T0 + timedelta(hours=1)
    # The marker is written, the record's write is slow: settling leaves the marker alone.
    mac = ledger.marker_mac(
        ledger.marker_key(KEY), handlers.record_of(second, KEY, fixed_clock(recorded))
    )
    await store.pending.insert_one(
        {"_id": second.id, "dossier_code": "D-slow", "recorded_at": recorded, "mac": mac}
    )
    grace = timedelta(seconds=5)
    assert (
        await handlers.settle(
            hmac_key=KEY, store=store, now=recorded + timedelta(seconds=6), grace=grace
        )
        == 1
    )
    assert await store.pending_ids("D-slow") == {second.id}
    await record_all(store, [second])
    assert (
        await handlers.settle(
            hmac_key=KEY, store=store, now=recorded + timedelta(seconds=7), grace=grace
        )
        == 1
    )
    assert await handlers.verify_dossier("D-slow", store=store, hmac_key=KEY) is None
    # A marker whose record never comes (its message was dead-lettered) goes after an hour.
    await store.pending.insert_one(
        {"_id": "never", "dossier_code": "D-slow", "recorded_at": recorded}
    )
    await handlers.settle(
        hmac_key=KEY, store=store, now=recorded + timedelta(minutes=30), grace=grace
    )
    assert await store.pending_ids("D-slow") == {"never"}
    await handlers.settle(hmac_key=KEY, store=store, now=recorded + timedelta(hours=2), grace=grace)
    assert await store.pending_ids("D-slow") == set()


async def test_a_forged_record_of_no_dossier_is_named_by_the_full_check(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    await sealed(store, ["D1", "D2"])
    await store.records.insert_one({"_id": "stray", "type": "dossier.approved", "time": T0})
    found = await handlers.verify_all(store=store, hmac_key=KEY, since=None)
    assert found is not None and (found.kind, found.record_id) == ("inserted", "stray")


async def test_a_hole_in_a_chain_is_not_filled_by_later_records(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Later records go after the chain's head (read by key), never into a place a deleted
    link left, even the last one: the hole stays for verification to name."""
    store = await fresh_store(mongo, isolation, "audit")
    await sealed(store, ["D1"])
    await store.chain.delete_one({"_id": "D1#2"})
    await store.chain.delete_one({"_id": "D1#4"})
    later = dossier_events("D1")[0].model_copy(update={"id": "later-1"})
    await record_all(store, [later])
    grace = timedelta(seconds=5)
    assert (
        await handlers.settle(hmac_key=KEY, store=store, now=T0 + timedelta(hours=4), grace=grace)
        == 1
    )
    assert await store.pending_ids("D1") == set()
    assert {lk["_id"] for lk in await store.links("D1")} == {"D1#0", "D1#1", "D1#3", "D1#5"}
    found = await handlers.verify_dossier("D1", store=store, hmac_key=KEY)
    assert found is not None and (found.kind, found.seq) == ("deleted", 2)


async def test_the_old_audit_log_is_adopted_masked_and_then_dropped(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Before the ledger, audit kept whole events (full personal IDs) in `events`: at start
    they join the masked records and chains, and the old collection goes."""
    code = "G01.99-261102-0009"
    events = dossier_events(code)
    store = await fresh_store(mongo, isolation, "auditlegacy")
    legacy = store.records.database[handlers.LEGACY]
    for event in events:  # as the old store wrote them
        doc = event.model_dump(mode="json")
        doc.pop("id")
        await legacy.insert_one(
            {**doc, "_id": event.id, "dossier_code": code, "time": event.time, "recorded_at": T0}
        )
    full_id = str(events[0].data.applicant.personal_id)  # type: ignore[attr-defined]
    assert len(full_id) == 12
    # One document is no event any more (a field renamed by hand, say): it must not keep the
    # old collection, and its identifiers, alive.
    await legacy.insert_one(
        {"_id": "broken-1", "kind": "?", "note": f"CCCD {full_id}", "personal_id": full_id}
    )

    clock = fixed_clock(T0 + timedelta(hours=1))
    assert await handlers.adopt_legacy(store=store, hmac_key=KEY, clock=clock) == len(events)
    assert handlers.LEGACY not in await store.records.database.list_collection_names()
    assert await handlers.adopt_legacy(store=store, hmac_key=KEY, clock=clock) == 0  # again
    [kept] = [d async for d in store.records.database[QUARANTINE].find({})]
    assert kept["_id"] == "broken-1" and full_id not in repr(kept)
    assert kept["personal_id"] == "********" + full_id[-4:]
    assert sorted(r["_id"] for r in await store.timeline(code)) == sorted(e.id for e in events)
    assert not [r async for r in store.records.find({}) if full_id in repr(r)]
    await handlers.settle(
        hmac_key=KEY, store=store, now=T0 + timedelta(hours=2), grace=timedelta(seconds=5)
    )
    assert len(await store.links(code)) == len(events)
    assert await handlers.verify_dossier(code, store=store, hmac_key=KEY) is None


async def test_a_forged_record_with_a_forged_marker_is_neither_chained_nor_accepted(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    await sealed(store, ["D1"])
    genuine = (await store.timeline("D1"))[1]
    forged = dict(genuine, _id="forged-1", actor="o9")
    at = T0 + timedelta(hours=3)
    await store.pending.insert_one({"_id": "forged-1", "dossier_code": "D1", "recorded_at": at})
    await store.records.insert_one(forged)
    grace = timedelta(seconds=5)
    assert (
        await handlers.settle(store=store, now=at + timedelta(hours=2), grace=grace, hmac_key=KEY)
        == 0
    )
    assert "forged-1" not in {lk["record_id"] for lk in await store.links("D1")}
    for found in (
        await handlers.verify_dossier("D1", store=store, hmac_key=KEY),
        await handlers.verify_all(store=store, since=None, hmac_key=KEY),
    ):
        assert found is not None and (found.kind, found.record_id) == ("inserted", "forged-1")


async def test_a_record_edited_while_it_waits_is_named_and_not_chained(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    [first, *_] = dossier_events("D-wait")
    await record_all(store, [first])
    await store.records.update_one({"_id": first.id}, {"$set": {"actor": "o9"}})
    found = await handlers.verify_dossier("D-wait", store=store, hmac_key=KEY)
    assert found is not None and (found.kind, found.record_id) == ("modified", first.id)
    now = T0 + timedelta(hours=2)
    assert (
        await handlers.settle(store=store, now=now, grace=timedelta(seconds=5), hmac_key=KEY) == 0
    )
    assert await store.pending_ids("D-wait") == {first.id}  # left for an inspector to see


async def test_a_deleted_chain_tail_sealed_later_is_caught_by_the_dossier_check(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    key = Ed25519PrivateKey.generate()
    events = dossier_events("D1")
    grace = timedelta(seconds=5)
    for part, at in (
        (events[:-1], T0 + timedelta(hours=2)),
        (events[-1:], T0 + timedelta(hours=3)),
    ):
        await record_all(store, part)
        await handlers.settle(store=store, now=at, grace=grace, hmac_key=KEY)
        assert await handlers.seal(store=store, key=key, now=at + timedelta(seconds=1))
    *kept, tail = await store.links("D1")
    assert {lk["settled_at"] for lk in kept} != {tail["settled_at"]}
    assert await handlers.verify_dossier("D1", store=store, hmac_key=KEY) is None
    await store.chain.delete_one({"_id": tail["_id"]})
    await store.records.delete_one({"_id": tail["record_id"]})
    found = await handlers.verify_dossier("D1", store=store, hmac_key=KEY)
    assert found is not None and (found.kind, found.seal) == ("deleted", 1)


async def test_deleted_latest_seals_are_named_by_the_kept_copy_and_as_unsealed_links(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    store = await fresh_store(mongo, isolation, "audit")
    key, _ = await sealed(store, ["D1"])
    await record_all(store, dossier_events("D2"))
    later = T0 + timedelta(hours=3)
    await handlers.settle(store=store, now=later, grace=timedelta(seconds=5), hmac_key=KEY)
    second = await handlers.seal(store=store, key=key, now=later + timedelta(seconds=1))
    assert second is not None
    kept = (1, str(second["hash"]))
    checked = later + timedelta(hours=1)
    assert (
        await handlers.verify_all(
            store=store, since=None, hmac_key=KEY, expect_seal=kept, unsealed_before=checked
        )
        is None
    )

    # The latest seal is deleted: its links are now covered by no seal.
    await store.seals.delete_one({"_id": 1})
    found = await handlers.verify_all(store=store, since=None, hmac_key=KEY, expect_seal=kept)
    assert found is not None and (found.kind, found.seal) == ("deleted", 1)
    found = await handlers.verify_all(
        store=store, since=None, hmac_key=KEY, unsealed_before=checked
    )
    assert found is not None and (found.kind, found.dossier_code) == ("unsealed", "D2")
    found = await handlers.verify_dossier("D2", store=store, hmac_key=KEY, unsealed_before=checked)
    assert found is not None and found.kind == "unsealed"
    # (Links settled only recently may still wait for their seal.)
    assert (
        await handlers.verify_all(
            store=store, since=None, hmac_key=KEY, unsealed_before=later - timedelta(seconds=1)
        )
        is None
    )

    # A D2 link is removed and the tail re-sealed: it all holds together, but not the copy.
    await store.chain.delete_one({"_id": "D2#4"})
    await store.records.delete_one({"_id": (await store.timeline("D2"))[-1]["_id"]})
    assert await handlers.seal(store=store, key=key, now=checked) is not None
    assert await handlers.verify_all(store=store, since=None, hmac_key=KEY) is None
    found = await handlers.verify_all(store=store, since=None, hmac_key=KEY, expect_seal=kept)
    assert found is not None and (found.kind, found.seal) == ("modified", 1)


async def test_two_ledger_keepers_one_with_its_clock_behind_keep_a_ledger_that_verifies(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Two audit processes, the second's clock 3 s behind: only the lease holder settles and
    seals; when it stops, the other takes over, and its links land after the last seal."""
    store = await fresh_store(mongo, isolation, "audit")
    key = Ed25519PrivateKey.generate()

    def keeper(name: str, skew: timedelta) -> asyncio.Task[None]:
        return asyncio.create_task(
            handlers.keep_ledger(
                store=store,
                key=key,
                clock=lambda: utcnow() - skew,
                grace=timedelta(0),
                settle_every=0.02,
                seal_every=0.05,
                hmac_key=KEY,
                lease_ttl=0.3,
                margin=timedelta(milliseconds=20),
                holder=name,
            )
        )

    async def chained(count: int) -> None:
        for _ in range(500):  # at most 10 s
            if await store.chain.count_documents({}) == count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{count} links expected")

    first = keeper("a", timedelta(0))
    await asyncio.sleep(0.05)
    second = keeper("b", timedelta(seconds=3))
    try:
        for i in range(4):
            await record_all(store, dossier_events(f"D{i}"), clock=utcnow)
            await asyncio.sleep(0.1)
        await chained(20)
        await asyncio.sleep(0.1)
        assert {d["holder"] async for d in store.leases.find({})} == {"a"}
        assert await store.seals.count_documents({}) >= 1
        first.cancel()
        for i in range(4, 8):
            await record_all(store, dossier_events(f"D{i}"), clock=utcnow)
        await chained(40)
    finally:
        for task in (first, second):
            task.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
    assert {d["holder"] async for d in store.leases.find({})} == {"a", "b"}
    await handlers.seal(store=store, key=key, now=utcnow() + timedelta(seconds=5))
    assert await handlers.verify_all(store=store, since=None, hmac_key=KEY) is None


async def test_a_restarted_ledger_keeper_seals_when_the_last_seal_is_old(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    """Sealing is due a seal interval after the last seal, not after the process started:
    a process restarted more often than the interval still seals."""
    store = await fresh_store(mongo, isolation, "audit")
    key, _ = await sealed(store, ["D1"])  # sealed at T0 + 2 h
    await record_all(store, dossier_events("D2"))
    task = asyncio.create_task(
        handlers.keep_ledger(
            store=store,
            key=key,
            clock=fixed_clock(T0 + timedelta(hours=3, minutes=30)),
            grace=timedelta(seconds=5),
            settle_every=0.01,
            seal_every=3600,
            hmac_key=KEY,
            lease_ttl=1,
            margin=timedelta(0),
        )
    )
    try:
        for _ in range(500):
            if await store.seals.count_documents({}) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    last = await store.last_seal()
    assert last is not None and (last["seq"], last["count"]) == (1, 5)
