"""Intake's pure rules: the dossier, its code and the status citizens see."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shared.contracts import Channel, PortalStatus

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


class DomainError(Exception):
    """A rule of intake was broken; nothing was changed."""


class NotAllowedNow(DomainError):
    """The dossier's current status does not allow this."""


# Steps the citizen is told of that do not change where the dossier stands.
NOTICES = frozenset({"apology_issued"})


def current_status(statuses: list[dict[str, Any]]) -> str:
    """The status a dossier shows: the first terminal one reached, else the latest."""
    ordered = sorted((s for s in statuses if s["status"] not in NOTICES), key=lambda s: s["at"])
    terminal = [s for s in ordered if s["status"] in TERMINAL]
    if terminal:
        return str(terminal[0]["status"])
    return str(ordered[-1]["status"]) if ordered else "submitted"


def promised_date(statuses: list[dict[str, Any]], submitted: datetime | None) -> datetime | None:
    """Ngày hẹn trả in force: the latest that review announced (after a pause or an
    apology), else the receipt's."""
    dated = sorted((s for s in statuses if s.get("promised_at")), key=lambda s: s["at"])
    return dated[-1]["promised_at"] if dated else submitted


def dossier_code(agency: str, day: date, number: int) -> str:
    """Mã hồ sơ: `{agency}-{yyMMdd}-{NNNN}`, the counter padded to at least four digits."""
    return f"{agency}-{day:%y%m%d}-{number:04d}"


@dataclass(frozen=True)
class Dossier:
    """A submitted dossier as intake keeps it."""

    code: str
    procedure_code: str
    channel: Channel
    submitted_at: datetime
    form: dict[str, Any]
    status: str = "submitted"
    submitted_by: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    procedure_version: int = 1
    received_at: datetime | None = None
    promised_at: datetime | None = None
    fee: int | None = None
    notify_by: tuple[str, ...] = ()
    attachments: tuple[dict[str, Any], ...] = ()

    @property
    def status_code(self) -> PortalStatus:
        return STATUS_CODES[self.status]
