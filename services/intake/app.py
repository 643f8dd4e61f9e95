"""Builds intake from its settings; the only place that wires adapters."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake import consumer, openapi
from services.intake.api import router
from services.intake.attachments import AttachmentStore
from services.intake.catalogue import load_catalogue
from services.intake.handlers import Intake
from services.intake.idempotency import RETENTION
from services.intake.settings import IntakeSettings
from services.intake.store import INDEXES, DossierStore, KeyStore
from shared import web
from shared.calendar import WorkingCalendar, load_overrides
from shared.clock import utcnow
from shared.limits import BodySizeLimit, RateLimiter
from shared.runtime import Runtime
from shared.storage import ensure_indexes


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    catalogue = load_catalogue(settings.procedures_dir)
    calendar = WorkingCalendar(load_overrides(settings.shared.calendar_file))

    async def start(rt: Runtime, app: FastAPI) -> None:
        await ensure_indexes(rt.db, INDEXES)
        store = DossierStore(rt.db, rt.broker.publish)
        app.state.intake = Intake(
            dossiers=store,
            files=AttachmentStore(rt.db),
            keys=KeyStore(rt.db, retention=RETENTION),
            catalogue=catalogue,
            publish=store.publish,
            calendar=calendar,
            clock=utcnow,
            agency=settings.agency_code,
            source=f"{settings.public_url}/v1/dossiers",
            max_attachments=settings.max_attachments,
        )
        await rt.consume(consumer.QUEUE, consumer.bindings(), consumer.consumer(store))
        rt.relay(store.outbox)

    app = web.service_app(
        settings,
        summary="Submit dossiers for administrative procedures and follow their status.",
        routers=[router],
        start=start,
    )
    app.state.catalogue = catalogue
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    app.add_middleware(
        BodySizeLimit,
        default=settings.max_body_bytes,
        larger={"/v1/attachments": settings.max_attachment_bytes},
    )
    openapi.install(app, catalogue)
    return app
