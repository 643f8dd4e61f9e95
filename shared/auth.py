"""Officers' bearer tokens: HS256 JWTs with `sub` (officer id), `role` and `unit` claims."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import jwt

from shared.clock import utcnow

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not ours."""


@dataclass(frozen=True)
class OfficerClaims:
    officer_id: str
    role: str
    unit: str


def issue(claims: OfficerClaims, *, secret: str, issuer: str, ttl: timedelta) -> str:
    now = utcnow()
    payload = {
        "sub": claims.officer_id,
        "role": claims.role,
        "unit": claims.unit,
        "iss": issuer,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify(token: str, *, secret: str, issuer: str) -> OfficerClaims:
    """The claims of a valid token signed with `secret` by `issuer`."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["sub", "exp", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    role, unit = payload.get("role"), payload.get("unit")
    if not isinstance(role, str) or not isinstance(unit, str):
        raise InvalidToken("the token has no role or unit")
    return OfficerClaims(str(payload["sub"]), role, unit)
