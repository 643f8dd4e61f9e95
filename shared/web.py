"""The FastAPI parts every service has: /healthz, /readyz, /metrics, problem+json, metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Match

from shared import problems
from shared.metrics import HTTP_REQUESTS, HTTP_SECONDS


def operations_router() -> APIRouter:
    """Liveness, readiness (of `app.state.runtime`) and Prometheus metrics."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="The broker and the database are reachable")
    async def readyz(request: Request) -> JSONResponse:
        runtime = getattr(request.app.state, "runtime", None)
        checks = await runtime.readiness() if runtime else {"broker": False, "database": False}
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def _route_template(request: Request) -> str:
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", request.url.path))
    return "unmatched"


def install(app: FastAPI, service: str) -> None:
    """Add the operations routes, problem+json errors and request metrics to `app`."""
    problems.install(app)
    app.include_router(operations_router())

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = _route_template(request)
        HTTP_REQUESTS.labels(service, request.method, route, str(response.status_code)).inc()
        HTTP_SECONDS.labels(service, request.method, route).observe(time.perf_counter() - started)
        return response
