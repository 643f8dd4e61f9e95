"""Intake's HTTP routes: parse, call a handler, answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.intake import attachments, handlers
from services.intake.attachments import AttachmentStore
from services.intake.catalogue import Catalogue, FormError, Procedure
from services.intake.domain import Dossier, NotAllowedNow
from services.intake.idempotency import IdempotencyStore, KeyReused, StillRunning, fingerprint
from services.intake.settings import IntakeSettings
from services.intake.store import DossierStore
from services.intake.submission import parse
from shared.calendar import WorkingCalendar
from shared.clock import utcnow
from shared.contracts import Channel
from shared.limits import RateLimiter, rate_limited
from shared.problems import Problem
from shared.web import OfficerClaims, from_state

router = APIRouter(prefix="/v1")

Dossiers = Annotated[DossierStore, Depends(from_state("dossiers", DossierStore))]
Files = Annotated[AttachmentStore, Depends(from_state("files", AttachmentStore))]
Settings = Annotated[IntakeSettings, Depends(from_state("settings", IntakeSettings))]
Procedures = Annotated[Catalogue, Depends(from_state("catalogue", Catalogue))]
Calendar = Annotated[WorkingCalendar, Depends(from_state("calendar", WorkingCalendar))]
Keys = Annotated[IdempotencyStore, Depends(from_state("keys", IdempotencyStore))]
Limited = Depends(rate_limited(from_state("limiter", RateLimiter)))
SecretHeader = Annotated[
    str | None,
    Header(
        alias="X-Dossier-Secret",
        max_length=100,
        description="The secret (mã tra cứu) printed on the receipt.",
    ),
]


@dataclass(frozen=True)
class Intake:
    """What a submission needs, as the app wired it."""

    dossiers: DossierStore
    files: AttachmentStore
    keys: IdempotencyStore
    settings: IntakeSettings
    catalogue: Catalogue
    calendar: WorkingCalendar


def _intake(
    dossiers: Dossiers,
    files: Files,
    keys: Keys,
    settings: Settings,
    catalogue: Procedures,
    calendar: Calendar,
) -> Intake:
    return Intake(dossiers, files, keys, settings, catalogue, calendar)


Wired = Annotated[Intake, Depends(_intake)]


class Receipt(BaseModel):
    """Where a dossier stands, with the national portal's status code (1–10).

    On submission this is the receipt (giấy tiếp nhận): the code, when the clock started, the
    promised result date (ngày hẹn trả), the fee, and once only, the secret to follow it."""

    code: str
    procedure_code: str
    procedure_version: int
    status: str
    status_code: int
    channel: int
    submitted_at: datetime
    submitted_by: str | None = None
    received_at: datetime | None = None
    promised_at: datetime | None = None
    fee: int | None = None
    documents: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    access_secret: str | None = Field(
        default=None, description="Only on the submission's answer: keep it to follow the dossier."
    )


class WithdrawalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000)


class SupplementRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attachments: list[dict[str, Any]] = Field(min_length=1)
    note: str | None = Field(default=None, max_length=1000)


def _receipt(dossier: Dossier, secret: str | None = None) -> Receipt:
    return Receipt(
        code=dossier.code,
        procedure_code=dossier.procedure_code,
        procedure_version=dossier.procedure_version,
        status=dossier.status,
        status_code=int(dossier.status_code),
        channel=int(dossier.channel),
        submitted_at=dossier.submitted_at,
        submitted_by=dossier.submitted_by,
        received_at=dossier.received_at,
        promised_at=dossier.promised_at,
        fee=dossier.fee,
        documents=[
            {k: d[k] for k in ("document_type", "id", "sha256", "size") if k in d}
            for d in dossier.attachments
        ],
        history=[{"status": h["status"], "at": h["at"]} for h in dossier.history],
        access_secret=secret,
    )


def invalid(errors: list[dict[str, str]]) -> Problem:
    fields = ", ".join(e["field"] for e in errors)
    return Problem(
        422,
        f"The submission has invalid fields: {fields}.",
        f"Hồ sơ có trường không hợp lệ: {fields}.",
        code="validation_failed",
        extra={"errors": errors},
    )


def _not_found(code: str) -> Problem:
    # The same answer for an unknown code and a wrong secret: codes cannot be probed.
    return Problem(
        404,
        f"No dossier {code} for this secret or phone.",
        f"Không tìm thấy hồ sơ {code} với mã tra cứu hoặc số điện thoại này.",
        code="dossier_not_found",
    )


async def _documents(
    procedure: Procedure, refs: list[dict[str, str]], files: AttachmentStore, *, require: bool
) -> list[dict[str, Any]]:
    """The referenced files as the dossier records them, or 422 naming each bad reference."""
    found = await files.describe([r["id"] for r in refs])
    recorded, errors = attachments.check(procedure, refs, found, require=require)
    if errors:
        raise invalid(errors)
    return recorded


async def _accept(
    body: dict[str, Any],
    intake: Intake,
    *,
    channel: Channel,
    submitted_by: str | None,
    idempotency_key: str | None,
) -> JSONResponse:
    """Validate everything first (a failed request changes nothing, not even its key), then
    submit once per Idempotency-Key."""
    dossiers, keys, settings = intake.dossiers, intake.keys, intake.settings
    try:
        submission = parse(
            body, intake.catalogue, channel=int(channel), max_attachments=settings.max_attachments
        )
    except FormError as exc:
        raise invalid(exc.errors) from exc
    documents = await _documents(
        submission.procedure, list(submission.attachments), intake.files, require=True
    )

    async def work(taking_over: bool = False) -> dict[str, Any]:
        done = (
            await dossiers.by_idempotency_key(idempotency_key)
            if idempotency_key and taking_over
            else None
        )
        if done is not None:  # a holder died after storing: answer from what it stored
            return _receipt(done).model_dump(mode="json")
        secret = handlers.new_secret()
        dossier = await handlers.submit(
            submission,
            dossiers=dossiers,
            calendar=intake.calendar,
            clock=utcnow,
            agency=settings.agency_code,
            source=f"{settings.public_url}/v1/dossiers",
            idempotency_key=idempotency_key,
            submitted_by=submitted_by,
            documents=documents,
            secret=secret,
        )
        return _receipt(dossier, secret).model_dump(mode="json")

    replayed = False
    if idempotency_key is None:
        answer = await work()
    else:
        try:
            answer, first = await keys.run(idempotency_key, fingerprint(body), work)
        except KeyReused as exc:
            raise Problem(
                409,
                "This Idempotency-Key was used with a different submission.",
                "Khóa Idempotency-Key này đã được dùng cho một hồ sơ khác.",
                code="idempotency_key_reused",
            ) from exc
        except StillRunning as exc:
            raise Problem(
                409,
                "The first request with this Idempotency-Key is still being processed.",
                "Yêu cầu đầu tiên với khóa này đang được xử lý.",
                code="idempotency_key_in_progress",
                headers={"Retry-After": "1"},
            ) from exc
        replayed = not first
    headers = {"Location": f"/v1/dossiers/{answer['code']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(answer, status_code=201, headers=headers)


IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique string (e.g. a UUID): a retry with the same key and body "
        "returns the first answer and creates nothing new.",
    ),
]
SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "Idempotency-Key reused with another body, or still in progress"},
    413: {"description": "Body too large"},
    422: {"description": "Invalid fields (problem+json, one entry per field)"},
    429: {"description": "Too many requests from this address (Retry-After)"},
}


@router.post(
    "/dossiers",
    status_code=status.HTTP_201_CREATED,
    response_model=Receipt,
    tags=["dossiers"],
    summary="Submit a dossier (nộp hồ sơ trực tuyến) for any procedure of the catalogue",
    responses=SUBMIT_RESPONSES,
    dependencies=[Limited],
)
async def submit_dossier(
    body: Annotated[dict[str, Any], Body()],
    intake: Wired,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _accept(
        body, intake, channel=Channel.ONLINE, submitted_by=None, idempotency_key=idempotency_key
    )


@router.post(
    "/desk/dossiers",
    status_code=status.HTTP_201_CREATED,
    response_model=Receipt,
    tags=["desk"],
    summary="Submit at the desk for a citizen (tiếp nhận trực tiếp, channel 1)",
    responses={401: {"description": "No or bad officer token"}, **SUBMIT_RESPONSES},
)
async def submit_at_desk(
    body: Annotated[dict[str, Any], Body()],
    officer: OfficerClaims,
    intake: Wired,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _accept(
        body,
        intake,
        channel=Channel.DESK,
        submitted_by=officer.officer_id,
        idempotency_key=idempotency_key,
    )


async def owned_dossier(
    code: str,
    dossiers: Dossiers,
    secret_header: SecretHeader = None,
    secret: Annotated[str | None, Query(max_length=100)] = None,
    phone: Annotated[str | None, Query(max_length=20)] = None,
) -> Dossier:
    """The dossier `code`, for its applicant only: the receipt's secret or their phone."""
    found = await dossiers.get_with_access(code)
    if found is None or not handlers.may_see(found[1], secret=secret_header or secret, phone=phone):
        raise _not_found(code)
    return found[0]


Owned = Annotated[Dossier, Depends(owned_dossier)]


@router.get(
    "/dossiers/{code}",
    response_model=Receipt,
    tags=["dossiers"],
    summary="A dossier's status, for its applicant (secret or phone)",
    responses={404: {"description": "No such dossier for this secret or phone"}},
)
async def get_dossier(dossier: Owned) -> Receipt:
    return _receipt(dossier)


@router.post(
    "/dossiers/{code}/withdraw",
    response_model=Receipt,
    tags=["dossiers"],
    summary="Withdraw a dossier before its decision (rút hồ sơ)",
    responses={409: {"description": "Already decided or withdrawn"}},
    dependencies=[Limited],
)
async def withdraw_dossier(
    dossier: Owned,
    dossiers: Dossiers,
    settings: Settings,
    body: WithdrawalRequest | None = None,
) -> Receipt:
    try:
        dossier = await handlers.withdraw(
            dossier,
            body.reason if body else None,
            dossiers=dossiers,
            clock=utcnow,
            source=f"{settings.public_url}/v1/dossiers",
        )
    except NotAllowedNow as exc:
        raise Problem(
            409,
            f"It can no longer be withdrawn: {exc}.",
            "Hồ sơ không thể rút nữa.",
            code="not_withdrawable",
        ) from exc
    return _receipt(dossier)


@router.post(
    "/dossiers/{code}/supplements",
    response_model=Receipt,
    tags=["dossiers"],
    summary="Add the documents asked for (bổ sung hồ sơ)",
    responses={409: {"description": "No supplement is requested now"}},
    dependencies=[Limited],
)
async def supplement_dossier(
    dossier: Owned,
    body: SupplementRequest,
    dossiers: Dossiers,
    files: Files,
    settings: Settings,
    catalogue: Procedures,
) -> Receipt:
    procedure = catalogue.get(dossier.procedure_code)
    refs, errors = attachments.references(body.attachments, settings.max_attachments)
    if errors or procedure is None:
        raise invalid(errors)
    documents = await _documents(procedure, refs, files, require=False)
    try:
        dossier = await handlers.supplement(
            dossier,
            documents,
            body.note,
            dossiers=dossiers,
            clock=utcnow,
            source=f"{settings.public_url}/v1/dossiers",
        )
    except NotAllowedNow as exc:
        raise Problem(
            409,
            f"No supplement is requested: {exc}.",
            "Hồ sơ không ở trạng thái cần bổ sung.",
            code="no_supplement_requested",
        ) from exc
    return _receipt(dossier)


@router.post(
    "/attachments",
    status_code=status.HTTP_201_CREATED,
    tags=["attachments"],
    summary="Upload one document (the raw file as the body) before referring to it",
    responses={413: {"description": "File too large"}, 415: {"description": "File type"}},
    dependencies=[Limited],
)
async def upload_attachment(
    request: Request,
    files: Files,
    catalogue: Procedures,
    document_type: Annotated[str, Query(pattern=r"^[a-z0-9_]+$", max_length=50)],
    content_type: Annotated[str, Header(alias="Content-Type")] = "application/octet-stream",
) -> dict[str, Any]:
    media_type = content_type.split(";")[0].strip().lower()
    accepted = {m for p in catalogue for d in p.documents for m in d.media_types}
    if media_type not in accepted:
        raise Problem(
            415,
            f"Files of type {media_type} are not accepted.",
            f"Không nhận tệp loại {media_type}.",
            code="unsupported_media_type",
        )
    data = await request.body()
    if not data:
        raise Problem(422, "The file is empty.", "Tệp rỗng.", code="empty_file")
    return await files.put(data, media_type=media_type, document_type=document_type)


@router.get("/procedures", tags=["procedures"], summary="The procedure catalogue")
async def list_procedures(catalogue: Procedures) -> list[dict[str, Any]]:
    return [p.summary() for p in catalogue]


@router.get("/procedures/{code}", tags=["procedures"], summary="One procedure with its form")
async def get_procedure(code: str, catalogue: Procedures) -> dict[str, Any]:
    procedure = catalogue.get(code)
    if procedure is None:
        raise Problem(
            404,
            f"No procedure {code} in the catalogue.",
            f"Không có thủ tục {code} trong danh mục.",
            code="procedure_not_found",
        )
    return {
        **procedure.summary(),
        "form_schema": procedure.model.model_json_schema(),
        "example": procedure.example,
    }
