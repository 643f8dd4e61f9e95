"""An outgoing HTTP request must not search sys.path for a module.

httpcore asks `import sniffio` four times per request. Without sniffio installed each ask is a
failed import (nothing is cached for a module that is not found), so Python's finders walk
sys.path again, about 45 µs a time: with it, a loopback POST cost about 1.0 ms of CPU instead
of 1.6 (client and server together). Notify's SMS, Zalo and webhook sends, the portal's calls
to every service and the benchmark's client all go through httpx."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

import httpx
import pytest


class Searches(MetaPathFinder):
    """Records the name of every module looked for that is not already imported."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        self.names.append(fullname)
        return None  # the next finder goes on as usual


@pytest.fixture
def searches() -> Iterator[Searches]:
    finder = Searches()
    sys.meta_path.insert(0, finder)
    try:
        yield finder
    finally:
        sys.meta_path.remove(finder)


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok")
        await writer.drain()


async def _post_twice(searches: Searches) -> list[str]:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            first = await client.post("/sms", json={"to": "0912345678"})  # imports what it uses
            assert first.status_code == 200
            searches.names.clear()
            second = await client.post("/sms", json={"to": "0912345678"})
            assert second.text == "ok"
            return list(searches.names)
    finally:
        server.close()
        await server.wait_closed()


def test_a_request_after_the_first_searches_for_no_module(searches: Searches) -> None:
    assert asyncio.run(_post_twice(searches)) == []
