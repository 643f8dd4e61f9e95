"""Desk submission (tiếp nhận trực tiếp, channel 1): an officer files a dossier for a citizen at
the counter — the procedure's form, the documents scanned or photographed, the citizen's
channels — and hands over the receipt.

One dossier per form page, whatever the officer or the browser does: the page carries an
Idempotency-Key made when it was rendered, which intake honours. A double click or a reload
posts the same files again; they are uploaded once per key (`Uploads`), so the second request's
body is the first one's and intake answers it with the same receipt.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData, UploadFile

from services.portal import forms
from services.portal.clients import ApiProblem, Apis
from services.portal.csrf import Checked
from services.portal.printing import format_vn_time
from services.portal.rendering import Pages
from services.portal.session import Officer, SignedInOfficer
from shared.calendar import VIETNAM

router = APIRouter(prefix="/desk", include_in_schema=False)

DESK = 1
CHANNELS = ("sms", "zalo", "email")
KEY_FIELD = "idempotency_key"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_MEDIA_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}


@dataclass
class Document:
    """One document the procedure asks for, as the form offers it."""

    type: str
    name: str
    required: bool
    media_types: list[str]
    max_bytes: int
    kept: list[str] = field(default_factory=list)
    """Ids of files already uploaded for it (kept when a form is refused)."""

    @property
    def path(self) -> str:
        """How intake names it in a field error (`attachments[ct01]`)."""
        return f"attachments[{self.type}]"

    @property
    def field(self) -> forms.Field:
        return forms.Field(path=self.path, name=self.type, label_vi=self.name, label_en=self.name)

    @property
    def photo(self) -> bool:
        return any(m.startswith("image/") for m in self.media_types)


class Uploads:
    """Files uploaded to intake for a desk form, by its Idempotency-Key and their SHA-256: the
    same file posted again under the same key (a double click, a reload) is not uploaded twice.
    A lock per key runs such repeats one after the other. Bounded: old keys are forgotten."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.ids: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self.locks: OrderedDict[str, asyncio.Lock] = OrderedDict()

    def lock(self, key: str) -> asyncio.Lock:
        lock = self.locks.pop(key, None) or asyncio.Lock()
        self.locks[key] = lock
        while len(self.locks) > self.limit:
            self.locks.popitem(last=False)
        return lock

    def get(self, key: str, document_type: str, data: bytes) -> str | None:
        return self.ids.get((key, document_type, hashlib.sha256(data).hexdigest()))

    def keep(self, key: str, document_type: str, data: bytes, attachment_id: str) -> None:
        self.ids[(key, document_type, hashlib.sha256(data).hexdigest())] = attachment_id
        while len(self.ids) > self.limit:
            self.ids.popitem(last=False)


def _uploads(request: Request) -> Uploads:
    uploads: Uploads | None = getattr(request.app.state, "desk_uploads", None)
    if uploads is None:
        uploads = request.app.state.desk_uploads = Uploads()
    return uploads


@router.get("")
async def procedures(request: Request, officer: Officer) -> Response:
    """The procedures a citizen may file at the desk."""
    pages: Pages = request.app.state.pages
    apis: Apis = request.app.state.apis
    lang = pages.language(request)
    listed = await apis.get("intake", "/v1/procedures", token=officer.token, lang=lang)
    offered = [p for p in listed if DESK in p.get("channels", ())]
    return pages.render(request, "desk/procedures.html", procedures=offered)


@router.get("/{code}")
async def form_page(request: Request, code: str, officer: Officer) -> Response:
    """The procedure's form, empty, with a new Idempotency-Key."""
    procedure = await procedure_of(request, code, officer)
    key = str(uuid.uuid4())
    return _form(request, procedure, {}, [], forms.Errors(), key, ["sms"], status=200)


@router.post("/{code}")
async def submit(request: Request, code: str, officer: Officer, _: Checked) -> Response:
    """Upload the documents, file the dossier at intake; the receipt, or the form refused."""
    pages: Pages = request.app.state.pages
    apis: Apis = request.app.state.apis
    lang = pages.language(request)
    posted = await request.form()
    key = str(posted.get(KEY_FIELD) or "")
    if not _KEY.match(key):  # a page not made here: start again with a fresh one
        return await form_page(request, code, officer)
    procedure = await procedure_of(request, code, officer)
    values = {k: v for k, v in posted.multi_items() if isinstance(v, str)}
    fields = _fields(request, procedure)
    uploads = _uploads(request)
    async with uploads.lock(key):
        documents, refs, local = await _documents(
            procedure, posted, key, uploads, apis, officer, lang, pages.catalogue.translator(lang)
        )
        channels = [c for c in posted.getlist("notify_by") if c in CHANNELS]
        body = {
            "procedure_code": code,
            **forms.read(fields, values),
            "applicant_kind": _kind(posted, procedure),
            "notify_by": channels,
            "attachments": refs,
        }
        if local:  # a file the procedure cannot take: say so before filing anything
            return _form(request, procedure, values, documents, local, key, channels, status=422)
        try:
            reply = await apis.call(
                "POST",
                "intake",
                "/v1/desk/dossiers",
                token=officer.token,
                lang=lang,
                json=body,
                headers={"Idempotency-Key": key},
            )
        except ApiProblem as problem:
            if problem.code == "idempotency_key_reused":  # this page already filed a dossier
                t = pages.catalogue.translator(lang)
                raise ApiProblem(409, t("desk.key_reused"), problem.code) from problem
            if problem.status != 422:
                raise
            errors = _errors(problem, refs)
            return _form(request, procedure, values, documents, errors, key, channels, status=422)
    receipt = reply.body
    return pages.render(
        request,
        "desk/receipt.html",
        receipt=receipt,
        procedure=procedure,
        applicant=body.get("applicant", {}),
        promised=vn_time(receipt.get("promised_at"), lang),
        received=vn_time(receipt.get("received_at"), lang),
        replayed=reply.headers.get("idempotent-replayed") == "true",
    )


async def procedure_of(request: Request, code: str, officer: SignedInOfficer) -> dict[str, Any]:
    """Intake's procedure with its form's JSON Schema and its documents."""
    pages: Pages = request.app.state.pages
    apis: Apis = request.app.state.apis
    procedure: dict[str, Any] = await apis.get(
        "intake", f"/v1/procedures/{code}", token=officer.token, lang=pages.language(request)
    )
    return procedure


def _fields(request: Request, procedure: dict[str, Any]) -> list[forms.Field]:
    pages: Pages = request.app.state.pages
    texts = {lang: pages.catalogue.translator(lang) for lang in ("vi", "en")}
    return forms.describe(procedure["form_schema"], texts)


def _specs(procedure: dict[str, Any], lang: str, posted: FormData | None) -> list[Document]:
    return [
        Document(
            type=d["type"],
            name=d["name_vi"] if lang == "vi" else d["name_en"],
            required=bool(d.get("required")),
            media_types=list(d.get("media_types", [])),
            max_bytes=int(d.get("max_bytes", 0)),
            kept=[str(v) for v in posted.getlist(f"doc.{d['type']}") if v] if posted else [],
        )
        for d in procedure.get("documents", [])
    ]


async def _documents(
    procedure: dict[str, Any],
    posted: FormData,
    key: str,
    uploads: Uploads,
    apis: Apis,
    officer: SignedInOfficer,
    lang: str,
    t: Any,
) -> tuple[list[Document], list[dict[str, str]], forms.Errors]:
    """Each document's files uploaded (once per key and content), the references the
    submission carries, and what is wrong with a file before intake sees it."""
    documents = _specs(procedure, lang, posted)
    refused: dict[str, list[str]] = {}
    for doc in documents:
        files = [f for f in posted.getlist(f"file.{doc.type}") if isinstance(f, UploadFile)]
        fresh = []
        for upload in files:
            data = await upload.read()
            if not data:
                continue  # the file input left empty
            media = (upload.content_type or "").split(";")[0].strip().lower()
            media = _MEDIA_ALIASES.get(media, media)
            if media not in doc.media_types:
                refused.setdefault(doc.path, []).append(
                    t("desk.file_type", name=upload.filename or "", types=_types(doc))
                )
                continue
            if len(data) > doc.max_bytes:
                refused.setdefault(doc.path, []).append(
                    t("desk.file_size", name=upload.filename or "", mb=doc.max_bytes // 2**20)
                )
                continue
            attachment_id = uploads.get(key, doc.type, data)
            if attachment_id is None:
                stored = await apis.post(
                    "intake",
                    "/v1/attachments",
                    token=officer.token,
                    lang=lang,
                    params={"document_type": doc.type},
                    content=data,
                    headers={"Content-Type": media},
                )
                attachment_id = str(stored["id"])
                uploads.keep(key, doc.type, data, attachment_id)
            fresh.append(attachment_id)
        if fresh:  # new files replace those kept from a refused attempt
            doc.kept = list(dict.fromkeys(fresh))
    refs = [{"document_type": d.type, "id": i} for d in documents for i in d.kept]
    return documents, refs, forms.Errors(by_path=refused)


def _types(doc: Document) -> str:
    return ", ".join(m.split("/")[-1].upper() for m in doc.media_types)


def _kind(posted: FormData, procedure: dict[str, Any]) -> int:
    kinds = [int(k) for k in procedure.get("applicant_kinds", [1])]
    raw = str(posted.get("applicant_kind") or "")
    return int(raw) if raw.isdigit() and int(raw) in kinds else kinds[0]


def _errors(problem: ApiProblem, refs: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The API's field errors, those on `attachments.<i>` renamed to their document."""
    out = []
    for error in problem.errors:
        where = str(error.get("field") or "")
        parts = where.split(".")
        if parts[0] == "attachments" and len(parts) > 1 and parts[1].isdigit():
            i = int(parts[1])
            if i < len(refs):
                where = f"attachments[{refs[i]['document_type']}]"
        out.append({**error, "field": where})
    if not out:  # refused as a whole: the API's message, above the form
        out.append({"field": "", "message": problem.detail})
    return out


def _form(
    request: Request,
    procedure: dict[str, Any],
    values: dict[str, str],
    documents: list[Document],
    errors: forms.Errors | list[dict[str, Any]],
    key: str,
    chosen: list[str],
    *,
    status: int,
) -> Response:
    pages: Pages = request.app.state.pages
    lang = pages.language(request)
    documents = documents or _specs(procedure, lang, None)
    layout = forms.layout(_fields(request, procedure), values)
    shown = forms.index(layout)
    extra = {
        "notify_by": forms.Field("notify_by", "notify_by", "Kênh nhận thông báo", "Notifications"),
        "applicant_kind": forms.Field("applicant_kind", "applicant_kind", "Loại", "Kind"),
    }
    shown.update({d.path: d.field for d in documents} | extra)
    placed = errors if isinstance(errors, forms.Errors) else forms.place_errors(errors, shown)
    return pages.render(
        request,
        "desk/form.html",
        status=status,
        procedure=procedure,
        layout=layout,
        values=values,
        errors=placed,
        shown=shown,
        form_hint=forms.hint,
        documents=documents,
        channels=CHANNELS,
        chosen=chosen,
        key=key,
        key_field=KEY_FIELD,
    )


def vn_time(value: Any, lang: str = "vi") -> str:
    """An API's ISO 8601 time on Vietnam's clock, as the receipt prints it ("HH giờ mm phút,
    ngày dd/mm/yyyy"), or "HH:mm, dd/mm/yyyy" on an English page."""
    if not isinstance(value, str) or not value:
        return ""
    local = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(VIETNAM)
    return format_vn_time(local) if lang == "vi" else f"{local:%H:%M, %d/%m/%Y}"
