"""Builds intake from its settings; the only place that wires adapters."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from services.intake import consumer, openapi
from services.intake.api import router
from services.intake.attachments import AttachmentStore
from services.intake.catalogue import load_catalogue
from services.intake.handlers import Intake
from services.intake.idempotency import RETENTION
from services.intake.officer_api import router as officer_router
from services.intake.settings import IntakeSettings
from services.intake.store import (
    CLEANUP_INTERVAL,
    DossierStore,
    KeyStore,
    create_indexes,
    remove_expired,
)
from services.intake.upgrade import upgrade
from shared import web
from shared.calendar import WorkingCalendar, load_overrides
from shared.clock import utcnow
from shared.limits import BodySizeLimit, RateLimiter
from shared.runtime import Runtime

log = logging.getLogger(__name__)


async def _expire(rt: Runtime) -> None:
    """Remove expired idempotency keys and counters where the server has no TTL indexes."""
    while True:
        try:
            await remove_expired(rt.db, utcnow())
        except Exception:
            log.warning("removing expired keys failed; will try again", exc_info=True)
        await asyncio.sleep(CLEANUP_INTERVAL.total_seconds())


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    catalogue = load_catalogue(settings.procedures_dir)
    calendar = WorkingCalendar(load_overrides(settings.shared.calendar_file))

    async def start(rt: Runtime, app: FastAPI) -> None:
        if not await create_indexes(rt.db):  # no TTL indexes here: expire keys ourselves
            rt.background(_expire(rt), "intake-expiry")
        await upgrade(rt.db)  # once: dossiers of before hold their steps and a version
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
        routers=[router, officer_router],
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
