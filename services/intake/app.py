"""Builds intake from its settings; the only place that wires adapters."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from services.intake import handlers, openapi
from services.intake.api import router
from services.intake.attachments import AttachmentStore
from services.intake.catalogue import load_catalogue
from services.intake.idempotency import IdempotencyStore
from services.intake.settings import IntakeSettings
from services.intake.store import DossierStore
from shared import web
from shared.calendar import WorkingCalendar, load_overrides
from shared.limits import BodySizeLimit, RateLimiter
from shared.runtime import Runtime


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    catalogue = load_catalogue(settings.procedures_dir)
    calendar = WorkingCalendar(load_overrides(settings.shared.calendar_file))

    async def start(rt: Runtime, app: FastAPI) -> None:
        store = DossierStore(rt.db, rt.broker.publish)
        await store.setup()
        app.state.dossiers = store
        app.state.keys = IdempotencyStore(rt.db)
        app.state.files = AttachmentStore(rt.db)
        await rt.consume(
            "motcua.intake.status",
            sorted(handlers.STATUS_OF_EVENT),
            partial(handlers.track_status, dossiers=store),
        )
        rt.relay(store.outbox)

    app = web.service_app(
        settings,
        summary="Submit dossiers for administrative procedures and follow their status.",
        routers=[router],
        start=start,
    )
    app.state.catalogue = catalogue
    app.state.calendar = calendar
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    app.add_middleware(
        BodySizeLimit,
        default=settings.max_body_bytes,
        larger={"/v1/attachments": settings.max_attachment_bytes},
    )
    openapi.install(app, catalogue)
    return app
