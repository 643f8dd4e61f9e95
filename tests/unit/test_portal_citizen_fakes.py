"""A fake of intake's public API for the citizens' pages (in memory, with intake's own form
rules and idempotency fingerprint), shared by the unit tests of the citizens' pages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.intake.catalogue import FormError, load_catalogue
from services.intake.idempotency import fingerprint
from services.intake.submission import parse
from services.portal.app import create_app
from services.portal.clients import Apis
from services.portal.settings import PortalSettings

CATALOGUE = load_catalogue()
PDF = b"%PDF-1.4\n% scanned CT01\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 a phone photo \xff\xd9"
PUBLIC = "http://portal.test"


@dataclass
class Dossier:
    answer: dict[str, Any]
    phone: str
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeIntake:
    """Intake's catalogue, attachments, online submissions, status, withdrawal, supplements."""

    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    dossiers: dict[str, Dossier] = field(default_factory=dict)
    keys: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    forwarded: list[str] = field(default_factory=list)
    supplements: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        assert "authorization" not in request.headers, "citizens' calls carry no token"
        self.forwarded.append(request.headers.get("x-forwarded-for", ""))
        vi = request.headers.get("accept-language", "vi").startswith("vi")
        path = request.url.path
        if path == "/v1/procedures":
            return httpx.Response(200, json=[p.summary() for p in CATALOGUE])
        if path.startswith("/v1/procedures/"):
            found = CATALOGUE.procedures.get(path.rsplit("/", 1)[1])
            if found is None:
                return problem(404, "procedure_not_found", [], "Không có thủ tục này.")
            schema = found.model.model_json_schema()
            return httpx.Response(200, json={**found.summary(), "form_schema": schema})
        if path == "/v1/attachments":
            file_id = f"att-{len(self.files) + 1}"
            self.files[file_id] = (
                request.url.params["document_type"],
                request.headers["content-type"],
                request.content,
            )
            return httpx.Response(201, json={"id": file_id, "sha256": "x", "size": 1})
        if path == "/v1/dossiers" and request.method == "POST":
            await asyncio.sleep(0.05)  # long enough for a double tap to overlap
            return self.submit(json.loads(request.content), request.headers, vi)
        if path.startswith("/v1/dossiers/"):
            return self.dossier(request, path.removeprefix("/v1/dossiers/"))
        return problem(404, "http_404", [], "no")

    def submit(self, body: dict[str, Any], headers: httpx.Headers, vi: bool) -> httpx.Response:
        key = headers["idempotency-key"]
        if key in self.keys:
            first, answer = self.keys[key]
            if first != fingerprint(body):
                return problem(409, "idempotency_key_reused", [])
            return httpx.Response(201, json=answer, headers={"Idempotent-Replayed": "true"})
        try:
            parse(body, CATALOGUE, channel=2)
            self._documents_present(body)
        except FormError as exc:
            errors = [
                {"field": e["field"], "message": e["message_vi"] if vi else e["message"]}
                for e in exc.errors
            ]
            return problem(422, "validation_failed", errors)
        code = f"G01.99-261201-{len(self.dossiers) + 1:04d}"
        answer = {
            "code": code,
            "procedure_code": body["procedure_code"],
            "procedure_version": 1,
            "status": "submitted",
            "status_code": 1,
            "channel": 2,
            "submitted_at": "2026-12-01T01:30:00Z",
            "received_at": "2026-12-01T01:30:00Z",
            "promised_at": "2026-12-04T09:15:00Z",
            "fee": 7000,
            "documents": body["attachments"],
            "access_secret": f"SECRET{len(self.dossiers) + 1}",
        }
        history = [{"status": "submitted", "at": "2026-12-01T01:30:00Z"}]
        self.dossiers[code] = Dossier(answer, body["applicant"]["phone"], history)
        self.keys[key] = (fingerprint(body), answer)
        return httpx.Response(201, json=answer)

    @staticmethod
    def _documents_present(body: dict[str, Any]) -> None:
        procedure = CATALOGUE.procedures[body["procedure_code"]]
        given = {a["document_type"] for a in body["attachments"]}
        missing = [d.type for d in procedure.documents if d.required and d.type not in given]
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

    def dossier(self, request: httpx.Request, rest: str) -> httpx.Response:
        code, _, action = rest.partition("/")
        found = self.dossiers.get(code)
        secret = request.headers.get("x-dossier-secret")
        phone = request.url.params.get("phone")
        if found is None or not (
            (secret and secret == found.answer["access_secret"])
            or (phone and phone.replace(" ", "") == found.phone.replace(" ", ""))
        ):
            return problem(404, "dossier_not_found", [], "Không tìm thấy hồ sơ.")
        if action == "withdraw":
            if found.answer["status"] in ("withdrawn", "approved"):
                return problem(409, "not_withdrawable", [], "Hồ sơ không thể rút nữa.")
            self.step(code, "withdrawn", 7)
        elif action == "supplements":
            if found.answer["status"] != "supplement_requested":
                return problem(409, "no_supplement_requested", [], "Không cần bổ sung.")
            self.supplements.append(json.loads(request.content))
            self.step(code, "supplemented", 4)
        return httpx.Response(
            200, json={**found.answer, "access_secret": None, "history": found.history}
        )

    def step(
        self, code: str, status: str, status_code: int, at: str = "2026-12-02T02:00:00Z"
    ) -> None:
        found = self.dossiers[code]
        if status != "apology_issued":
            found.answer = {**found.answer, "status": status, "status_code": status_code}
        found.history.append({"status": status, "at": at})


def problem(
    status: int,
    code: str,
    errors: list[dict[str, str]],
    detail: str = "Hồ sơ có trường không hợp lệ.",
) -> httpx.Response:
    body = {"status": status, "code": code, "detail": detail, "errors": errors}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


@asynccontextmanager
async def portal_over(intake: FakeIntake) -> AsyncIterator[httpx.AsyncClient]:
    """The portal in-process over the fake intake, as an anonymous citizen's browser."""
    settings = PortalSettings(public_url=PUBLIC)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await app.state.apis.close()
        app.state.apis = Apis(settings, httpx.AsyncClient(transport=httpx.MockTransport(intake)))
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:
            yield client
