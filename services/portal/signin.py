"""Officers' sign-in and sign-out.

Through the province's OpenID Connect provider: Authlib's authorization-code flow with PKCE
(S256), state and nonce; the ID token is validated (issuer, audience, nonce, signature), the
access token is checked with the very verifier the services use (so a sign-in the services
would refuse fails here, with a clear page), and the officer (id, name, role, unit) and the
access token are kept in the session until the token expires. No refresh token is kept: when
the access token expires, the next page goes through the provider again, which still knows the
officer (its own session) and asks no password.

For `make run` only, a development sign-in lists the roster's officers and signs in as one
with an HS256 token of the development secret; it answers 404 unless development sign-in is on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
import yaml
from authlib.integrations.starlette_client import (  # type: ignore[import-untyped]
    OAuth,
    OAuthError,
    StarletteOAuth2App,
)
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from joserfc.errors import JoseError

from services.portal import csrf, session
from services.portal.rendering import Pages
from services.portal.settings import PortalSettings
from shared import auth

log = logging.getLogger(__name__)
OFFICER_HOME = "/queues"
"""Where an officer lands after signing in, unless they were going somewhere."""
router = APIRouter(include_in_schema=False)

CALLBACK = "/signin/callback"
SIGNED_OUT = "/signin/signed-out"
_NEXT = "signin.next"  # where the officer was going, kept in the session during the flow
_PROVIDER = "province"


@dataclass(frozen=True)
class RosterOfficer:
    id: str
    name: str
    role: str
    unit: str


def _settings(request: Request) -> PortalSettings:
    settings: PortalSettings = request.app.state.settings
    return settings


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def _development(settings: PortalSettings) -> bool:
    return bool(getattr(settings, "development_signin", False))


def _provider(request: Request) -> StarletteOAuth2App | None:
    """The provider's Authlib client (made once per app), or None if none is configured."""
    settings = _settings(request)
    if not settings.oidc_discovery_url:
        return None
    existing = getattr(request.app.state, "signin_oauth", None)
    if existing is None:
        secret = settings.oidc_client_secret.get_secret_value()
        oauth = OAuth()
        oauth.register(
            _PROVIDER,
            client_id=settings.oidc_client_id,
            client_secret=secret or None,
            server_metadata_url=settings.oidc_discovery_url,
            client_kwargs={
                "scope": settings.oidc_scopes,
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
                "timeout": settings.http_timeout_seconds,
            },
        )
        existing = oauth.create_client(_PROVIDER)
        request.app.state.signin_oauth = existing
    client: StarletteOAuth2App = existing
    return client


def _failed(request: Request, status: int, reason: str) -> Response:
    """A page that says, in the officer's language, why sign-in did not work."""
    t = _pages(request).catalogue.translator(_pages(request).language(request))
    return _pages(request).render(
        request, "signin/failed.html", status=status, reason=t(f"signin.failed.{reason}")
    )


@router.get("/signin")
async def signin(request: Request, next: str = OFFICER_HOME) -> Response:
    """Straight to the provider; with development sign-in on, a page offering both."""
    settings = _settings(request)
    target = session.safe_next(next)
    if settings.oidc_discovery_url and not _development(settings):
        return await _to_provider(request, target)
    if not settings.oidc_discovery_url and not _development(settings):
        return _failed(request, 503, "not_configured")
    return _pages(request).render(
        request,
        "signin/choose.html",
        oidc=bool(settings.oidc_discovery_url),
        query=urlencode({"next": target}),
    )


@router.get("/signin/oidc")
async def signin_oidc(request: Request, next: str = OFFICER_HOME) -> Response:
    return await _to_provider(request, session.safe_next(next))


async def _to_provider(request: Request, target: str) -> Response:
    provider = _provider(request)
    if provider is None:
        return _failed(request, 503, "not_configured")
    settings = _settings(request)
    extra = {"resource": settings.oidc_resource} if settings.oidc_resource else {}
    extra["ui_locales"] = _pages(request).language(request)
    try:
        redirect = await provider.authorize_redirect(
            request, settings.public_url.rstrip("/") + CALLBACK, **extra
        )
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("the OpenID Connect provider's discovery failed: %s", exc)
        return _failed(request, 503, "unreachable")
    request.session[_NEXT] = target
    return Response(status_code=303, headers={"Location": redirect.headers["location"]})


async def _accepted(request: Request, token: str) -> auth.OfficerClaims | None:
    """The token's claims if the services would accept it (the portal has their settings)."""
    verifier: auth.TokenVerifier = request.app.state.verifier
    try:
        return await verifier.verify(token)
    except auth.InvalidToken as exc:
        log.warning("a token the services would refuse: %s", exc)
        return None


@router.get(CALLBACK)
async def callback(request: Request) -> Response:
    """The provider sends the officer back: exchange the code, check the tokens, sign in."""
    provider = _provider(request)
    if provider is None:
        return _failed(request, 404, "not_configured")
    try:
        issuer = (await provider.load_server_metadata()).get("issuer")
        sent_by = request.query_params.get("iss")
        if sent_by is not None and sent_by != issuer:  # RFC 9207: a mix-up of providers
            return _failed(request, 400, "provider_error")
        token: dict[str, Any] = await provider.authorize_access_token(request)
    except OAuthError as exc:
        log.info("sign-in refused: %s %s", exc.error, exc.description)
        if exc.error == "access_denied":
            return _failed(request, 403, "access_denied")
        if exc.error == "mismatching_state":
            return _failed(request, 400, "bad_state")
        return _failed(request, 400, "provider_error")
    except httpx.HTTPError as exc:
        log.warning("the OpenID Connect provider does not answer: %s", exc)
        return _failed(request, 503, "unreachable")
    except JoseError as exc:  # a bad ID token (signature, issuer, audience, nonce)
        log.warning("the provider's ID token is not valid: %s", exc)
        return _failed(request, 400, "bad_token")
    identity: dict[str, Any] = token.get("userinfo") or {}
    claims = await _accepted(request, str(token.get("access_token", "")))
    if claims is None:
        return _failed(request, 403, "not_accepted")
    if not identity or identity.get("sub") != claims.officer_id:
        return _failed(request, 400, "bad_token")
    target = session.safe_next(request.session.get(_NEXT))
    expires_at = _expiry(token)
    officer = session.SignedInOfficer(
        id=claims.officer_id,
        name=str(identity.get("name") or claims.officer_id),
        role=claims.role,
        unit=claims.unit,
        token=str(token["access_token"]),
        expires_at=expires_at,
        via="oidc",
        refresh=str(token.get("refresh_token") or ""),
    )
    session.sign_in(request, officer)
    return RedirectResponse(target, status_code=303)


def _expiry(token: dict[str, Any]) -> float:
    # No expiry given: keep the token a few minutes only, then ask the provider again.
    return float(token.get("expires_at") or time.time() + float(token.get("expires_in", 300)))


async def refresh(
    request: Request, stale: session.SignedInOfficer
) -> session.SignedInOfficer | None:
    """A new access token for `stale` with its refresh token (the app's `state.refresher`):
    the officer goes on where they were, a half-filled form included. None if the provider
    refuses (the refresh token expired with its session, or was revoked): sign in again."""
    provider = _provider(request)
    if provider is None or stale.via != "oidc":
        return None
    try:
        token: dict[str, Any] = await provider.fetch_access_token(
            grant_type="refresh_token", refresh_token=stale.refresh
        )
    except (OAuthError, httpx.HTTPError) as exc:
        log.info("refreshing an officer's token failed: %s", exc)
        return None
    claims = await _accepted(request, str(token.get("access_token", "")))
    if claims is None or claims.officer_id != stale.id:
        return None
    return replace(
        stale,
        role=claims.role,
        unit=claims.unit,
        token=str(token["access_token"]),
        expires_at=_expiry(token),
        refresh=str(token.get("refresh_token") or stale.refresh),
    )


@router.post("/signout")
async def signout(request: Request, _: csrf.Checked) -> Response:
    """Forget the officer here, then end their session at the provider too."""
    officer = session.current_officer(request)
    session.sign_out(request)
    settings = _settings(request)
    signed_out = settings.public_url.rstrip("/") + SIGNED_OUT
    provider = _provider(request)
    if officer is None or officer.via != "oidc" or provider is None:
        return RedirectResponse(SIGNED_OUT, status_code=303)
    try:
        metadata = await provider.load_server_metadata()
    except (httpx.HTTPError, ValueError):
        metadata = {}
    end_session = metadata.get("end_session_endpoint")
    if not end_session:
        return RedirectResponse(SIGNED_OUT, status_code=303)
    query = urlencode(
        {"client_id": settings.oidc_client_id, "post_logout_redirect_uri": signed_out}
    )
    separator = "&" if "?" in end_session else "?"
    return RedirectResponse(f"{end_session}{separator}{query}", status_code=303)


@router.get(SIGNED_OUT)
async def signed_out(request: Request) -> Response:
    return _pages(request).render(request, "signin/signed_out.html")


def roster_officers(settings: PortalSettings) -> list[RosterOfficer]:
    """The active officers of the roster file (only what the development sign-in shows)."""
    raw = yaml.safe_load(settings.roster_file.read_text(encoding="utf-8")) or {}
    return [
        RosterOfficer(str(o["id"]), str(o["name"]), str(o["role"]), str(o["unit"]))
        for o in raw.get("officers", [])
        if o.get("active", True)
    ]


async def _development_only(request: Request) -> PortalSettings:
    settings = _settings(request)
    if not _development(settings):
        raise HTTPException(404)
    return settings


Development = Annotated[PortalSettings, Depends(_development_only)]


@router.get("/signin/dev")
async def dev_list(request: Request, settings: Development, next: str = OFFICER_HOME) -> Response:
    return _pages(request).render(
        request,
        "signin/dev.html",
        officers=roster_officers(settings),
        next=session.safe_next(next),
    )


@router.post("/signin/dev")
async def dev_signin(
    request: Request,
    settings: Development,  # before the CSRF check: off means 404, whatever was posted
    _: csrf.Checked,
    officer_id: Annotated[str, Form()],
    next_path: Annotated[str, Form(alias="next")] = OFFICER_HOME,
) -> Response:
    """Sign in as an officer of the roster, with an HS256 token of the development secret."""
    found = {o.id: o for o in roster_officers(settings)}.get(officer_id)
    if found is None:
        raise HTTPException(404)
    shared = settings.shared
    ttl = timedelta(seconds=settings.session_max_age_seconds)
    token = auth.issue(
        auth.OfficerClaims(found.id, found.role, found.unit),
        secret=shared.jwt_secret.get_secret_value(),
        issuer=shared.jwt_issuer,
        ttl=ttl,
        audience=shared.jwt_audience,
    )
    if not await _accepted(request, token):
        return _failed(request, 403, "dev_not_accepted")
    expires_at = time.time() + ttl.total_seconds()
    officer = session.SignedInOfficer(
        found.id, found.name, found.role, found.unit, token, expires_at, via="dev"
    )
    session.sign_in(request, officer)
    return RedirectResponse(session.safe_next(next_path), status_code=303)
