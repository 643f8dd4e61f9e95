"""Intake's pure rules: the dossier, its code, what the citizen may do and the status they see.
(The status tables and how steps add up to a status are in `status.py`.)

Each step decides here, with no I/O: `new_dossier`, `withdraw`, `supplement`, and
`review_step` (what one of review's events means for the citizen's view). A decision returns
the dossier's new state and the events it emits; the store records them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from services.intake.fields import normalise_mobile
from services.intake.status import (
    STATUS_CODES,
    STATUS_OF_EVENT,
    TOLD_WHY,
    WITHDRAWABLE,
    Step,
    current_status,
    in_order,
    promised_date,
)
from services.intake.submission import Submission
from shared.calendar import WorkingCalendar
from shared.contracts import (
    Applicant,
    Channel,
    DossierSubmitted,
    DossierSubmittedData,
    DossierSupplemented,
    DossierSupplementedData,
    DossierWithdrawn,
    DossierWithdrawnData,
    Event,
    PortalStatus,
    Residence,
)


class DomainError(Exception):
    """A rule of intake was broken; nothing was changed."""


class NotAllowedNow(DomainError):
    """The dossier's current status does not allow this."""


class NotIntakes(DomainError):
    """An event type intake does not follow."""


class UnknownDossier(DomainError):
    """No such dossier, or not for this secret or phone (the same answer: codes cannot be
    probed)."""


class Busy(DomainError):
    """The dossier kept changing while this step was being decided; try again."""


class UnsupportedMedia(DomainError):
    """No procedure takes files of this type."""


class EmptyFile(DomainError):
    """An upload without a byte."""


@dataclass(frozen=True)
class Access:
    """What proves a citizen's right to see a dossier: the receipt's secret, or their phone."""

    secret_sha256: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Dossier:
    """A submitted dossier as intake keeps it: what was filed, and each step since."""

    code: str
    procedure_code: str
    channel: Channel
    submitted_at: datetime
    form: dict[str, Any]
    submitted_by: str | None = None
    procedure_version: int = 1
    received_at: datetime | None = None
    receipt_promised_at: datetime | None = None
    fee: int | None = None
    notify_by: tuple[str, ...] = ()
    attachments: tuple[dict[str, Any], ...] = ()
    steps: tuple[Step, ...] = ()
    access: Access = field(default_factory=Access)
    correlation_id: str | None = None
    version: int = 1
    idempotency_key: str | None = None
    unit_id: str | None = None  # the unit that receives it (from review's assignment)
    # The events the dossier recorded, as the store keeps them (None when loaded without).
    outbox: tuple[dict[str, Any], ...] | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        return current_status(self.steps)

    @property
    def status_code(self) -> PortalStatus:
        return STATUS_CODES[self.status]

    @property
    def promised_at(self) -> datetime | None:
        return promised_date(self.steps, self.receipt_promised_at)

    @property
    def history(self) -> list[dict[str, Any]]:
        """Each status reached, in order, starting with the submission."""
        return [{"status": "submitted", "at": self.submitted_at}] + [
            _told(s) for s in in_order(self.steps)
        ]

    def with_step(self, step: Step) -> Dossier:
        return replace(self, steps=(*self.steps, step), version=self.version + 1)


def _told(step: Step) -> dict[str, Any]:
    """A step as its applicant sees it: the status and time, the new promised date it set,
    and why (with the documents asked for), when review's event said so."""
    told: dict[str, Any] = {"status": step.status, "at": step.at}
    if step.promised_at is not None:
        told["promised_at"] = step.promised_at
    if step.reason:
        told["reason"] = step.reason
    if step.missing:
        told["missing"] = list(step.missing)
    return told


def dossier_code(agency: str, day: date, number: int) -> str:
    """Mã hồ sơ: `{agency}-{yyMMdd}-{NNNN}`, the counter padded to at least four digits."""
    return f"{agency}-{day:%y%m%d}-{number:04d}"


def code_series(agency: str, day: date) -> str:
    """The series a day's codes are counted in."""
    return f"{agency}-{day:%y%m%d}"


def new_secret() -> str:
    """The citizen's key to their dossier's status (mã tra cứu), shown once on the receipt."""
    return secrets.token_urlsafe(12)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def may_see(access: Access, *, secret: str | None, phone: str | None) -> bool:
    """Whether the caller proved to be the applicant: the receipt's secret, or their phone."""
    if secret and access.secret_sha256:
        return hmac.compare_digest(hash_secret(secret), access.secret_sha256)
    if phone and access.phone:
        try:
            return normalise_mobile(phone) == access.phone
        except ValueError:
            return False
    return False


def new_dossier(
    submission: Submission,
    code: str,
    *,
    now: datetime,
    calendar: WorkingCalendar,
    source: str,
    secret: str,
    submitted_by: str | None = None,
    documents: list[dict[str, Any]] | None = None,
    idempotency_key: str | None = None,
) -> tuple[Dossier, list[Event]]:
    """Tiếp nhận: the new dossier under `code`, with its receipt dates, and `dossier.submitted`."""
    procedure = submission.procedure
    saturday = procedure.saturday_morning
    received_at = calendar.next_working_moment(now, saturday_morning=saturday)
    promised_at = calendar.promised_at(
        now, procedure.deadline.working_days, saturday_morning=saturday
    )
    form = submission.form
    residence = form.get("residence")
    event = DossierSubmitted.create(
        source=source,
        subject=code,
        time=now,
        data=DossierSubmittedData(
            dossier_code=code,
            procedure_code=procedure.code,
            procedure_name=procedure.name_vi,
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
            document_names={d.type: d.name_vi for d in procedure.documents},
        ),
    )
    dossier = Dossier(
        code=code,
        procedure_code=procedure.code,
        channel=Channel(submission.channel),
        submitted_at=now,
        form=form,
        submitted_by=submitted_by,
        procedure_version=procedure.version,
        received_at=received_at,
        receipt_promised_at=promised_at,
        fee=submission.fee,
        notify_by=submission.notify_by,
        attachments=tuple(documents or ()),
        access=Access(hash_secret(secret), submission.applicant.get("phone")),
        correlation_id=event.correlationid,
        idempotency_key=idempotency_key,
    )
    return dossier, [event]


def withdraw(
    dossier: Dossier, reason: str | None, *, now: datetime, source: str
) -> tuple[Dossier, list[Event]]:
    """Rút hồ sơ: allowed until a decision."""
    if dossier.status not in WITHDRAWABLE:
        raise NotAllowedNow(f"dossier {dossier.code} is {dossier.status}")
    data = DossierWithdrawnData(dossier_code=dossier.code, withdrawn_at=now, reason=reason)
    return _citizen_step(dossier, "withdrawn", DossierWithdrawn, data, now, source)


def supplement(
    dossier: Dossier,
    documents: list[dict[str, Any]],
    note: str | None,
    *,
    now: datetime,
    source: str,
) -> tuple[Dossier, list[Event]]:
    """Bổ sung hồ sơ: only while a supplement is requested."""
    if dossier.status != "supplement_requested":
        raise NotAllowedNow(f"dossier {dossier.code} is {dossier.status}, no supplement asked")
    data = DossierSupplementedData(
        dossier_code=dossier.code, supplemented_at=now, documents=documents, note=note
    )
    return _citizen_step(dossier, "supplemented", DossierSupplemented, data, now, source)


def _citizen_step(
    dossier: Dossier,
    status: str,
    model: type[Event],
    data: Any,
    now: datetime,
    source: str,
) -> tuple[Dossier, list[Event]]:
    event = model.create(
        source=source,
        subject=dossier.code,
        time=now,
        correlationid=dossier.correlation_id,
        data=data,
    )
    return dossier.with_step(Step(event.id, status, now)), [event]


def review_step(event: Event) -> Step:
    """What one of review's events means for the citizen: the status reached (and the
    promised date it announces, if any)."""
    status = STATUS_OF_EVENT.get(event.type)
    if status is None:
        raise NotIntakes(f"intake does not handle {event.type}")
    data = event.data
    told = status in TOLD_WHY
    reason = (getattr(data, "reason", None) or getattr(data, "note", None)) if told else None
    return Step(
        event.id,
        status,
        event.time,
        getattr(data, "promised_at", None),
        reason=reason or None,
        missing=tuple(getattr(data, "missing", None) or ()) if told else (),
    )
