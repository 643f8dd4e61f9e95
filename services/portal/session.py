"""The signed-in officer, kept in the session cookie (signed, HttpOnly, SameSite=Lax, Secure
over TLS): who they are and the access token the portal calls the services with.

The cookie is signed, not secret, so the access token in it is encrypted (Fernet, with a key
derived from the session secret): a cookie copied off a counter PC cannot be used as a bearer
token against the services; it works only through the portal, with its CSRF checks, and only
until the token expires."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any
from urllib.parse import quote

from cryptography.fernet import Fernet, InvalidToken
from fastapi import Depends, Request

from services.portal.settings import PortalSettings

COOKIE = "motcua_session"
_KEY = "officer"


@dataclass(frozen=True)
class SignedInOfficer:
    id: str
    name: str
    role: str
    unit: str
    token: str
    expires_at: float
    """When the access token expires (seconds since the epoch): the officer signs in again."""
    via: str = "oidc"
    """How they signed in: `oidc` (the province's provider) or `dev` (development sign-in)."""
    refresh: str = ""
    """The provider's refresh token, if it gave one: a new access token when this one expires,
    so an officer's half-typed form is not lost to a sign-in."""

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


class NotSignedIn(Exception):
    """The page needs a signed-in officer; the app redirects to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def options(settings: PortalSettings) -> dict[str, Any]:
    """How the session cookie is made (Starlette's SessionMiddleware, signed by itsdangerous)."""
    return {
        "secret_key": settings.session_secret.get_secret_value(),
        "session_cookie": COOKIE,
        "max_age": settings.session_max_age_seconds,
        "same_site": "lax",
        "https_only": settings.secure_cookies,
    }


def cipher(settings: PortalSettings) -> Fernet:
    """What encrypts the access token in the cookie; the app keeps it as `state.session_cipher`."""
    secret = settings.session_secret.get_secret_value().encode()
    digest = hashlib.sha256(b"motcua portal session token\0" + secret).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _cipher(request: Request) -> Fernet:
    found: Any = request.app.state.session_cipher
    assert isinstance(found, Fernet)
    return found


def sign_in(request: Request, officer: SignedInOfficer) -> None:
    """Start a new session for `officer` (a fresh session: nothing of the old one survives)."""
    request.session.clear()
    keep(request, officer)


def keep(request: Request, officer: SignedInOfficer) -> None:
    """Store `officer` in the session (its tokens sealed), leaving the rest of it as it is."""
    cipher = _cipher(request)

    def seal(value: str) -> str:
        return cipher.encrypt(value.encode()).decode() if value else ""

    sealed = replace(officer, token=seal(officer.token), refresh=seal(officer.refresh))
    request.session[_KEY] = asdict(sealed)


def sign_out(request: Request) -> None:
    request.session.clear()


def stored_officer(request: Request) -> SignedInOfficer | None:
    """The officer the session holds, expired or not (None if none, or unreadable)."""
    raw: Any = request.session.get(_KEY)
    if not isinstance(raw, dict):
        return None
    cipher = _cipher(request)

    def unseal(value: str) -> str:
        return cipher.decrypt(value.encode()).decode() if value else ""

    try:
        sealed = SignedInOfficer(**raw)
        return replace(sealed, token=unseal(sealed.token), refresh=unseal(sealed.refresh))
    except (TypeError, InvalidToken):  # an older shape, or sealed under another secret
        request.session.clear()
        return None


def current_officer(request: Request) -> SignedInOfficer | None:
    """The signed-in officer, or None (also when their token has expired)."""
    officer = stored_officer(request)
    if officer is not None and officer.expired:
        return None
    return officer


Refresher = Callable[[Request, SignedInOfficer], Awaitable[SignedInOfficer | None]]


def next_path(request: Request) -> str:
    """Where to come back after sign-in: this page, as a local path."""
    query = f"?{request.url.query}" if request.url.query else ""  # already percent-encoded
    return quote(request.url.path, safe="/") + query


async def require_officer(request: Request) -> SignedInOfficer:
    officer = current_officer(request)
    if officer is None:
        officer = await _refreshed(request)
    if officer is None:
        request.session.pop(_KEY, None)
        raise NotSignedIn(next_path(request) if request.method == "GET" else "/")
    return officer


async def _refreshed(request: Request) -> SignedInOfficer | None:
    """A new access token for an officer whose token expired, through the app's refresher
    (the sign-in's, with the provider's refresh token), kept in the session; else None."""
    stale = stored_officer(request)
    refresher: Refresher | None = getattr(request.app.state, "refresher", None)
    if stale is None or not stale.refresh or refresher is None:
        return None
    fresh = await refresher(request, stale)
    if fresh is not None:
        keep(request, fresh)
    return fresh


def safe_next(value: str | None) -> str:
    """`value` if it is a path on this site, else the home page (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


Officer = Annotated[SignedInOfficer, Depends(require_officer)]
