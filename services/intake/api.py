"""Intake's HTTP routes: parse, call a handler, answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.intake import handlers
from services.intake.catalogue import Catalogue, FormError
from services.intake.domain import Dossier
from services.intake.idempotency import IdempotencyStore, KeyReused, StillRunning, fingerprint
from services.intake.settings import IntakeSettings
from services.intake.store import DossierStore
from services.intake.submission import parse
from shared.calendar import WorkingCalendar
from shared.clock import utcnow
from shared.contracts import Channel
from shared.problems import Problem
from shared.web import from_state

router = APIRouter(prefix="/v1")

Dossiers = Annotated[DossierStore, Depends(from_state("dossiers", DossierStore))]
Settings = Annotated[IntakeSettings, Depends(from_state("settings", IntakeSettings))]
Procedures = Annotated[Catalogue, Depends(from_state("catalogue", Catalogue))]
Calendar = Annotated[WorkingCalendar, Depends(from_state("calendar", WorkingCalendar))]
Keys = Annotated[IdempotencyStore, Depends(from_state("keys", IdempotencyStore))]


class Receipt(BaseModel):
    """Where a dossier stands, with the national portal's status code (1–10).

    On submission this is the receipt (giấy tiếp nhận): the code, when the clock started and
    the promised result date (ngày hẹn trả)."""

    code: str
    procedure_code: str
    procedure_version: int
    status: str
    status_code: int
    submitted_at: datetime
    received_at: datetime | None = None
    promised_at: datetime | None = None
    fee: int | None = None
    history: list[dict[str, Any]] = []


def _receipt(dossier: Dossier) -> Receipt:
    return Receipt(
        code=dossier.code,
        procedure_code=dossier.procedure_code,
        procedure_version=dossier.procedure_version,
        status=dossier.status,
        status_code=int(dossier.status_code),
        submitted_at=dossier.submitted_at,
        received_at=dossier.received_at,
        promised_at=dossier.promised_at,
        fee=dossier.fee,
        history=[{"status": h["status"], "at": h["at"]} for h in dossier.history],
    )


def invalid(exc: FormError) -> Problem:
    fields = ", ".join(e["field"] for e in exc.errors)
    return Problem(
        422,
        f"The submission has invalid fields: {fields}.",
        f"Hồ sơ có trường không hợp lệ: {fields}.",
        code="validation_failed",
        extra={"errors": exc.errors},
    )


@router.post(
    "/dossiers",
    status_code=status.HTTP_201_CREATED,
    response_model=Receipt,
    tags=["dossiers"],
    summary="Submit a dossier (nộp hồ sơ) for any procedure of the catalogue",
    responses={422: {"description": "Invalid fields (problem+json, one entry per field)"}},
)
async def submit_dossier(
    body: Annotated[dict[str, Any], Body()],
    dossiers: Dossiers,
    keys: Keys,
    settings: Settings,
    catalogue: Procedures,
    calendar: Calendar,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="Any unique string (e.g. a UUID): a retry with the same key and body "
            "returns the first answer and creates nothing new.",
        ),
    ] = None,
) -> JSONResponse:
    try:  # validate first: a request that fails changes nothing, not even its key
        submission = parse(body, catalogue, channel=int(Channel.ONLINE))
    except FormError as exc:
        raise invalid(exc) from exc

    async def work() -> dict[str, Any]:
        done = await dossiers.by_idempotency_key(idempotency_key) if idempotency_key else None
        dossier = done or await handlers.submit(
            submission,
            dossiers=dossiers,
            calendar=calendar,
            clock=utcnow,
            agency=settings.agency_code,
            source=f"{settings.public_url}/v1/dossiers",
            idempotency_key=idempotency_key,
        )
        return _receipt(dossier).model_dump(mode="json")

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


@router.get(
    "/dossiers/{code}", response_model=Receipt, tags=["dossiers"], summary="A dossier's status"
)
async def get_dossier(code: str, dossiers: Dossiers) -> Receipt:
    dossier = await dossiers.get(code)
    if dossier is None:
        raise Problem(
            404,
            f"No dossier with code {code}.",
            f"Không có hồ sơ mã {code}.",
            code="dossier_not_found",
        )
    return _receipt(dossier)


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
