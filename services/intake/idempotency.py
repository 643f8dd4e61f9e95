"""Safe retries: an `Idempotency-Key` makes a repeated submission return the first answer.

A key is claimed by inserting it (one insert wins, on MongoDB and FerretDB alike). The claimant
submits and records its answer; a retry with the same key and body gets that answer, waiting a
little if the first request is still at work; the same key with another body is a conflict. If a
claimant died before answering, a retry after the lease takes the claim over, once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.clock import utcnow
from shared.storage import Document

LEASE = timedelta(seconds=30)
WAIT_SECONDS = 10.0


class KeyReused(Exception):
    """The key was first used with another body."""


class StillRunning(Exception):
    """The first request with this key has not answered yet; retry shortly."""


def fingerprint(body: Any) -> str:
    """SHA-256 of the body's canonical JSON: the same submission in any key order matches."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.keys = db["idempotency_keys"]

    async def run(
        self, key: str, body_hash: str, work: Callable[[], Awaitable[dict[str, Any]]]
    ) -> tuple[dict[str, Any], bool]:
        """The answer for `key`: from `work()` if this call holds the key (True), else the first
        caller's (False). `work` must itself find what a dead holder may have left done."""
        mine = await self._claim(key, {"body_hash": body_hash, "answer": None})
        while not mine:
            record = await self._wait(key, body_hash)
            if record.get("answer") is not None:
                return record["answer"], False
            # The holder has not answered within its lease: one retry per lease takes over.
            period = int((utcnow() - record["claimed_at"]) / LEASE)
            if not await self._claim(f"{key}#{period}", {}):
                raise StillRunning(key)
            mine = True
        answer = await work()
        await self.keys.update_one({"_id": key}, {"$set": {"answer": answer}})
        return answer, True

    async def _claim(self, claim_id: str, fields: dict[str, Any]) -> bool:
        try:
            await self.keys.insert_one({"_id": claim_id, "claimed_at": utcnow(), **fields})
        except DuplicateKeyError:
            return False
        return True

    async def _wait(self, key: str, body_hash: str) -> Document:
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while True:
            record = await self.keys.find_one({"_id": key})
            if record is None:  # pragma: no cover - keys are never deleted while in use
                raise StillRunning(key)
            if record["body_hash"] != body_hash:
                raise KeyReused(key)
            if record.get("answer") is not None:
                return record
            if utcnow() - record["claimed_at"] > LEASE:
                return record
            if asyncio.get_running_loop().time() > deadline:
                raise StillRunning(key)
            await asyncio.sleep(0.05)
