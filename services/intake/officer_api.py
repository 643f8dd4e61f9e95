"""Intake's routes for officers (bearer token): a dossier's documents listed, and one served
back inline, to officers of the dossier's receiving unit only."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from services.intake import reading
from services.intake.domain import DomainError, UnknownDossier
from services.intake.handlers import Intake
from services.intake.officers import CorruptDocument, NoAccess, NotAssigned, UnknownDocument
from shared.problems import Problem
from shared.web import OfficerClaims, from_state

router = APIRouter(prefix="/v1/officer", tags=["officers"])
Wired = Annotated[Intake, Depends(from_state("intake", Intake))]
Code = Annotated[str, Path(max_length=60, description="The dossier code (mã hồ sơ).")]
DocumentId = Annotated[str, Path(max_length=60, description="A document's `id` from its list.")]
EXTENSIONS = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}
RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "No or bad officer token (problem+json)"},
    403: {"description": "Not an officer of the dossier's receiving unit (problem+json)"},
    404: {"description": "No such dossier, or no such document of it (problem+json)"},
}


class OfficerDocument(BaseModel):
    """One document (giấy tờ) of a dossier."""

    id: str
    kind: str = Field(description="The procedure's document type (e.g. `to_khai_ct01`).")
    name: str = Field(description="Its name in the catalogue, in Vietnamese.")
    name_en: str
    content_type: str = Field(description="As stored at upload, and served.")
    size: int = Field(description="Bytes.")
    sha256: str = Field(description="Recorded at upload; checked each time it is served.")
    uploaded_at: datetime | None = Field(description="When the file was uploaded.")
    added_at: datetime = Field(description="When the dossier received it.")
    source: Literal["submission", "supplement"]
    href: str = Field(description="Where to read it (this API, same bearer token).")


class OfficerDocuments(BaseModel):
    """Every document a dossier holds, in the order it received them (a dossier holds a
    bounded number: those submitted and those its supplements added, so no paging)."""

    dossier_code: str
    procedure_code: str
    unit_id: str | None = Field(description="The unit that receives it.")
    documents: list[OfficerDocument]


def _problem(exc: DomainError, code: str) -> Problem:
    if isinstance(exc, UnknownDossier):
        return Problem(
            404, f"No dossier {code}.", f"Không tìm thấy hồ sơ {code}.", code="dossier_not_found"
        )
    if isinstance(exc, UnknownDocument):
        return Problem(
            404,
            f"Dossier {code} holds no such document.",
            f"Hồ sơ {code} không có giấy tờ này.",
            code="document_not_found",
        )
    if isinstance(exc, NotAssigned):
        return Problem(
            403,
            f"Dossier {code} is not assigned to a unit yet.",
            f"Hồ sơ {code} chưa được phân công cho đơn vị nào.",
            code="dossier_not_assigned",
        )
    if isinstance(exc, NoAccess):
        return Problem(
            403,
            f"Only officers of the unit that receives dossier {code} may read its documents.",
            f"Chỉ cán bộ của đơn vị tiếp nhận hồ sơ {code} được xem giấy tờ của hồ sơ.",
            code="forbidden",
        )
    if isinstance(exc, CorruptDocument):
        return Problem(
            500,
            "The stored document does not match the SHA-256 recorded at upload; it is not "
            "served. An operator has been alerted in the logs.",
            "Tệp giấy tờ đã lưu không khớp mã SHA-256 ghi nhận khi tải lên nên không được "
            "hiển thị. Vui lòng báo quản trị viên hệ thống.",
            code="document_corrupt",
        )
    raise exc


@router.get(
    "/dossiers/{code}/documents",
    response_model=OfficerDocuments,
    summary="A dossier's documents (officers of its receiving unit)",
    responses=RESPONSES,
)
async def list_documents(code: Code, officer: OfficerClaims, intake: Wired) -> OfficerDocuments:
    try:
        dossier, listed = await reading.documents(
            code,
            officer,
            dossiers=intake.dossiers,
            files=intake.files,
            catalogue=intake.catalogue,
        )
    except DomainError as exc:
        raise _problem(exc, code) from exc
    return OfficerDocuments(
        dossier_code=dossier.code,
        procedure_code=dossier.procedure_code,
        unit_id=dossier.unit_id,
        documents=[
            OfficerDocument(
                id=d.id,
                kind=d.kind,
                name=d.name,
                name_en=d.name_en,
                content_type=d.content_type,
                size=d.size,
                sha256=d.sha256,
                uploaded_at=d.uploaded_at,
                added_at=d.added_at,
                source="supplement" if d.source == "supplement" else "submission",
                href=f"/v1/officer/dossiers/{dossier.code}/documents/{d.id}",
            )
            for d in listed
        ],
    )


@router.get(
    "/dossiers/{code}/documents/{document_id}",
    summary="One document of a dossier, inline, its SHA-256 checked (receiving unit only)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file as uploaded, with its stored content type",
            "content": {t: {} for t in EXTENSIONS},
        },
        **RESPONSES,
        500: {"description": "The stored bytes no longer match their SHA-256 (problem+json)"},
    },
)
async def read_document(
    code: Code, document_id: DocumentId, officer: OfficerClaims, intake: Wired
) -> StreamingResponse:
    """The bytes are read from GridFS chunk by chunk and hashed as they come; only once the
    SHA-256 and length match what the upload recorded is the first byte sent (a document is
    at most the largest upload accepted), then the chunks stream out."""
    try:
        wanted, stored = await reading.document(
            code,
            document_id,
            officer,
            dossiers=intake.dossiers,
            files=intake.files,
            catalogue=intake.catalogue,
        )
    except DomainError as exc:
        raise _problem(exc, code) from exc

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in stored.chunks:
            yield chunk

    filename = f"{wanted.kind}.{EXTENSIONS.get(stored.media_type, 'bin')}"
    return StreamingResponse(
        chunks(),
        media_type=stored.media_type,
        headers={
            "Content-Length": str(stored.size),
            "Content-Disposition": f'inline; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "ETag": f'"{stored.sha256}"',
            "Repr-Digest": f"sha-256=:{_base64(stored.sha256)}:",  # RFC 9530
        },
    )


def _base64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()
