"""Intake's HTTP routes: parse, call a handler, answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response, status
from pydantic import BaseModel

from services.intake import handlers
from services.intake.catalogue import Catalogue, FormError
from services.intake.domain import Dossier
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
    response: Response,
    dossiers: Dossiers,
    settings: Settings,
    catalogue: Procedures,
    calendar: Calendar,
) -> Receipt:
    try:
        submission = parse(body, catalogue, channel=int(Channel.ONLINE))
    except FormError as exc:
        raise invalid(exc) from exc
    dossier = await handlers.submit(
        submission,
        dossiers=dossiers,
        calendar=calendar,
        clock=utcnow,
        agency=settings.agency_code,
        source=f"{settings.public_url}/v1/dossiers",
    )
    response.headers["Location"] = f"/v1/dossiers/{dossier.code}"
    return _receipt(dossier)


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
