"""Security headers on every answer: a Content-Security-Policy without inline script (htmx and
our scripts are files of our own origin), no sniffing, no framing by other sites, no referrer
sent elsewhere, and pages with officers' data never stored by caches."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def policy(form_targets: list[str]) -> str:
    """The CSP; `form_targets` are the other origins a form may post or redirect to (the OpenID
    Connect provider's, for sign-in and sign-out)."""
    origins = " ".join(sorted({_origin(u) for u in form_targets if u}))
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "object-src 'self'",
            "frame-src 'self'",
            "connect-src 'self'",
            "font-src 'self'",
            "base-uri 'none'",
            f"form-action 'self' {origins}".strip(),
            "frame-ancestors 'self'",
        ]
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def security_headers(csp: str, *, hsts: bool) -> dict[str, str]:
    """The headers every answer carries (unless a route set its own, e.g. a sandboxed file)."""
    values = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "geolocation=(), microphone=()",
        "Cache-Control": "no-store",
    }
    if hsts:
        values["Strict-Transport-Security"] = "max-age=31536000"
    return values


class SecurityHeaders:
    def __init__(self, app: ASGIApp, csp: str, *, hsts: bool) -> None:
        self.app = app
        self.values = security_headers(csp, hsts=hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.values.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
