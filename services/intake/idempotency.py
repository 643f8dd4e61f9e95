"""Safe retries: an `Idempotency-Key` makes a repeated submission return the first answer.

A key is claimed by inserting it (one insert wins). The claimant submits and records its answer
on the key; a retry with the same key and body gets that answer, waiting a little if the first
request is still at work; the same key with another body is a conflict. If a claimant died
before answering, a retry after the lease takes the key over (a conditional update on the
key's lease number: exactly one retry wins). Keys expire after their retention window.

This module decides (pure); `store.KeyStore` keeps the keys, `handlers.submit` runs the steps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

LEASE = timedelta(seconds=30)
RETENTION = timedelta(hours=24)  # how long a key keeps its first answer, then expires
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.05


class KeyReused(Exception):
    """The key was first used with another body."""


class StillRunning(Exception):
    """The first request with this key has not answered yet; retry shortly."""


@dataclass(frozen=True)
class KeyRecord:
    """A claimed key: the body it was claimed for, and the answer once there is one."""

    key: str
    body_hash: str
    claimed_at: datetime
    lease: int = 0
    answer: dict[str, Any] | None = None


class Next(Enum):
    REPLAY = "replay"  # answer with the first request's answer
    WAIT = "wait"  # the holder is at work: look again shortly
    TAKE_OVER = "take_over"  # the holder's lease ran out without an answer


def fingerprint(body: Any) -> str:
    """SHA-256 of the body's canonical JSON: the same submission in any key order matches."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def next_step(record: KeyRecord | None, body_hash: str, now: datetime) -> Next:
    """What a request that found `record` holding its key does next."""
    if record is None:  # expired between the claim and this read: the first one is gone
        raise StillRunning("key expired")
    if record.body_hash != body_hash:
        raise KeyReused(record.key)
    if record.answer is not None:
        return Next.REPLAY
    if now - record.claimed_at > LEASE:
        return Next.TAKE_OVER
    return Next.WAIT
