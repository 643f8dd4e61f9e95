"""Settling: chain every record that waited past the grace window, per dossier in order of
occurrence, after its dossier's chain head.

Load → decide → save, in a fixed number of round trips whatever the chains' lengths: the due
markers (the live tail, by index), the last seal, the records and their existing links (by
key), the heads (by key); then per dossier its links (one ordered insert, one winner per place)
and its head (a conditional update); then the statistics facts of the dossiers whose records
bear on them (`projecting.fold_facts`: one read by key, then one write per dossier, first
documents together in one insert); then the markers dropped (by key). A marker is dropped only
once its record is chained and folded: a crash in between leaves it, and the next round, which
finds the record chained, folds it again (a fold is idempotent)."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from services.audit import ledger
from services.audit.domain import (
    ChainHead,
    Marker,
    Record,
    head_after,
    settle_dossier,
    settled_time,
)
from services.audit.handlers.projecting import fold_facts
from services.audit.ports import Settling, Tail
from shared.calendar import WorkingCalendar

log = logging.getLogger(__name__)
ORPHAN_AGE = timedelta(hours=1)


class Settled(int):
    """How many links a round added, and (`left`) how many of its due markers it left
    pending: forged or edited records, records not written yet, dossiers that failed."""

    left: int

    def __new__(cls, added: int, left: int = 0) -> Settled:
        out = super().__new__(cls, added)
        out.left = left
        return out


async def settle(
    *,
    store: Settling,
    now: datetime,
    grace: timedelta,
    hmac_key: bytes,
    calendar: WorkingCalendar | None = None,
) -> Settled:
    """Chain every record received more than `grace` ago, and fold it into its dossier's
    statistics facts (under `calendar`: the default one when not given); how many links were
    added. A record whose marker's MAC (under a key derived from `hmac_key`) does not hold for
    it is not chained: it was forged or edited while waiting."""
    markers = await store.due_markers(now - grace)
    if not markers:
        return Settled(0)
    by_dossier: dict[str, list[Marker]] = defaultdict(list)
    for marker in markers:
        by_dossier[str(marker["dossier_code"])].append(marker)
    ids = [str(m["_id"]) for m in markers]
    settled_at = settled_time(now, await store.last_seal())
    # The heads are read before which records are chained: a record chained by another
    # settler after its head was read here is then seen as chained (and only loses its
    # marker), and one chained after that takes a place at or after that head, which this
    # round's insert then finds taken. Read the other way round, a whole round of another
    # settler in between would let this one append the same records again after the new head
    # (the unique `chain.record_id` index refuses that too).
    heads = await store.heads_of(sorted(by_dossier))
    records = {str(r["_id"]): r for r in await store.records_by_id(ids)}
    chained = await store.chained_ids(ids)
    # A marker whose record is not written yet is kept for a while (the write may be slow);
    # after ORPHAN_AGE its message was surely retried (and wrote both) or dead-lettered.
    orphan_cutoff = now - max(ORPHAN_AGE, grace * 10)
    key = ledger.marker_key(hmac_key)
    added = 0
    drop: dict[str, list[str]] = {}
    for code, mine in sorted(by_dossier.items()):
        try:
            head = heads.get(code)
            plan = settle_dossier(
                head or ChainHead(code),
                mine,
                records,
                chained,
                settled_at=settled_at,
                orphan_cutoff=orphan_cutoff,
                marker_key=key,
            )
            _report(code, plan.forged, plan.lost)
            if plan.links:
                assert plan.head is not None
                if not await store.add_links(plan.links):
                    await _catch_up(store, head, code)
                    continue
                if not await store.move_head(head, plan.head):
                    log.warning("the chain head of dossier %s moved under us", code)
                added += len(plan.links)
            drop[code] = plan.drop
        except Exception:
            # One dossier's trouble (say, a value RFC 8785 cannot encode) must not hold up
            # the others: it is logged and tried again next round.
            log.exception("could not chain the records of dossier %s", code)
    # The records chained (now or by an earlier round) whose markers go, folded first.
    chained_now: dict[str, list[Record]] = {
        code: [records[rid] for rid in ids if rid in records] for code, ids in drop.items()
    }
    unfolded = await fold_facts(chained_now, store=store, calendar=calendar or WorkingCalendar())
    dropped = [rid for code, ids in drop.items() if code not in unfolded for rid in ids]
    await store.drop_pending(dropped)
    return Settled(added, len(markers) - len(dropped))


async def _catch_up(store: Tail, head: ChainHead | None, code: str) -> None:
    """A place after the head is taken, or a record of this round is chained already: another
    settler chained this dossier, or this one crashed between writing links and moving the
    head (or the chain predates heads). The head is moved past the links found there, read by
    key; the records are retried next round. Never into a hole that links after it show to be
    a deleted link (the next link would fill it and hide the deletion), nor past a link that
    does not follow the one before it: that is logged, and verification names it."""
    start = head or ChainHead(code)
    found = await store.links_from(code, start.seq)
    gap = start.seq + len(found)
    if await store.link_after(code, gap):
        log.error(
            "link %d of dossier %s is missing while later links exist (deleted?); not moving "
            "its head into the hole",
            gap,
            code,
        )
        return
    prev, follows = start.hash, 0
    for link in found:
        if link.get("prev_hash") != prev:
            log.error(
                "link %s of dossier %s does not follow the link before it; not moving its "
                "head past it",
                link.get("_id"),
                code,
            )
            break
        prev, follows = str(link["hash"]), follows + 1
    log.warning("dossier %s has %d link(s) past its head; catching the head up", code, follows)
    if follows:
        await store.move_head(head, head_after(start, found[:follows]))


def _report(code: str, forged: list[str], lost: list[Marker]) -> None:
    for rid in forged:
        log.error(
            "record %s of dossier %s does not match its pending marker (forged or edited "
            "while waiting); not chaining it",
            rid,
            code,
        )
    for marker in lost:
        log.error(
            "record %s of dossier %s never arrived (marker since %s): dead-lettered, or deleted "
            "while it waited; dropping its marker",
            marker["_id"],
            code,
            marker["recorded_at"],
        )
