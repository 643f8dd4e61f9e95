"""Builds the portal from its settings; the only place that wires its parts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from services.portal import (
    admin,
    citizen,
    console,
    desk,
    headers,
    i18n,
    national,
    pages,
    printing,
    prints,
    session,
    signin,
    supervision,
    uploads,
)
from services.portal.assets import Assets
from services.portal.clients import SERVICES, ApiProblem, Apis
from services.portal.rendering import Pages
from services.portal.settings import PortalSettings
from shared import auth, web
from shared.limits import BodySizeLimit
from shared.problems import TITLES, Problem, field_errors
from shared.web import VERSION

log = logging.getLogger(__name__)
ROUTERS: list[APIRouter] = [
    pages.router,
    signin.router,
    console.router,
    supervision.router,
    admin.router,
    national.router,
    desk.router,
    prints.router,
    citizen.router,
    uploads.router,
]
"""The portal's pages; each feature adds its router here."""
FORM_BYTES = 256 * 1024
FILES_BYTES = 120 * 1024 * 1024  # a dossier's documents, scanned or photographed
FILE_PATHS = ("/desk", "/procedures", "/status", "/uploads")
"""Where forms carry files (the desk, the citizen's form and supplement, resumable uploads)."""


def create_app(settings: PortalSettings | None = None) -> FastAPI:
    settings = settings or PortalSettings()
    if settings.development_session_secret and not settings.development_signin:
        log.warning("MOTCUA_PORTAL_SESSION_SECRET is the development default: set your own")
    # httpx logs every request at INFO: the portal makes several per page.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    assets = Assets()
    rendering = Pages(assets, i18n.Catalogue(), settings.default_language)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        apis = Apis(settings)
        app.state.apis = apis
        # Fonts and stylesheets loaded beside the first pages, not by the first print (0.9 s).
        warming = asyncio.create_task(asyncio.to_thread(printing.warm_up), name="warm-up")
        try:
            yield
        finally:
            warming.cancel()
            await apis.close()

    app = FastAPI(
        title="Motcua portal",
        version=VERSION,
        summary="The officer console: server-rendered pages over the services' APIs.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.session_cipher = session.cipher(settings)
    app.state.refresher = signin.refresh  # an expired access token is renewed, not lost
    app.state.pages = rendering
    app.state.verifier = auth.verifier_for(settings.shared)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(assets.router())
    app.include_router(_operations())
    csp = headers.policy([settings.oidc_discovery_url])
    _errors(app, rendering, headers.security_headers(csp, hsts=settings.secure_cookies))
    web.count_requests(app, "portal")
    # Outermost last: headers on every answer, then the session, then compression.
    app.add_middleware(GZipMiddleware, minimum_size=500)
    app.add_middleware(SessionMiddleware, **session.options(settings))
    app.add_middleware(headers.SecurityHeaders, csp=csp, hsts=settings.secure_cookies)
    # Outermost: no page takes more than a small form, except those that carry files.
    larger = dict.fromkeys(FILE_PATHS, FILES_BYTES)
    app.add_middleware(BodySizeLimit, default=FORM_BYTES, larger=larger)
    return app


def _operations() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        apis: Apis = request.app.state.apis
        checks = {name: await apis.healthy(name) for name in SERVICES}
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def _errors(app: FastAPI, rendering: Pages, secure: dict[str, str]) -> None:
    async def not_signed_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, session.NotSignedIn)
        if request.headers.get("hx-request"):
            # htmx follows no redirect into a fragment: send the whole page to sign-in.
            return Response(status_code=204, headers={"HX-Redirect": "/signin"})
        return RedirectResponse(f"/signin?next={quote(exc.next_path, safe='')}", 303)

    def whole_page(request: Request) -> Response | None:
        """htmx swaps no error answer into a fragment (the officer would see nothing happen):
        an htmx GET that fails loads its URL as a whole page, which shows the error."""
        if request.headers.get("hx-request") and request.method == "GET":
            return Response(status_code=204, headers={"HX-Redirect": str(request.url)})
        return None

    async def api_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        if (redirect := whole_page(request)) is not None and exc.status != 401:
            return redirect
        if exc.status == 401:
            # The token was refused (expired or revoked): sign in again.
            session.sign_out(request)
            return await not_signed_in(request, session.NotSignedIn(session.next_path(request)))
        return rendering.render(request, "error.html", status=exc.status, problem=exc)

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        if (redirect := whole_page(request)) is not None:
            return redirect
        lang = rendering.language(request)
        shown = ApiProblem(exc.status, exc.detail_vi if lang == "vi" else exc.detail, exc.code)
        return rendering.render(request, "error.html", status=exc.status, problem=shown)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        lang = rendering.language(request)
        t = rendering.catalogue.translator(lang)
        title_en, title_vi = TITLES.get(exc.status_code, ("Error", "Lỗi"))
        text = (
            t("error.not_found")
            if exc.status_code == 404
            else (title_vi if lang == "vi" else title_en)
        )
        shown = ApiProblem(exc.status_code, text, "http_error")
        return rendering.render(request, "error.html", status=exc.status_code, problem=shown)

    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("page %s failed", request.url.path, exc_info=exc)
        t = rendering.catalogue.translator(rendering.language(request))
        shown = ApiProblem(500, t("error.internal"), "internal_error")
        page = rendering.render(request, "error.html", status=500, problem=shown)
        # Starlette answers a crash outside every middleware: the headers are set here.
        page.headers.update(secure)
        return page

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        lang = rendering.language(request)
        fields = ", ".join(e["field"] for e in field_errors(exc))
        detail = (
            f"Biểu mẫu gửi lên thiếu hoặc sai: {fields}. Vui lòng tải lại trang và thử lại."
            if lang == "vi"
            else f"The form sent is missing or wrong: {fields}. Reload the page and try again."
        )
        shown = ApiProblem(422, detail, "validation_failed")
        return rendering.render(request, "error.html", status=422, problem=shown)

    app.add_exception_handler(session.NotSignedIn, not_signed_in)
    app.add_exception_handler(ApiProblem, api_problem)
    app.add_exception_handler(Problem, problem)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, crash)
