"""A small real HTTP server on 127.0.0.1 that stands in for a provider (SMS gateway, Zalo ZNS,
a partner): it records every request and answers from a script, in its own thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse

from tools.devstack import free_port


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class HttpStub:
    """Answers each request with the next scripted (status, json) reply, then `default`."""

    port: int = 0
    default: tuple[int, Any] = (200, {})
    script: deque[tuple[int, Any]] = field(default_factory=deque)
    scripts_for: dict[str, deque[tuple[int, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    delay: float = 0.0  # seconds before each answer: a slow provider

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, *replies: tuple[int, Any], containing: str = "") -> None:
        """Answer the next requests (those whose body contains `containing`) with `replies`."""
        if containing:
            self.scripts_for.setdefault(containing, deque()).extend(replies)
        else:
            self.script.extend(replies)

    def matching(self, text: str) -> list[Recorded]:
        return [r for r in self.requests if text.encode() in r.body]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        self.requests.append(
            Recorded(
                request.method,
                request.url.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
                time.monotonic(),
            )
        )
        script = next((q for k, q in self.scripts_for.items() if k.encode() in body), self.script)
        status, payload = script.popleft() if script else self.default
        if self.delay:
            await asyncio.sleep(self.delay)
        await JSONResponse(payload, status_code=status)(scope, receive, send)

    async def wait(self, count: int, timeout: float = 30) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return self.requests
            await asyncio.sleep(0.05)
        raise AssertionError(f"{count} request(s) not received in {timeout}s: {self.requests}")


@contextmanager
def http_stub(default: tuple[int, Any] = (200, {})) -> Iterator[HttpStub]:
    stub = HttpStub(port=free_port(), default=default)
    server = uvicorn.Server(
        uvicorn.Config(stub, host="127.0.0.1", port=stub.port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise AssertionError("stub server did not start")
        time.sleep(0.02)
    try:
        yield stub
    finally:
        server.should_exit = True
        thread.join(timeout=10)
