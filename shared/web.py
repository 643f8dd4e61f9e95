"""The FastAPI parts every service has: /healthz, /readyz, /metrics, problem+json, metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import auth, problems
from shared.metrics import HTTP_REQUESTS, HTTP_SECONDS, READY
from shared.runtime import Runtime, runtime
from shared.settings import ServiceSettings

T = TypeVar("T")
Start = Callable[[Runtime, FastAPI], Awaitable[None]]
VERSION = "0.1.0"


def service_app(
    settings: ServiceSettings, *, summary: str, routers: list[APIRouter], start: Start
) -> FastAPI:
    """A service's FastAPI app: `start` wires its stores and consumers once the broker and the
    database clients are open; everything is closed again on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime(settings) as rt:
            app.state.runtime = rt
            await start(rt, app)
            yield

    app = FastAPI(
        title=f"Motcua {settings.service_name}",
        version=VERSION,
        summary=summary,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verifier = auth.verifier_for(settings.shared)
    for router in routers:
        app.include_router(router)
    install(app, settings.service_name)
    return app


def state_of(name: str, kind: type[T]) -> Callable[[Request], T]:
    """A function of a request that returns `app.state.<name>` (set by the service's start)."""

    def get(request: Request) -> T:
        value: Any = getattr(request.app.state, name)
        if not isinstance(value, kind):
            raise TypeError(f"app.state.{name} is not a {kind.__name__}")
        return value

    return get


def from_state(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A FastAPI dependency that returns `app.state.<name>`. A coroutine: FastAPI runs a plain
    function dependency in its thread pool, a thread hop per dependency of every request."""
    get = state_of(name, kind)

    async def dependency(request: Request) -> T:
        return get(request)

    return dependency


READY_FRESH_SECONDS = 30.0  # a scrape reuses a readiness check younger than this


def operations_router(service: str = "") -> APIRouter:
    """Liveness, readiness (of `app.state.runtime`) and Prometheus metrics; `motcua_ready`
    follows the readiness checks (a scrape measures them only when /readyz went unasked, so a
    dashboard costs the database no extra ping beside the orchestrator's probe)."""
    router = APIRouter(tags=["operations"])
    checked = {"at": -READY_FRESH_SECONDS}

    async def readiness(request: Request) -> dict[str, bool]:
        runtime = getattr(request.app.state, "runtime", None)
        checks = await runtime.readiness() if runtime else {"broker": False, "database": False}
        checked["at"] = time.monotonic()
        for check, ok in checks.items():
            READY.labels(service, check).set(1 if ok else 0)
        return checks

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="The broker and the database are reachable")
    async def readyz(request: Request) -> JSONResponse:
        checks = await readiness(request)
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if service and time.monotonic() - checked["at"] >= READY_FRESH_SECONDS:
            await readiness(request)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def _route_template(app: ASGIApp, scope: Scope) -> str:
    """The matched route's path template: the router leaves the route in the scope; else
    (a 404, a mounted app) the first route that matches fully, if any."""
    route = scope.get("route")
    if route is None:
        router = getattr(app, "router", None)
        for candidate in getattr(router, "routes", ()):
            match, _ = candidate.matches(scope)
            if match == Match.FULL:
                route = candidate
                break
        else:
            return "unmatched"
    return str(getattr(route, "path", scope.get("path", "unmatched")))


def install(app: FastAPI, service: str) -> None:
    """Add the operations routes, problem+json errors and request metrics to `app`."""
    problems.install(app)
    app.include_router(operations_router(service))
    count_requests(app, service)


class CountRequests:
    """Pure ASGI middleware counting requests and their durations by route template and
    status. Not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs every request
    through a task group and memory streams, a measurable share of a service's CPU."""

    def __init__(self, app: ASGIApp, *, service: str, root: ASGIApp) -> None:
        self.app = app
        self.service = service
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _route_template(self.root, scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            HTTP_SECONDS.labels(self.service, method, route).observe(time.perf_counter() - started)


def count_requests(app: FastAPI, service: str) -> None:
    """Count `app`'s requests and their durations by route template and status."""
    app.add_middleware(CountRequests, service=service, root=app)


_bearer = HTTPBearer(auto_error=False)


async def officer_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> auth.OfficerClaims:
    """The claims of the caller's bearer token (401 if none or invalid, 503 if the identity
    provider's keys cannot be fetched)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("A bearer token is required.", "Cần mã xác thực (Bearer).")
    verifier: auth.TokenVerifier = request.app.state.verifier
    try:
        return await verifier.verify(credentials.credentials)
    except auth.KeysUnavailable as exc:
        raise problems.Problem(
            503,
            f"Cannot check the token now: {exc}.",
            "Chưa kiểm tra được mã xác thực, vui lòng thử lại sau.",
            code="keys_unavailable",
        ) from exc
    except auth.InvalidToken as exc:
        raise _unauthorized(f"Invalid token: {exc}.", "Mã xác thực không hợp lệ.") from exc


def _unauthorized(detail: str, detail_vi: str) -> problems.Problem:
    return problems.Problem(
        401, detail, detail_vi, code="unauthorized", headers={"WWW-Authenticate": "Bearer"}
    )


OfficerClaims = Annotated[auth.OfficerClaims, Depends(officer_claims)]
