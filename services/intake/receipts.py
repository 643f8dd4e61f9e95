"""What intake answers about a dossier: the receipt (giấy tiếp nhận) and its status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.intake.domain import Dossier


class HistoryStep(BaseModel):
    """One step of the dossier as its applicant may see it."""

    status: str
    at: datetime
    promised_at: datetime | None = Field(
        default=None, description="The promised result date this step set (a pause, an apology)."
    )
    reason: str | None = Field(
        default=None,
        description="Why, as told to the citizen: a refusal, a rejection, a stop, an apology, "
        "or what a supplement request asks.",
    )
    missing: list[str] = Field(
        default_factory=list, description="The document types a supplement request asks for."
    )


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
    history: list[HistoryStep] = []
    access_secret: str | None = Field(
        default=None, description="Only on the submission's answer: keep it to follow the dossier."
    )


def receipt(dossier: Dossier, secret: str | None = None) -> Receipt:
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
        history=[HistoryStep.model_validate(h) for h in dossier.history],
        access_secret=secret,
    )
