"""Intake's use cases."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime
from typing import Any

from services.intake.domain import WITHDRAWABLE, Dossier, NotAllowedNow
from services.intake.fields import normalise_mobile
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
    DossierSupplemented,
    DossierSupplementedData,
    DossierSupplementRequested,
    DossierWithdrawn,
    DossierWithdrawnData,
    Event,
    EventData,
    Residence,
)
from shared.messaging import PermanentFailure
from shared.outbox import events_of

log = logging.getLogger(__name__)


# Review's events that move intake's view of a dossier forward.
STATUS_OF_EVENT = {
    DossierAssigned.event_type: "assigned",
    "dossier.received": "received",
    "dossier.refused": "refused",
    "dossier.checked": "checked",
    "dossier.payment_requested": "payment_requested",
    "dossier.paid": "paid",
    "dossier.stopped": "stopped",
    "dossier.result_delivered": "delivered",
    DossierSupplementRequested.event_type: "supplement_requested",
    DossierApproved.event_type: "approved",
    DossierRejected.event_type: "rejected",
    "dossier.apology_issued": "apology_issued",  # a notice: the status stays, the date moves
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
    documents: list[dict[str, Any]] | None = None,
    secret: str | None = None,
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
            attachments=tuple(documents or ()),
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
                documents=documents or [],
            ),
        )
        return dossier, [event]

    dossier, doc = await dossiers.add_new(
        agency,
        now.astimezone(VIETNAM).date(),
        build,
        idempotency_key=idempotency_key,
        secret_sha256=hash_secret(secret) if secret else None,
    )
    try:
        await dossiers.outbox.flush(events_of(doc))
    except Exception:
        # Stored is what matters to the citizen: the outbox relay publishes it shortly.
        log.warning(
            "dossier.submitted not published yet", extra={"dossier": dossier.code}, exc_info=True
        )
    return dossier


def new_secret() -> str:
    """The citizen's key to their dossier's status (mã tra cứu), shown once on the receipt."""
    return secrets.token_urlsafe(12)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def may_see(access: dict[str, Any], *, secret: str | None, phone: str | None) -> bool:
    """Whether the caller proved to be the applicant: the receipt's secret, or their phone."""
    if secret and access.get("secret_sha256"):
        return hmac.compare_digest(hash_secret(secret), str(access["secret_sha256"]))
    if phone and access.get("phone"):
        try:
            return normalise_mobile(phone) == str(access["phone"])
        except ValueError:
            return False
    return False


async def withdraw(
    dossier: Dossier, reason: str | None, *, dossiers: DossierStore, clock: Clock, source: str
) -> Dossier:
    """Rút hồ sơ: allowed until a decision; publishes `dossier.withdrawn` once."""
    if dossier.status not in WITHDRAWABLE:
        raise NotAllowedNow(f"dossier {dossier.code} is {dossier.status}")
    now = clock()
    data = DossierWithdrawnData(dossier_code=dossier.code, withdrawn_at=now, reason=reason)
    return await _citizen_step(dossiers, dossier, "withdrawn", DossierWithdrawn, data, now, source)


async def supplement(
    dossier: Dossier,
    documents: list[dict[str, Any]],
    note: str | None,
    *,
    dossiers: DossierStore,
    clock: Clock,
    source: str,
) -> Dossier:
    """Bổ sung hồ sơ: only while a supplement is requested; publishes `dossier.supplemented`."""
    if dossier.status != "supplement_requested":
        raise NotAllowedNow(f"dossier {dossier.code} is {dossier.status}, no supplement asked")
    now = clock()
    data = DossierSupplementedData(
        dossier_code=dossier.code, supplemented_at=now, documents=documents, note=note
    )
    return await _citizen_step(
        dossiers, dossier, "supplemented", DossierSupplemented, data, now, source
    )


async def _citizen_step(
    dossiers: DossierStore,
    dossier: Dossier,
    status: str,
    model: type[Event],
    data: EventData,
    at: datetime,
    source: str,
) -> Dossier:
    """Record the citizen's step with its event (published at once, or by the relay)."""
    event = model.create(
        source=source,
        subject=dossier.code,
        time=at,
        correlationid=await dossiers.correlation_id(dossier.code),
        data=data,
    )
    if await dossiers.record_status(dossier.code, status, at, event.id, [event]) is not None:
        try:
            await dossiers.outbox.flush([event])
        except Exception:
            log.warning(
                "%s not published yet", event.type, extra={"dossier": dossier.code}, exc_info=True
            )
    reloaded = await dossiers.get(dossier.code)
    assert reloaded is not None
    return reloaded


async def track_status(event: Event, *, dossiers: DossierStore) -> None:
    """Keep the citizen-facing status in step with review's events (idempotent, order-proof)."""
    status = STATUS_OF_EVENT.get(event.type)
    if status is None:
        raise PermanentFailure(f"intake does not handle {event.type}")
    if not await dossiers.exists(event.subject):
        raise PermanentFailure(f"unknown dossier {event.subject}")
    promised_at = getattr(event.data, "promised_at", None)
    await dossiers.record_status(
        event.subject, status, event.time, event.id, promised_at=promised_at
    )
