"""Maps an event type to its model, and decodes wire bytes into a typed event."""

from __future__ import annotations

import json

from pydantic import ValidationError

from shared.contracts.envelope import Event
from shared.contracts.events import (
    DossierApologyIssued,
    DossierApproved,
    DossierAssigned,
    DossierChecked,
    DossierDueSoon,
    DossierOverdue,
    DossierPaid,
    DossierPaymentRequested,
    DossierReassigned,
    DossierReceived,
    DossierRefused,
    DossierRejected,
    DossierResultDelivered,
    DossierSlipPrinted,
    DossierStopped,
    DossierSubmitted,
    DossierSupplemented,
    DossierSupplementRequested,
    DossierWithdrawn,
    NotificationFailed,
    NotificationSent,
    PartnerEndpointDisabled,
)
from shared.contracts.sms import DossierStatusReported, SmsStatusRequested

EVENT_TYPES: dict[str, type[Event]] = {
    model.event_type: model
    for model in (
        DossierSubmitted,
        DossierAssigned,
        DossierReassigned,
        DossierApproved,
        DossierRejected,
        DossierWithdrawn,
        DossierReceived,
        DossierRefused,
        DossierChecked,
        DossierDueSoon,
        DossierOverdue,
        DossierPaymentRequested,
        DossierPaid,
        DossierStopped,
        DossierResultDelivered,
        DossierApologyIssued,
        DossierSlipPrinted,
        DossierSupplementRequested,
        DossierSupplemented,
        NotificationSent,
        NotificationFailed,
        PartnerEndpointDisabled,
        SmsStatusRequested,
        DossierStatusReported,
    )
}


class UndecodableEvent(ValueError):
    """A message that is not a valid event of a known type; its text says why."""


def decode(body: bytes | str) -> Event:
    """Parse a structured-mode CloudEvent into its registered model."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UndecodableEvent(f"body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise UndecodableEvent("body is not a JSON object")
    event_type = raw.get("type")
    model = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        raise UndecodableEvent(f"unknown event type: {event_type!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise UndecodableEvent(f"invalid {event_type} event: {fields}") from exc


def load(stored: dict[str, object]) -> Event:
    """Rebuild an event stored as JSON-mode dict (e.g. in an outbox)."""
    return decode(json.dumps(stored, default=str))
