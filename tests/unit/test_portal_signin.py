"""The portal's sign-in pages without a provider: the development sign-in (off unless turned
on), sign-out, and the pages shown when sign-in cannot work."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from services.portal import app as portal_app
from services.portal import csrf, session, signin
from services.portal.app import create_app
from services.portal.settings import PortalSettings
from shared.auth import OfficerClaims, TokenVerifier
from shared.settings import DEV_JWT_SECRET, SharedSettings

probe = APIRouter()


@probe.get("/probe/token")
async def probe_token(officer: session.Officer) -> Response:
    return PlainTextResponse(f"{officer.via} {officer.token}")


Portal = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def portal(monkeypatch: pytest.MonkeyPatch) -> Portal:
    monkeypatch.setattr(portal_app, "ROUTERS", [*portal_app.ROUTERS, probe])

    @asynccontextmanager
    async def start(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(PortalSettings(public_url="http://portal.test", **settings))  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://portal.test") as client,
        ):
            yield client

    return start


def _token_of(page: httpx.Response) -> str:
    found = re.search(rf'name="{csrf.FIELD}" value="([^"]+)"', page.text)
    assert found, "the page has a form with its CSRF token"
    return found.group(1)


async def _pick(
    client: httpx.AsyncClient, listing: httpx.Response, officer_id: str, next_path: str = "/"
) -> httpx.Response:
    """Press the sign-in button of `officer_id` on the development list."""
    fields = {csrf.FIELD: _token_of(listing), "officer_id": officer_id, "next": next_path}
    return await client.post("/signin/dev", data=fields)


async def test_development_sign_in_is_refused_unless_turned_on(portal: Portal) -> None:
    async with portal(development_signin=False) as client:
        assert (await client.get("/signin/dev")).status_code == 404
        posted = await client.post(
            "/signin/dev", data={csrf.FIELD: "any", "officer_id": "cb-badinh-01"}
        )
        assert posted.status_code == 404
        assert (await client.get("/probe/token")).status_code == 303, "not signed in"
        assert "/signin/dev" not in (await client.get("/signin")).text


async def test_development_sign_in_lists_the_roster_and_signs_in(portal: Portal) -> None:
    async with portal(development_signin=True) as client:
        listing = await client.get("/signin/dev", params={"next": "/queues?stage=reception"})
        assert listing.status_code == 200
        for name in ("Trần Văn An", "Phạm Quốc Cường", "Bùi Thanh Tâm"):
            assert name in listing.text
        assert 'value="/queues?stage=reception"' in listing.text
        signed_in = await _pick(client, listing, "cb-badinh-tp", "/queues?stage=reception")
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/queues?stage=reception"
        via, token = (await client.get("/probe/token")).text.split(" ")
        assert via == "dev"
        verifier = TokenVerifier(algorithm="HS256", issuer="motcua", secret=DEV_JWT_SECRET)
        assert await verifier.verify(token) == OfficerClaims("cb-badinh-tp", "chief", "CAP-BADINH")


async def test_development_sign_in_needs_the_forms_token_and_a_known_officer(
    portal: Portal,
) -> None:
    async with portal(development_signin=True) as client:
        listing = await client.get("/signin/dev")
        forged = await client.post(
            "/signin/dev", data={csrf.FIELD: "x", "officer_id": "cb-pc06-qt"}
        )
        assert forged.status_code == 403
        unknown = await _pick(client, listing, "nobody")
        assert unknown.status_code == 404
        assert (await client.get("/probe/token")).status_code == 303, "not signed in"


async def test_development_sign_in_goes_to_local_paths_only(portal: Portal) -> None:
    async with portal(development_signin=True) as client:
        listing = await client.get("/signin/dev", params={"next": "https://evil.example"})
        assert 'name="next" value="/"' in listing.text
        signed_in = await _pick(client, listing, "cb-badinh-01", "//evil.example/x")
        assert signed_in.headers["location"] == "/"


async def test_sign_out_clears_the_session(portal: Portal) -> None:
    async with portal(development_signin=True) as client:
        listing = await client.get("/signin/dev")
        await _pick(client, listing, "cb-badinh-01")
        home = await client.get("/")
        assert "Trần Văn An" in home.text
        out = await client.post("/signout", data={csrf.FIELD: _token_of(home)})
        assert out.status_code == 303
        assert out.headers["location"] == "/signin/signed-out"
        assert (await client.get("/probe/token")).status_code == 303
        done = await client.get("/signin/signed-out")
        assert "Bạn đã đăng xuất khỏi hệ thống một cửa." in done.text


async def test_sign_in_page_offers_what_is_configured(portal: Portal) -> None:
    async with portal(development_signin=True, oidc_discovery_url="") as client:
        page = await client.get("/signin", params={"next": "/x"})
        assert page.status_code == 200
        assert 'href="/signin/dev?next=%2Fx"' in page.text
        assert "/signin/oidc" not in page.text
    async with portal(development_signin=False, oidc_discovery_url="") as client:
        page = await client.get("/signin")
        assert page.status_code == 503
        assert "chưa được cấu hình đăng nhập" in page.text
        assert (await client.get("/signin/callback?code=x&state=y")).status_code == 404


async def test_an_unreachable_provider_is_a_clear_page(portal: Portal) -> None:
    # Port 9 (discard) on 127.0.0.1: nothing answers there.
    async with portal(
        oidc_discovery_url="http://127.0.0.1:9/.well-known/openid-configuration"
    ) as c:
        page = await c.get("/signin")
        assert page.status_code == 503
        assert "Cổng định danh của tỉnh tạm thời không trả lời" in page.text
        english = await c.get("/signin", params={"lang": "en"})
        assert "identity provider does not answer" in english.text


def test_the_roster_lists_active_officers_only(tmp_path: Path) -> None:
    roster = tmp_path / "roster.yaml"
    roster.write_text(
        "officers:\n"
        "  - {id: a, name: Nguyễn Văn A, role: officer, unit: U}\n"
        "  - {id: b, name: Lê Thị B, role: chief, unit: U, active: false}\n",
        encoding="utf-8",
    )
    officers = signin.roster_officers(PortalSettings(roster_file=roster))
    assert [o.id for o in officers] == ["a"]
    assert officers[0].name == "Nguyễn Văn A"


async def test_development_sign_in_says_so_when_the_services_take_rs256_only(
    portal: Portal,
) -> None:
    shared = SharedSettings(jwt_algorithm="RS256", jwt_jwks_url="http://127.0.0.1:9/jwks")
    async with portal(development_signin=True, shared=shared) as client:
        listing = await client.get("/signin/dev")
        refused = await _pick(client, listing, "cb-badinh-01")
        assert refused.status_code == 403
        assert "đăng nhập phát triển không dùng được" in refused.text
        assert (await client.get("/probe/token")).status_code == 303, "not signed in"
