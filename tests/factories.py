"""Valid sample data, shared by the tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from services.intake.catalogue import load_catalogue
from services.intake.openapi import example
from services.review.domain import Task
from shared.contracts import (
    Applicant,
    Channel,
    DossierApproved,
    DossierAssigned,
    DossierAssignedData,
    DossierDecisionData,
    DossierReceived,
    DossierSubmitted,
    DossierSubmittedData,
    DossierTransitionData,
    Event,
    NotificationSent,
    NotificationSentData,
    PortalStatus,
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


# Monday 2 November 2026, 08:00 in Vietnam.
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def dossier_events(code: str) -> list[Event]:
    """Five events of one dossier, a minute apart (two of them at the same instant)."""
    submitted = submitted_event(code)
    submitted = submitted.model_copy(
        update={"time": T0, "data": submitted.data.model_copy(update={"submitted_at": T0})}
    )
    at = [T0 + timedelta(minutes=i) for i in range(5)]
    common = {"dossier_code": code, "task_id": "t1", "procedure_code": "1.004194"}
    assigned = DossierAssigned.caused_by(
        submitted,
        source="urn:review",
        time=at[1],
        data=DossierAssignedData(**common, unit_id="U", officer_id="o1", assigned_at=at[1]),
    )
    received = DossierReceived.caused_by(
        submitted,
        source="urn:review",
        time=at[2],
        data=DossierTransitionData(
            **common,
            workflow_version=1,
            action="receive",
            from_state="receiving",
            to_state="checking",
            unit_id="U",
            actor="o1",
            at=at[2],
            status_code=PortalStatus.RECEIVED,
        ),
    )
    approved = DossierApproved.caused_by(
        submitted,
        source="urn:review",
        time=at[3],
        data=DossierDecisionData(**common, unit_id="U", officer_id="o1", decided_at=at[3]),
    )
    sent = NotificationSent.caused_by(
        approved,
        source="urn:notify",
        time=at[3],  # the same instant as the decision: the event id orders them
        data=NotificationSentData(
            dossier_code=code,
            channel="email",
            recipient="l***@example.vn",
            trigger_event_id=approved.id,
            trigger_event_type=approved.type,
            sent_at=at[3],
        ),
    )
    return [submitted, assigned, received, approved, sent]
