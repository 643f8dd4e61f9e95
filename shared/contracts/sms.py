"""The events of a status asked for by SMS (`TT <code>`): notify hears the request, intake
answers it for the dossier's own phone only, notify sends the answer."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from shared.contracts.envelope import Event, EventData
from shared.contracts.status import PortalStatus


class SmsStatusRequestedData(EventData):
    dossier_code: str = Field(description="The code the citizen typed, upper-cased.")
    phone: str = Field(
        description="The sender's mobile number in +84 form.",
        json_schema_extra={"x-personal": True},
    )
    message_id: str = Field(description="The SMS gateway's id of the inbound SMS.")
    received_at: datetime = Field(description="When the gateway received the SMS.")


class SmsStatusRequested(Event):
    """A phone texted `TT <code>`: someone asks for a dossier's status (not yet checked)."""

    event_type: ClassVar[str] = "sms.status_requested"
    type: Literal["sms.status_requested"] = "sms.status_requested"
    data: SmsStatusRequestedData


class DossierStatusReportedData(EventData):
    dossier_code: str
    status_code: PortalStatus
    status: str = Field(description="The portal status in Vietnamese words.")
    promised_at: datetime | None = Field(
        default=None, description="Ngày hẹn trả in force: the promised result date."
    )
    phone: str = Field(
        description="Where the answer goes: the dossier's own phone, +84 form.",
        json_schema_extra={"x-personal": True},
    )
    message_id: str = Field(description="The inbound SMS this answers.")


class DossierStatusReported(Event):
    """Intake answers a status request from the dossier's own phone (no other phone gets one)."""

    event_type: ClassVar[str] = "dossier.status_reported"
    type: Literal["dossier.status_reported"] = "dossier.status_reported"
    data: DossierStatusReportedData
