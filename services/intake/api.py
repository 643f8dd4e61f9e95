"""Intake's HTTP routes: parse, call a handler, map its errors to problem+json."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.intake import handlers
from services.intake.catalogue import Catalogue, FormError
from services.intake.domain import (
    Busy,
    Dossier,
    EmptyFile,
    NotAllowedNow,
    UnknownDossier,
    UnsupportedMedia,
)
from services.intake.handlers import Intake, Proof, Submit
from services.intake.idempotency import KeyReused, StillRunning
from services.intake.receipts import Receipt, receipt
from shared.contracts import Channel
from shared.limits import RateLimiter, rate_limited
from shared.problems import Problem
from shared.web import OfficerClaims, from_state, state_of

router = APIRouter(prefix="/v1")

Wired = Annotated[Intake, Depends(from_state("intake", Intake))]
Procedures = Annotated[Catalogue, Depends(from_state("catalogue", Catalogue))]
Limited = Depends(rate_limited(state_of("limiter", RateLimiter)))
SecretHeader = Annotated[
    str | None,
    Header(
        alias="X-Dossier-Secret",
        max_length=100,
        description="The secret (mã tra cứu) printed on the receipt.",
    ),
]
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


class WithdrawalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000)


class SupplementRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attachments: list[dict[str, Any]] = Field(min_length=1)
    note: str | None = Field(default=None, max_length=1000)


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


def _busy(code: str) -> Problem:
    return Problem(
        409,
        f"Dossier {code} is changing right now; please try again.",
        "Hồ sơ đang được cập nhật; vui lòng thử lại.",
        code="dossier_busy",
        headers={"Retry-After": "1"},
    )


async def _submit(cmd: Submit, intake: Intake) -> JSONResponse:
    try:
        answer, replayed = await handlers.submit(cmd, intake=intake)
    except FormError as exc:
        raise invalid(exc.errors) from exc
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
    headers = {"Location": f"/v1/dossiers/{answer['code']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(answer, status_code=201, headers=headers)


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
    return await _submit(Submit(body, Channel.ONLINE, None, idempotency_key), intake)


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
    cmd = Submit(body, Channel.DESK, officer.officer_id, idempotency_key)
    return await _submit(cmd, intake)


async def proof(
    code: str,
    secret_header: SecretHeader = None,
    secret: Annotated[str | None, Query(max_length=100)] = None,
    phone: Annotated[str | None, Query(max_length=20)] = None,
) -> Proof:
    """The dossier's code with the receipt's secret or the applicant's phone."""
    return Proof(code, secret_header or secret, phone)


Proven = Annotated[Proof, Depends(proof)]


@router.get(
    "/dossiers/{code}",
    response_model=Receipt,
    tags=["dossiers"],
    summary="A dossier's status, for its applicant (secret or phone)",
    responses={404: {"description": "No such dossier for this secret or phone"}},
)
async def get_dossier(given: Proven, intake: Wired) -> Receipt:
    try:
        return receipt(await handlers.look_up(given, dossiers=intake.dossiers))
    except UnknownDossier as exc:
        raise _not_found(given.code) from exc


@router.post(
    "/dossiers/{code}/withdraw",
    response_model=Receipt,
    tags=["dossiers"],
    summary="Withdraw a dossier before its decision (rút hồ sơ)",
    responses={409: {"description": "Already decided or withdrawn"}},
    dependencies=[Limited],
)
async def withdraw_dossier(
    given: Proven, intake: Wired, body: WithdrawalRequest | None = None
) -> Receipt:
    try:
        dossier = await handlers.withdraw(given, body.reason if body else None, intake=intake)
    except UnknownDossier as exc:
        raise _not_found(given.code) from exc
    except Busy as exc:
        raise _busy(given.code) from exc
    except NotAllowedNow as exc:
        raise Problem(
            409,
            f"It can no longer be withdrawn: {exc}.",
            "Hồ sơ không thể rút nữa.",
            code="not_withdrawable",
        ) from exc
    return receipt(dossier)


@router.post(
    "/dossiers/{code}/supplements",
    response_model=Receipt,
    tags=["dossiers"],
    summary="Add the documents asked for (bổ sung hồ sơ)",
    responses={409: {"description": "No supplement is requested now"}},
    dependencies=[Limited],
)
async def supplement_dossier(given: Proven, body: SupplementRequest, intake: Wired) -> Receipt:
    dossier: Dossier
    try:
        dossier = await handlers.supplement(given, body.attachments, body.note, intake=intake)
    except UnknownDossier as exc:
        raise _not_found(given.code) from exc
    except FormError as exc:
        raise invalid(exc.errors) from exc
    except Busy as exc:
        raise _busy(given.code) from exc
    except NotAllowedNow as exc:
        raise Problem(
            409,
            f"No supplement is requested: {exc}.",
            "Hồ sơ không ở trạng thái cần bổ sung.",
            code="no_supplement_requested",
        ) from exc
    return receipt(dossier)


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
    intake: Wired,
    document_type: Annotated[str, Query(pattern=r"^[a-z0-9_]+$", max_length=50)],
    content_type: Annotated[str, Header(alias="Content-Type")] = "application/octet-stream",
) -> dict[str, Any]:
    media_type = content_type.split(";")[0].strip().lower()
    try:
        return await handlers.upload(
            await request.body(),
            media_type=media_type,
            document_type=document_type,
            files=intake.files,
            catalogue=intake.catalogue,
        )
    except UnsupportedMedia as exc:
        raise Problem(
            415,
            f"Files of type {media_type} are not accepted.",
            f"Không nhận tệp loại {media_type}.",
            code="unsupported_media_type",
        ) from exc
    except EmptyFile as exc:
        raise Problem(422, "The file is empty.", "Tệp rỗng.", code="empty_file") from exc


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
