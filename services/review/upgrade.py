"""Bring a database written by review before tasks held their own history up to date, once.

Before, a task's steps were documents of `transitions` and the task a projection of the latest
one (possibly left behind by a crash). Here each task that lacks `queue_key` gets its steps,
the state of its latest transition, its queue key and its next timer (skipping those already
recorded in `timers_fired`); finished ones are then moved by the mover as usual. A marker in
`directory_meta` makes later starts skip it (one read by key).

Then, once too (its own marker), open tasks written before the console's derived fields
(`stage`, `soon_at`, `ward_code`, `applicant_phone`) are rewritten with them, guarded by their
version, so the stage queues, counts and phone search find them. Finished tasks keep their
shape: a phone search finds those closed before it by dossier code only.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from pymongo.asynchronous.database import AsyncDatabase

from services.review.deadlines import timer_key
from services.review.domain import Task, Transition
from services.review.store import step_doc, to_doc, to_task
from shared.outbox import INLINE_PENDING, INLINE_SINCE
from shared.storage import Document

log = logging.getLogger(__name__)
MARKER = "tasks_hold_their_steps"
CONSOLE_MARKER = "tasks_have_stages"
_PROJECTED = ("officer_id", "state", "version", "terminal", "status_code", "decided_by",
              "decided_at", "reason", "state_since", "remind_at", "due_at", "promised_at",
              "paused_at", "paused_from", "paused_due_at")  # fmt: skip


async def upgrade(db: AsyncDatabase[Document]) -> int:
    """Rewrite every task of an old shape; return how many."""
    return await _hold_steps(db) + await _with_stages(db)


async def _with_stages(db: AsyncDatabase[Document]) -> int:
    if await db["directory_meta"].find_one({"_id": CONSOLE_MARKER}) is not None:
        return 0
    count = 0
    async for doc in db["tasks"].find({"terminal": False}):
        if "stage" in doc:
            continue
        new = to_doc(to_task(doc))
        new["outbox"] = doc.get("outbox", [])
        for mark in (INLINE_PENDING, INLINE_SINCE):  # none in an old shape; kept if there
            if mark in doc:
                new[mark] = doc[mark]
        result = await db["tasks"].replace_one({"_id": doc["_id"], "version": doc["version"]}, new)
        count += result.matched_count
    await db["directory_meta"].replace_one(
        {"_id": CONSOLE_MARKER}, {"_id": CONSOLE_MARKER, "value": 1}, upsert=True
    )
    if count:
        log.info("open tasks given their stage", extra={"count": count})
    return count


async def _hold_steps(db: AsyncDatabase[Document]) -> int:
    if await db["directory_meta"].find_one({"_id": MARKER}) is not None:
        return 0
    count = 0
    async for doc in db["tasks"].find({"_id": {"$gte": ""}}):
        if "queue_key" in doc:
            continue
        steps = [t async for t in db["transitions"].find({"task_id": doc["_id"]}).sort("version")]
        if steps:
            doc.update({k: steps[-1].get(k) for k in _PROJECTED})
        task = to_task(doc)
        task = replace(
            task,
            steps=tuple(
                Transition(
                    version=s["version"],
                    action=s.get("action", ""),
                    state=s["state"],
                    officer_id=s.get("officer_id"),
                    decided_by=s.get("decided_by", ""),
                    decided_at=s["decided_at"],
                    reason=s.get("reason"),
                    promised_at=s.get("promised_at"),
                )
                for s in steps
            ),
        )
        task = await _with_timer(db, task)
        new = to_doc(task)
        new["steps"] = [step_doc(s) for s in task.steps]
        new["outbox"] = [e for s in [doc, *steps] for e in s.get("outbox", [])]
        # Guarded: another replica upgrading at the same time may have served a step already.
        await db["tasks"].replace_one({"_id": doc["_id"], "queue_key": {"$exists": False}}, new)
        count += 1
    await db["directory_meta"].replace_one(
        {"_id": MARKER}, {"_id": MARKER, "value": 1}, upsert=True
    )
    if count:
        log.info("tasks upgraded to hold their own steps", extra={"count": count})
    return count


async def _with_timer(db: AsyncDatabase[Document], task: Task) -> Task:
    if task.terminal:
        return replace(task, timer_at=None, timer_kind=None)
    for kind, moment in (("reminder", task.remind_at), ("overdue", task.due_at)):
        if moment is None:
            continue
        fired = await db["timers_fired"].find_one({"_id": timer_key(task, moment, kind)})
        if fired is None:
            return replace(task, timer_at=moment, timer_kind=kind)
    return replace(task, timer_at=None, timer_kind=None)
