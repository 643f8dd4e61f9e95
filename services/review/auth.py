"""Officer authentication: HS256 JWT bearer tokens with `sub`, `role` and `unit` claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.review.roster import Officer, Roster
from services.review.settings import ReviewSettings
from shared.problems import Problem

ALGORITHM = "HS256"
_bearer = HTTPBearer(auto_error=False)


def issue_token(officer: Officer, settings: ReviewSettings) -> str:
    """A signed token for a rostered officer."""
    now = datetime.now(UTC)
    claims = {
        "sub": officer.id,
        "role": officer.role,
        "unit": officer.unit,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + timedelta(minutes=settings.token_ttl_minutes),
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def _unauthorized(detail: str, detail_vi: str) -> Problem:
    return Problem(
        401, detail, detail_vi, code="unauthorized", headers={"WWW-Authenticate": "Bearer"}
    )


def authenticate(token: str, settings: ReviewSettings, roster: Roster) -> Officer:
    """The rostered officer a valid token names; its role and unit must match the roster."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "exp", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"Invalid token: {exc}.", "Mã xác thực không hợp lệ.") from exc
    officer = roster.officer(str(claims.get("sub")))
    if officer is None:
        raise _unauthorized(
            "The token names no rostered officer.", "Cán bộ không có trong danh sách."
        )
    if claims.get("role") != officer.role or claims.get("unit") != officer.unit:
        raise Problem(
            403,
            "The token's role or unit no longer matches the roster.",
            "Vai trò hoặc đơn vị trong mã xác thực không khớp danh sách cán bộ.",
            code="stale_token",
        )
    return officer


async def current_officer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Officer:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("A bearer token is required.", "Cần mã xác thực (Bearer).")
    return authenticate(
        credentials.credentials, request.app.state.settings, request.app.state.roster
    )


CurrentOfficer = Annotated[Officer, Depends(current_officer)]
