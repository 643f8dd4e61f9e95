"""Bring a database written by intake before dossiers held their steps up to date, once.

Before, each step a dossier reached was a document of `statuses` (its `_id` the event id, with
`dossier_code`, `status`, `at`, `promised_at` and the events it emitted), and dossiers had no
`version`. Here every dossier gets `version: 1` where it has none, and the steps of `statuses`
are folded into its `steps` map (keyed by event id, as `store.add_step` keys them), and the
plain index of before on `idempotency_key` becomes the unique one. Each write
is guarded by the version it was decided on, so a step or a citizen's action recorded meanwhile
is never overwritten (the fold is decided again on what it finds); two replicas running it at
once only repeat what is already done. `statuses` stays: the relay still reads the events of
pointers written before (see `DossierStore.outbox`). A marker in `intake_meta` makes later
starts skip it (one read by key); a database without dossiers gets none (a new one: nothing to
upgrade, and a refused request must leave intake's collections empty).
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.intake.store import replace_unique, step_key
from shared.storage import Document

log = logging.getLogger(__name__)
MARKER = "dossiers_hold_their_steps"
META = "intake_meta"
TRIES = 5  # a fold decided again when the dossier changed under it


async def upgrade(db: AsyncDatabase[Document]) -> int:
    """Fold the old `statuses` into their dossiers and version the unversioned; return how many
    dossiers were written."""
    if await db[META].find_one({"_id": MARKER}) is not None:
        return 0
    if await db["dossiers"].find_one({"_id": {"$gte": ""}}, projection={"_id": 1}) is None:
        return 0  # a new database: nothing of before, no marker (the first start with dossiers)
    await replace_unique(db)  # one dossier per idempotency key, where the index was plain
    dossiers = db["dossiers"]
    versioned = await dossiers.update_many(
        {"_id": {"$gte": ""}, "version": {"$exists": False}}, {"$set": {"version": 1}}
    )
    count = 0
    code: str | None = None
    steps: dict[str, dict[str, Any]] = {}
    cursor = (
        db["statuses"].find({"dossier_code": {"$gte": ""}}).sort([("dossier_code", 1), ("at", 1)])
    )
    async for status in cursor:  # in dossier order: one dossier's steps in memory at a time
        if status["dossier_code"] != code:
            count += await _fold(db, code, steps)
            code, steps = status["dossier_code"], {}
        steps[step_key(str(status["_id"]))] = {
            "event_id": str(status["_id"]),
            "status": status["status"],
            "at": status["at"],
            "promised_at": status.get("promised_at"),
        }
    count += await _fold(db, code, steps)
    await db[META].update_one({"_id": MARKER}, {"$set": {"value": 1}}, upsert=True)
    if count or versioned.modified_count:
        log.info(
            "dossiers upgraded to hold their steps",
            extra={"folded": count, "versioned": versioned.modified_count},
        )
    return max(count, versioned.modified_count)


async def _fold(db: AsyncDatabase[Document], code: str | None, steps: dict[str, Any]) -> int:
    """Add `steps` to dossier `code`'s, unless it holds them all; 1 if it was written."""
    if code is None or not steps:
        return 0
    for _ in range(TRIES):
        doc = await db["dossiers"].find_one({"_id": code}, projection={"steps": 1, "version": 1})
        if doc is None:
            log.warning("steps of an unknown dossier left in statuses", extra={"dossier": code})
            return 0
        held = doc.get("steps") or {}
        if all(key in held for key in steps):
            return 0
        version = int(doc.get("version", 1))
        result = await db["dossiers"].update_one(
            {"_id": code, "version": version},
            {"$set": {"steps": {**steps, **held}, "version": version + 1}},
        )
        if result.matched_count == 1:
            return 1
    raise RuntimeError(f"dossier {code} kept changing during the upgrade")
