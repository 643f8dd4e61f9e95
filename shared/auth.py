"""Officers' bearer tokens: JWTs with `sub` (officer id), `role` (one of shared/roles.py) and
`unit` claims.

Signed either with a shared secret (HS256; Motcua issues them itself) or by the province's
identity provider (RS256), whose public keys are fetched from its JWKS URL, kept, and fetched
again when a token names a key id not seen yet (key rotation) — at most once per
`refresh_seconds`, so a flood of forged key ids cannot hammer the provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import jwt

from shared.clock import utcnow
from shared.roles import ROLES
from shared.settings import SharedSettings

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not ours."""


class KeysUnavailable(InvalidToken):
    """The identity provider's keys could not be fetched: the token cannot be checked now."""


@dataclass(frozen=True)
class OfficerClaims:
    officer_id: str
    role: str
    unit: str


def issue(
    claims: OfficerClaims, *, secret: str, issuer: str, ttl: timedelta, audience: str = ""
) -> str:
    """An HS256 token for `claims` (what `python -m services.review token` prints)."""
    now = utcnow()
    payload: dict[str, Any] = {
        "sub": claims.officer_id,
        "role": claims.role,
        "unit": claims.unit,
        "iss": issuer,
        "iat": now,
        "exp": now + ttl,
    }
    if audience:
        payload["aud"] = audience
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def _claims(
    token: str, key: Any, algorithm: str, issuer: str, audience: str | None
) -> OfficerClaims:
    required = ["sub", "exp", "iss", *(["aud"] if audience else [])]
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=issuer,
            audience=audience,
            options={"require": required, "verify_aud": audience is not None},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    role, unit = payload.get("role"), payload.get("unit")
    if not isinstance(role, str) or not isinstance(unit, str):
        raise InvalidToken("the token has no role or unit")
    if role not in ROLES:
        raise InvalidToken(f"the token names an unknown role {role!r}")
    return OfficerClaims(str(payload["sub"]), role, unit)


class TokenVerifier:
    """Checks officers' tokens as configured: HS256 with a shared secret, or RS256 with the
    keys of a JWKS URL."""

    def __init__(
        self,
        *,
        algorithm: str,
        issuer: str,
        secret: str = "",
        jwks_url: str = "",
        audience: str = "",
        refresh_seconds: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if algorithm not in ("HS256", "RS256"):
            raise ValueError(f"unsupported token algorithm {algorithm!r}: use HS256 or RS256")
        if algorithm == "RS256" and not jwks_url:
            raise ValueError("RS256 tokens need a JWKS URL (MOTCUA_JWT_JWKS_URL)")
        self.algorithm = algorithm
        self.issuer = issuer
        self.secret = secret
        self.jwks_url = jwks_url
        self.audience = audience or None
        self.refresh_seconds = refresh_seconds
        self.monotonic = monotonic
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> OfficerClaims:
        """The claims of a valid token, or InvalidToken (KeysUnavailable: try again later)."""
        if self.algorithm == "HS256":
            return _claims(token, self.secret, "HS256", self.issuer, self.audience)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        if header.get("alg") != "RS256":
            raise InvalidToken(f"the token is signed with {header.get('alg')!r}, not RS256")
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else "")
        return _claims(token, key, "RS256", self.issuer, self.audience)

    async def _key(self, kid: str) -> Any:
        if kid not in self._keys:
            async with self._lock:
                stale = (
                    self._fetched_at is None
                    or self.monotonic() - self._fetched_at >= self.refresh_seconds
                )
                if kid not in self._keys and stale:
                    await self._fetch()
        if kid not in self._keys:
            if len(self._keys) == 1 and not kid:  # a single key, tokens without `kid`
                return next(iter(self._keys.values()))
            raise InvalidToken(f"no signing key {kid!r} in the identity provider's keys")
        return self._keys[kid]

    async def _fetch(self) -> None:
        self._fetched_at = self.monotonic()
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                answer = await client.get(self.jwks_url)
                answer.raise_for_status()
                keys = jwt.PyJWKSet.from_dict(answer.json()).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            if not self._keys:
                raise KeysUnavailable(f"cannot fetch the signing keys: {exc}") from exc
            return  # keep the keys we have
        self._keys = {k.key_id or "": k.key for k in keys if k.key_type == "RSA"}


def verifier_for(settings: SharedSettings) -> TokenVerifier:
    """The verifier the shared settings describe."""
    return TokenVerifier(
        algorithm=settings.jwt_algorithm,
        issuer=settings.jwt_issuer,
        secret=settings.jwt_secret.get_secret_value(),
        jwks_url=settings.jwt_jwks_url,
        audience=settings.jwt_audience,
        refresh_seconds=settings.jwt_jwks_refresh_seconds,
    )
