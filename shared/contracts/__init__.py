"""Event contracts: the CloudEvents envelope, one model per event type, and their registry."""

from shared.contracts.envelope import CONTENT_TYPE, Event, EventData, derived_id
from shared.contracts.events import (
    Applicant,
    DossierApproved,
    DossierAssigned,
    DossierAssignedData,
    DossierDecisionData,
    DossierRejected,
    DossierSubmitted,
    DossierSubmittedData,
    NotificationFailed,
    NotificationFailedData,
    NotificationSent,
    NotificationSentData,
    Residence,
)
from shared.contracts.registry import EVENT_TYPES, UndecodableEvent, decode, load
from shared.contracts.status import Channel, PortalStatus

__all__ = [
    "CONTENT_TYPE",
    "EVENT_TYPES",
    "Applicant",
    "Channel",
    "DossierApproved",
    "DossierAssigned",
    "DossierAssignedData",
    "DossierDecisionData",
    "DossierRejected",
    "DossierSubmitted",
    "DossierSubmittedData",
    "Event",
    "EventData",
    "NotificationFailed",
    "NotificationFailedData",
    "NotificationSent",
    "NotificationSentData",
    "PortalStatus",
    "Residence",
    "UndecodableEvent",
    "decode",
    "derived_id",
    "load",
]
