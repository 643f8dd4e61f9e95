"""End to end: intake's `POST /v1/attachments` checks each file by its content, and stores
nothing it refuses (counted in its GridFS collection)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.intake.attachments import AttachmentStore
from shared.storage import Document
from tests.conftest import Isolation
from tests.e2e.conftest import service_env
from tests.e2e.harness import Mailbox, Services
from tests.unit.test_intake_content import PDF, image

pytestmark = pytest.mark.e2e


@pytest.fixture
def intake(isolation: Isolation, mailbox: Mailbox, tmp_path: Path) -> Iterator[Services]:
    """Intake alone: nothing else takes part in an upload."""
    stack = Services(env=service_env(isolation, mailbox), logs=tmp_path)
    try:
        stack.start("intake")
        stack.wait_ready("intake")
        yield stack
    finally:
        stack.stop_all()


def _send(url: str, data: bytes, media_type: str, *, lang: str = "vi") -> httpx.Response:
    return httpx.post(
        f"{url}/v1/attachments",
        params={"document_type": "ct01"},
        content=data,
        headers={"Content-Type": media_type, "Accept-Language": lang},
        timeout=10,
    )


async def test_refused_files_say_why_and_leave_nothing_stored(
    intake: Services, isolation: Isolation, mongo: AsyncMongoClient[Document]
) -> None:
    db = mongo[isolation.database("intake")]

    async def stored() -> int:
        """Whole files: those with the SHA-256 intake records once every chunk is written
        (nx-27017 keeps a placeholder file document as soon as a chunk is: attachments.py)."""
        files = [f async for f in db["attachments.files"].find({})]
        return sum(1 for f in files if (f.get("metadata") or {}).get("sha256"))

    url = intake.url("intake")
    jpeg = image("JPEG")

    png_as_pdf = _send(url, image("PNG"), "application/pdf")
    assert png_as_pdf.status_code == 415, png_as_pdf.text
    assert png_as_pdf.headers["content-type"] == "application/problem+json"
    assert png_as_pdf.json()["code"] == "content_mismatch"
    assert png_as_pdf.json()["detail"] == (
        "Tệp gửi lên không đúng loại đã khai (là PNG, không phải PDF)."
    )
    english = _send(url, image("PNG"), "application/pdf", lang="en")
    assert english.json()["detail"] == (
        "The file sent is not of the declared type (it is PNG, not PDF)."
    )

    truncated = _send(url, jpeg[: len(jpeg) // 2], "image/jpeg")
    assert truncated.status_code == 422, truncated.text
    assert truncated.json()["code"] == "file_damaged"
    assert "Tệp JPEG bị hỏng hoặc chưa gửi hết" in truncated.json()["detail"]

    html = _send(url, b"<!doctype html><title>x</title><script>alert(1)</script>", "image/jpeg")
    assert html.status_code == 415 and html.json()["code"] == "content_mismatch"
    assert "không phải JPEG" in html.json()["detail"]

    assert await stored() == 0

    for data, media_type in ((PDF, "application/pdf"), (jpeg, "image/jpeg")):
        kept = _send(url, data, media_type)
        assert kept.status_code == 201, kept.text
        assert kept.json()["sha256"] == hashlib.sha256(data).hexdigest()
        assert await AttachmentStore(db).read(kept.json()["id"]) == data
    assert await stored() == 2
