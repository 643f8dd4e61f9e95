"""The ledger keeper: one audit process at a time (the holder of the ledger lease) settles and
seals, waking on work.

Every audit process records events; should two ever settle at once anyway (a paused holder
waking up after another took over, a clock stepped back), chain places and seal numbers are
one-winner inserts, heads move by conditional update, a link is never settled at or before the
last seal's end, and a seal ends a margin before its sealer's "now": a seal's period does not
gain a link after it was sealed.

When it wakes: when this process has written records (in-process, at their due moment), at the
earliest pending marker's due moment (read from the index on `recorded_at`), at the seal
interval when something was settled since the last seal, and otherwise at each lease renewal
(a third of the takeover window), where one indexed query also picks up records that another
audit process wrote. Idle, the holder sends two commands per renewal, the others one; due
markers a round could not settle (a forged record, one whose record never came) are tried
again when new records are due, or every `STUCK_RETRY`, not at each renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.handlers.sealing import seal
from services.audit.handlers.settling import settle
from services.audit.ledger import EPOCH
from services.audit.ports import Keeper, Leases
from shared.calendar import WorkingCalendar
from shared.clock import Clock

log = logging.getLogger(__name__)
LEASES_KEPT = timedelta(days=1)  # old ledger leases are deleted after a seal,
LEASE_SWEEP = 200  # and every 200 leases (about an hour of renewals, with no seal)
STUCK_RETRY = 600.0  # seconds between rounds over markers a round left (none new: idle)


class LedgerLease:
    """Which process settles and seals: the holder of the newest lease, a document
    `ledger-lease-<n>` inserted once (one winner, whatever the clocks say).

    The holder renews by claiming the next lease every third of `ttl` (one insert); another
    process takes over by claiming the next lease once it has seen no new one for `ttl`
    seconds of its own monotonic clock (wall clocks may disagree, or step back), checking
    every third of `ttl` (a lookup by id).
    """

    def __init__(
        self, holder: str, ttl: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.holder, self.ttl, self.monotonic = holder, ttl, monotonic
        self.n: int | None = None  # the newest lease seen (-1: none yet)
        self.owner: str | None = None
        self.seen_at = 0.0
        self.checked_at = -float("inf")
        self.polled = False

    def next_check(self) -> float:
        """Seconds until this process must look at the lease again."""
        return max(0.0, self.checked_at + self.ttl / 3 - self.monotonic())

    async def held(self, store: Leases, now: datetime) -> bool:
        """Whether this process holds the lease now, claiming or renewing it when due; between
        checks (a third of `ttl`) it answers from memory. `polled` says whether it looked."""
        t = self.monotonic()
        self.polled = False
        if self.n is None:
            latest = await store.latest_lease()
            self.n, self.owner = (int(latest["n"]), latest["holder"]) if latest else (-1, None)
            self.seen_at = t
        elif t - self.checked_at < self.ttl / 3:
            return self.owner == self.holder
        self.checked_at, self.polled = t, True
        if self.owner == self.holder and await self._claim(store, now, t):
            return True  # renewed, in one insert
        while (newer := await store.lease(self.n + 1)) is not None:
            self.n, self.owner, self.seen_at = self.n + 1, newer["holder"], t
        if self.owner == self.holder:
            return True
        if self.n < 0 or t - self.seen_at >= self.ttl:
            return await self._claim(store, now, t)
        return False

    async def _claim(self, store: Leases, now: datetime, t: float) -> bool:
        assert self.n is not None
        if not await store.claim_lease(self.n + 1, self.holder, now):
            return False  # someone else's: the lookup reads it
        self.n, self.owner, self.seen_at = self.n + 1, self.holder, t
        return True


class Wakeup:
    """An in-process signal from recording to the keeper: records recorded at `at` are due
    for settling a grace window later."""

    def __init__(self) -> None:
        self.earliest: datetime | None = None
        self.event = asyncio.Event()

    def recorded(self, at: datetime) -> None:
        if self.earliest is None or at < self.earliest:
            self.earliest = at
        self.event.set()

    def take(self) -> datetime | None:
        at, self.earliest = self.earliest, None
        self.event.clear()
        return at


async def keep_ledger(
    *,
    store: Keeper,
    key: Ed25519PrivateKey,
    clock: Clock,
    grace: timedelta,
    settle_every: float,
    seal_every: float,
    hmac_key: bytes,
    lease_ttl: float,
    margin: timedelta,
    holder: str | None = None,
    wakeup: Wakeup | None = None,
    calendar: WorkingCalendar | None = None,
) -> None:
    """While this process holds the ledger lease, settle what is due (at most every
    `settle_every` seconds) and seal every `seal_every` (counted from the last seal, whoever
    made it) when something was settled since, up to `margin` before now; until cancelled."""
    lease = LedgerLease(
        holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}", lease_ttl
    )
    wakeup = wakeup or Wakeup()
    last_sealed: datetime | None = None  # sealed_at of the last seal (None: not read yet)
    unsealed: bool | None = None  # whether links were settled since it (None: not known)
    due: datetime | None = None  # the earliest moment known records are due
    # The cutoff of the last round that left due markers pending (forged or edited records,
    # records not written yet, failing dossiers): until `STUCK_RETRY` later, a lease renewal
    # looks only for markers recorded after it, instead of settling those again each time.
    stuck: datetime | None = None
    stuck_until = 0.0
    was_holder = False
    while True:
        delay = lease.ttl / 3
        try:
            holding = await lease.held(store, clock())
            if holding and not was_holder:  # taken over: read everything again
                last_sealed, unsealed, due = None, None, clock()
            was_holder = holding
            if holding and lease.polled and lease.n is not None and lease.n % LEASE_SWEEP == 0:
                await store.drop_leases_before(clock() - LEASES_KEPT)  # idle for long: no seals
            if holding:
                now = clock()
                if lease.polled or (due is not None and due <= now):
                    # One indexed look at the tail; settle only when something is due.
                    polled_only = lease.polled and (due is None or due > now)
                    skip = stuck if polled_only and time.monotonic() < stuck_until else None
                    earliest = await store.next_due(skip)
                    if earliest is not None and earliest <= now - grace:
                        settled = await settle(
                            store=store, now=now, grace=grace, hmac_key=hmac_key, calendar=calendar
                        )
                        if settled:
                            unsealed = True
                        if settled.left:
                            stuck, stuck_until = now - grace, time.monotonic() + STUCK_RETRY
                        else:
                            stuck = None
                        earliest = await store.next_due(now - grace)  # left: wait for it
                    due = earliest + grace if earliest is not None else None
                if last_sealed is None:
                    last = await store.last_seal()
                    last_sealed = last["sealed_at"] if last else clock()
                    if unsealed is None:
                        since = last["period_end"] if last else EPOCH
                        unsealed = await store.first_link_settled(since, clock()) is not None
                if unsealed and (clock() - last_sealed).total_seconds() >= seal_every:
                    sealed = await seal(store=store, key=key, now=clock() - margin)
                    if sealed is not None:
                        last_sealed, unsealed = sealed["sealed_at"], False
                        await store.drop_leases_before(clock() - LEASES_KEPT)
                    else:  # its links are still within the margin, or another sealed
                        last_sealed = None
                delay = _next_delay(clock(), lease, due, last_sealed, unsealed, seal_every)
        except Exception:
            log.exception("settling or sealing failed; trying again")
            delay = settle_every
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.event.wait(), max(delay, 0.0))
        if (recorded := wakeup.take()) is not None:
            at = recorded + grace
            due = at if due is None or at < due else due
        await asyncio.sleep(settle_every)  # at most one round per `settle_every`


def _next_delay(
    now: datetime,
    lease: LedgerLease,
    due: datetime | None,
    last_sealed: datetime | None,
    unsealed: bool | None,
    seal_every: float,
) -> float:
    """Seconds until the next thing to do: a due record, a due seal, the lease."""
    delays = [lease.next_check()]
    if due is not None:
        delays.append((due - now).total_seconds())
    if unsealed and last_sealed is not None:
        delays.append(seal_every - (now - last_sealed).total_seconds())
    return max(0.0, min(delays))
