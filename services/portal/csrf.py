"""CSRF protection of every form: a per-session token in a hidden field (or the `X-CSRF-Token`
header htmx sends), compared in constant time, plus an Origin check when the browser sends one."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from shared.problems import Problem

_KEY = "csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"


def token(request: Request) -> str:
    """This session's CSRF token (made on first use)."""
    value = request.session.get(_KEY)
    if not isinstance(value, str):
        value = secrets.token_urlsafe(32)
        request.session[_KEY] = value
    return value


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def check(request: Request) -> None:
    """Refuse (403) a state-changing request without this session's token."""
    settings = request.app.state.settings
    origin = request.headers.get("origin")
    if origin and origin != "null" and _origin(origin) != _origin(settings.public_url):
        raise _refused("the request comes from another site")
    sent = request.headers.get(HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(FIELD)
        sent = value if isinstance(value, str) else None
    expected = request.session.get(_KEY)
    if not sent or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise _refused("the form's security token is missing or stale")


def _refused(why: str) -> Problem:
    return Problem(
        403,
        f"Refused: {why}. Reload the page and try again.",
        "Yêu cầu bị từ chối vì mã bảo vệ biểu mẫu không hợp lệ. Vui lòng tải lại trang và thử lại.",
        code="csrf_failed",
    )


Checked = Annotated[None, Depends(check)]
