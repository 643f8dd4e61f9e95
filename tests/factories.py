"""Valid sample data, shared by the tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from services.intake.catalogue import load_catalogue
from services.intake.openapi import example
from services.review.domain import Task
from shared.contracts import (
    Applicant,
    Channel,
    DossierApproved,
    DossierDecisionData,
    DossierSubmitted,
    DossierSubmittedData,
    Residence,
)

CATALOGUE = load_catalogue()
# The example that intake's OpenAPI document shows is the valid submission the tests start from.
VALID_FORM: dict[str, Any] = example(CATALOGUE.procedures["1.004194"])


def form(**applicant: Any) -> dict[str, Any]:
    """The valid form with some applicant fields replaced."""
    body = copy.deepcopy(VALID_FORM)
    body["applicant"].update(applicant)
    return body


def submitted_event(code: str = "G01.99-261128-0001", ward: str = "00004") -> DossierSubmitted:
    now = datetime.now(UTC)
    return DossierSubmitted.create(
        source="urn:test",
        subject=code,
        time=now,
        data=DossierSubmittedData(
            dossier_code=code,
            procedure_code="1.004194",
            channel=Channel.ONLINE,
            submitted_at=now,
            applicant=Applicant.model_validate(
                {**VALID_FORM["applicant"], "phone": "+84912345678"}
            ),
            residence=Residence(ward_code=ward, address="Số 1 phố Huế"),
        ),
    )


def approved_event(cause: DossierSubmitted) -> DossierApproved:
    """An officer's approval of the dossier `cause` submitted."""
    return DossierApproved.create(
        source="urn:test",
        subject=cause.subject,
        correlationid=cause.correlationid,
        data=DossierDecisionData(
            dossier_code=cause.subject,
            task_id="t1",
            procedure_code=cause.data.procedure_code,
            unit_id="U",
            officer_id="cb-01",
            decided_at=datetime.now(UTC),
        ),
    )


def review_task(**changes: Any) -> Task:
    """A task of review in its receipt step; `changes` set any field."""
    fields: dict[str, Any] = {
        "id": "t1",
        "dossier_code": "D1",
        "procedure_code": "1.004194",
        "unit_id": "U",
        "officer_id": "o1",
        "state": "receiving",
        "created_at": datetime.now(UTC),
        "correlation_id": "c",
        "dossier": {},
    }
    fields.update(changes)
    return Task(**fields)
