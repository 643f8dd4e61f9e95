"""Intake's HTTP routes: parse, call a handler, answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response, status
from pydantic import BaseModel

from services.intake import handlers
from services.intake.domain import Dossier, TemporaryResidenceRegistration
from services.intake.settings import IntakeSettings
from services.intake.store import DossierStore
from shared.clock import utcnow
from shared.problems import Problem
from shared.web import from_state

router = APIRouter(prefix="/v1", tags=["dossiers"])


Dossiers = Annotated[DossierStore, Depends(from_state("dossiers", DossierStore))]
Settings = Annotated[IntakeSettings, Depends(from_state("settings", IntakeSettings))]


class DossierStatus(BaseModel):
    """Where a dossier stands, with the national portal's status code (1–10)."""

    code: str
    procedure_code: str
    status: str
    status_code: int
    submitted_at: datetime
    history: list[dict[str, Any]] = []


def _status(dossier: Dossier) -> DossierStatus:
    return DossierStatus(
        code=dossier.code,
        procedure_code=dossier.procedure_code,
        status=dossier.status,
        status_code=int(dossier.status_code),
        submitted_at=dossier.submitted_at,
        history=[{"status": h["status"], "at": h["at"]} for h in dossier.history],
    )


@router.post(
    "/dossiers",
    status_code=status.HTTP_201_CREATED,
    response_model=DossierStatus,
    summary="Submit a dossier (nộp hồ sơ)",
    responses={422: {"description": "Invalid fields (problem+json, one entry per field)"}},
)
async def submit_dossier(
    form: Annotated[TemporaryResidenceRegistration, Body()],
    response: Response,
    dossiers: Dossiers,
    settings: Settings,
) -> DossierStatus:
    dossier = await handlers.submit(
        form,
        dossiers=dossiers,
        clock=utcnow,
        agency=settings.agency_code,
        source=f"{settings.public_url}/v1/dossiers",
    )
    response.headers["Location"] = f"/v1/dossiers/{dossier.code}"
    return _status(dossier)


@router.get("/dossiers/{code}", response_model=DossierStatus, summary="A dossier's status")
async def get_dossier(code: str, dossiers: Dossiers) -> DossierStatus:
    dossier = await dossiers.get(code)
    if dossier is None:
        raise Problem(
            404,
            f"No dossier with code {code}.",
            f"Không có hồ sơ mã {code}.",
            code="dossier_not_found",
        )
    return _status(dossier)
