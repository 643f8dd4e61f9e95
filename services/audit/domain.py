"""Audit's pure rules: what a record of an event holds, and the order records come in.

A record is the event as audit keeps it: who did it (an officer id, `citizen` or `system`),
when it happened, the dossier's state before and after (when the event says), the national
status code, the procedure and unit, and the event's data with personal identifiers masked
(see privacy.py). The order of occurrence of a dossier's records is (event time, event id):
the time the producer stamped, with the id breaking ties the same way everywhere, so the same
events give the same order whatever order they arrived in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.audit import ledger
from services.audit.privacy import keyed_hash
from services.audit.privacy import scrub as scrub_identifiers
from shared.calendar import VIETNAM
from shared.contracts import Event

# The state a dossier is in after an event that carries no `to_state` of its own.
STATE_AFTER = {
    "dossier.submitted": "submitted",
    "dossier.assigned": "assigned",
    "dossier.approved": "approved",
    "dossier.rejected": "rejected",
    "dossier.withdrawn": "withdrawn",
    "dossier.supplement_requested": "supplement_requested",
    "dossier.supplemented": "supplemented",
}
DECISIONS = ("dossier.approved", "dossier.rejected")


def actor_of(event_type: str, data: dict[str, Any]) -> str:
    """Who did it: the officer's id, `citizen`, or `system` (a timer, a routing rule, notify)."""
    if isinstance(data.get("actor"), str):
        return str(data["actor"])
    if event_type == "dossier.submitted":
        return str(data.get("submitted_by") or "citizen")
    if event_type in ("dossier.withdrawn", "dossier.supplemented"):
        return "citizen"
    if event_type == "dossier.reassigned":  # claimed, released or reassigned: `by` did it
        return str(data.get("by") or "system")
    if event_type in (*DECISIONS, "dossier.supplement_requested", "dossier.apology_issued"):
        return str(data.get("officer_id") or "system")
    return "system"  # assignment, SLA timers, notifications


def unit_of(data: dict[str, Any]) -> str | None:
    """The unit that acted, or for a submission the ward whose police receive it."""
    unit = data.get("unit_id") or data.get("ward_code")
    if unit is None and isinstance(data.get("residence"), dict):
        unit = data["residence"].get("ward_code")
    return str(unit) if unit is not None else None


def build_record(event: Event, *, hmac_key: bytes, recorded_at: datetime) -> dict[str, Any]:
    """The record of `event`, as stored (its `_id` is the event id); never a full identifier."""
    raw = event.model_dump(mode="json")
    data: dict[str, Any] = raw["data"]
    applicant = data.get("applicant") if isinstance(data.get("applicant"), dict) else None
    record: dict[str, Any] = {
        "_id": event.id,
        "dossier_code": event.subject,
        "type": event.type,
        "time": event.time,
        "source": event.source,
        "correlationid": event.correlationid,
        "causationid": event.causationid,
        "actor": actor_of(event.type, data),
        "from_state": data.get("from_state"),
        "to_state": data.get("to_state") or STATE_AFTER.get(event.type),
        "status_code": data.get("status_code"),
        "procedure_code": data.get("procedure_code"),
        "unit_id": unit_of(data),
        "applicant_id_hmac": (
            keyed_hash(applicant["personal_id"], hmac_key)
            if applicant and isinstance(applicant.get("personal_id"), str)
            else None
        ),
        "data": scrub_identifiers(data, hmac_key),
        "recorded_at": recorded_at,
    }
    return record


def occurrence_key(record: dict[str, Any]) -> tuple[datetime, str]:
    """Where a record stands in its dossier's order: (event time, event id)."""
    return record["time"], str(record["_id"])


def with_states_before(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records in order, each with `from_state` filled from the state the one before left,
    when the event itself does not say (assignments, decisions, supplements)."""
    state: str | None = None
    out = []
    for record in sorted(records, key=occurrence_key):
        shown = dict(record)
        if shown.get("from_state") is None and shown.get("to_state") is not None:
            shown["from_state"] = state
        if shown.get("to_state") is not None:
            state = shown["to_state"]
        out.append(shown)
    return out


def start_of_day(day: date) -> datetime:
    """Midnight of `day` in Vietnam (the day an inspector means), in UTC."""
    return datetime.combine(day, time(0), VIETNAM).astimezone(UTC)


# --- chaining: a dossier's chain head, and what settling decides ---------------------------

Record = dict[str, Any]  # a record as stored (`build_record`), hashed whole
Link = dict[str, Any]  # a chain link (`ledger.make_link`)
Marker = dict[str, Any]  # a pending marker: _id, dossier_code, recorded_at, mac


@dataclass(frozen=True)
class ChainHead:
    """Where a dossier's chain ends: the next place (`seq`, the number of links) and the hash
    of the last link (`ledger.GENESIS` for none)."""

    dossier_code: str
    seq: int = 0
    hash: str = ledger.GENESIS


@dataclass
class Settlement:
    """What settling one dossier decides: the links to append (in order), the head after
    them, the markers to drop, and what to report."""

    links: list[Link] = field(default_factory=list)
    head: ChainHead | None = None
    drop: list[str] = field(default_factory=list)
    forged: list[str] = field(default_factory=list)  # records whose marker's MAC fails
    lost: list[Marker] = field(default_factory=list)  # markers whose record never came


def settle_dossier(
    head: ChainHead,
    markers: list[Marker],
    records: dict[str, Record],
    chained: set[str],
    *,
    settled_at: datetime,
    orphan_cutoff: datetime,
    marker_key: bytes,
) -> Settlement:
    """Append a dossier's records that waited past the grace window to its chain after
    `head`, in order of occurrence. A record already chained (a crash before its marker was
    dropped) only loses its marker; one whose marker's MAC does not hold was forged or edited
    while waiting, and stays pending; a marker whose record is not written yet waits, until
    `orphan_cutoff` (its message was retried and wrote both, or was dead-lettered)."""
    out = Settlement()
    genuine: list[Record] = []
    for marker in markers:
        rid = str(marker["_id"])
        record = records.get(rid)
        if record is None:
            if marker["recorded_at"] < orphan_cutoff:
                out.lost.append(marker)
                out.drop.append(rid)
        elif rid in chained:
            out.drop.append(rid)
        elif ledger.marker_holds(marker_key, marker, record):
            genuine.append(record)
            out.drop.append(rid)
        else:
            out.forged.append(rid)
    seq, prev = head.seq, head.hash
    for record in sorted(genuine, key=occurrence_key):
        link = ledger.make_link(
            dossier_code=head.dossier_code,
            seq=seq,
            record=record,
            prev_hash=prev,
            settled_at=settled_at,
        )
        out.links.append(link)
        seq, prev = seq + 1, str(link["hash"])
    if out.links:
        out.head = ChainHead(head.dossier_code, seq, prev)
    return out


def head_after(head: ChainHead, links: list[Link]) -> ChainHead:
    """The head once `links` (found after it, in order) are counted."""
    if not links:
        return head
    return ChainHead(head.dossier_code, head.seq + len(links), str(links[-1]["hash"]))


def settled_time(now: datetime, last_seal: dict[str, Any] | None) -> datetime:
    """When links settled `now` are stamped: never at or before the last seal's end, whatever
    this process's clock says (a link inside a sealed period would look inserted)."""
    now = ledger.to_millis(now)
    if last_seal is None:
        return now
    after_seal: datetime = last_seal["period_end"] + timedelta(milliseconds=1)
    return max(now, after_seal)


def seal_body(
    last: dict[str, Any] | None, link_hashes: list[str], end: datetime, public_key: str
) -> dict[str, Any] | None:
    """The body of the seal after `last` over links settled up to `end` (None: none)."""
    if not link_hashes:
        return None
    return {
        "seq": int(last["seq"]) + 1 if last else 0,
        "period_start": last["period_end"] if last else ledger.EPOCH,
        "period_end": end,
        "count": len(link_hashes),
        "root": ledger.merkle_root(link_hashes),
        "prev_seal_hash": str(last["hash"]) if last else ledger.GENESIS,
        "sealed_at": end,
        "public_key": public_key,
    }
