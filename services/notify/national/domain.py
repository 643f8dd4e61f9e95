"""Pure decisions of the national-portal sync: which operations an event asks for, which one is
sent next, the portal's date format and status codes, and when a failed one is tried again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from services.notify.national import fields
from services.notify.national.fields import Kind
from shared.contracts import DossierSubmitted, Event

PORTAL_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def portal_time(moment: datetime) -> str:
    """`yyyyMMddHHmmss` in Vietnam's time (the portal knows no offsets)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place on the portal")
    return moment.astimezone(PORTAL_ZONE).strftime("%Y%m%d%H%M%S")


@dataclass(frozen=True)
class StatusMap:
    """Our status code → the portal's, as the operator's YAML file says."""

    codes: Mapping[int, int]

    def portal(self, ours: int) -> int:
        return self.codes.get(int(ours), int(ours))

    @classmethod
    def load(cls, path: Path) -> StatusMap:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        mapping = raw.get("map", {})
        if not isinstance(mapping, dict):
            raise ValueError(f"{path}: `map` must be a table of our code → portal code")
        return cls({int(k): int(v) for k, v in mapping.items()})


def operations(event: Event) -> list[dict[str, Any]]:
    """What one event asks of the portal, in order. A submission adds the dossier; any later
    event with a status updates it and records a progress step (who, when, what, status)."""
    data = event.data.model_dump(mode="json")
    status = data.get("status_code")
    if status is None:
        return []
    base = {"event_id": event.id, "status": int(status), "at": event.time.isoformat()}
    if isinstance(event, DossierSubmitted):
        return [{**base, "kind": "add", "seq": 0}]
    who = str(data.get("officer_id") or data.get("actor") or data.get("by") or fields.ONE_STOP)
    step = {**base, "who": who, "what": event.type, "promised_at": data.get("promised_at")}
    return [{**step, "kind": "update", "seq": 0}, {**step, "kind": "progress", "seq": 1}]


def snapshot(event: DossierSubmitted) -> dict[str, Any]:
    """What the portal needs to know of a dossier beyond its status, kept from the submission."""
    d = event.data
    return {
        "code": d.dossier_code,
        "procedure_code": d.procedure_code,
        "channel": int(d.channel),
        "applicant_kind": int(d.applicant_kind),
        "applicant_name": d.applicant.full_name,
        "procedure_name": d.procedure_name,
        "unit": d.ward_code or d.receiving_unit,
        "submitted_at": d.submitted_at.isoformat(),
        "received_at": (d.received_at or d.submitted_at).isoformat(),
        "promised_at": d.promised_at.isoformat() if d.promised_at else None,
        "documents": list(d.documents),
        "fee": d.fee,
    }


def next_operation(ops: list[dict[str, Any]], dossier: Mapping[str, Any] | None) -> int | None:
    """The index of the operation to send now, or None to wait: the add goes first wherever it
    was queued (events can arrive before the submission); nothing is sent of a dossier whose
    submission has not been seen (the portal would refuse an update of an unknown dossier)."""
    if dossier is None:
        return None
    for i, op in enumerate(ops):
        if op["kind"] == "add":
            return i
    return 0 if ops else None


def _date(value: str | None) -> str | None:
    return portal_time(datetime.fromisoformat(value)) if value else None


def request(
    op: Mapping[str, Any], dossier: Mapping[str, Any], statuses: StatusMap, kind: Kind
) -> dict[str, Any]:
    """The portal body of `op` sent as `kind` (an add answered 'exists' is resent as update)."""
    status = statuses.portal(op["status"])
    if kind == "progress":
        return fields.progress_body(
            code=dossier["code"],
            who=op["who"],
            when=portal_time(datetime.fromisoformat(op["at"])),
            what=op["what"],
            status=status,
        )
    promised = op.get("promised_at") or dossier.get("promised_at")
    return fields.dossier_body(
        code=dossier["code"],
        procedure_code=dossier["procedure_code"],
        channel=dossier["channel"],
        applicant_kind=dossier["applicant_kind"],
        received_at=portal_time(datetime.fromisoformat(dossier["received_at"])),
        submitted_at=portal_time(
            datetime.fromisoformat(dossier.get("submitted_at") or dossier["received_at"])
        ),
        promised_at=_date(promised),
        status=status,
        documents=dossier.get("documents", []),
        fee=dossier.get("fee"),
        applicant_name=dossier.get("applicant_name"),
        unit=dossier.get("unit"),
        procedure_name=dossier.get("procedure_name"),
    )


def backoff(attempts: int, base_seconds: float, cap_seconds: float) -> timedelta:
    """Exponential: base, 2×base, 4×base… never more than the cap."""
    return timedelta(seconds=min(cap_seconds, base_seconds * 2 ** max(0, attempts - 1)))
