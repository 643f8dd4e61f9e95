"""End to end: a citizen's resumable upload (tus) through the portal process to intake's
GridFS, its connection really dropped halfway (the socket closed mid-PATCH), resumed, and the
stored file's SHA-256 equal to the original's; a phone photo resized on the way."""

from __future__ import annotations

import hashlib
import io
import re
import socket
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from pymongo import AsyncMongoClient

from services.intake.attachments import AttachmentStore
from shared.storage import Document
from tests.conftest import Isolation
from tests.e2e.harness import Services, eventually
from tests.unit.test_portal_photos import camera_jpeg
from tests.unit.test_portal_uploads import metadata, scanned_pdf

pytestmark = pytest.mark.e2e
TUS = {"Tus-Resumable": "1.0.0"}


def citizen(services: Services) -> httpx.Client:
    """A browser session on the portal: its cookie, and the CSRF token its pages carry."""
    services.start("portal")
    services.wait_ready("portal")
    client = httpx.Client(base_url=services.url("portal"), timeout=30, headers=TUS)
    page = client.get("/signin").text
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert token, page[:500]
    client.headers["X-CSRF-Token"] = token.group(1)
    return client


def create(client: httpx.Client, length: int, filetype: str, document_type: str) -> str:
    answer = client.post(
        "/uploads",
        headers={
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(
                procedure="1.004194",
                document_type=document_type,
                filename="giay-to",
                filetype=filetype,
            ),
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.headers["location"]


def cut_patch(client: httpx.Client, base: str, path: str, data: bytes, total: int) -> None:
    """A PATCH announcing `total` bytes whose socket is closed after `data`: a lost signal."""
    where = urlsplit(base)
    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: {where.netloc}\r\nTus-Resumable: 1.0.0\r\n"
        f"X-CSRF-Token: {client.headers['X-CSRF-Token']}\r\nCookie: {cookies}\r\n"
        "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {total}\r\n\r\n"
    ).encode()
    with socket.create_connection((where.hostname, where.port or 80), timeout=10) as sock:
        sock.sendall(head + data)


async def test_an_upload_cut_halfway_resumes_and_intake_stores_the_same_bytes(
    services: Services, isolation: Isolation, mongo: AsyncMongoClient[Document]
) -> None:
    data = scanned_pdf(1_500_000)
    client = citizen(services)
    url = create(client, len(data), "application/pdf", "ct01")
    cut_patch(client, services.url("portal"), url, data[:600_000], len(data))

    def kept() -> int:
        return int(client.head(url).headers["upload-offset"])

    await eventually(lambda: kept() == 600_000, timeout=10)  # what arrived before the cut

    def resume() -> httpx.Response | None:
        """The rest, as tus-js-client sends it; a 409 while the cut request still ends."""
        at = kept()
        answer = client.patch(
            url,
            content=data[at:],
            headers={"Upload-Offset": str(at), "Content-Type": "application/offset+octet-stream"},
        )
        return None if answer.status_code == 409 else answer

    done = await eventually(resume, timeout=10)
    assert done.status_code == 204, done.text
    attachment = client.get(url + "/attachment").json()

    stored = await AttachmentStore(mongo[isolation.database("intake")]).read(attachment["id"])
    assert stored is not None
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    assert attachment["sha256"] == hashlib.sha256(data).hexdigest()


async def test_a_phone_photo_reaches_intake_resized_upright_and_without_gps(
    services: Services, isolation: Isolation, mongo: AsyncMongoClient[Document]
) -> None:
    photo = camera_jpeg(orientation=6)
    client = citizen(services)
    url = create(client, len(photo), "image/jpeg", "legal_residence_proof")
    sent = client.patch(
        url,
        content=photo,
        headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert sent.status_code == 204, sent.text
    attachment = client.get(url + "/attachment").json()
    assert attachment["resized"] is True and attachment["media_type"] == "image/jpeg"
    stored = await AttachmentStore(mongo[isolation.database("intake")]).read(attachment["id"])
    assert stored is not None and len(stored) < len(photo)
    image = Image.open(io.BytesIO(stored))
    assert image.size == (1500, 2000)  # turned upright, longest side 2000 px
    assert not image.getexif()

    html = b"<!doctype html><p>not a photo</p>"
    fake = create(client, len(html), "image/jpeg", "legal_residence_proof")
    refused = client.patch(
        fake,
        content=html,
        headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert refused.status_code == 415, refused.text
    assert refused.json()["detail"].startswith("Tệp gửi lên không đúng loại đã khai")
