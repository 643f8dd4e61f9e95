"""Builds audit from its settings; the only place that wires adapters."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from services.audit import handlers
from services.audit.api import router
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from shared import web
from shared.runtime import Runtime


def create_app(settings: AuditSettings | None = None) -> FastAPI:
    async def start(rt: Runtime, app: FastAPI) -> None:
        store = AuditStore(rt.db)
        await store.setup()
        app.state.store = store
        await rt.consume("motcua.audit", ["#"], partial(handlers.record, store=store))

    return web.service_app(
        settings or AuditSettings(),
        summary="The record of every event, per dossier.",
        routers=[router],
        start=start,
    )
