"""Builds review from its settings; the only place that wires adapters."""

from __future__ import annotations

import logging
from functools import partial

from fastapi import FastAPI

from services.review import handlers
from services.review.api import router
from services.review.roster import load_roster
from services.review.settings import ReviewSettings
from services.review.store import TaskStore
from shared import web
from shared.clock import utcnow
from shared.contracts import DossierSubmitted, DossierWithdrawn, Event
from shared.runtime import Runtime
from shared.settings import DEV_JWT_SECRET

log = logging.getLogger(__name__)


def create_app(settings: ReviewSettings | None = None) -> FastAPI:
    settings = settings or ReviewSettings()
    roster = load_roster(settings.roster_file)

    async def start(rt: Runtime, app: FastAPI) -> None:
        if settings.shared.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
            log.warning("MOTCUA_JWT_SECRET is the development default: set your own")
        store = TaskStore(rt.db, rt.broker.publish)
        await store.setup()
        app.state.tasks = store
        assign = partial(
            handlers.assign,
            tasks=store,
            roster=roster,
            clock=utcnow,
            source=f"{settings.public_url}/v1/tasks",
            faults=rt.faults,
        )
        withdrawn = partial(handlers.close_withdrawn, tasks=store)

        async def handle(event: Event) -> None:
            await (withdrawn if isinstance(event, DossierWithdrawn) else assign)(event)

        await rt.consume(
            "motcua.review", [DossierSubmitted.event_type, DossierWithdrawn.event_type], handle
        )
        rt.relay(store.outbox)

    app = web.service_app(
        settings,
        summary="Officers' work queue: assigned dossiers and their decisions.",
        routers=[router],
        start=start,
    )
    app.state.roster = roster
    return app
