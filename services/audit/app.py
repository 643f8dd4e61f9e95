"""Builds audit from its settings; the only place that wires adapters."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from fastapi import FastAPI

from services.audit import consumer, handlers, index_metrics
from services.audit.api import router
from services.audit.batching import Batcher
from services.audit.settings import AuditSettings
from services.audit.signing import load_signing_key
from services.audit.store import AuditStore
from shared import web
from shared.calendar import WorkingCalendar, load_overrides
from shared.clock import utcnow
from shared.runtime import Runtime


def create_app(settings: AuditSettings | None = None) -> FastAPI:
    settings = settings or AuditSettings()
    calendar = WorkingCalendar(load_overrides(settings.shared.calendar_file))

    async def start(rt: Runtime, app: FastAPI) -> None:
        store = AuditStore(rt.db)
        await store.setup()
        app.state.store = store
        if await handlers.facts_to_build(store=store, clock=utcnow):
            rt.background(
                handlers.keep_building_facts(
                    store=store, calendar=calendar, clock=utcnow, projection=app.state.projection
                ),
                "audit-facts-build",
            )
        else:
            app.state.projection.built = True
        key = load_signing_key(settings.signing_key.get_secret_value())
        hmac_key = settings.hmac_key_bytes()
        wakeup = handlers.Wakeup()
        batcher = Batcher(
            partial(store.insert_records, hmac_key=hmac_key),
            size=settings.batch_size,
            wait=settings.batch_wait_seconds,
            written=lambda docs: wakeup.recorded(min(d["recorded_at"] for d in docs)),
        )
        rt.background(
            handlers.keep_ledger(
                store=store,
                key=key,
                clock=utcnow,
                grace=timedelta(seconds=settings.chain_grace_seconds),
                settle_every=settings.settle_interval_seconds,
                seal_every=settings.seal_interval_seconds,
                hmac_key=hmac_key,
                lease_ttl=settings.lease_ttl_seconds,
                # Seals end a settling round before now.
                margin=timedelta(seconds=settings.settle_interval_seconds),
                wakeup=wakeup,
                calendar=calendar,
            ),
            "audit-ledger",
        )
        rt.background(index_metrics.keep_refreshing(store=store, clock=utcnow), "audit-index")
        await handlers.adopt_legacy(store=store, hmac_key=hmac_key, clock=utcnow)
        table = consumer.handlers(batcher=batcher, hmac_key=hmac_key, clock=utcnow)
        await rt.consume(consumer.QUEUE, consumer.BINDINGS, consumer.dispatcher(table))

    app = web.service_app(
        settings,
        summary="The record of every event, per dossier: hash-chained, sealed, searchable.",
        routers=[router],
        start=start,
    )
    app.state.calendar = calendar
    app.state.projection = handlers.Projection()
    return app
