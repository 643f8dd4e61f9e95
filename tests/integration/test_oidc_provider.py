"""The OpenID Connect provider of the tests (tools/oidc) is a real one: a client runs the
authorization-code flow with PKCE against it, and shared.auth verifies its RS256 tokens
through its JWKS, as the services do with MOTCUA_JWT_ALGORITHM=RS256."""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from shared.auth import InvalidToken, OfficerClaims, TokenVerifier, verifier_for
from shared.settings import SharedSettings
from tests.oidc import (
    AUDIENCE,
    Pkce,
    RunningProvider,
    follow_until,
    oidc_provider,
    page_form,
    password_of,
    portal_client,
    roster_accounts,
    submit_login,
)
from tools.oidc import rsa_jwk

pytestmark = pytest.mark.integration

PORTAL = "http://portal.test"
CLIENT = portal_client(PORTAL, secret="portal-secret")
REDIRECT_URI = CLIENT.redirect_uris[0]


@pytest.fixture(scope="module")
def provider() -> Iterator[RunningProvider]:
    with oidc_provider(roster_accounts(), [CLIENT]) as running:
        yield running


def _verifier(provider: RunningProvider, audience: str = AUDIENCE) -> TokenVerifier:
    return TokenVerifier(
        algorithm="RS256",
        issuer=provider.issuer,
        jwks_url=provider.jwks_url,
        audience=audience,
        refresh_seconds=0,
    )


async def _authorize(
    http: httpx.AsyncClient,
    provider: RunningProvider,
    pkce: Pkce | None,
    state: str,
    follow: bool = True,
) -> httpx.Response:
    params = {
        "client_id": CLIENT.client_id,
        "response_type": "code",
        "scope": "openid profile",
        "redirect_uri": REDIRECT_URI,
        "state": state,
        "nonce": "n-" + state,
    }
    if pkce is not None:
        params |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    return await http.get(f"{provider.issuer}/auth", params=params, follow_redirects=follow)


async def _sign_in(provider: RunningProvider, officer_id: str) -> dict[str, Any]:
    """The token endpoint's answer after `officer_id` signed in (code flow, PKCE S256)."""
    pkce, state = Pkce.new(), secrets.token_urlsafe(12)
    async with httpx.AsyncClient(timeout=10) as http:
        login = await _authorize(http, provider, pkce, state)
        assert login.status_code == 200
        assert "Mật khẩu" in login.text
        posted = await submit_login(http, login, officer_id, password_of(officer_id))
        back = urllib.parse.urlsplit(await follow_until(http, posted, REDIRECT_URI))
        query = dict(urllib.parse.parse_qsl(back.query))
        assert query["state"] == state
        assert query["iss"] == provider.issuer
        tokens = await http.post(
            f"{provider.issuer}/token",
            auth=(CLIENT.client_id, CLIENT.client_secret),
            data={
                "grant_type": "authorization_code",
                "code": query["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": pkce.verifier,
            },
        )
        assert tokens.status_code == 200, tokens.text
        answer: dict[str, Any] = tokens.json()
        return answer


async def test_code_flow_gives_an_access_token_the_services_accept(
    provider: RunningProvider,
) -> None:
    discovery = httpx.get(provider.discovery_url).json()
    assert discovery["issuer"] == provider.issuer
    assert discovery["jwks_uri"] == provider.jwks_url
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["end_session_endpoint"] == f"{provider.issuer}/session/end"

    tokens = await _sign_in(provider, "cb-badinh-tp")

    claims = await _verifier(provider).verify(tokens["access_token"])
    assert claims == OfficerClaims("cb-badinh-tp", "chief", "CAP-BADINH")
    assert tokens["token_type"] == "Bearer"
    assert 0 < tokens["expires_in"] <= 900
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"


async def test_the_services_accept_it_with_the_documented_settings(
    provider: RunningProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment an operator (and `make run`) gives the four services."""
    monkeypatch.setenv("MOTCUA_JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("MOTCUA_JWT_JWKS_URL", provider.jwks_url)
    monkeypatch.setenv("MOTCUA_JWT_ISSUER", provider.issuer)
    monkeypatch.setenv("MOTCUA_JWT_AUDIENCE", "motcua")
    services = verifier_for(SharedSettings())
    tokens = await _sign_in(provider, "cb-pc06-qt")
    assert await services.verify(tokens["access_token"]) == OfficerClaims(
        "cb-pc06-qt", "admin", "PC06-HN"
    )


async def test_the_id_token_names_the_officer(provider: RunningProvider) -> None:
    tokens = await _sign_in(provider, "cb-hoankiem-tp")
    keys = jwt.PyJWKClient(provider.jwks_url)
    key = keys.get_signing_key_from_jwt(tokens["id_token"]).key
    id_token = jwt.decode(
        tokens["id_token"],
        key,
        algorithms=["RS256"],
        audience=CLIENT.client_id,
        issuer=provider.issuer,
    )
    assert id_token["sub"] == "cb-hoankiem-tp"
    assert id_token["name"] == "Vũ Thị Hà"
    assert (id_token["role"], id_token["unit"]) == ("chief", "CAP-HOANKIEM")
    assert id_token["nonce"].startswith("n-")


async def test_a_wrong_password_is_refused(provider: RunningProvider) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        login = await _authorize(http, provider, Pkce.new(), "s1")
        refused = await submit_login(http, login, "cb-badinh-01", "not-the-password")
        assert refused.status_code == 401
        assert "Tên đăng nhập hoặc mật khẩu không đúng." in refused.text
        assert "location" not in refused.headers
        unknown = await submit_login(http, refused, "nobody", password_of("cb-badinh-01"))
        assert unknown.status_code == 401


async def test_pkce_is_required(provider: RunningProvider) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        params = {
            "client_id": CLIENT.client_id,
            "response_type": "code",
            "scope": "openid profile",
            "redirect_uri": REDIRECT_URI,
            "state": "s2",
        }
        answer = await http.get(f"{provider.issuer}/auth", params=params)
        error = dict(
            urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.headers["location"]).query)
        )
        assert error["error"] == "invalid_request"
        assert "PKCE" in error["error_description"]
        plain = params | {"code_challenge": Pkce.new().verifier, "code_challenge_method": "plain"}
        answer = await http.get(f"{provider.issuer}/auth", params=plain)
        error = dict(
            urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.headers["location"]).query)
        )
        assert error["error"] == "invalid_request"
        assert "S256" in error["error_description"] or "method" in error["error_description"]


async def test_a_token_for_another_audience_is_refused(provider: RunningProvider) -> None:
    tokens = await _sign_in(provider, "cb-badinh-01")
    with pytest.raises(InvalidToken, match=r"(?i)audience"):
        await _verifier(provider, audience="another-service").verify(tokens["access_token"])
    # The ID token is signed by the same keys but is for the portal, not for the services.
    with pytest.raises(InvalidToken):
        await _verifier(provider).verify(tokens["id_token"])


async def test_the_refresh_token_gives_a_new_access_token_until_sign_out(
    provider: RunningProvider,
) -> None:
    tokens = await _sign_in(provider, "cb-pc06-gs")
    async with httpx.AsyncClient(timeout=10) as http:
        refreshed = await http.post(
            f"{provider.issuer}/token",
            auth=(CLIENT.client_id, CLIENT.client_secret),
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        assert refreshed.status_code == 200, refreshed.text
        claims = await _verifier(provider).verify(refreshed.json()["access_token"])
        assert claims == OfficerClaims("cb-pc06-gs", "supervisor", "PC06-HN")


async def test_end_session_signs_the_officer_out(provider: RunningProvider) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        login = await _authorize(http, provider, Pkce.new(), "s3")
        posted = await submit_login(http, login, "cb-badinh-02", password_of("cb-badinh-02"))
        await follow_until(http, posted, REDIRECT_URI)
        # Signed in at the provider: a second authorization needs no password.
        again = await _authorize(http, provider, Pkce.new(), "s4", follow=False)
        assert "code=" in await follow_until(http, again, REDIRECT_URI)

        ask = await http.get(
            f"{provider.issuer}/session/end",
            params={
                "client_id": CLIENT.client_id,
                "post_logout_redirect_uri": CLIENT.post_logout_redirect_uris[0],
            },
        )
        assert ask.status_code == 200
        action, fields = page_form(ask)
        confirmed = await http.post(action, data={**fields, "logout": "yes"})
        assert confirmed.headers["location"].startswith(CLIENT.post_logout_redirect_uris[0])

        after = await _authorize(http, provider, Pkce.new(), "s5")
        assert after.status_code == 200
        assert "Mật khẩu" in after.text


async def test_key_rotation_still_verifies() -> None:
    old, new = rsa_jwk("key-2026-1"), rsa_jwk("key-2026-2")
    client, accounts = [CLIENT], roster_accounts()
    with oidc_provider(accounts, client, keys=[old]) as before:
        port = before.port
        verifier = _verifier(before)
        first = (await _sign_in(before, "cb-badinh-01"))["access_token"]
        assert jwt.get_unverified_header(first)["kid"] == "key-2026-1"
        assert (await verifier.verify(first)).officer_id == "cb-badinh-01"
    # The provider starts again signing with the new key and still publishing the old one.
    with oidc_provider(accounts, client, keys=[new, old], port=port) as after:
        jwks = httpx.get(after.jwks_url).json()
        assert [k["kid"] for k in jwks["keys"]] == ["key-2026-2", "key-2026-1"]
        assert all("d" not in k for k in jwks["keys"])  # public halves only
        second = (await _sign_in(after, "cb-badinh-02"))["access_token"]
        assert jwt.get_unverified_header(second)["kid"] == "key-2026-2"
        assert (await verifier.verify(second)).officer_id == "cb-badinh-02"
        assert (await verifier.verify(first)).officer_id == "cb-badinh-01"


def test_a_provider_silent_at_start_up_is_started_once_more_then_refused() -> None:
    """A provider that neither answers nor exits in time is stopped and started again on a new
    port; if that one is silent too, the error holds both attempts' logs."""
    with (
        pytest.raises(TimeoutError, match=r"(?s)attempt 1, port \d+.*attempt 2, port \d+"),
        oidc_provider(roster_accounts(), [CLIENT], startup_timeout=0.0),
    ):
        pytest.fail("a provider that answered nothing was handed out")
