"""Safe retries: an `Idempotency-Key` makes a repeated submission return the first answer.

A key is claimed by inserting it (one insert wins, on MongoDB and FerretDB alike). The claimant
submits and records its answer; a retry with the same key and body gets that answer, waiting a
little if the first request is still at work; the same key with another body is a conflict. If a
claimant died before answering, a retry after the lease takes the claim over, once.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        # Answers are inserted beside the claims, never written into them: an update costs
        # time in proportion to the collection on FerretDB, an insert or a find by _id does not.
        self.answers = db["idempotency_answers"]

    async def run(
        self, key: str, body_hash: str, work: Callable[[bool], Awaitable[dict[str, Any]]]
    ) -> tuple[dict[str, Any], bool]:
        """The answer for `key`: from `work(taking_over)` if this call holds the key (True),
        else the first caller's (False). Taking over a dead holder's key, `work` must first
        look for what that holder may have left done."""
        taking_over = False
        mine = await self._claim(key, {"body_hash": body_hash})
        while not mine:
            record, answer = await self._wait(key, body_hash)
            if answer is not None:
                return answer, False
            # The holder has not answered within its lease: one retry per lease takes over.
            period = int((utcnow() - record["claimed_at"]) / LEASE)
            if not await self._claim(f"{key}#{period}", {}):
                raise StillRunning(key)
            mine = taking_over = True
        answer = await work(taking_over)
        with contextlib.suppress(DuplicateKeyError):  # a taken-over holder answered after all
            await self.answers.insert_one({"_id": key, "answer": answer})
        return answer, True

    async def _claim(self, claim_id: str, fields: dict[str, Any]) -> bool:
        try:
            await self.keys.insert_one({"_id": claim_id, "claimed_at": utcnow(), **fields})
        except DuplicateKeyError:
            return False
        return True

    async def _wait(self, key: str, body_hash: str) -> tuple[Document, dict[str, Any] | None]:
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while True:
            record = await self.keys.find_one({"_id": key})
            if record is None:  # pragma: no cover - keys are never deleted while in use
                raise StillRunning(key)
            if record["body_hash"] != body_hash:
                raise KeyReused(key)
            answered = await self.answers.find_one({"_id": key})
            if answered is not None:
                return record, answered["answer"]
            if utcnow() - record["claimed_at"] > LEASE:
                return record, None
            if asyncio.get_running_loop().time() > deadline:
                raise StillRunning(key)
            await asyncio.sleep(0.05)
