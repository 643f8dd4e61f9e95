"""One frozen model per event type. A schema changes only by adding an optional field."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from shared.contracts.envelope import Event, EventData
from shared.contracts.status import Channel, PortalStatus

Sex = Literal["male", "female"]


class Applicant(EventData):
    """The citizen a dossier is for (người nộp hồ sơ)."""

    full_name: str = Field(json_schema_extra={"x-personal": True})
    personal_id: str = Field(
        description="12-digit personal ID number (số định danh cá nhân).",
        json_schema_extra={"x-personal": True},
    )
    date_of_birth: date = Field(json_schema_extra={"x-personal": True})
    sex: Sex = Field(json_schema_extra={"x-personal": True})
    phone: str = Field(
        description="Mobile number in +84 form.", json_schema_extra={"x-personal": True}
    )
    email: str | None = Field(default=None, json_schema_extra={"x-personal": True})


class Residence(EventData):
    """Where the applicant registers to live."""

    ward_code: str = Field(
        description="Commune/ward code of the 2025 administrative list.",
        json_schema_extra={"x-personal": True},
    )
    address: str = Field(json_schema_extra={"x-personal": True})


class DossierSubmittedData(EventData):
    dossier_code: str
    procedure_code: str
    procedure_name: str | None = Field(
        default=None, description="The procedure's Vietnamese name, as the catalogue gives it."
    )
    channel: Channel
    submitted_at: datetime
    applicant: Applicant
    residence: Residence | None = Field(
        default=None, description="Where the applicant lives, for residence procedures."
    )
    submitted_by: str | None = Field(
        default=None, description="Officer id when submitted at the desk for a citizen."
    )
    status_code: PortalStatus = PortalStatus.NEW
    procedure_version: int | None = Field(default=None, description="Catalogue version used.")
    receiving_unit: Literal["ward", "province"] | None = Field(
        default=None, description="Whether ward police or the province office receive it."
    )
    ward_code: str | None = Field(
        default=None, description="The ward whose police receive it (ward procedures)."
    )
    received_at: datetime | None = Field(
        default=None, description="When the clock starts: the next working moment."
    )
    promised_at: datetime | None = Field(
        default=None, description="Ngày hẹn trả: the promised result date."
    )
    fee: int | None = Field(default=None, description="Fee due, in VND.")
    notify_by: list[Literal["sms", "email", "zalo"]] = Field(
        default_factory=list, description="Channels the citizen chose for notifications."
    )
    applicant_kind: Literal[1, 2, 3, 4] = 1
    form: dict[str, Any] | None = Field(
        default=None,
        description="The whole form as submitted (procedure-specific).",
        json_schema_extra={"x-personal": True},
    )
    documents: list[dict[str, Any]] = Field(
        default_factory=list, description="Attachments: document type, id, sha256, size."
    )
    document_names: dict[str, str] = Field(
        default_factory=dict,
        description="Every document type the procedure takes, with its Vietnamese name: how a "
        "supplement request's `missing` types are told to the citizen.",
    )


class DossierAssignedData(EventData):
    dossier_code: str
    task_id: str
    procedure_code: str
    procedure_name: str | None = Field(
        default=None, description="The procedure's Vietnamese name, as the catalogue gives it."
    )
    unit_id: str
    officer_id: str
    assigned_at: datetime
    status_code: PortalStatus = PortalStatus.IN_PROCESS


class DossierReassignedData(EventData):
    """Who holds a dossier's task now: claimed, released to the unit, or reassigned."""

    dossier_code: str
    task_id: str
    procedure_code: str
    procedure_name: str | None = Field(
        default=None, description="The procedure's Vietnamese name, as the catalogue gives it."
    )
    unit_id: str
    officer_id: str | None = Field(description="The new holder; None: released to the unit.")
    previous_officer_id: str | None
    by: str = Field(description="Who made the change (the holder, a claimant, a supervisor).")
    action: Literal["claim", "release", "reassign"]
    at: datetime
    reason: str | None = None


class DossierDecisionData(EventData):
    dossier_code: str
    task_id: str
    procedure_code: str
    procedure_name: str | None = Field(
        default=None, description="The procedure's Vietnamese name, as the catalogue gives it."
    )
    unit_id: str
    officer_id: str = Field(description="The officer who decided.")
    decided_at: datetime
    reason: str | None = None
    status_code: PortalStatus = PortalStatus.DECIDED
    promised_at: datetime | None = Field(
        default=None, description="Ngày hẹn trả in force when decided (after any apology)."
    )


class DossierWithdrawnData(EventData):
    dossier_code: str
    withdrawn_at: datetime
    reason: str | None = None
    status_code: PortalStatus = PortalStatus.WITHDRAWN


class DossierSupplementRequestedData(EventData):
    dossier_code: str
    task_id: str
    officer_id: str
    requested_at: datetime
    missing: list[str] = Field(default_factory=list, description="Document types still needed.")
    note: str | None = None
    status_code: PortalStatus = PortalStatus.SUPPLEMENT_REQUESTED


class DossierSupplementedData(EventData):
    dossier_code: str
    supplemented_at: datetime
    documents: list[dict[str, Any]] = Field(
        default_factory=list, description="Attachments added: type, id, sha256, size."
    )
    note: str | None = None
    status_code: PortalStatus = PortalStatus.IN_PROCESS


class DossierTransitionData(EventData):
    """A step of a dossier's workflow taken by someone (officer, citizen or the system)."""

    dossier_code: str
    task_id: str
    procedure_code: str
    procedure_name: str | None = Field(
        default=None, description="The procedure's Vietnamese name, as the catalogue gives it."
    )
    workflow_version: int
    action: str
    from_state: str
    to_state: str
    unit_id: str
    actor: str = Field(description="Officer id, `citizen`, or `system`.")
    at: datetime
    reason: str | None = None
    status_code: PortalStatus
    promised_at: datetime | None = Field(
        default=None, description="Ngày hẹn trả in force after this step (after any apology)."
    )


class DossierApologyData(EventData):
    """Phiếu xin lỗi và hẹn lại ngày trả kết quả: a late dossier's apology and new date."""

    dossier_code: str
    task_id: str
    procedure_code: str
    procedure_name: str | None = Field(
        default=None, description="The procedure's Vietnamese name, as the catalogue gives it."
    )
    unit_id: str
    officer_id: str = Field(description="The officer who issued the apology.")
    issued_at: datetime
    reason: str = Field(description="Why the dossier is late, as told to the citizen.")
    previous_promised_at: datetime | None
    promised_at: datetime = Field(description="The new promised result date.")
    status_code: PortalStatus


SlipForm = Literal["receipt", "control", "apology"]
"""The BM-VP01 slips an officer prints: giấy tiếp nhận hồ sơ và hẹn trả kết quả (receipt),
phiếu kiểm soát quá trình giải quyết hồ sơ (control), phiếu xin lỗi và hẹn lại ngày trả kết
quả (apology)."""


class DossierSlipPrintedData(EventData):
    """Who printed which slip of a dossier, and when."""

    dossier_code: str
    task_id: str
    procedure_code: str
    procedure_name: str | None = Field(
        default=None, description="The procedure's Vietnamese name, as the catalogue gives it."
    )
    unit_id: str
    actor: str = Field(description="The officer who printed it (officer id).")
    form: SlipForm
    printed_at: datetime
    promised_at: datetime | None = Field(
        default=None, description="Ngày hẹn trả in force when printed (the date on the slip)."
    )
    status_code: PortalStatus


class DossierSlaData(EventData):
    """A task's step is due soon, or overdue."""

    dossier_code: str
    task_id: str
    state: str
    due_at: datetime
    unit_id: str
    officer_id: str | None = Field(default=None, description="Holder; None: the unit's pool.")
    escalated_to: str | None = Field(
        default=None, description="The supervisor the overdue task now also goes to."
    )


class NotificationData(EventData):
    dossier_code: str
    channel: Literal["email", "sms", "zalo", "webhook"]
    recipient: str = Field(
        description="Masked address: never the full e-mail or phone number.",
        json_schema_extra={"x-personal": True},
    )
    trigger_event_id: str
    trigger_event_type: str


class NotificationSentData(NotificationData):
    sent_at: datetime
    provider_message_id: str | None = None


class NotificationFailedData(NotificationData):
    failed_at: datetime
    reason: str
    permanent: bool = Field(description="True when retrying cannot help (bad address, refusal).")


class DossierSubmitted(Event):
    """A citizen (or an officer at the desk) submitted a dossier; intake accepted it."""

    event_type: ClassVar[str] = "dossier.submitted"
    type: Literal["dossier.submitted"] = "dossier.submitted"
    data: DossierSubmittedData


class DossierAssigned(Event):
    """Review created the dossier's task and gave it to an officer of the ward's unit."""

    event_type: ClassVar[str] = "dossier.assigned"
    type: Literal["dossier.assigned"] = "dossier.assigned"
    data: DossierAssignedData


class DossierReassigned(Event):
    """A task changed hands: claimed, released or reassigned (not a change of status)."""

    event_type: ClassVar[str] = "dossier.reassigned"
    type: Literal["dossier.reassigned"] = "dossier.reassigned"
    data: DossierReassignedData


class DossierApproved(Event):
    """An officer approved the dossier."""

    event_type: ClassVar[str] = "dossier.approved"
    type: Literal["dossier.approved"] = "dossier.approved"
    data: DossierDecisionData


class DossierRejected(Event):
    """An officer rejected the dossier, with a reason."""

    event_type: ClassVar[str] = "dossier.rejected"
    type: Literal["dossier.rejected"] = "dossier.rejected"
    data: DossierDecisionData


class DossierWithdrawn(Event):
    """The citizen withdrew the dossier before a decision (rút hồ sơ)."""

    event_type: ClassVar[str] = "dossier.withdrawn"
    type: Literal["dossier.withdrawn"] = "dossier.withdrawn"
    data: DossierWithdrawnData


class DossierSupplementRequested(Event):
    """An officer asked the citizen for missing documents; the clock stops meanwhile."""

    event_type: ClassVar[str] = "dossier.supplement_requested"
    type: Literal["dossier.supplement_requested"] = "dossier.supplement_requested"
    data: DossierSupplementRequestedData


class DossierSupplemented(Event):
    """The citizen added the documents asked for."""

    event_type: ClassVar[str] = "dossier.supplemented"
    type: Literal["dossier.supplemented"] = "dossier.supplemented"
    data: DossierSupplementedData


class DossierReceived(Event):
    """The ward police accepted the dossier at receipt (tiếp nhận)."""

    event_type: ClassVar[str] = "dossier.received"
    type: Literal["dossier.received"] = "dossier.received"
    data: DossierTransitionData


class DossierRefused(Event):
    """The dossier was refused at receipt (không tiếp nhận), with a reason."""

    event_type: ClassVar[str] = "dossier.refused"
    type: Literal["dossier.refused"] = "dossier.refused"
    data: DossierTransitionData


class DossierChecked(Event):
    """An officer checked the dossier and proposed a decision to the chief."""

    event_type: ClassVar[str] = "dossier.checked"
    type: Literal["dossier.checked"] = "dossier.checked"
    data: DossierTransitionData


class DossierPaymentRequested(Event):
    """The citizen was asked to pay the fee."""

    event_type: ClassVar[str] = "dossier.payment_requested"
    type: Literal["dossier.payment_requested"] = "dossier.payment_requested"
    data: DossierTransitionData


class DossierPaid(Event):
    """The fee was paid."""

    event_type: ClassVar[str] = "dossier.paid"
    type: Literal["dossier.paid"] = "dossier.paid"
    data: DossierTransitionData


class DossierStopped(Event):
    """Processing was stopped (dừng xử lý), with a reason."""

    event_type: ClassVar[str] = "dossier.stopped"
    type: Literal["dossier.stopped"] = "dossier.stopped"
    data: DossierTransitionData


class DossierResultDelivered(Event):
    """The result was handed to the citizen (trả kết quả)."""

    event_type: ClassVar[str] = "dossier.result_delivered"
    type: Literal["dossier.result_delivered"] = "dossier.result_delivered"
    data: DossierTransitionData


class DossierDueSoon(Event):
    """A step of the dossier is near its SLA (a reminder to the officer)."""

    event_type: ClassVar[str] = "dossier.due_soon"
    type: Literal["dossier.due_soon"] = "dossier.due_soon"
    data: DossierSlaData


class DossierOverdue(Event):
    """A step of the dossier passed its SLA; published once per step, escalated."""

    event_type: ClassVar[str] = "dossier.overdue"
    type: Literal["dossier.overdue"] = "dossier.overdue"
    data: DossierSlaData


class DossierApologyIssued(Event):
    """A late dossier's apology with a new promised date (phiếu xin lỗi và hẹn lại)."""

    event_type: ClassVar[str] = "dossier.apology_issued"
    type: Literal["dossier.apology_issued"] = "dossier.apology_issued"
    data: DossierApologyData


class DossierSlipPrinted(Event):
    """An officer printed a slip of the dossier (receipt, control or apology slip)."""

    event_type: ClassVar[str] = "dossier.slip_printed"
    type: Literal["dossier.slip_printed"] = "dossier.slip_printed"
    data: DossierSlipPrintedData


class NotificationSent(Event):
    """Notify delivered a message about a dossier to the applicant."""

    event_type: ClassVar[str] = "notification.sent"
    type: Literal["notification.sent"] = "notification.sent"
    data: NotificationSentData


class NotificationFailed(Event):
    """Notify could not deliver a message about a dossier."""

    event_type: ClassVar[str] = "notification.failed"
    type: Literal["notification.failed"] = "notification.failed"
    data: NotificationFailedData


class PartnerEndpointDisabledData(EventData):
    """Notify stopped delivering to a partner's endpoint: it answered 410 Gone, or it kept
    failing for days. Operational: the envelope's subject is `partner-endpoint:<id>`, not a
    dossier code."""

    partner_id: str
    endpoint_id: str
    url: str = Field(description="The endpoint's URL when it was disabled.")
    reason: Literal["gone", "failing"] = Field(
        description="`gone`: the endpoint answered 410; `failing`: no success for days."
    )
    failing_since: datetime | None = Field(
        default=None, description="The first failure of the run that ended in disabling."
    )
    disabled_at: datetime
    last_status: int | None = Field(
        default=None, description="The HTTP status of the last attempt (None: no answer)."
    )


class PartnerEndpointDisabled(Event):
    """An operational event: a partner's webhook endpoint was disabled (the partner's contact
    and the operators are told)."""

    event_type: ClassVar[str] = "partner.endpoint_disabled"
    type: Literal["partner.endpoint_disabled"] = "partner.endpoint_disabled"
    data: PartnerEndpointDisabledData
