"""The documents a citizen attaches: plain multipart files, each sent to intake's
`POST /v1/attachments` as the raw body, or the ids of files already uploaded (by the resumable
upload with JavaScript, or kept from a refused attempt) as `doc.<type>` fields.

A retry of the same form page must post intake the same body, or intake's idempotency cannot
recognise it: a file is uploaded once per (Idempotency-Key, document type, SHA-256), and its
id is reused when the same file comes again under the same key (`desk.Uploads`)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile

from services.portal import forms
from services.portal.citizen import common
from services.portal.clients import ApiProblem
from services.portal.desk import Document, Uploads

_MEDIA_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}


def memory(request: Request) -> Uploads:
    """The portal's memory of the files citizens uploaded, per form page."""
    uploads: Uploads | None = getattr(request.app.state, "citizen_uploads", None)
    if uploads is None:
        uploads = request.app.state.citizen_uploads = Uploads()
    return uploads


def specs(
    procedure: dict[str, Any], lang: str, posted: FormData | None, *, optional: bool = False
) -> list[Document]:
    """The procedure's documents as the form offers them, with the ids `posted` already carries
    (`optional`: none required, as when answering a supplement request)."""
    return [
        Document(
            type=d["type"],
            name=d["name_vi"] if lang == "vi" else d["name_en"],
            required=bool(d.get("required")) and not optional,
            media_types=list(d.get("media_types", [])),
            max_bytes=int(d.get("max_bytes", 0)),
            kept=[str(v) for v in posted.getlist(f"doc.{d['type']}") if v] if posted else [],
        )
        for d in procedure.get("documents", [])
    ]


def media_type(upload: UploadFile) -> str:
    media = (upload.content_type or "").split(";")[0].strip().lower()
    return _MEDIA_ALIASES.get(media, media)


async def attach(
    request: Request, documents: list[Document], posted: FormData, key: str
) -> tuple[list[dict[str, str]], forms.Errors]:
    """Upload each posted file (once per key and content); the references the dossier carries
    and the files refused before intake saw them (type, size) or by intake (its message)."""
    t = common.texts(request)
    uploads = memory(request)
    refused: dict[str, list[str]] = {}
    for doc in documents:
        fresh = []
        for upload in posted.getlist(f"file.{doc.type}"):
            if not isinstance(upload, UploadFile):
                continue
            data = await upload.read()
            if not data:
                continue  # the file input left empty
            name = upload.filename or ""
            problem = _problem(doc, media_type(upload), len(data), name, t)
            if not problem:
                found, problem = await _stored(request, uploads, key, doc, upload, data)
            if problem:
                refused.setdefault(doc.path, []).append(problem)
            else:
                fresh.append(found)
        if fresh:  # new files replace those kept from a refused attempt
            doc.kept = list(dict.fromkeys(fresh))
    refs = [{"document_type": d.type, "id": i} for d in documents for i in d.kept]
    return refs, forms.Errors(by_path=refused)


def _problem(doc: Document, media: str, size: int, name: str, t: Any) -> str:
    if media not in doc.media_types:
        types = ", ".join(m.split("/")[-1].upper() for m in doc.media_types)
        return str(t("citizen.file_type", name=name, types=types))
    if size > doc.max_bytes:
        return str(t("citizen.file_size", name=name, mb=doc.max_bytes // 2**20))
    return ""


async def _stored(
    request: Request, uploads: Uploads, key: str, doc: Document, upload: UploadFile, data: bytes
) -> tuple[str, str]:
    """(the attachment id of this file under this key, uploaded now if it is new; "") or
    ("", intake's message) when intake refuses the file."""
    known = uploads.get(key, doc.type, data)
    if known is not None:
        return known, ""
    try:
        stored = await common.intake(
            request,
            "POST",
            "/v1/attachments",
            params={"document_type": doc.type},
            content=data,
            headers={"Content-Type": media_type(upload)},
        )
    except ApiProblem as problem:
        if problem.status >= 500 or problem.status == 429:
            raise
        return "", problem.detail
    attachment_id = str(stored.body["id"])
    uploads.keep(key, doc.type, data, attachment_id)
    return attachment_id, ""
