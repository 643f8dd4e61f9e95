"""The status a citizen sees: intake's states, the portal's code of each, and how the steps a
dossier reached (in whatever order their events arrived) add up to where it stands now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.contracts import (
    DossierApproved,
    DossierAssigned,
    DossierRejected,
    DossierSupplementRequested,
    PortalStatus,
)

# Intake's own view of a dossier's life, and the portal status code each state shows.
STATUS_CODES: dict[str, PortalStatus] = {
    "submitted": PortalStatus.NEW,
    "assigned": PortalStatus.NEW,
    "received": PortalStatus.RECEIVED,
    "refused": PortalStatus.REFUSED,
    "checked": PortalStatus.IN_PROCESS,
    "supplement_requested": PortalStatus.SUPPLEMENT_REQUESTED,
    "supplemented": PortalStatus.IN_PROCESS,
    "payment_requested": PortalStatus.PAYMENT_REQUESTED,
    "paid": PortalStatus.IN_PROCESS,
    "withdrawn": PortalStatus.WITHDRAWN,
    "stopped": PortalStatus.STOPPED,
    "approved": PortalStatus.DECIDED,
    "rejected": PortalStatus.DECIDED,
    "delivered": PortalStatus.DELIVERED,
}
TERMINAL = frozenset({"refused", "withdrawn", "stopped", "delivered"})
WITHDRAWABLE = frozenset(
    {
        "submitted",
        "assigned",
        "received",
        "checked",
        "supplement_requested",
        "supplemented",
        "payment_requested",
        "paid",
    }
)
# Steps the citizen is told of that do not change where the dossier stands.
NOTICES = frozenset({"apology_issued"})

# The steps whose reason is written for the citizen (the law asks that a refusal, a rejection,
# a stop and a delay say why, BM-VP01); a claim's or a release's reason is the officers' own.
TOLD_WHY = frozenset({"refused", "rejected", "stopped", "apology_issued", "supplement_requested"})

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


@dataclass(frozen=True)
class Step:
    """One status the dossier reached, recorded once per event id."""

    event_id: str
    status: str
    at: datetime
    promised_at: datetime | None = None
    reason: str | None = None  # told to the citizen: why refused, rejected, stopped, late
    missing: tuple[str, ...] = ()  # the document types a supplement request asks for


def in_order(steps: tuple[Step, ...] | list[Step]) -> list[Step]:
    """The steps in the order they happened."""
    return sorted(steps, key=lambda s: (s.at, s.event_id))


def current_status(steps: tuple[Step, ...] | list[Step]) -> str:
    """The status a dossier shows: the first terminal one reached, else the latest."""
    ordered = [s for s in in_order(steps) if s.status not in NOTICES]
    terminal = [s for s in ordered if s.status in TERMINAL]
    if terminal:
        return terminal[0].status
    return ordered[-1].status if ordered else "submitted"


def promised_date(
    steps: tuple[Step, ...] | list[Step], submitted: datetime | None
) -> datetime | None:
    """Ngày hẹn trả in force: the latest that review announced (after a pause or an
    apology), else the receipt's."""
    dated = [s for s in in_order(steps) if s.promised_at]
    return dated[-1].promised_at if dated else submitted
