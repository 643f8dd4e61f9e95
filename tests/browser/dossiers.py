"""Dossiers for the browser journeys: filed online by a citizen through intake's public API
with two real documents (a PDF and a PNG, so the browser can show them), and what a test reads
back: the PDF slips' text, the mails notify sent."""

from __future__ import annotations

import asyncio
import copy
import io
import subprocess
import time
import unicodedata
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from PIL import Image
from pypdf import PdfWriter

from services.intake.openapi import example
from tests.browser.stacks import Stack
from tests.factories import CATALOGUE
from tools.devstack import ROOT

TWO_LEVEL = "1.004222"
"""Đăng ký thường trú: two documents required, received by an officer, approved by the chief."""
HOAN_KIEM = "00070"  # Công an phường Hoàn Kiếm: one officer (cb-hoankiem-01) and its chief
APPLICANT = "Trần Văn Minh"
EMAIL = "tran.van.minh@example.vn"


def needs(*pieces: tuple[str, str]) -> pytest.MarkDecorator:
    """Skip until each (file, branch) is on this branch: the piece of the console a journey
    goes through, which its engineer is still building."""
    missing = [
        f"{path} from branch {branch}" for path, branch in pieces if not (ROOT / path).exists()
    ]
    return pytest.mark.skipif(bool(missing), reason="needs " + "; ".join(missing))


def pdf_document() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def png_document() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 80), (11, 74, 139)).save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Filed:
    code: str
    secret: str
    documents: dict[str, tuple[str, bytes, str]]
    """document type → (attachment id, bytes, media type)"""


def file_online(stack: Stack, ward: str = HOAN_KIEM) -> Filed:
    """The two-level procedure's example form, with an e-mail to notify, filed online."""
    intake = stack.url("intake")
    documents: dict[str, tuple[str, bytes, str]] = {}
    for kind, data, media_type in [
        ("ct01", pdf_document(), "application/pdf"),
        ("legal_residence_proof", png_document(), "image/png"),
    ]:
        uploaded = httpx.post(
            f"{intake}/v1/attachments",
            params={"document_type": kind},
            content=data,
            headers={"Content-Type": media_type},
            timeout=15,
        )
        assert uploaded.status_code == 201, uploaded.text
        documents[kind] = (str(uploaded.json()["id"]), data, media_type)
    body: dict[str, Any] = copy.deepcopy(example(CATALOGUE.procedures[TWO_LEVEL]))
    body["applicant"].update(full_name=APPLICANT, email=EMAIL)
    body["notify_by"] = ["email"]
    body["residence"]["ward_code"] = ward
    body["attachments"] = [{"document_type": k, "id": v[0]} for k, v in documents.items()]
    answer = httpx.post(f"{intake}/v1/dossiers", json=body, timeout=15)
    assert answer.status_code == 201, answer.text
    receipt = answer.json()
    return Filed(str(receipt["code"]), str(receipt["access_secret"]), documents)


def pdf_text(pdf: bytes) -> str:
    """The text of a PDF as pdftotext (poppler) reads it, NFC, each run of spaces and line
    breaks one space (a date the layout wrapped reads whole)."""
    assert pdf.startswith(b"%PDF-"), pdf[:200]
    out = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True, timeout=60
    )
    return " ".join(unicodedata.normalize("NFC", out.stdout.decode("utf-8")).split())


async def mail_with_subject(stack: Stack, subject: str, timeout: float = 45) -> EmailMessage:
    """The e-mail notify sent with `subject` (the harness's SMTP mailbox)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in stack.mailbox.messages:
            if message["Subject"] == subject:
                return message
        await asyncio.sleep(0.2)
    got = [m["Subject"] for m in stack.mailbox.messages]
    raise AssertionError(f"no e-mail {subject!r} in {timeout}s (got {got})")
