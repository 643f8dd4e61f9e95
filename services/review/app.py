"""Builds review from its settings; the only place that wires adapters."""

from __future__ import annotations

import logging
from functools import partial

from fastapi import FastAPI

from services.review import consumer, handlers, index_metrics, mover
from services.review.admin import router as admin_router
from services.review.api import router
from services.review.directory import Directory
from services.review.me import router as me_router
from services.review.roster import load_roster
from services.review.settings import ReviewSettings
from services.review.store import TaskStore
from services.review.timers import Timers
from services.review.upgrade import upgrade
from services.review.workflow import load_all
from shared import web
from shared.calendar import WorkingCalendar, load_overrides
from shared.clock import shifted
from shared.runtime import Runtime
from shared.settings import DEV_JWT_SECRET

log = logging.getLogger(__name__)


def create_app(settings: ReviewSettings | None = None) -> FastAPI:
    settings = settings or ReviewSettings()
    roster = load_roster(settings.roster_file)
    workflows = load_all(settings.workflows_dir)
    clock = shifted(settings.clock_offset_seconds)
    calendar = WorkingCalendar(load_overrides(settings.shared.calendar_file))

    async def start(rt: Runtime, app: FastAPI) -> None:
        if (
            settings.shared.jwt_algorithm == "HS256"
            and settings.shared.jwt_secret.get_secret_value() == DEV_JWT_SECRET
        ):
            log.warning("MOTCUA_JWT_SECRET is the development default: set your own")
        store = TaskStore(rt.db, rt.broker.publish)
        await store.setup()
        await upgrade(rt.db)
        app.state.tasks = store
        directory = Directory(rt.db, ttl=settings.directory_cache_seconds)
        added = await directory.seed(roster)
        log.info("directory seeded", extra={"added": added})
        app.state.directory = directory
        source = f"{settings.public_url}/v1/tasks"
        assign = partial(
            handlers.assign,
            tasks=store,
            directory=directory,
            workflows=workflows,
            calendar=calendar,
            clock=clock,
            publish=store.publish,
            source=source,
            faults=rt.faults,
        )
        follow = partial(
            handlers.follow_citizen,
            tasks=store,
            workflows=workflows,
            calendar=calendar,
            publish=store.publish,
            source=source,
        )
        routes = consumer.table(assign=assign, follow_citizen=follow)
        await rt.consume(consumer.QUEUE, list(routes), consumer.dispatcher(routes))
        rt.relay(store.outbox)
        timers = Timers(
            store,
            directory,
            clock=clock,
            source=source,
            publish=store.publish,
            wake=store.timers_changed,
        )
        rt.background(timers.run(settings.timer_interval_seconds), "sla-timers")
        rt.background(
            mover.run(store, store.task_finished, poll=settings.timer_interval_seconds),
            "history-mover",
        )
        rt.background(index_metrics.keep_refreshing(store=store, clock=clock), "index-overdue")

    app = web.service_app(
        settings,
        summary="Officers' work queue: assigned dossiers and their decisions.",
        routers=[router, me_router, admin_router],
        start=start,
    )
    app.state.workflows = workflows
    app.state.calendar = calendar
    app.state.clock = clock
    return app
