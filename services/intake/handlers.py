"""Intake's use cases."""

from __future__ import annotations

import logging

from services.intake.domain import VIETNAM, Dossier, TemporaryResidenceRegistration
from services.intake.store import DossierStore
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

log = logging.getLogger(__name__)


# Review's events that move intake's view of a dossier forward.
STATUS_OF_EVENT = {
    DossierAssigned.event_type: "assigned",
    DossierApproved.event_type: "approved",
    DossierRejected.event_type: "rejected",
}


async def submit(
    form: TemporaryResidenceRegistration,
    *,
    dossiers: DossierStore,
    clock: Clock,
    agency: str,
    source: str,
    channel: Channel = Channel.ONLINE,
    submitted_by: str | None = None,
) -> Dossier:
    """Give the dossier a code, store it with its `dossier.submitted` event, then publish."""
    now = clock()

    def build(code: str) -> tuple[Dossier, list[Event]]:
        dossier = Dossier(
            code=code,
            procedure_code=form.procedure_code,
            channel=channel,
            submitted_at=now,
            form=form.model_dump(mode="json"),
            submitted_by=submitted_by,
            history=[{"status": "submitted", "at": now}],
        )
        event = DossierSubmitted.create(
            source=source,
            subject=code,
            time=now,
            data=DossierSubmittedData(
                dossier_code=code,
                procedure_code=form.procedure_code,
                channel=channel,
                submitted_at=now,
                applicant=Applicant.model_validate(form.applicant.model_dump()),
                residence=Residence.model_validate(form.residence.model_dump()),
                submitted_by=submitted_by,
            ),
        )
        return dossier, [event]

    dossier, doc = await dossiers.add_new(agency, now.astimezone(VIETNAM).date(), build)
    try:
        await dossiers.outbox.flush(doc)
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
