"""The portal's tus 1.0.0 server in-process (httpx over ASGI), over a fake intake that checks
files with intake's own content rules: create, PATCH in parts, HEAD, resume after a cut, the
refusals (wrong offset, too large, expired, another session's upload), and the attachment."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from services.intake.catalogue import load_catalogue
from services.intake.content import ContentRefused, real_type
from services.portal import app as portal_app
from services.portal import csrf, uploads
from services.portal.app import create_app
from services.portal.clients import Apis
from services.portal.settings import PortalSettings
from services.portal.upload_settings import UploadSettings
from tests.unit.test_intake_content import PDF
from tests.unit.test_portal_photos import camera_jpeg

CATALOGUE = load_catalogue()
TUS = {"Tus-Resumable": "1.0.0"}
PROCEDURE = "1.004194"  # temporary residence: ct01 and legal_residence_proof, 5 MiB each


@dataclass
class FakeIntake:
    """Intake's catalogue and `POST /v1/attachments`, refusing what intake's content check
    refuses."""

    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.startswith("/v1/procedures/"):
            procedure = CATALOGUE.procedures.get(path.rsplit("/", 1)[1])
            if procedure is None:
                return httpx.Response(404, json={"code": "procedure_not_found", "detail": "?"})
            return httpx.Response(200, json=procedure.summary())
        if path == "/v1/attachments":
            media = request.headers["content-type"]
            try:
                real_type(request.content, media)
            except ContentRefused as refused:
                return httpx.Response(
                    refused.status, json={"code": refused.code, "detail": refused.detail_vi}
                )
            file_id = f"f{len(self.files) + 1:023d}"
            kind = request.url.params["document_type"]
            self.files[file_id] = (kind, media, request.content)
            return httpx.Response(
                201,
                json={
                    "id": file_id,
                    "document_type": kind,
                    "media_type": media,
                    "size": len(request.content),
                    "sha256": hashlib.sha256(request.content).hexdigest(),
                },
            )
        return httpx.Response(404, json={"code": "not_found", "detail": path})


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Portal:
    app: Any
    intake: FakeIntake
    clock: Clock
    folder: Path

    @asynccontextmanager
    async def citizen(self) -> AsyncIterator[httpx.AsyncClient]:
        """A browser with its own session (cookie) and CSRF header."""
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://portal.test") as c:
            c.headers["x-csrf-token"] = (await c.get("/probe/csrf")).text
            c.headers.update(TUS)
            yield c


@pytest.fixture
async def portal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Portal]:
    probe = APIRouter()

    @probe.get("/probe/csrf")
    async def probe_csrf(request: Request) -> Response:
        return PlainTextResponse(csrf.token(request))

    monkeypatch.setattr(portal_app, "ROUTERS", [*portal_app.ROUTERS, probe])
    settings = PortalSettings(public_url="http://portal.test")
    app = create_app(settings)
    intake, clock = FakeIntake(), Clock()
    async with app.router.lifespan_context(app):
        await app.state.apis.close()
        app.state.apis = Apis(settings, httpx.AsyncClient(transport=httpx.MockTransport(intake)))
        wired = uploads.Uploads(
            UploadSettings(folder=tmp_path, max_bytes=8 * 1024 * 1024, expiry_seconds=3600)
        )
        wired.store.clock = clock
        app.state.uploads = wired
        yield Portal(app, intake, clock, tmp_path)


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def create(
    client: httpx.AsyncClient,
    length: int,
    filetype: str = "application/pdf",
    document_type: str = "ct01",
) -> httpx.Response:
    return await client.post(
        "/uploads",
        headers={
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(
                procedure=PROCEDURE,
                document_type=document_type,
                filename="to-khai.pdf",
                filetype=filetype,
            ),
        },
    )


async def patch(client: httpx.AsyncClient, url: str, at: int, data: bytes) -> httpx.Response:
    return await client.patch(
        url,
        content=data,
        headers={"Upload-Offset": str(at), "Content-Type": "application/offset+octet-stream"},
    )


def scanned_pdf(size: int) -> bytes:
    """A PDF of about `size` bytes (a scan's weight), that intake's content check accepts."""
    return PDF[:-6] + b"%" + b"x" * max(size - len(PDF), 0) + b"\n%%EOF\n"


async def test_the_server_tells_its_version_extensions_and_size_cap(portal: Portal) -> None:
    async with portal.citizen() as client:
        answer = await client.options("/uploads")
        assert answer.status_code == 204
        assert answer.headers["tus-version"] == "1.0.0"
        assert set(answer.headers["tus-extension"].split(",")) == {
            "creation",
            "expiration",
            "termination",
        }
        assert answer.headers["tus-max-size"] == str(8 * 1024 * 1024)
        old = await client.head("/uploads/" + "0" * 32, headers={"Tus-Resumable": "0.2.2"})
        assert old.status_code == 412 and old.headers["tus-version"] == "1.0.0"


async def test_a_file_sent_in_parts_is_stored_whole_in_intake(portal: Portal) -> None:
    data = scanned_pdf(300_000)
    async with portal.citizen() as client:
        created = await create(client, len(data))
        assert created.status_code == 201, created.text
        url = created.headers["location"]
        assert url.startswith("/uploads/") and created.headers["upload-expires"].endswith("GMT")
        at = 0
        for part in (data[:100_000], data[100_000:250_000], data[250_000:]):
            answer = await patch(client, url, at, part)
            assert answer.status_code == 204, answer.text
            at = int(answer.headers["upload-offset"])
            head = await client.head(url)
            assert head.headers["upload-offset"] == str(at)
            assert head.headers["upload-length"] == str(len(data))
            assert head.headers["cache-control"] == "no-store"
        assert at == len(data)
        attached = (await client.get(url + "/attachment")).json()
    [(kind, media, stored)] = portal.intake.files.values()
    assert (kind, media) == ("ct01", "application/pdf") and stored == data
    assert attached["sha256"] == hashlib.sha256(data).hexdigest()
    assert attached["id"] in portal.intake.files and attached["resized"] is False
    assert not list(portal.folder.glob("*.part"))  # nothing kept once intake has it


async def cut_patch(portal: Portal, client: httpx.AsyncClient, url: str, data: bytes) -> None:
    """A PATCH whose connection drops after `data`: the server gets the body so far, then
    `http.disconnect`, as uvicorn tells it when the phone loses its signal."""
    headers = {
        **client.headers,
        "cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items()),
        "upload-offset": "0",
        "content-type": "application/offset+octet-stream",
        "content-length": str(len(data) * 3),
    }
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": data, "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PATCH",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("portal.test", 80),
        "state": {},
    }
    await portal.app(scope, receive, send)


async def test_an_upload_cut_mid_part_resumes_from_what_arrived(portal: Portal) -> None:
    data = scanned_pdf(200_000)
    async with portal.citizen() as client:
        url = (await create(client, len(data))).headers["location"]
        await cut_patch(portal, client, url, data[:70_000])
        at = int((await client.head(url)).headers["upload-offset"])
        assert at == 70_000  # what arrived before the cut is kept
        stale = await patch(client, url, 0, data)
        assert stale.status_code == 409 and stale.json()["code"] == "offset"
        assert "70000" in stale.json()["detail"]
        assert (await patch(client, url, at, data[at:])).status_code == 204
        attached = (await client.get(url + "/attachment")).json()
    assert attached["sha256"] == hashlib.sha256(data).hexdigest()
    assert portal.intake.files[attached["id"]][2] == data


async def test_too_large_and_too_long_are_413(portal: Portal) -> None:
    async with portal.citizen() as client:
        over_cap = await create(client, 9 * 1024 * 1024, filetype="image/jpeg")
        assert over_cap.status_code == 413 and "8 MB" in over_cap.json()["detail"]
        over_document = await create(client, 6 * 1024 * 1024)  # a PDF over its 5 MiB
        assert over_document.status_code == 413
        url = (await create(client, 10)).headers["location"]
        longer = await patch(client, url, 0, b"%PDF-" + b"x" * 20)
        assert longer.status_code == 413
        assert (await client.head(url)).headers["upload-offset"] == "10"


async def test_metadata_the_procedure_does_not_take_is_refused(portal: Portal) -> None:
    async with portal.citizen() as client:
        wrong_type = await create(client, 10, filetype="text/html")
        assert wrong_type.status_code == 415, wrong_type.text
        assert "application/pdf" in wrong_type.json()["detail"]
        wrong_document = await create(client, 10, document_type="passport")
        assert wrong_document.status_code == 422
        no_length = await client.post("/uploads", headers={"Upload-Metadata": metadata()})
        assert no_length.status_code == 400
    assert not list(portal.folder.glob("*.json"))


async def test_another_sessions_upload_is_unknown(portal: Portal) -> None:
    async with portal.citizen() as owner, portal.citizen() as stranger:
        url = (await create(owner, 10)).headers["location"]
        assert (await stranger.head(url)).status_code == 404
        assert (await patch(stranger, url, 0, b"%PDF-")).status_code == 404
        assert (await stranger.get(url + "/attachment")).status_code == 404
        assert (await stranger.delete(url)).status_code == 404
        assert (await owner.head(url)).status_code == 200


async def test_uploads_a_page_starts_at_once_all_stay_the_sessions(portal: Portal) -> None:
    """A form's two files start uploading together, each request with the cookie the page
    had; whichever answer's cookie the browser keeps, both uploads remain its own (CI once
    lost one: the first upload used to make a session key, so each set its own cookie)."""
    data = scanned_pdf(2_000)
    async with portal.citizen() as client:
        page_cookies = httpx.Cookies(client.cookies)
        first = await create(client, len(data))
        client.cookies = httpx.Cookies(page_cookies)  # sent at once: the page's cookie again
        second = await create(client, len(data), document_type="legal_residence_proof")
        assert first.status_code == second.status_code == 201
        assert "set-cookie" not in first.headers and "set-cookie" not in second.headers
        for created in (first, second):
            url = created.headers["location"]
            answer = await patch(client, url, 0, data)
            assert answer.status_code == 204, answer.text
            assert (await client.get(url + "/attachment")).status_code == 200
    assert len(portal.intake.files) == 2


async def test_an_expired_upload_is_gone_and_swept(portal: Portal) -> None:
    async with portal.citizen() as client:
        url = (await create(client, 10)).headers["location"]
        other = (await create(client, 10)).headers["location"]
        portal.clock.now += 3601
        gone = await client.head(url)
        assert gone.status_code == 410
        assert (await client.head(url)).status_code == 404  # and deleted
        await create(client, 10)  # a new upload sweeps the others that expired
        assert (await client.head(other)).status_code == 404
    assert len(list(portal.folder.glob("*.json"))) == 1


async def test_a_terminated_upload_is_deleted(portal: Portal) -> None:
    async with portal.citizen() as client:
        url = (await create(client, 10)).headers["location"]
        assert (await client.delete(url)).status_code == 204
        assert (await client.head(url)).status_code == 404
    assert not list(portal.folder.iterdir())


async def test_a_phone_photo_is_resized_before_intake_and_a_fake_one_refused(
    portal: Portal,
) -> None:
    photo = camera_jpeg()
    async with portal.citizen() as client:
        url = (await create(client, len(photo), "image/jpeg", "legal_residence_proof")).headers[
            "location"
        ]
        assert (await patch(client, url, 0, photo)).status_code == 204
        attached = (await client.get(url + "/attachment")).json()
        assert attached["resized"] is True and attached["size"] <= 5 * 1024 * 1024
        html = b"<!doctype html><title>not a photo</title>"
        fake = (await create(client, len(html), "image/jpeg")).headers["location"]
        refused = await patch(client, fake, 0, html)
        assert refused.status_code == 415 and refused.json()["code"] == "content_mismatch"
        assert (await client.get(fake + "/attachment")).status_code == 415
    assert len(portal.intake.files) == 1


async def test_an_unfinished_upload_has_no_attachment_yet(portal: Portal) -> None:
    async with portal.citizen() as client:
        url = (await create(client, 10)).headers["location"]
        answer = await client.get(url + "/attachment")
        assert answer.status_code == 409 and answer.json()["code"] == "unfinished"
        assert answer.json()["detail"] == "Tệp chưa tải lên hết."
