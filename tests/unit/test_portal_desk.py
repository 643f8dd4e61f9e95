"""Desk submission in-process, over a fake intake that validates with intake's own rules: the
form page, documents uploaded once per form, one dossier per Idempotency-Key, refusals shown
beside their fields with the values and files kept."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from services.intake.catalogue import FormError, load_catalogue
from services.intake.idempotency import fingerprint
from services.intake.submission import parse
from services.portal import app as portal_app
from services.portal import csrf, session
from services.portal.app import create_app
from services.portal.clients import Apis
from services.portal.settings import PortalSettings

CATALOGUE = load_catalogue()
PDF = b"%PDF-1.4\n% scanned CT01\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 a phone photo \xff\xd9"
DESK_OFFICER = session.SignedInOfficer(
    "cb-hoankiem-01", "Đỗ Minh Dũng", "officer", "CAP-HOANKIEM", "tok", 4e9, via="dev"
)


@asynccontextmanager
async def portal_over(
    monkeypatch: pytest.MonkeyPatch,
    services: Callable[[httpx.Request], Coroutine[None, None, httpx.Response]],
    officer: session.SignedInOfficer = DESK_OFFICER,
) -> AsyncIterator[httpx.AsyncClient]:
    """The portal in-process, calling `services` (a fake of their HTTP APIs), with `officer`
    signed in and the CSRF header set."""
    probe = APIRouter()

    @probe.get("/probe/sign-in")
    async def probe_sign_in(request: Request) -> Response:
        session.sign_in(request, officer)
        return PlainTextResponse(csrf.token(request))

    monkeypatch.setattr(portal_app, "ROUTERS", [*portal_app.ROUTERS, probe])
    settings = PortalSettings(public_url="http://portal.test")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await app.state.apis.close()
        app.state.apis = Apis(settings, httpx.AsyncClient(transport=httpx.MockTransport(services)))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://portal.test") as c:
            c.headers["x-csrf-token"] = (await c.get("/probe/sign-in")).text
            yield c


@dataclass
class FakeIntake:
    """Intake's procedures, attachments and desk submissions, in memory, with its rules."""

    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    dossiers: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        vi = request.headers.get("accept-language", "vi").startswith("vi")
        path = request.url.path
        if path == "/v1/procedures":
            return httpx.Response(200, json=[p.summary() for p in CATALOGUE])
        if path.startswith("/v1/procedures/"):
            p = CATALOGUE.procedures[path.rsplit("/", 1)[1]]
            schema = p.model.model_json_schema()
            return httpx.Response(200, json={**p.summary(), "form_schema": schema})
        if path == "/v1/attachments":
            file_id = f"att-{len(self.files) + 1}"
            self.files[file_id] = (
                request.url.params["document_type"],
                request.headers["content-type"],
                request.content,
            )
            return httpx.Response(201, json={"id": file_id, "sha256": "x", "size": 1})
        if path == "/v1/desk/dossiers":
            await asyncio.sleep(0.05)  # long enough for a double click to overlap
            return self.submit(json.loads(request.content), request.headers, vi)
        return httpx.Response(404, json={"code": "http_404", "detail": "no"})

    def submit(self, body: dict[str, Any], headers: httpx.Headers, vi: bool) -> httpx.Response:
        assert headers["authorization"] == "Bearer tok"
        self.bodies.append(body)
        key = headers["idempotency-key"]
        if key in self.keys:
            first, answer = self.keys[key]
            if first != fingerprint(body):
                return problem(409, "idempotency_key_reused", [])
            return httpx.Response(201, json=answer, headers={"Idempotent-Replayed": "true"})
        try:
            parse(body, CATALOGUE, channel=1)
            missing = [
                d.type
                for d in CATALOGUE.procedures[body["procedure_code"]].documents
                if d.required and d.type not in {a["document_type"] for a in body["attachments"]}
            ]
            if missing:
                raise FormError(
                    [
                        {
                            "field": f"attachments[{m}]",
                            "code": "missing_document",
                            "message": "A required document is missing.",
                            "message_vi": "Thiếu giấy tờ bắt buộc.",
                        }
                        for m in missing
                    ]
                )
        except FormError as exc:
            errors = [
                {"field": e["field"], "message": e["message_vi"] if vi else e["message"]}
                for e in exc.errors
            ]
            return problem(422, "validation_failed", errors)
        answer = {
            "code": f"G01.99-261201-{len(self.dossiers) + 1:04d}",
            "procedure_code": body["procedure_code"],
            "status": "submitted",
            "received_at": "2026-12-01T01:30:00Z",
            "promised_at": "2026-12-04T09:15:00Z",
            "fee": 15000,
            "access_secret": f"SECRET{len(self.dossiers) + 1}",
        }
        self.dossiers.append(body)
        self.keys[key] = (fingerprint(body), answer)
        return httpx.Response(201, json=answer)


def problem(status: int, code: str, errors: list[dict[str, str]]) -> httpx.Response:
    body = {
        "status": status,
        "code": code,
        "detail": "Hồ sơ có trường không hợp lệ.",
        "errors": errors,
    }
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


@pytest.fixture
def intake() -> FakeIntake:
    return FakeIntake()


@pytest.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, intake: FakeIntake
) -> AsyncIterator[httpx.AsyncClient]:
    async with portal_over(monkeypatch, intake) as c:
        yield c


FORM = {
    "applicant.full_name": "Nguyễn Thị Ánh Tuyết",
    "applicant.date_of_birth": "1990-05-17",
    "applicant.sex": "female",
    "applicant.personal_id": "001190012345",
    "applicant.phone": "0912 345 678",
    "residence.ward_code": "00070",
    "residence.address": "Số 12 phố Hàng Gai",
    "residence.housing_basis": "rented",
    "stay_from": "2026-12-01",
    "stay_until": "2027-11-30",
    "notify_by": "sms",
}


def files() -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("file.ct01", ("ct01.pdf", PDF, "application/pdf")),
        ("file.legal_residence_proof", ("hop-dong.jpg", JPEG, "image/jpeg")),
    ]


async def key_of(client: httpx.AsyncClient, code: str = "1.004194") -> str:
    page = await client.get(f"/desk/{code}")
    found = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


async def test_the_desk_lists_the_procedures_filed_at_the_desk(client: httpx.AsyncClient) -> None:
    page = await client.get("/desk")
    assert page.status_code == 200
    assert 'href="/desk/1.004194"' in page.text and "Đăng ký tạm trú" in page.text
    row = page.text.split('href="/desk/1.004194"', 1)[1].split("</tr>", 1)[0]
    assert "3 ngày làm việc" in row and "15.000 đ" in row  # the desk fee, not the online one


async def test_the_form_page_offers_fields_documents_and_channels(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/desk/1.004194")
    html = page.text
    assert page.status_code == 200
    assert '<label for="f-applicant-phone">' in html
    assert re.search(
        r'<input type="file" id="f-attachments-ct01-" name="file.ct01" multiple '
        r'accept="application/pdf,image/jpeg,image/png" capture="environment"',
        html,
    )
    for channel in ("sms", "zalo", "email"):
        assert f'name="notify_by" value="{channel}"' in html
    assert re.search(r'value="sms" checked', html)
    assert 'enctype="multipart/form-data"' in html and "novalidate" in html
    assert (await key_of(client)) != (await key_of(client)), "a new key per page"


async def test_a_desk_submission_uploads_the_documents_and_shows_the_receipt(
    client: httpx.AsyncClient, intake: FakeIntake
) -> None:
    key = await key_of(client)
    data = {**FORM, "idempotency_key": key, "notify_by": ["sms", "zalo"]}
    answer = await client.post("/desk/1.004194", data=data, files=files())
    assert answer.status_code == 200, answer.text
    assert "G01.99-261201-0001" in answer.text and "SECRET1" in answer.text
    assert "16 giờ 15 phút, ngày 04/12/2026" in answer.text  # Vietnam's clock (UTC+7)
    assert 'action="/prints/receipt/G01.99-261201-0001"' in answer.text
    [body] = intake.dossiers
    assert body["applicant"]["full_name"] == "Nguyễn Thị Ánh Tuyết"
    assert body["notify_by"] == ["sms", "zalo"] and body["applicant_kind"] == 1
    assert sorted(a["document_type"] for a in body["attachments"]) == [
        "ct01",
        "legal_residence_proof",
    ]
    stored = {t: (media, raw) for t, media, raw in intake.files.values()}
    assert stored == {
        "ct01": ("application/pdf", PDF),
        "legal_residence_proof": ("image/jpeg", JPEG),
    }


async def test_posting_the_same_form_twice_makes_one_dossier_and_the_same_receipt(
    client: httpx.AsyncClient, intake: FakeIntake
) -> None:
    key = await key_of(client)
    data = {**FORM, "idempotency_key": key}
    first, second = await asyncio.gather(
        client.post("/desk/1.004194", data=data, files=files()),
        client.post("/desk/1.004194", data=data, files=files()),
    )
    reload = await client.post("/desk/1.004194", data=data, files=files())
    assert len(intake.dossiers) == 1
    assert len(intake.files) == 2, "each file uploaded once"
    for answer in (first, second, reload):
        assert answer.status_code == 200, answer.text
        assert "G01.99-261201-0001" in answer.text and "SECRET1" in answer.text
    assert "không tạo hồ sơ mới" in reload.text


async def test_a_refused_form_shows_the_error_beside_the_field_and_keeps_everything(
    client: httpx.AsyncClient, intake: FakeIntake
) -> None:
    key = await key_of(client)
    data = {**FORM, "idempotency_key": key, "applicant.phone": "0123"}
    refused = await client.post("/desk/1.004194", data=data, files=files())
    assert refused.status_code == 422
    assert intake.dossiers == []
    html = refused.text
    error = html.split('id="f-applicant-phone-error"', 1)[1].split("</p>", 1)[0]
    assert "Không phải số di động Việt Nam" in error
    assert 'value="0123"' in html and 'value="Nguyễn Thị Ánh Tuyết"' in html
    assert 'aria-describedby="f-applicant-phone-hint f-applicant-phone-error"' in html
    kept = re.findall(r'name="doc\.([a-z0-9_]+)" value="([^"]+)"', html)
    assert sorted(kept) == [("ct01", "att-1"), ("legal_residence_proof", "att-2")]
    # Corrected, without choosing the files again: filed with the files kept.
    fixed = {
        **FORM,
        "idempotency_key": key,
        "doc.ct01": "att-1",
        "doc.legal_residence_proof": "att-2",
    }
    answer = await client.post("/desk/1.004194", data=fixed)
    assert answer.status_code == 200, answer.text
    assert [a["id"] for a in intake.dossiers[0]["attachments"]] == ["att-1", "att-2"]


async def test_a_missing_document_is_shown_beside_its_upload(
    client: httpx.AsyncClient, intake: FakeIntake
) -> None:
    data = {**FORM, "idempotency_key": await key_of(client)}
    refused = await client.post("/desk/1.004194", data=data, files=files()[:1])
    assert refused.status_code == 422
    error = refused.text.split('id="f-attachments-legal_residence_proof--error"', 1)[1]
    assert error.split("</p>", 1)[0].endswith("Thiếu giấy tờ bắt buộc.")


async def test_a_file_of_the_wrong_type_is_refused_before_anything_is_filed(
    client: httpx.AsyncClient, intake: FakeIntake
) -> None:
    data = {**FORM, "idempotency_key": await key_of(client)}
    sent = [("file.ct01", ("ct01.docx", b"PK\x03\x04", "application/msword")), files()[1]]
    refused = await client.post("/desk/1.004194", data=data, files=sent)
    assert refused.status_code == 422
    assert "Tệp ct01.docx không đúng loại" in refused.text
    assert intake.bodies == []


async def test_english_pages_show_the_api_errors_in_english(client: httpx.AsyncClient) -> None:
    data = {**FORM, "idempotency_key": await key_of(client), "applicant.phone": "0123"}
    refused = await client.post("/desk/1.004194?lang=en", data=data, files=files())
    assert refused.status_code == 422
    assert "Not a Vietnamese mobile number" in refused.text


async def test_a_key_used_for_another_dossier_is_refused_with_a_message(
    client: httpx.AsyncClient, intake: FakeIntake
) -> None:
    key = await key_of(client)
    assert (
        await client.post("/desk/1.004194", data={**FORM, "idempotency_key": key}, files=files())
    ).status_code == 200
    changed = {**FORM, "idempotency_key": key, "residence.address": "Số 14 phố Hàng Gai"}
    again = await client.post("/desk/1.004194", data=changed, files=files())
    assert again.status_code == 409
    assert "đã được dùng để nộp một hồ sơ" in again.text
    assert len(intake.dossiers) == 1


async def test_the_desk_needs_a_signed_in_officer(intake: FakeIntake) -> None:
    app = create_app(PortalSettings(public_url="http://portal.test"))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://portal.test") as c,
    ):
        away = await c.get("/desk/1.004194")
    assert away.status_code == 303 and away.headers["location"].startswith("/signin")
