"""Intake's use cases."""

from __future__ import annotations

import logging

from services.intake.domain import Dossier
from services.intake.store import DossierStore
from services.intake.submission import Submission
from shared.calendar import VIETNAM, WorkingCalendar
from shared.clock import Clock
from shared.contracts import (
    Applicant,
    Channel,
    DossierApproved,
    DossierAssigned,
    DossierRejected,
    DossierSubmitted,
    DossierSubmittedData,
    Event,
    Residence,
)
from shared.messaging import PermanentFailure
from shared.outbox import events_of

log = logging.getLogger(__name__)


# Review's events that move intake's view of a dossier forward.
STATUS_OF_EVENT = {
    DossierAssigned.event_type: "assigned",
    DossierApproved.event_type: "approved",
    DossierRejected.event_type: "rejected",
}


async def submit(
    submission: Submission,
    *,
    dossiers: DossierStore,
    calendar: WorkingCalendar,
    clock: Clock,
    agency: str,
    source: str,
    submitted_by: str | None = None,
    idempotency_key: str | None = None,
) -> Dossier:
    """Give the dossier a code and a promised date, store it with its `dossier.submitted`
    event, then publish."""
    now = clock()
    procedure = submission.procedure
    saturday = procedure.saturday_morning
    received_at = calendar.next_working_moment(now, saturday_morning=saturday)
    promised_at = calendar.promised_at(
        now, procedure.deadline.working_days, saturday_morning=saturday
    )
    form = submission.form
    residence = form.get("residence")

    def build(code: str) -> tuple[Dossier, list[Event]]:
        dossier = Dossier(
            code=code,
            procedure_code=procedure.code,
            channel=Channel(submission.channel),
            submitted_at=now,
            form=form,
            submitted_by=submitted_by,
            history=[{"status": "submitted", "at": now}],
            procedure_version=procedure.version,
            received_at=received_at,
            promised_at=promised_at,
            fee=submission.fee,
            notify_by=submission.notify_by,
        )
        event = DossierSubmitted.create(
            source=source,
            subject=code,
            time=now,
            data=DossierSubmittedData(
                dossier_code=code,
                procedure_code=procedure.code,
                procedure_version=procedure.version,
                channel=Channel(submission.channel),
                submitted_at=now,
                received_at=received_at,
                promised_at=promised_at,
                applicant=Applicant.model_validate(submission.applicant),
                residence=Residence.model_validate(residence)
                if isinstance(residence, dict) and {"ward_code", "address"} <= set(residence)
                else None,
                receiving_unit=procedure.receiving_unit,
                ward_code=submission.ward_code,
                submitted_by=submitted_by,
                fee=submission.fee,
                notify_by=list(submission.notify_by),
                applicant_kind=submission.applicant_kind,
                form=form,
            ),
        )
        return dossier, [event]

    dossier, doc = await dossiers.add_new(
        agency, now.astimezone(VIETNAM).date(), build, idempotency_key=idempotency_key
    )
    try:
        await dossiers.outbox.flush(events_of(doc))
    except Exception:
        # Stored is what matters to the citizen: the outbox relay publishes it shortly.
        log.warning(
            "dossier.submitted not published yet", extra={"dossier": dossier.code}, exc_info=True
        )
    return dossier


async def track_status(event: Event, *, dossiers: DossierStore) -> None:
    """Keep the citizen-facing status in step with review's events (idempotent, order-proof)."""
    status = STATUS_OF_EVENT.get(event.type)
    if status is None:
        raise PermanentFailure(f"intake does not handle {event.type}")
    if not await dossiers.exists(event.subject):
        raise PermanentFailure(f"unknown dossier {event.subject}")
    await dossiers.record_status(event.subject, status, event.time, event.id)
