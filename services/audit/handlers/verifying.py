"""Verification: a dossier's chain, every chain, the seals over them, a record's proof."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.audit import ledger
from services.audit.ports import Chains, Seals
from services.audit.signing import signature_holds


class UnknownDossier(LookupError):
    """No record and no link of this dossier is stored."""


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
    store: Seals,
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
    last_end = prev["period_end"] if prev else ledger.EPOCH
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
    store: Chains,
    hmac_key: bytes,
    trusted: frozenset[str] = frozenset(),
    unsealed_before: datetime | None = None,
) -> ledger.Break | None:
    """The first broken link of one dossier's chain or of the seals over it, or None;
    `UnknownDossier` when nothing of it is stored."""
    records = {r["_id"]: r for r in await store.timeline(code)}
    links = await store.links(code)
    if not records and not links:
        raise UnknownDossier(code)
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
    store: Chains,
    since: datetime | None,
    hmac_key: bytes,
    trusted: frozenset[str] = frozenset(),
    expect_seal: tuple[int, str] | None = None,
    unsealed_before: datetime | None = None,
) -> ledger.Break | None:
    """Every seal (from `since`), then every dossier with records since then; see
    `check_seals` for `expect_seal` and `unsealed_before`.

    The dossiers are walked in one pass over the records and one over the links, both by
    dossier (a merge join, a page at a time): linear in the size of the log, not a query per
    dossier."""
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
    if wanted is None:
        for stray in await store.stray_records():
            return ledger.Break(
                "inserted", f"record {stray['_id']} belongs to no dossier", None, str(stray["_id"])
            )
    records = store.grouped_records()
    links = store.grouped_links()
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


async def proof(record_id: str, *, store: Chains) -> dict[str, Any] | None:
    """The record, its link and the audit path from the link to its seal's root; None when
    the record is unknown or not sealed yet."""
    rec = await store.record(record_id)
    link = await store.link_of(record_id)
    if rec is None or link is None:
        return None
    seal_doc = await store.seal_covering(link["settled_at"])
    if seal_doc is None:
        return None
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
