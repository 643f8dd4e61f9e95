"""Officer authentication: HS256 JWT bearer tokens with `sub`, `role` and `unit` claims."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.review.roster import Officer, Roster
from services.review.settings import ReviewSettings
from shared import auth
from shared.problems import Problem

_bearer = HTTPBearer(auto_error=False)


def issue_token(officer: Officer, settings: ReviewSettings) -> str:
    """A signed token for a rostered officer."""
    return auth.issue(
        auth.OfficerClaims(officer.id, officer.role, officer.unit),
        secret=settings.shared.jwt_secret.get_secret_value(),
        issuer=settings.shared.jwt_issuer,
        ttl=timedelta(minutes=settings.token_ttl_minutes),
    )


def _unauthorized(detail: str, detail_vi: str) -> Problem:
    return Problem(
        401, detail, detail_vi, code="unauthorized", headers={"WWW-Authenticate": "Bearer"}
    )


def authenticate(token: str, settings: ReviewSettings, roster: Roster) -> Officer:
    """The rostered officer a valid token names; its role and unit must match the roster."""
    try:
        claims = auth.verify(
            token,
            secret=settings.shared.jwt_secret.get_secret_value(),
            issuer=settings.shared.jwt_issuer,
        )
    except auth.InvalidToken as exc:
        raise _unauthorized(f"Invalid token: {exc}.", "Mã xác thực không hợp lệ.") from exc
    officer = roster.officer(claims.officer_id)
    if officer is None:
        raise _unauthorized(
            "The token names no rostered officer.", "Cán bộ không có trong danh sách."
        )
    if claims.role != officer.role or claims.unit != officer.unit:
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
