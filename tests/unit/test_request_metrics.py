"""The request metrics every service exports: counted by route template and status, by a pure
ASGI middleware (shared.web.CountRequests)."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY

from shared import problems
from shared.web import count_requests

SERVICE = "metrics-test"


def _count(method: str, route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "motcua_http_requests_total",
        {"service": SERVICE, "method": method, "route": route, "status": status},
    )
    return value or 0.0


def _app() -> FastAPI:
    app = FastAPI()
    problems.install(app)
    router = APIRouter(prefix="/v1")

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @router.post("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    app.include_router(router)
    count_requests(app, SERVICE)
    return app


async def test_requests_are_counted_by_route_template_and_status_even_when_the_app_raises() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)

    def counts() -> tuple[float, ...]:
        seconds = REGISTRY.get_sample_value(
            "motcua_http_request_seconds_count",
            {"service": SERVICE, "method": "GET", "route": "/v1/things/{thing_id}"},
        )
        return (
            _count("GET", "/v1/things/{thing_id}", "200"),
            _count("GET", "unmatched", "404"),
            _count("POST", "/v1/boom", "500"),
            _count("DELETE", "/v1/things/{thing_id}", "405"),
            seconds or 0.0,
        )

    before = counts()
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/v1/things/a")).status_code == 200
        assert (await client.get("/v1/things/b")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.post("/v1/boom")).status_code == 500
        assert (await client.delete("/v1/things/a")).status_code == 405
    after = counts()
    assert [a - b for a, b in zip(after, before, strict=True)] == [2.0, 1.0, 1.0, 1.0, 2.0]
