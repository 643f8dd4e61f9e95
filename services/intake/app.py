"""Builds intake from its settings; the only place that wires adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from services.intake import handlers
from services.intake.api import router
from services.intake.settings import IntakeSettings
from services.intake.store import DossierStore
from shared import web
from shared.contracts import DossierApproved, DossierAssigned, DossierRejected
from shared.runtime import runtime


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime(settings) as rt:
            app.state.runtime = rt
            store = DossierStore(rt.db, rt.broker.publish)
            await store.setup()
            app.state.dossiers = store
            await rt.consume(
                "motcua.intake.status",
                [
                    DossierAssigned.event_type,
                    DossierApproved.event_type,
                    DossierRejected.event_type,
                ],
                partial(handlers.track_status, dossiers=store),
            )
            rt.background(store.outbox.run(settings.shared.outbox_interval_seconds), "outbox")
            yield

    app = FastAPI(
        title="Motcua intake",
        version="0.1.0",
        summary="Submit dossiers for administrative procedures and follow their status.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(router)
    web.install(app, "intake")
    return app
