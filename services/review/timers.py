"""SLA timers that survive restarts: they live in the tasks, not in memory.

Every step with a running clock records when its officer is reminded and when it is due. A
loop looks for open tasks past either moment and fires each timer once: the firing is an
insert under `<task>:<state>:<moment>:<kind>`, so a restart, a second replica or the next round can
never fire it again. An overdue step publishes `dossier.overdue` and escalates the task to a
supervisor (of the unit, else of the province office); a reminder publishes `dossier.due_soon`.
"""

from __future__ import annotations

import asyncio
import logging

from services.review.directory import Directory
from services.review.store import TaskStore
from shared.clock import Clock
from shared.contracts import DossierDueSoon, DossierOverdue, DossierSlaData, Event, derived_id
from shared.outbox import events_of

log = logging.getLogger(__name__)


class Timers:
    def __init__(
        self, tasks: TaskStore, directory: Directory, *, clock: Clock, source: str
    ) -> None:
        self.tasks = tasks
        self.directory = directory
        self.clock = clock
        self.source = source

    async def run_once(self) -> list[Event]:
        """Fire every timer that is due now; return the events published."""
        now = self.clock()
        roster = await self.directory.roster()
        fired: list[Event] = []
        ids = [doc["_id"] async for doc in self.tasks.tasks.find({"terminal": False}, ["_id"])]
        for task_id in ids:
            task = await self.tasks.get(task_id)  # the latest step, even if the projection lags
            if task is None or task.terminal:
                continue
            for kind, moment in (("reminder", task.remind_at), ("overdue", task.due_at)):
                if moment is None or moment > now:
                    continue
                # One firing per deadline: a step resumed after a pause keeps its due moment
                # when it was overdue already, so it is not announced twice.
                claim = f"{task.id}:{task.state}:{moment:%Y%m%dT%H%M%S}:{kind}"
                supervisor = roster.supervisor_for(task.unit_id) if kind == "overdue" else None
                model = DossierOverdue if kind == "overdue" else DossierDueSoon
                event = model(
                    id=derived_id(claim, model.event_type),
                    source=self.source,
                    type=model.event_type,
                    time=now,
                    subject=task.dossier_code,
                    correlationid=task.correlation_id,
                    data=DossierSlaData(
                        dossier_code=task.dossier_code,
                        task_id=task.id,
                        state=task.state,
                        due_at=task.due_at or moment,
                        unit_id=task.unit_id,
                        officer_id=task.officer_id,
                        escalated_to=supervisor,
                    ),
                )
                doc = await self.tasks.fire(claim, [event])
                if doc is None:
                    continue  # fired before: by another replica, or before a restart
                if supervisor:
                    await self.tasks.escalate(task.id, supervisor)
                log.info("timer fired", extra={"dossier": task.dossier_code, "kind": kind})
                fired += await self.tasks.outbox.flush(events_of(doc))
        return fired

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("timer round failed; will try again", exc_info=True)
            await asyncio.sleep(interval)
