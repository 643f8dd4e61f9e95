"""`motcua_ready` follows the readiness checks: /readyz sets it; a scrape measures the checks
only when /readyz was not asked for a while (the orchestrator's probe already asks)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from shared import web


class Runtime:
    def __init__(self) -> None:
        self.database = True
        self.asked = 0

    async def readiness(self) -> dict[str, bool]:
        self.asked += 1
        return {"broker": True, "database": self.database}


def ready(check: str) -> float | None:
    return REGISTRY.get_sample_value("motcua_ready", {"service": "probe", "check": check})


async def test_the_gauge_follows_readyz_and_a_lone_scrape_measures() -> None:
    app = FastAPI()
    app.include_router(web.operations_router("probe"))
    runtime = Runtime()
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/metrics")).status_code == 200  # never asked: measured
        assert runtime.asked == 1 and ready("database") == 1 and ready("broker") == 1
        runtime.database = False
        assert (await client.get("/readyz")).status_code == 503
        assert ready("database") == 0 and ready("broker") == 1
        assert (
            'motcua_ready{check="database",service="probe"} 0.0'
            in (await client.get("/metrics")).text
        )
        assert runtime.asked == 2, "a scrape right after /readyz reuses its checks"
