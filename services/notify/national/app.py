"""Wires the national-portal sync into notify's process: its own queue (motcua.notify.dvcqg),
its own collection and its own loop. Disabled (the default) it starts nothing."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from services.notify.national.api import router
from services.notify.national.domain import StatusMap
from services.notify.national.portal import Portal
from services.notify.national.settings import DvcqgSettings
from services.notify.national.store import SyncStore
from services.notify.national.sync import Sync
from shared.clock import utcnow
from shared.contracts.registry import EVENT_TYPES
from shared.runtime import Runtime

QUEUE = "motcua.notify.dvcqg"
__all__ = ["QUEUE", "bindings", "router", "start"]


# Events that carry a status but are no step of the dossier's processing: a citizen asked
# its status by SMS, an officer printed a slip. The portal is not told of them.
NOT_STEPS = frozenset({"dossier.status_reported", "dossier.slip_printed"})


def bindings() -> list[str]:
    """Every event type that carries a dossier status and is a step of its processing: each
    one changes what the portal shows."""
    return sorted(t for t, cls in EVENT_TYPES.items() if _has_status(cls) and t not in NOT_STEPS)


def _has_status(cls: type) -> bool:
    data = getattr(cls, "model_fields", {}).get("data")
    annotation = getattr(data, "annotation", None)
    return "status_code" in getattr(annotation, "model_fields", {})


async def start(rt: Runtime, app: FastAPI, settings: DvcqgSettings | None = None) -> None:
    settings = settings or DvcqgSettings()
    if not settings.enabled:
        return
    statuses = StatusMap.load(settings.status_mapping_file)  # a bad table stops the start
    store = SyncStore(rt.db)
    await store.setup()
    client = httpx.AsyncClient(timeout=settings.timeout_seconds)
    portal = Portal(
        client,
        settings.base_url,
        settings.username,
        settings.password.get_secret_value(),
        unit_code=settings.unit_code,
        auth_path=settings.auth_path,
        integration_path=settings.integration_path,
    )
    sync = Sync(
        store,
        portal,
        statuses,
        utcnow,
        batch_size=settings.batch_size,
        lease=timedelta(seconds=settings.lease_seconds),
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=settings.retry_max_seconds,
    )
    app.state.dvcqg = sync
    await rt.consume(QUEUE, bindings(), sync)
    rt.background(_run(sync, client), "dvcqg-sync")


async def _run(sync: Sync, client: httpx.AsyncClient) -> None:
    try:
        await sync.run_forever()
    finally:
        await client.aclose()
