"""Builds review from its settings; the only place that wires adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from services.review import handlers
from services.review.api import router
from services.review.roster import load_roster
from services.review.settings import ReviewSettings
from services.review.store import TaskStore
from shared import web
from shared.clock import utcnow
from shared.contracts import DossierSubmitted
from shared.runtime import runtime


def create_app(settings: ReviewSettings | None = None) -> FastAPI:
    settings = settings or ReviewSettings()
    roster = load_roster(settings.roster_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime(settings) as rt:
            app.state.runtime = rt
            store = TaskStore(rt.db, rt.broker.publish)
            await store.setup()
            app.state.tasks = store
            await rt.consume(
                "motcua.review",
                [DossierSubmitted.event_type],
                partial(
                    handlers.assign,
                    tasks=store,
                    roster=roster,
                    clock=utcnow,
                    source=f"{settings.public_url}/v1/tasks",
                    faults=rt.faults,
                ),
            )
            for i, outbox in enumerate(store.outboxes):
                rt.background(outbox.run(settings.shared.outbox_interval_seconds), f"outbox{i}")
            yield

    app = FastAPI(
        title="Motcua review",
        version="0.1.0",
        summary="Officers' work queue: assigned dossiers and their decisions.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.roster = roster
    app.include_router(router)
    web.install(app, "review")
    return app
