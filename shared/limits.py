"""Abuse limits for public endpoints: request body size, and a per-client rate limit."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import auth
from shared.problems import Problem


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: refuse a body larger than the route's limit with 413 before reading it
    all (Content-Length), or as soon as a streamed body passes it."""

    def __init__(self, app: ASGIApp, *, default: int, larger: dict[str, int]) -> None:
        self.app = app
        self.default = default
        self.larger = larger  # path prefix → its own limit (e.g. uploads)

    def limit_for(self, path: str) -> int:
        return next((n for p, n in self.larger.items() if path.startswith(p)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(scope, send, limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge:
            await _too_large(scope, send, limit)


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "urn:motcua:problem:body_too_large",
            "title": "Request too large",
            "status": 413,
            "detail": f"The request body is larger than {limit} bytes.",
            "detail_vi": f"Nội dung yêu cầu lớn hơn {limit} byte.",
            "instance": scope["path"],
            "code": "body_too_large",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """A token bucket per client address: `per_minute` requests a minute, in bursts of
    `burst`. In memory, per process: behind several replicas, each enforces its own share."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.max_clients = max_clients
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 if the request may go ahead, else the seconds to wait before retrying."""
        now = self.clock()
        tokens, last = self.buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate if self.rate > 0 else 60.0
        self.buckets[client] = (tokens, now)
        while len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        return wait


async def client_of(request: Request) -> str:
    """Whom a request's rate is counted against: the officer of a valid bearer token (the
    officers of a province's desks all come through the portal's one address), else the
    client's address (the real one, behind a trusted proxy)."""
    header = request.headers.get("authorization", "")
    verifier = getattr(request.app.state, "verifier", None)
    if header[:7].lower() == "bearer " and isinstance(verifier, auth.TokenVerifier):
        try:
            claims = await verifier.verify(header[7:].strip())
        except auth.InvalidToken:
            pass  # counted by address, like anyone; the route answers for the token itself
        else:
            return f"officer:{claims.officer_id}"
    return request.client.host if request.client else "unknown"


def rate_limited(
    limiter_of: Callable[[Request], RateLimiter],
) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that answers 429 with Retry-After past the client's rate."""

    async def dependency(request: Request) -> None:
        wait = limiter_of(request).take(await client_of(request))
        if wait > 0:
            seconds = max(1, int(wait + 0.999))
            raise Problem(
                429,
                f"Too many requests from this address; retry in {seconds} s.",
                f"Quá nhiều yêu cầu từ địa chỉ này; thử lại sau {seconds} giây.",
                code="rate_limited",
                headers={"Retry-After": str(seconds)},
            )

    return dependency
