"""Finished tasks leave the live `tasks` collection for `tasks_history`.

Woken by a terminal step of this process (and otherwise every `poll` seconds, for those of
another replica or left by a crash), the mover copies each finished task whose events are
published and deletes it from `tasks` (only while finished): running it twice, on two
replicas, or after a crash between the copy and the delete, moves each task exactly once.
It adds nothing to the officer action that finished the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.review.ports import Tasks

log = logging.getLogger(__name__)


async def run(tasks: Tasks, wake: asyncio.Event, *, poll: float, settle: float = 1.0) -> None:
    """Move finished tasks until cancelled."""
    while True:
        await asyncio.sleep(settle)  # let the step's publish land first
        try:
            await move_all(tasks)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("moving finished tasks failed; will try again", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=poll)
        wake.clear()


async def move_all(tasks: Tasks, batch: int = 100) -> int:
    """Move every finished task that can go now; return how many moved."""
    total = 0
    while (moved := await tasks.close_finished(batch)) > 0:
        total += moved
        if moved < batch:
            break
    if total:
        log.info("moved finished task(s) to history", extra={"count": total})
    return total
