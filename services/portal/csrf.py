"""CSRF protection of every form: a per-session token in a hidden field (or the `X-CSRF-Token`
header htmx sends), compared in constant time, plus an Origin check when the browser sends one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from shared.problems import Problem

_KEY = "csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"


_BYTES = 32


def _secret(request: Request) -> bytes:
    """This session's CSRF secret (made on first use)."""
    value = request.session.get(_KEY)
    if not isinstance(value, str):
        value = secrets.token_urlsafe(_BYTES)
        request.session[_KEY] = value
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def bound_to_session(request: Request, purpose: str) -> str:
    """A value bound to this session, derived from its CSRF secret ("" before the session has
    one): what the session owns (its uploads) is known by it without a second key in the
    cookie, so two requests at once cannot each make one and keep only the last."""
    if not isinstance(request.session.get(_KEY), str):
        return ""
    return hmac.new(_secret(request), purpose.encode(), hashlib.sha256).hexdigest()


def token(request: Request) -> str:
    """A CSRF token for a page: the session's secret under a fresh random mask, so no two
    pages carry the same bytes and compression cannot be made to reveal it (BREACH)."""
    secret = _secret(request)
    pad = secrets.token_bytes(len(secret))
    masked = bytes(a ^ b for a, b in zip(pad, secret, strict=True))
    return base64.urlsafe_b64encode(pad + masked).decode().rstrip("=")


def _unmasked(sent: str) -> bytes | None:
    try:
        raw = base64.urlsafe_b64decode(sent + "=" * (-len(sent) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) % 2:
        return None
    half = len(raw) // 2
    return bytes(a ^ b for a, b in zip(raw[:half], raw[half:], strict=True))


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
    if not isinstance(request.session.get(_KEY), str) or not sent:
        raise _refused("the form's security token is missing or stale")
    opened = _unmasked(sent)
    if opened is None or not hmac.compare_digest(opened, _secret(request)):
        raise _refused("the form's security token is missing or stale")


def _refused(why: str) -> Problem:
    return Problem(
        403,
        f"Refused: {why}. Reload the page and try again.",
        "Yêu cầu bị từ chối vì mã bảo vệ biểu mẫu không hợp lệ. Vui lòng tải lại trang và thử lại.",
        code="csrf_failed",
    )


Checked = Annotated[None, Depends(check)]
