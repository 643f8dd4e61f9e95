"""Builds notify from its settings; the only place that wires adapters."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from services.notify import handlers
from services.notify.api import router
from services.notify.email import SmtpSender
from services.notify.settings import NotifySettings
from services.notify.store import NotifyStore
from shared import web
from shared.clock import utcnow
from shared.contracts import DossierApproved, DossierRejected, DossierSubmitted
from shared.runtime import Runtime


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    settings = settings or NotifySettings()

    async def start(rt: Runtime, app: FastAPI) -> None:
        store = NotifyStore(rt.db, rt.broker.publish)
        await store.setup()
        app.state.store = store
        await rt.consume(
            "motcua.notify",
            [DossierSubmitted.event_type, DossierApproved.event_type, DossierRejected.event_type],
            partial(
                handlers.handle,
                store=store,
                mailer=SmtpSender(settings),
                clock=utcnow,
                source=f"{settings.public_url}/v1/deliveries",
                max_attempts=settings.shared.max_attempts,
            ),
        )
        rt.relay(store.outbox)

    return web.service_app(
        settings,
        summary="Tells citizens the result of their dossiers.",
        routers=[router],
        start=start,
    )
