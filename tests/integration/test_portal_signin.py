"""Officers sign in to the portal through the real OpenID Connect provider (tools/oidc), and
every redirect is followed as a browser would: portal → provider's login form → portal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import SecretStr

from services.portal import app as portal_app
from services.portal import csrf, session
from services.portal.app import create_app
from services.portal.settings import PortalSettings
from shared.auth import OfficerClaims, TokenVerifier
from shared.settings import SharedSettings
from tests.oidc import (
    AUDIENCE,
    RunningProvider,
    oidc_provider,
    page_form,
    password_of,
    portal_client,
    roster_accounts,
    submit_login,
)
from tools.oidc import RESOURCE

pytestmark = pytest.mark.integration

HTTP_PORTAL, HTTPS_PORTAL = "http://portal.test", "https://portal.secure.test"
SECRET = "portal-test-secret"
CLIENTS = [
    portal_client(HTTP_PORTAL, secret=SECRET),
    portal_client(HTTPS_PORTAL, client_id="motcua-portal-tls"),  # a public client
]

probe = APIRouter()


@probe.get("/probe/me")
async def probe_me(officer: session.Officer) -> Response:
    """A page behind sign-in: who is signed in, with the token the services get."""
    return JSONResponse({"id": officer.id, "name": officer.name, "token": officer.token})


@probe.get("/probe/form")
async def probe_form_token(request: Request, officer: session.Officer) -> Response:
    """The page of a form: its CSRF token."""
    return JSONResponse({"csrf": csrf.token(request)})


@probe.post("/probe/form")
async def probe_form(_: csrf.Checked, officer: session.Officer) -> Response:
    """A form's POST behind sign-in (a desk submission, a print)."""
    return JSONResponse({"done": True, "token": officer.token})


@pytest.fixture(scope="module")
def provider() -> Iterator[RunningProvider]:
    with oidc_provider(roster_accounts(), CLIENTS) as running:
        yield running


def _settings(provider: RunningProvider, portal: str, **changes: object) -> PortalSettings:
    shared = SharedSettings(
        jwt_algorithm="RS256",
        jwt_jwks_url=provider.jwks_url,
        jwt_issuer=provider.issuer,
        jwt_audience=str(changes.pop("audience", AUDIENCE)),
    )
    client = CLIENTS[0] if portal == HTTP_PORTAL else CLIENTS[1]
    values: dict[str, object] = {
        "public_url": portal,
        "oidc_discovery_url": provider.discovery_url,
        "oidc_client_id": client.client_id,
        "oidc_client_secret": SecretStr(client.client_secret),
        "oidc_resource": RESOURCE,
        "development_signin": False,
        **changes,
    }
    return PortalSettings(shared=shared, **values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def browser(settings: PortalSettings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that reaches the portal in-process and the provider over the network,
    with one cookie jar for both, following redirects like a browser."""
    app = create_app(settings)
    mounts = {settings.public_url: httpx.ASGITransport(app=app)}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            mounts=mounts, base_url=settings.public_url, follow_redirects=True, timeout=10
        ) as client,
    ):
        yield client


@pytest.fixture(autouse=True)
def _routes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portal_app, "ROUTERS", [*portal_app.ROUTERS, probe])


def _session_cookie(answers: list[httpx.Response]) -> str:
    """The Set-Cookie header of the session, from the redirects a sign-in went through."""
    for answer in answers:
        for header in answer.headers.get_list("set-cookie"):
            if header.startswith(session.COOKIE + "=") and "1970" not in header:
                return header
    raise AssertionError("no session cookie was set")


async def _sign_in(
    client: httpx.AsyncClient, path: str, officer_id: str = "cb-badinh-01"
) -> httpx.Response:
    login = await client.get(path)
    assert login.url.host == "127.0.0.1", "redirected to the provider"
    assert "Mật khẩu" in login.text
    return await submit_login(client, login, officer_id, password_of(officer_id))


async def test_sign_in_through_the_provider_then_sign_out(provider: RunningProvider) -> None:
    async with browser(_settings(provider, HTTP_PORTAL)) as client:
        page = await _sign_in(client, "/probe/me?tab=2")
        assert page.url == f"{HTTP_PORTAL}/probe/me?tab=2"
        me = page.json()
        assert (me["id"], me["name"]) == ("cb-badinh-01", "Trần Văn An")
        services = TokenVerifier(
            algorithm="RS256", issuer=provider.issuer, jwks_url=provider.jwks_url, audience="motcua"
        )
        assert await services.verify(me["token"]) == OfficerClaims(
            "cb-badinh-01", "officer", "CAP-BADINH"
        )
        cookie = _session_cookie(page.history)
        assert "httponly" in cookie.lower()
        assert "samesite=lax" in cookie.lower()
        assert "secure" not in cookie.lower(), "plain HTTP: not Secure"

        home = await client.get("/")
        assert "Trần Văn An" in home.text
        action, fields = page_form(home)
        assert action == f"{HTTP_PORTAL}/signout"
        asked = await client.post(action, data=fields)
        assert asked.url.host == "127.0.0.1", "on to the provider's end-session page"
        end, end_fields = page_form(asked)
        done = await client.post(end, data={**end_fields, "logout": "yes"})
        assert done.url == f"{HTTP_PORTAL}/signin/signed-out"
        assert "Bạn đã đăng xuất" in done.text

        again = await client.get("/probe/me")
        assert again.url.host == "127.0.0.1"
        assert "Mật khẩu" in again.text, "signed out at the provider too: password asked"


async def test_sign_out_needs_the_forms_token(provider: RunningProvider) -> None:
    async with browser(_settings(provider, HTTP_PORTAL)) as client:
        await _sign_in(client, "/probe/me")
        refused = await client.post("/signout", data={"csrf_token": "forged"})
        assert refused.status_code == 403
        still = await client.get("/probe/me")
        assert still.json()["id"] == "cb-badinh-01"


async def test_the_session_cookie_is_secure_over_tls(provider: RunningProvider) -> None:
    # Also: no `resource` sent, the provider's default resource gives the same access token.
    async with browser(_settings(provider, HTTPS_PORTAL, oidc_resource="")) as client:
        page = await _sign_in(client, "/probe/me", "cb-hoankiem-tp")
        assert page.json()["name"] == "Vũ Thị Hà"
        cookie = _session_cookie(page.history).lower()
        assert "; secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


async def test_an_open_redirect_ends_on_the_portals_home(provider: RunningProvider) -> None:
    async with browser(_settings(provider, HTTP_PORTAL)) as client:
        for evil in ("https://evil.example/x", "//evil.example", "/\\evil.example"):
            page = await _sign_in(client, f"/signin?next={evil}")
            assert page.url == f"{HTTP_PORTAL}/", evil
            assert "Trần Văn An" in page.text
            client.cookies.clear()


async def test_a_bad_state_is_refused(provider: RunningProvider) -> None:
    async with browser(_settings(provider, HTTP_PORTAL)) as client:
        login = await client.get("/signin")
        assert "Mật khẩu" in login.text
        refused = await client.get("/signin/callback", params={"code": "x", "state": "forged"})
        assert refused.status_code == 400
        assert "Phiên đăng nhập không hợp lệ hoặc đã hết hạn" in refused.text
        assert "Traceback" not in refused.text
        mixed_up = await client.get(
            "/signin/callback", params={"code": "x", "state": "y", "iss": "http://127.0.0.1:9"}
        )
        assert mixed_up.status_code == 400, "RFC 9207: an answer from another provider"
        assert "Cổng định danh báo lỗi khi đăng nhập" in mixed_up.text
        assert (await client.get("/probe/me")).url.host == "127.0.0.1", "not signed in"


async def test_a_cancelled_sign_in_shows_access_denied(provider: RunningProvider) -> None:
    async with browser(_settings(provider, HTTP_PORTAL)) as client:
        login = await client.get("/signin")
        cancel, fields = page_form(login, index=1)
        refused = await client.post(cancel, data=fields)
        assert refused.url.path == "/signin/callback"
        assert refused.status_code == 403
        assert "Cổng định danh đã từ chối đăng nhập" in refused.text


async def test_a_token_the_services_would_refuse_does_not_sign_in(
    provider: RunningProvider,
) -> None:
    settings = _settings(provider, HTTP_PORTAL, audience="another-audience")
    async with browser(settings) as client:
        refused = await _sign_in(client, "/probe/me")
        assert refused.status_code == 403
        assert "không được phép làm việc trên hệ thống một cửa" in refused.text
        # Not signed in: the page behind sign-in goes through the provider and is refused again.
        again = await client.get("/probe/me")
        assert again.status_code == 403
        assert again.url.path == "/signin/callback"


async def test_a_form_posted_after_the_token_expired_is_not_lost() -> None:
    """The officer typed for longer than the access token lives: the portal renews it with
    the refresh token, and the POST is handled, not sent to the home page."""
    with oidc_provider(roster_accounts(), CLIENTS, access_token_ttl=2) as short:
        async with browser(_settings(short, HTTP_PORTAL)) as client:
            await _sign_in(client, "/probe/me")
            page = (await client.get("/probe/form")).json()
            first = (await client.get("/probe/me")).json()["token"]
            await asyncio.sleep(2.2)
            posted = await client.post("/probe/form", data={csrf.FIELD: page["csrf"]})
            assert posted.url == f"{HTTP_PORTAL}/probe/form", posted.url
            renewed = posted.json()["token"]
            assert posted.json()["done"] and renewed != first
            verifier = TokenVerifier(
                algorithm="RS256", jwks_url=short.jwks_url, issuer=short.issuer, audience=AUDIENCE
            )
            assert (await verifier.verify(renewed)).officer_id == "cb-badinh-01"


async def test_an_expired_token_sends_the_officer_through_the_provider_again() -> None:
    with oidc_provider(roster_accounts(), CLIENTS, access_token_ttl=2) as short:
        async with browser(_settings(short, HTTP_PORTAL)) as client:
            first = (await _sign_in(client, "/probe/me")).json()["token"]
            await asyncio.sleep(2.2)
            # The portal's session ended with the token; the provider's did not: no password.
            again = await client.get("/probe/me")
            assert again.url == f"{HTTP_PORTAL}/probe/me"
            assert again.json()["token"] != first
