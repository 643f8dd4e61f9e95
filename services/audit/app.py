"""Builds audit from its settings; the only place that wires adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from services.audit import handlers
from services.audit.api import router
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from shared import web
from shared.runtime import runtime


def create_app(settings: AuditSettings | None = None) -> FastAPI:
    settings = settings or AuditSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime(settings) as rt:
            app.state.runtime = rt
            store = AuditStore(rt.db)
            await store.setup()
            app.state.store = store
            await rt.consume("motcua.audit", ["#"], partial(handlers.record, store=store))
            yield

    app = FastAPI(
        title="Motcua audit",
        version="0.1.0",
        summary="The record of every event, per dossier.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(router)
    web.install(app, "audit")
    return app
