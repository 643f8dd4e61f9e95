"""Builds intake from its settings; the only place that wires adapters."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from services.intake import handlers
from services.intake.api import router
from services.intake.settings import IntakeSettings
from services.intake.store import DossierStore
from shared import web
from shared.contracts import DossierApproved, DossierAssigned, DossierRejected
from shared.runtime import Runtime


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    async def start(rt: Runtime, app: FastAPI) -> None:
        store = DossierStore(rt.db, rt.broker.publish)
        await store.setup()
        app.state.dossiers = store
        await rt.consume(
            "motcua.intake.status",
            [DossierAssigned.event_type, DossierApproved.event_type, DossierRejected.event_type],
            partial(handlers.track_status, dossiers=store),
        )
        rt.relay(store.outbox)

    return web.service_app(
        settings,
        summary="Submit dossiers for administrative procedures and follow their status.",
        routers=[router],
        start=start,
    )
