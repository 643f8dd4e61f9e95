"""Officer authentication: a bearer token (HS256 or RS256, see shared/auth.py) naming an active
officer of the directory, whose role and unit must still be the token's."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from services.review.directory import Directory
from services.review.roster import Officer
from services.review.settings import ReviewSettings
from shared import auth
from shared.problems import Problem
from shared.web import OfficerClaims


def issue_token(officer: Officer, settings: ReviewSettings) -> str:
    """A signed HS256 token for an officer (RS256 tokens come from the identity provider)."""
    return auth.issue(
        auth.OfficerClaims(officer.id, officer.role, officer.unit),
        secret=settings.shared.jwt_secret.get_secret_value(),
        issuer=settings.shared.jwt_issuer,
        ttl=timedelta(minutes=settings.token_ttl_minutes),
        audience=settings.shared.jwt_audience,
    )


async def authenticate(claims: auth.OfficerClaims, directory: Directory) -> Officer:
    """The active officer valid claims name; their role and unit must match the directory."""
    officer = (await directory.roster()).officer(claims.officer_id)
    if officer is None or not officer.active:
        raise Problem(
            401,
            "The token names no active officer.",
            "Cán bộ không có trong danh sách.",
            code="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if claims.role != officer.role or claims.unit != officer.unit:
        raise Problem(
            403,
            "The token's role or unit no longer matches the directory.",
            "Vai trò hoặc đơn vị trong mã xác thực không khớp danh sách cán bộ.",
            code="stale_token",
        )
    return officer


async def current_officer(request: Request, claims: OfficerClaims) -> Officer:
    return await authenticate(claims, request.app.state.directory)


CurrentOfficer = Annotated[Officer, Depends(current_officer)]
