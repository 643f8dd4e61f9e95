"""Resumable uploads for citizens on flaky links: the tus 1.0.0 protocol under `/uploads`
(Core, Creation, Expiration, Termination), then the file sent on to intake.

Why not `tuspyserver`: it is not on this machine's package index. The protocol's part we need
is small: POST creates an upload (`Upload-Length`, `Upload-Metadata` with `procedure`,
`document_type`, `filename`, `filetype`), HEAD tells its `Upload-Offset`, PATCH appends at
exactly that offset (409 otherwise), DELETE drops it. Every upload belongs to the browser
session that created it (a key in the portal's signed cookie): another session's id is 404.

When the last byte arrives, a phone photo is resized (photos.py) and the file goes to intake's
`POST /v1/attachments`; `GET /uploads/{id}/attachment` answers what intake made of it (its id
for the form), sending it first if the PATCH that completed it could not.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
from collections.abc import Callable, Coroutine
from email.utils import formatdate
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from services.portal.clients import ApiProblem, Apis
from services.portal.csrf import Checked, bound_to_session
from services.portal.photos import PhotoTooLarge, fit_photo
from services.portal.upload_settings import UploadSettings
from services.portal.upload_store import TooLong, Upload, UploadStore

VERSION = "1.0.0"
EXTENSIONS = "creation,expiration,termination"
OFFSET_TYPE = "application/offset+octet-stream"
_OWNER = "uploads"
PROCEDURE = re.compile(r"^[a-z0-9.\-]{1,50}$")
DOCUMENT = re.compile(r"^[a-z0-9_]{1,50}$")
TYPE = re.compile(r"^[a-z]+/[a-z0-9.+\-]{1,80}$")


class Uploads:
    """The settings and the store the routes share (made on first use, or set by a test)."""

    def __init__(self, settings: UploadSettings) -> None:
        self.settings = settings
        self.store = UploadStore(settings.folder)
        self.locks: dict[str, asyncio.Lock] = {}


async def _uploads(request: Request) -> Uploads:
    state = request.app.state
    if getattr(state, "uploads", None) is None:
        state.uploads = Uploads(UploadSettings())
    uploads: Uploads = state.uploads
    return uploads


class TusRefused(Exception):
    """An answer with a status and a text of locales/*/uploads.json."""

    def __init__(self, status: int, key: str, **values: Any) -> None:
        super().__init__(key)
        self.status, self.key, self.values = status, key, values


class TusRoute(APIRoute):
    """Answers TusRefused as problem+json in the page's language (the portal's own error
    handlers render HTML pages, which a script cannot read)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handle(request)
            except TusRefused as exc:
                return _refused(request, exc)

        return answer


async def _tus(request: Request) -> None:
    tus_method = request.method in {"HEAD", "PATCH", "POST", "DELETE"}
    if tus_method and request.headers.get("tus-resumable") != VERSION:
        raise TusRefused(412, "version")


Wired = Annotated[Uploads, Depends(_uploads)]
router = APIRouter(
    prefix="/uploads",
    include_in_schema=False,
    dependencies=[Depends(_tus)],
    route_class=TusRoute,
)


@router.options("")
async def capabilities(uploads: Wired) -> Response:
    return Response(
        status_code=204,
        headers={
            **_base(),
            "Tus-Version": VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(uploads.settings.max_bytes),
        },
    )


@router.post("")
async def create(request: Request, uploads: Wired, _: Checked) -> Response:
    uploads.store.sweep()
    length = _integer(request.headers.get("upload-length"))
    meta = _metadata(request.headers.get("upload-metadata", ""))
    if length is None:
        raise TusRefused(400, "length")
    if length > uploads.settings.max_bytes:
        raise TusRefused(413, "too_large", mb=uploads.settings.max_bytes // 2**20)
    limit = await _limit(request, meta)
    media_type = meta.get("filetype", "")
    if media_type != "image/jpeg" and length > limit:  # only photos are made smaller
        raise TusRefused(413, "too_large", mb=max(limit // 2**20, 1))
    upload = Upload(
        id=uploads.store.new_id(),
        owner=_owner(request),
        length=length,
        procedure=meta["procedure"],
        document_type=meta["document_type"],
        media_type=media_type,
        filename=meta.get("filename", "")[:200],
        expires_at=uploads.store.clock() + uploads.settings.expiry_seconds,
        metadata={"max_bytes": str(limit)},
    )
    uploads.store.create(upload)
    return Response(
        status_code=201,
        headers={**_base(), "Location": f"/uploads/{upload.id}", **_expires(upload)},
    )


@router.head("/{upload_id}")
async def offset(request: Request, upload_id: str, uploads: Wired) -> Response:
    upload = _owned(request, uploads, upload_id)
    return Response(
        status_code=200,
        headers={
            **_base(),
            "Upload-Offset": str(_offset(uploads, upload)),
            "Upload-Length": str(upload.length),
            "Cache-Control": "no-store",
            **_expires(upload),
        },
    )


@router.patch("/{upload_id}")
async def append(request: Request, upload_id: str, uploads: Wired, _: Checked) -> Response:
    upload = _owned(request, uploads, upload_id)
    if request.headers.get("content-type", "").split(";")[0].strip() != OFFSET_TYPE:
        raise TusRefused(415, "content_type")
    lock = uploads.locks.setdefault(upload.id, asyncio.Lock())
    if lock.locked():  # the request cut off a moment ago is still being written
        raise TusRefused(409, "busy")
    try:
        async with lock:
            return await _append(request, uploads, upload)
    finally:
        uploads.locks.pop(upload.id, None)


async def _append(request: Request, uploads: Uploads, upload: Upload) -> Response:
    at = _offset(uploads, upload)
    if _integer(request.headers.get("upload-offset")) != at:
        raise TusRefused(409, "offset", offset=at)
    try:
        at = await uploads.store.append(upload, request.stream())
    except TooLong as exc:
        raise TusRefused(413, "too_long") from exc
    except ClientDisconnect:
        return Response(status_code=204, headers=_base())  # nobody reads it: kept so far
    if at == upload.length and upload.attachment is None:
        upload = await _send(request, uploads, upload)
        if upload.refused is not None:
            return _refusal(upload.refused)
    return Response(status_code=204, headers={**_base(), "Upload-Offset": str(at)})


@router.delete("/{upload_id}")
async def terminate(request: Request, upload_id: str, uploads: Wired, _: Checked) -> Response:
    upload = _owned(request, uploads, upload_id)
    uploads.store.delete(upload.id)
    return Response(status_code=204, headers=_base())


@router.get("/{upload_id}/attachment")
async def attachment(request: Request, upload_id: str, uploads: Wired) -> Response:
    """What the form refers to the file by: intake's attachment (sent now if not yet)."""
    upload = _owned(request, uploads, upload_id)
    if upload.attachment is None and upload.refused is None:
        if _offset(uploads, upload) < upload.length:
            raise TusRefused(409, "unfinished")
        async with uploads.locks.setdefault(upload.id, asyncio.Lock()):
            upload = await _send(request, uploads, uploads.store.get(upload.id) or upload)
    if upload.refused is not None:
        return _refusal(upload.refused)
    return JSONResponse({"upload": upload.id, **(upload.attachment or {})}, headers=_base())


async def _send(request: Request, uploads: Uploads, upload: Upload) -> Upload:
    """Resize a photo, send the file to intake; keep its answer (a 5xx is not kept: retried)."""
    if upload.attachment is not None or upload.refused is not None:
        return upload
    apis: Apis = request.app.state.apis
    lang = request.app.state.pages.language(request)
    data = uploads.store.read(upload.id)
    limit = int(upload.metadata.get("max_bytes", uploads.settings.max_bytes))
    try:
        fitted = await asyncio.to_thread(
            fit_photo,
            data,
            upload.media_type,
            max_bytes=limit,
            max_side=uploads.settings.max_side_px,
        )
    except PhotoTooLarge:
        t = request.app.state.pages.catalogue.translator(lang)
        detail = t("uploads.photo_too_large", mb=max(limit // 2**20, 1))
        return uploads.store.finished(
            upload, refused={"status": 413, "code": "photo_too_large", "detail": detail}
        )
    try:
        stored = await apis.post(
            "intake",
            "/v1/attachments",
            token=None,
            lang=lang,
            params={"document_type": upload.document_type},
            content=fitted.data,
            headers={"Content-Type": fitted.media_type, **_forwarded(request)},
        )
    except ApiProblem as problem:
        if problem.status >= 500 or problem.status == 429:
            raise
        refused = {"status": problem.status, "code": problem.code, "detail": problem.detail}
        return uploads.store.finished(upload, refused=refused)
    kept = {k: stored[k] for k in ("id", "document_type", "media_type", "size", "sha256")}
    return uploads.store.finished(upload, attachment={**kept, "resized": fitted.changed})


async def _limit(request: Request, meta: dict[str, str]) -> int:
    """The document's size limit in intake's catalogue; 422 if the procedure does not take
    that document, or 415 if not that file type."""
    for key, form in (("procedure", PROCEDURE), ("document_type", DOCUMENT), ("filetype", TYPE)):
        if not form.match(meta.get(key, "")):
            raise TusRefused(400, "metadata", name=key)
    apis: Apis = request.app.state.apis
    lang = request.app.state.pages.language(request)
    procedure = await apis.get(
        "intake", f"/v1/procedures/{meta['procedure']}", token=None, lang=lang
    )
    for doc in procedure.get("documents") or []:
        if doc.get("type") == meta["document_type"]:
            if meta["filetype"] not in (doc.get("media_types") or []):
                raise TusRefused(415, "file_type", types=", ".join(doc["media_types"]))
            return int(doc.get("max_bytes") or 0)
    raise TusRefused(422, "document_type")


def _owned(request: Request, uploads: Uploads, upload_id: str) -> Upload:
    upload = uploads.store.get(upload_id)
    owner = _owner(request)
    if upload is None or not owner or not secrets.compare_digest(upload.owner, owner):
        raise TusRefused(404, "unknown")
    if uploads.store.expired(upload):
        uploads.store.delete(upload.id)
        raise TusRefused(410, "expired")
    return upload


def _owner(request: Request) -> str:
    """What this session's uploads are known by: derived from its CSRF secret, which every
    POST already carries (CSRF-checked), so the uploads a page starts at once share it. (A key
    made by the first upload raced: two uploads at once each set a cookie, the browser kept
    one, and the other upload became "unknown".)"""
    return bound_to_session(request, _OWNER)


def _offset(uploads: Uploads, upload: Upload) -> int:
    return upload.length if upload.attachment is not None else uploads.store.offset(upload.id)


def _metadata(header: str) -> dict[str, str]:
    """`Upload-Metadata: key base64,key base64`; a value that does not decode is dropped."""
    values: dict[str, str] = {}
    for pair in header.split(","):
        key, _, encoded = pair.strip().partition(" ")
        try:
            values[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
    return values


def _integer(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _base() -> dict[str, str]:
    return {"Tus-Resumable": VERSION}


def _expires(upload: Upload) -> dict[str, str]:
    return {"Upload-Expires": formatdate(upload.expires_at, usegmt=True)}


def _forwarded(request: Request) -> dict[str, str]:
    """The citizen's address for intake's per-client rate limit (it trusts us as a proxy)."""
    client = request.client.host if request.client else ""
    before = request.headers.get("x-forwarded-for")
    chain = f"{before}, {client}" if before else client
    return {"X-Forwarded-For": chain} if chain else {}


def _refusal(refused: dict[str, Any]) -> JSONResponse:
    return JSONResponse(
        {"type": f"urn:motcua:problem:{refused['code']}", **refused},
        status_code=int(refused["status"]),
        media_type="application/problem+json",
        headers=_base(),
    )


def _refused(request: Request, exc: TusRefused) -> Response:
    if exc.status == 412:
        return Response(status_code=412, headers={**_base(), "Tus-Version": VERSION})
    pages = request.app.state.pages
    t = pages.catalogue.translator(pages.language(request))
    detail = t(f"uploads.{exc.key}", **exc.values)
    return _refusal({"status": exc.status, "code": exc.key, "detail": detail})
