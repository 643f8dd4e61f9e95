"""In Chromium: a file picked in an `<input type=file data-tus>` is sent by uploads.js
(tus-js-client) through a TCP proxy that drops the connection after part of the first PATCH;
the upload resumes where it stopped, the form gets intake's attachment id, and the file intake
stored has the original's SHA-256."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.intake.attachments import AttachmentStore
from services.portal.assets import Assets
from shared.storage import Document
from tests.conftest import Infra
from tests.unit.test_portal_uploads import scanned_pdf
from tools.devstack import free_port

stacks = pytest.importorskip("tests.browser.stacks")  # the browser engineer's fixtures
pytest.importorskip("tests.browser.conftest")  # browsing: its Browsing

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
CUT_AFTER = 200_000  # bytes of the first PATCH (headers included) let through


@dataclass
class DroppingProxy:
    """127.0.0.1:port → the portal; the first connection that carries a `PATCH /uploads/` is
    closed, both ways, once CUT_AFTER bytes from that request line have passed."""

    target: int
    port: int = field(default_factory=free_port)
    cut: bool = False
    seen: list[bytes] = field(default_factory=list)  # request lines, in order
    offsets: list[int] = field(default_factory=list)  # each PATCH's Upload-Offset

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self, ready: threading.Event, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        ready.set()
        async with server:
            await stop.wait()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        closed = asyncio.Event()

        async def upstream() -> None:
            counting: int | None = None
            while not closed.is_set() and (data := await reader.read(65536)):
                lines = data.split(b"\r\n")
                self.seen += [line for line in lines if line[:6] in _METHODS]
                self.offsets += [int(v.split(b":")[1]) for v in lines if v.startswith(OFFSET)]
                if counting is None and not self.cut and (at := data.find(b"PATCH /uploads/")) >= 0:
                    counting = -at
                if counting is not None:
                    counting += len(data)
                    if counting >= CUT_AFTER:
                        up_writer.write(data[: len(data) - (counting - CUT_AFTER)])
                        await up_writer.drain()
                        self.cut = True
                        break  # the phone lost its signal: both ends just go
                up_writer.write(data)
                await up_writer.drain()
            closed.set()

        async def downstream() -> None:
            while not closed.is_set() and (data := await up_reader.read(65536)):
                writer.write(data)
                await writer.drain()
            closed.set()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        await closed.wait()
        for task in tasks:
            task.cancel()
        for end in (writer, up_writer):
            with contextlib.suppress(Exception):
                end.transport.abort()


OFFSET = b"Upload-Offset:"
_METHODS = (b"PATCH ", b"HEAD /", b"POST /", b"GET /u", b"DELETE")


@contextlib.contextmanager
def running(proxy: DroppingProxy) -> Iterator[DroppingProxy]:
    """The proxy on its own thread and event loop (the test's loop drives the browser)."""
    loop, ready, stop = asyncio.new_event_loop(), threading.Event(), asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(proxy.serve(ready, stop),), daemon=True
    )
    thread.start()
    ready.wait(10)
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@pytest.fixture(scope="module")
def proxied(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, DroppingProxy]]:
    """The stack, its portal reached (and named in its public URL) through the proxy."""
    portal_port = free_port()
    with running(DroppingProxy(portal_port)) as proxy:
        env = {"MOTCUA_PORTAL_PUBLIC_URL": proxy.url}
        logs = tmp_path_factory.mktemp("upload-resume")
        with stacks.running_stack(infra, logs, portal_env=env, portal_port=portal_port) as stack:
            yield stack, proxy


# A form as the citizen pages render it (templates/uploads/head.html in the head, the input
# marked data-tus), placed on a portal page so the page's CSP and session are the real ones.
FORM = """token => {
    const form = document.createElement('form');
    form.method = 'post';
    form.action = '/procedures/1.004194/apply';
    form.innerHTML = '<input type="hidden" name="csrf_token">'
        + '<div class="field"><label for="f-ct01">CT01</label>'
        + '<input type="file" id="f-ct01" name="file.ct01" data-tus data-document-type="ct01">'
        + '</div><button type="submit">Nộp</button>';
    form.querySelector('[name=csrf_token]').value = token;
    document.querySelector('main').appendChild(form);
}"""


async def test_an_upload_cut_in_the_middle_resumes_and_the_stored_file_matches(
    proxied: tuple[Any, DroppingProxy], browsing: Any
) -> None:
    stack, proxy = proxied
    data = scanned_pdf(1_500_000)
    page = await browsing.page("phone", "upload")
    await page.goto(proxy.url + "/signin")
    token = await page.evaluate(
        "() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']"
    )
    await page.evaluate(FORM, token)
    assets = Assets()
    for script in ("vendor/tus-js-client-4.3.1.min.js", "uploads.js"):
        await page.add_script_tag(url=assets.url(script))
    await page.set_input_files(
        "#f-ct01", files=[{"name": "ct01.pdf", "mimeType": "application/pdf", "buffer": data}]
    )
    hidden = page.locator('input[type=hidden][name="doc.ct01"]')
    await hidden.wait_for(state="attached", timeout=60_000)
    attachment_id = await hidden.get_attribute("value")
    assert await page.locator("#f-ct01").is_disabled()  # the id is posted, not the file again

    assert proxy.cut, proxy.seen
    after_cut = proxy.seen[
        proxy.seen.index(next(s for s in proxy.seen if s.startswith(b"PATCH"))) :
    ]
    assert any(s.startswith(b"HEAD /uploads/") for s in after_cut), proxy.seen  # asked where
    # It went on from what reached the server before the cut, not from a part's start: the
    # bytes that passed were kept (the part is 512 KiB; the cut came after 200,000 bytes).
    # (A PATCH at 0 may come first and get 409 while the server still writes the cut one.)
    assert proxy.offsets[0] == 0, proxy.offsets
    assert any(0 < at < CUT_AFTER for at in proxy.offsets[1:]), proxy.offsets
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(stack.isolation.mongodb_url)
    try:
        db = mongo[stack.isolation.database("intake")]
        stored = await AttachmentStore(db).read(str(attachment_id))
    finally:
        await mongo.close()
    assert stored is not None
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
