"""Runs a service's ASGI app under uvicorn with JSON logs."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from shared import logging as motcua_logging
from shared.settings import ServiceSettings


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    motcua_logging.configure(settings.service_name, settings.shared.log_level)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # Slow mobile clients reuse connections after long pauses: close idle ones later.
        timeout_keep_alive=30,
        proxy_headers=True,
        forwarded_allow_ips=settings.shared.trusted_proxies,
    )
