"""Settling: chain every record that waited past the grace window, per dossier in order of
occurrence, after its dossier's chain head.

Load → decide → save, in a fixed number of round trips whatever the chains' lengths: the due
markers (the live tail, by index), the last seal, the records and their existing links (by
key), the heads (by key); then per dossier its links (one ordered insert, one winner per place)
and its head (a conditional update); then the markers dropped (by key)."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from services.audit import ledger
from services.audit.domain import ChainHead, Marker, head_after, settle_dossier, settled_time
from services.audit.ports import Tail

log = logging.getLogger(__name__)
ORPHAN_AGE = timedelta(hours=1)


async def settle(*, store: Tail, now: datetime, grace: timedelta, hmac_key: bytes) -> int:
    """Chain every record received more than `grace` ago; how many links were added. A
    record whose marker's MAC (under a key derived from `hmac_key`) does not hold for it is
    not chained: it was forged or edited while waiting."""
    markers = await store.due_markers(now - grace)
    if not markers:
        return 0
    by_dossier: dict[str, list[Marker]] = defaultdict(list)
    for marker in markers:
        by_dossier[str(marker["dossier_code"])].append(marker)
    ids = [str(m["_id"]) for m in markers]
    settled_at = settled_time(now, await store.last_seal())
    records = {str(r["_id"]): r for r in await store.records_by_id(ids)}
    chained = await store.chained_ids(ids)
    heads = await store.heads_of(sorted(by_dossier))
    # A marker whose record is not written yet is kept for a while (the write may be slow);
    # after ORPHAN_AGE its message was surely retried (and wrote both) or dead-lettered.
    orphan_cutoff = now - max(ORPHAN_AGE, grace * 10)
    key = ledger.marker_key(hmac_key)
    added, drop = 0, []
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
            drop += plan.drop
        except Exception:
            # One dossier's trouble (say, a value RFC 8785 cannot encode) must not hold up
            # the others: it is logged and tried again next round.
            log.exception("could not chain the records of dossier %s", code)
    await store.drop_pending(drop)
    return added


async def _catch_up(store: Tail, head: ChainHead | None, code: str) -> None:
    """A place after the head is taken: another settler chained this dossier, or this one
    crashed between writing links and moving the head (or the chain predates heads). The head
    is moved past the links found there, read by key; the records are retried next round."""
    start = head or ChainHead(code)
    found = await store.links_from(code, start.seq)
    log.warning("dossier %s has %d link(s) past its head; catching the head up", code, len(found))
    if found:
        await store.move_head(head, head_after(start, found))


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
