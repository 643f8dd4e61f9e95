"""SLA timers that survive restarts: they live in the open tasks (`timer_at`, indexed).

Every step with a running clock records its next timer: the reminder, then the due moment.
The loop reads only the timers that are due (one indexed query), fires each once (an insert
under `<task>:<state>:<moment>:<kind>`, so a restart, a second replica or the next round can
never fire it again), moves the task on to its next timer, then sleeps until the earliest
pending one, or until a write of this process sets a timer, or at most `poll` seconds (for
timers set by another replica). An overdue step publishes `dossier.overdue` and escalates the
task to a supervisor (of the unit, else of the province office); a reminder publishes
`dossier.due_soon`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from services.review import deadlines
from services.review.ports import Directory, Publish, Tasks
from shared.clock import Clock
from shared.contracts import Event

log = logging.getLogger(__name__)
BATCH = 100
MIN_PAUSE = 0.1  # seconds


async def fire_due(
    *, tasks: Tasks, directory: Directory, clock: Clock, publish: Publish, source: str
) -> list[Event]:
    """Fire every timer that is due now; return the events published."""
    now = clock()
    fired: list[Event] = []
    while True:
        due = await tasks.due_timers(now, BATCH)
        if not due:
            return fired
        roster = await directory.roster()
        for task in due:
            firing = deadlines.due_timer(
                task, now=now, supervisor=roster.supervisor_for(task.unit_id), source=source
            )
            if firing is None:
                continue
            first = await tasks.fire(firing)
            # Also when it had fired (a crash before this): move the task on, or it stays due.
            await tasks.timer_fired(task, deadlines.after_firing(task, firing))
            if not first:
                continue  # fired before: by another replica, or before a restart
            log.info("timer fired", extra={"dossier": task.dossier_code, "kind": firing.kind})
            fired += await publish([firing.event])
        if len(due) < BATCH:
            return fired


class Alarm(asyncio.Event):
    """Wakes this process's timer loop for a timer it would otherwise sleep past.

    A step that sets a timer later than the moment the loop already sleeps towards wakes
    nothing (the loop would only read the index to sleep again): most steps set a timer days
    away, so this saves the loop's two queries per step. A timer set while the loop is awake
    (its round under way) is kept as `soonest`, and the loop's next sleep ends by then at the
    latest: under load a step lands in nearly every round, and waking the loop for each kept
    it reading the timer index over and over."""

    def __init__(self) -> None:
        super().__init__()
        self.planned: datetime | None = None  # when the loop wakes by itself; None: awake
        self.soonest: datetime | None = None  # the earliest timer set while it was awake

    def set_for(self, at: datetime) -> None:
        if self.planned is None:
            self.soonest = at if self.soonest is None else min(self.soonest, at)
        elif at < self.planned:
            self.set()

    def plan(self, now: datetime, delay: float) -> float:
        """The loop goes to sleep for `delay` seconds at `now`: how long it sleeps (less, if a
        timer set during its round is due sooner); from then on, sooner timers wake it."""
        if self.soonest is not None:
            delay = min(delay, max(MIN_PAUSE, (self.soonest - now).total_seconds()))
            self.soonest = None
        self.planned = now + timedelta(seconds=delay)
        return delay


class Timers:
    def __init__(
        self,
        tasks: Tasks,
        directory: Directory,
        *,
        clock: Clock,
        source: str,
        publish: Publish,
        wake: Alarm | None = None,
    ) -> None:
        self.tasks = tasks
        self.directory = directory
        self.clock = clock
        self.source = source
        self.publish = publish
        self.wake = wake or Alarm()

    async def run_once(self) -> list[Event]:
        """Fire every timer that is due now; return the events published."""
        return await fire_due(
            tasks=self.tasks,
            directory=self.directory,
            clock=self.clock,
            publish=self.publish,
            source=self.source,
        )

    async def pause(self, poll: float) -> float:
        """How long to sleep: until the earliest pending timer, at most `poll` seconds."""
        upcoming = await self.tasks.next_timer()
        if upcoming is None:
            return poll
        # A floor, so a timer that cannot be handled yet never spins the loop.
        return max(MIN_PAUSE, min(poll, (upcoming - self.clock()).total_seconds()))

    async def run(self, poll: float) -> None:
        while True:
            delay = poll
            try:
                self.wake.clear()
                await self.run_once()
                delay = await self.pause(poll)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("timer round failed; will try again", exc_info=True)
            delay = self.wake.plan(self.clock(), delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=delay)
            self.wake.planned = None
