"""Intake's pure rules: the dossier, its code and the status citizens see."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shared.contracts import Channel, PortalStatus

# Intake's own view of a dossier's life, and the portal status code each state shows.
STATUS_CODES: dict[str, PortalStatus] = {
    "submitted": PortalStatus.NEW,
    "assigned": PortalStatus.IN_PROCESS,
    "approved": PortalStatus.DECIDED,
    "rejected": PortalStatus.DECIDED,
}
# The highest rank reached shows, whatever order the events arrive in.
STATUS_RANK = {"submitted": 0, "assigned": 1, "approved": 2, "rejected": 2}


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

    @property
    def status_code(self) -> PortalStatus:
        return STATUS_CODES[self.status]
