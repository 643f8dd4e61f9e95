"""Audit's use cases: record every event once, chain what has settled, seal periods, verify.

Every audit process records events; one at a time settles and seals: the holder of the ledger
lease (`LedgerLease`). Should two ever settle at once anyway (a paused holder waking up after
another took over, a clock stepped back), chain places and seal numbers are one-winner inserts,
a link is never settled at or before the last seal's end, and a seal ends a margin before its
sealer's "now": a seal's period does not gain a link after it was sealed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import ledger
from services.audit.batching import Batcher
from services.audit.domain import build_record, occurrence_key
from services.audit.privacy import scrub
from services.audit.signing import public_hex, signature_holds
from services.audit.store import EPOCH, QUARANTINE, AuditStore
from shared.clock import Clock
from shared.contracts import Event, UndecodableEvent, load

log = logging.getLogger(__name__)
ORPHAN_AGE = timedelta(hours=1)
MILLISECOND = timedelta(milliseconds=1)
LEASES_KEPT = timedelta(days=1)  # old ledger leases are deleted after a seal (a scan)


async def record(event: Event, *, batcher: Batcher, hmac_key: bytes, clock: Clock) -> None:
    """Store the event's record (masked) once; returns when it is durable."""
    await batcher.submit(_record_of(event, hmac_key, clock))


def _record_of(event: Event, hmac_key: bytes, clock: Clock) -> dict[str, Any]:
    doc = build_record(event, hmac_key=hmac_key, recorded_at=clock())
    at: datetime = doc["time"]
    doc["time"] = ledger.to_millis(at if at.tzinfo else at.replace(tzinfo=UTC))
    return doc


async def settle(*, store: AuditStore, now: datetime, grace: timedelta, hmac_key: bytes) -> int:
    """Chain every record received more than `grace` ago, per dossier in order of occurrence;
    returns how many links were added. A record whose marker's MAC (under a key derived from
    `hmac_key`) does not hold for it is not chained: it was forged or edited while waiting."""
    pending = await store.pending_before(now - grace)
    by_dossier: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for marker in pending:
        by_dossier[marker["dossier_code"]].append(marker)
    # A marker whose record is not written yet is kept for a while (the write may be slow);
    # after ORPHAN_AGE its message was surely retried (and wrote both) or dead-lettered.
    orphan_cutoff = now - max(ORPHAN_AGE, grace * 10)
    key = ledger.marker_key(hmac_key)
    # A link settled inside a period already sealed would look inserted: never at or before
    # the last seal's end, whatever this process's clock says.
    last = await store.last_seal() if pending else None
    settled_at = max(ledger.to_millis(now), last["period_end"] + MILLISECOND) if last else now
    added = 0
    for code, markers in sorted(by_dossier.items()):
        try:
            added += await _settle_dossier(store, code, markers, settled_at, orphan_cutoff, key)
        except Exception:
            # One dossier's trouble (say, a value RFC 8785 cannot encode) must not hold up
            # the others: it is logged and tried again next round.
            log.exception("could not chain the records of dossier %s", code)
    return added


async def _settle_dossier(
    store: AuditStore,
    code: str,
    markers: list[dict[str, Any]],
    now: datetime,
    orphan_cutoff: datetime,
    key: bytes,
) -> int:
    """Append one dossier's settled records to its chain; how many links were added."""
    by_id = {m["_id"]: m for m in markers}
    chain = await store.chain_of(code)
    chained = {link["record_id"] for link in chain}
    stored = await store.records_by_id(list(by_id))
    genuine = []
    for rec in stored:
        if rec["_id"] in chained:
            continue
        if ledger.marker_holds(key, by_id[rec["_id"]], rec):
            genuine.append(rec)
        else:
            log.error(
                "record %s of dossier %s does not match its pending marker (forged or edited "
                "while waiting); not chaining it",
                rec["_id"],
                code,
            )
    records = sorted(genuine, key=occurrence_key)
    found = {r["_id"] for r in stored}
    refused = found - chained - {r["_id"] for r in records}
    orphans = [m for m in markers if m["_id"] not in found and m["recorded_at"] < orphan_cutoff]
    for marker in orphans:
        log.error(
            "record %s of dossier %s never arrived (marker since %s): dead-lettered, or deleted "
            "while it waited; dropping its marker",
            marker["_id"],
            code,
            marker["recorded_at"],
        )
    seq = len(chain)
    prev = str(chain[-1]["hash"]) if chain else ledger.GENESIS
    if records and await store.has_link(code, seq + 1):
        # A link was deleted from the middle of the chain: filling the hole would hide it.
        log.error("the chain of dossier %s has a hole at link %d; not extending it", code, seq)
        return 0
    links = []
    for rec in records:
        link = ledger.make_link(
            dossier_code=code, seq=seq, record=rec, prev_hash=prev, settled_at=now
        )
        links.append(link)
        prev, seq = link["hash"], seq + 1
    if links and not await store.add_links(links):
        log.warning("another settler chained dossier %s; retrying later", code)
        return 0
    await store.drop_pending([*(found - refused), *(m["_id"] for m in orphans)])
    return len(links)


async def seal(
    *, store: AuditStore, key: Ed25519PrivateKey, now: datetime
) -> dict[str, Any] | None:
    """Seal every link settled since the last seal (none: no seal)."""
    last = await store.last_seal()
    start = last["period_end"] if last else EPOCH
    end = ledger.to_millis(now)
    links = await store.links_settled(start, end)
    if not links:
        return None
    body: dict[str, Any] = {
        "seq": int(last["seq"]) + 1 if last else 0,
        "period_start": start,
        "period_end": end,
        "count": len(links),
        "root": ledger.merkle_root([lk["hash"] for lk in links]),
        "prev_seal_hash": str(last["hash"]) if last else ledger.GENESIS,
        "sealed_at": end,
        "public_key": public_hex(key),
    }
    message = ledger.seal_body(body)
    doc = {
        "_id": body["seq"],
        **body,
        "hash": ledger.sha256_hex(message),
        "signature": key.sign(message).hex(),
    }
    return doc if await store.add_seal(doc) else None


class LedgerLease:
    """Which process settles and seals: the holder of the newest lease, a document
    `ledger-lease-<n>` inserted once (one winner, whatever the clocks say).

    The holder renews by claiming the next lease every third of `ttl`; another process takes
    over by claiming the next lease once it has seen no new one for `ttl` seconds of its own
    monotonic clock (wall clocks may disagree, or step back). Each round costs a lookup by id.
    """

    def __init__(
        self, holder: str, ttl: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.holder, self.ttl, self.monotonic = holder, ttl, monotonic
        self.n: int | None = None  # the newest lease seen (-1: none yet)
        self.owner: str | None = None
        self.seen_at = 0.0

    async def held(self, store: AuditStore, now: datetime) -> bool:
        """Whether this process holds the lease now (claiming or renewing it when due)."""
        t = self.monotonic()
        if self.n is None:
            latest = await store.latest_lease()
            self.n, self.owner = (int(latest["n"]), latest["holder"]) if latest else (-1, None)
            self.seen_at = t
        while (newer := await store.lease(self.n + 1)) is not None:
            self.n, self.owner, self.seen_at = self.n + 1, newer["holder"], t
        if self.owner == self.holder:
            return t - self.seen_at < self.ttl / 3 or await self._claim(store, now, t)
        if self.n < 0 or t - self.seen_at >= self.ttl:
            return await self._claim(store, now, t)
        return False

    async def _claim(self, store: AuditStore, now: datetime, t: float) -> bool:
        assert self.n is not None
        if not await store.claim_lease(self.n + 1, self.holder, now):
            return False  # someone else's: the next round reads it
        self.n, self.owner, self.seen_at = self.n + 1, self.holder, t
        return True


async def keep_ledger(
    *,
    store: AuditStore,
    key: Ed25519PrivateKey,
    clock: Clock,
    grace: timedelta,
    settle_every: float,
    seal_every: float,
    hmac_key: bytes,
    lease_ttl: float,
    margin: timedelta,
    holder: str | None = None,
) -> None:
    """While this process holds the ledger lease, settle every `settle_every` seconds and seal
    every `seal_every` (counted from the last seal, whoever made it), up to `margin` before
    now; until cancelled."""
    lease = LedgerLease(
        holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}", lease_ttl
    )
    last_sealed: datetime | None = None
    while True:
        try:
            if await lease.held(store, clock()):
                await settle(store=store, now=clock(), grace=grace, hmac_key=hmac_key)
                if last_sealed is None or (clock() - last_sealed).total_seconds() >= seal_every:
                    last = await store.last_seal()
                    last_sealed = last["sealed_at"] if last else (last_sealed or clock())
                if (clock() - last_sealed).total_seconds() >= seal_every:
                    sealed = await seal(store=store, key=key, now=clock() - margin)
                    if sealed is not None:
                        last_sealed = sealed["sealed_at"]
                        await store.drop_leases_before(clock() - LEASES_KEPT)
        except Exception:
            log.exception("settling or sealing failed; trying again")
        await asyncio.sleep(settle_every)


# --- verification ---------------------------------------------------------------------------


def check_seal(
    seal: dict[str, Any], prev: dict[str, Any] | None, trusted: frozenset[str] = frozenset()
) -> ledger.Break | None:
    """The seal's own integrity: hash, signature (by one of the `trusted` public keys, when
    any are configured), and its link to the previous seal."""
    seq = int(seal["seq"])
    if trusted and seal.get("public_key") not in trusted:
        return ledger.Break("bad_signature", f"seal {seq} is signed by an unknown key", seal=seq)
    message = ledger.seal_body(seal)
    if ledger.sha256_hex(message) != seal.get("hash"):
        return ledger.Break("modified", f"seal {seq} was altered", seal=seq)
    if not signature_holds(str(seal["public_key"]), str(seal.get("signature")), message):
        return ledger.Break("bad_signature", f"seal {seq} has a bad signature", seal=seq)
    expected_prev = str(prev["hash"]) if prev else ledger.GENESIS
    if seal["prev_seal_hash"] != expected_prev or seq != (int(prev["seq"]) + 1 if prev else 0):
        return ledger.Break("broken_link", f"seal {seq} does not follow the seal before", seal=seq)
    return None


async def check_seals(
    store: AuditStore,
    *,
    since: datetime | None = None,
    touching: list[datetime] | None = None,
    trusted: frozenset[str] = frozenset(),
    expect: tuple[int, str] | None = None,
    unsealed_before: datetime | None = None,
) -> ledger.Break | None:
    """Walk the seals in order; recompute the Merkle root of those whose period ends on or
    after `since`, or (with `touching`) of those covering one of those settled times.

    `expect` is (seq, hash) of a seal the operator copied outside the database: it must be
    there, unchanged (the only way to notice that the latest seals were deleted and the tail
    re-sealed). With `unsealed_before`, a link settled before then that no seal covers is
    named `unsealed` (the seal over it was deleted, or sealing stopped)."""
    seals = await store.all_seals()
    if expect is not None and (found := _expected_seal(seals, *expect)):
        return found
    prev: dict[str, Any] | None = None
    for seal_doc in seals:
        if found := check_seal(seal_doc, prev, trusted):
            return found
        prev = seal_doc
        start, end = seal_doc["period_start"], seal_doc["period_end"]
        if since is not None and end < since:
            continue
        if touching is not None and not any(start < t <= end for t in touching):
            continue
        links = await store.links_settled(start, end)
        if found := ledger.check_seal_leaves(seal_doc, [lk["hash"] for lk in links]):
            return found
    last_end = prev["period_end"] if prev else EPOCH
    if unsealed_before is not None and last_end < unsealed_before:
        link = await store.first_link_settled(last_end, unsealed_before)
        if link is not None:
            return ledger.Break(
                "unsealed",
                f"link {link['_id']} settled at {ledger.jsonable(link['settled_at'])} is "
                "covered by no seal (a seal was deleted, or sealing stopped)",
                str(link["dossier_code"]),
                str(link["record_id"]),
                int(link["seq"]),
            )
    return None


def _expected_seal(seals: list[dict[str, Any]], seq: int, hash_hex: str) -> ledger.Break | None:
    seal_doc = next((s for s in seals if int(s["seq"]) == seq), None)
    if seal_doc is None:
        return ledger.Break("deleted", f"seal {seq} (expected {hash_hex}) is gone", seal=seq)
    if seal_doc.get("hash") != hash_hex.lower():
        return ledger.Break(
            "modified", f"seal {seq} is not the expected {hash_hex} any more", seal=seq
        )
    return None


async def verify_dossier(
    code: str,
    *,
    store: AuditStore,
    hmac_key: bytes,
    trusted: frozenset[str] = frozenset(),
    unsealed_before: datetime | None = None,
) -> ledger.Break | None:
    """The first broken link of one dossier's chain or of the seals over it, or None."""
    records = {r["_id"]: r for r in await store.timeline(code)}
    links = await store.links(code)
    pending = await store.pending_of(code)
    found = ledger.check_chain(code, records, links, pending, ledger.marker_key(hmac_key))
    if found:
        return found
    # Every seal from the dossier's first link on: a seal over a link that is gone (a deleted
    # chain tail, settled later than what is left) must still be recomputed.
    if not links:
        return await check_seals(store, touching=[], trusted=trusted)
    first = min(lk["settled_at"] for lk in links)
    return await check_seals(store, since=first, trusted=trusted, unsealed_before=unsealed_before)


async def verify_all(
    *,
    store: AuditStore,
    since: datetime | None,
    hmac_key: bytes,
    trusted: frozenset[str] = frozenset(),
    expect_seal: tuple[int, str] | None = None,
    unsealed_before: datetime | None = None,
) -> ledger.Break | None:
    """Every seal (from `since`), then every dossier with records since then; see
    `check_seals` for `expect_seal` and `unsealed_before`.

    The dossiers are walked in one pass over the records and one over the links, both sorted
    by dossier (a merge join): linear in the size of the log, not a query per dossier."""
    found = await check_seals(
        store,
        since=since,
        trusted=trusted,
        expect=expect_seal,
        unsealed_before=unsealed_before,
    )
    if found:
        return found
    wanted = set(await store.dossier_codes(since)) if since is not None else None
    pending = await store.all_pending()
    key = ledger.marker_key(hmac_key)
    records = store.grouped(store.records, "_id")
    links = store.grouped(store.chain, "seq")
    rec_group = await anext(records, None)
    link_group = await anext(links, None)
    while rec_group is not None or link_group is not None:
        code = min(g[0] for g in (rec_group, link_group) if g is not None)
        mine = rec_group[1] if rec_group is not None and rec_group[0] == code else []
        chain = link_group[1] if link_group is not None and link_group[0] == code else []
        if wanted is None or code in wanted:
            found = ledger.check_chain(code, {r["_id"]: r for r in mine}, chain, pending, key)
            if found:
                return found
        if mine:
            rec_group = await anext(records, None)
        if chain:
            link_group = await anext(links, None)
    return None


async def proof(record_id: str, *, store: AuditStore) -> dict[str, Any] | None:
    """The record, its link and the audit path from the link to its seal's root; None when
    the record is unknown or not sealed yet."""
    rec = await store.record(record_id)
    link = await store.link_of(record_id)
    if rec is None or link is None:
        return None
    for seal_doc in await store.all_seals():
        if seal_doc["period_start"] < link["settled_at"] <= seal_doc["period_end"]:
            links = await store.links_settled(seal_doc["period_start"], seal_doc["period_end"])
            hashes = [lk["hash"] for lk in links]
            if link["hash"] not in hashes:
                return None
            index = hashes.index(link["hash"])
            return {
                "record": rec,
                "link": link,
                "leaf_index": index,
                "tree_size": len(hashes),
                "path": ledger.inclusion_path(index, hashes),
                "seal": seal_doc,
            }
    return None


LEGACY = "events"  # audit's collection before issue 6: events in full, identifiers in clear


async def adopt_legacy(*, store: AuditStore, hmac_key: bytes, clock: Clock) -> int:
    """Record (masked) every event of the pre-ledger `events` collection, then drop it: its
    history joins the chains and no full identifier stays behind. A document that is no event
    any more is copied, scrubbed of identifiers, into `legacy_quarantine` for someone to look
    at. Safe to run again after a crash halfway: records and quarantined copies are stored
    once, and the old collection goes only at the end."""
    legacy = store.records.database[LEGACY]
    adopted = 0
    batch: list[dict[str, Any]] = []
    unreadable: list[dict[str, Any]] = []
    async for doc in legacy.find({}):
        fields = {k: v for k, v in doc.items() if k not in ("_id", "dossier_code", "recorded_at")}
        try:
            event = load({**fields, "id": doc["_id"]})
        except UndecodableEvent:
            log.error(
                "legacy audit event %s cannot be read; kept, scrubbed, in %s",
                doc["_id"],
                QUARANTINE,
            )
            unreadable.append(scrub(doc, hmac_key))
            continue
        batch.append(_record_of(event, hmac_key, clock))
        if len(batch) >= 500:
            await store.insert_records(batch, hmac_key=hmac_key)
            adopted, batch = adopted + len(batch), []
    if batch:
        await store.insert_records(batch, hmac_key=hmac_key)
        adopted += len(batch)
    await store.quarantine(unreadable)
    if adopted or unreadable:
        log.info(
            "adopted %d events of the old audit log (%d unreadable, quarantined)",
            adopted,
            len(unreadable),
        )
    await legacy.drop()
    return adopted
