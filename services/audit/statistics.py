"""Statistics for dashboards and the public service index (QĐ 766/QĐ-TTg), from records.

Per procedure and unit over a period [since, until):
- received: dossiers whose clock started (`received_at`, else the submission time) in it;
- decided: dossiers whose first decision (approved or rejected: status 9, đã xử lý xong) is in
  it — the result date is the decision's `decided_at`;
- on time: decided no later than the promised date (ngày hẹn trả) in force. That date is the
  latest one an event stated (submission, a step, the decision); the clock stops while a
  supplement is awaited, so the working time of each pause after the date was stated moves it
  later. A dossier that needed an apology (phiếu xin lỗi và hẹn lại) is late: the new date an
  apology sets does not make it on time;
- the median processing time in working days: from receipt to decision, less the working time
  of supplement pauses (supplement requested → supplemented, or → the decision).

The unit is the one that handled the dossier (the last unit an assignment, step or decision
named), or for a dossier not assigned yet the ward that receives it.

`facts` is the one definition of these rules. Statistics read them from a projection: per
dossier, what `facts` reads of each of its records that bears on them (`fact_summary`,
`bears_on_facts`), and a `dossier_facts` document of `facts` over those. Folding records in
(`folded`) keeps the set of summaries, so the order and repetition of the records folded do
not matter, and the document's facts are always `facts` of its dossier's records.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from services.audit.domain import DECISIONS, occurrence_key
from shared.calendar import HOURS_PER_DAY, WorkingCalendar


@dataclass
class DossierFacts:
    procedure_code: str | None = None
    unit_id: str | None = None
    received_at: datetime | None = None
    decided_at: datetime | None = None
    on_time: bool | None = None
    working_days: float | None = None


# What `facts` reads of a record: these fields, and these of its data.
FACT_FIELDS = ("_id", "type", "time", "procedure_code", "unit_id")
FACT_DATA_FIELDS = (
    "received_at",
    "submitted_at",
    "requested_at",
    "supplemented_at",
    "decided_at",
    "promised_at",
)
# The types whose records `facts` reads whatever else they hold.
FACT_TYPES = (
    "dossier.submitted",
    "dossier.apology_issued",
    "dossier.supplement_requested",
    "dossier.supplemented",
    *DECISIONS,
)


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def facts(records: list[dict[str, Any]], calendar: WorkingCalendar) -> DossierFacts:
    """What one dossier's records say about its receipt, decision and timeliness."""
    out = DossierFacts()
    promised: datetime | None = None
    shift = 0.0  # working hours of the pauses since the promised date was stated
    paused_hours = 0.0
    pause_start: datetime | None = None
    apologised = False
    for rec in sorted(records, key=occurrence_key):
        data: dict[str, Any] = rec.get("data") or {}
        kind = rec["type"]
        if kind == "dossier.submitted":
            out.procedure_code = rec.get("procedure_code")
            out.unit_id = out.unit_id or rec.get("unit_id")
            out.received_at = _when(data.get("received_at")) or _when(data.get("submitted_at"))
        elif rec.get("unit_id"):
            out.unit_id = rec["unit_id"]
            out.procedure_code = out.procedure_code or rec.get("procedure_code")
        if kind == "dossier.apology_issued":
            apologised = True
        if kind == "dossier.supplement_requested" and pause_start is None:
            pause_start = _when(data.get("requested_at")) or rec["time"]
        pause_end = _when(data.get("supplemented_at")) if kind == "dossier.supplemented" else None
        if kind in DECISIONS:
            out.decided_at = _when(data.get("decided_at")) or rec["time"]
            pause_end = out.decided_at
        # A date stated by the event that ends a pause (a decision) is the one in force before
        # that pause: the pause still moves it.
        if isinstance(data.get("promised_at"), str):
            promised, shift = _when(data["promised_at"]), 0.0
        if pause_start is not None and pause_end is not None:
            hours = calendar.working_hours_between(pause_start, pause_end)
            paused_hours += hours
            shift += hours
            pause_start = None
        if kind in DECISIONS:
            break  # the first decision is the result; what follows does not change it
    if out.decided_at is not None and out.received_at is not None:
        hours = calendar.working_hours_between(out.received_at, out.decided_at) - paused_hours
        out.working_days = max(hours, 0.0) / HOURS_PER_DAY
    if out.decided_at is not None and promised is not None:
        due = calendar.add_working_hours(promised, shift) if shift else promised
        out.on_time = not apologised and out.decided_at <= due
    return out


def fact_summary(record: dict[str, Any]) -> dict[str, Any]:
    """What `facts` reads of `record` (and nothing else)."""
    out = {name: record.get(name) for name in FACT_FIELDS}
    data = record.get("data") or {}
    out["data"] = {name: data[name] for name in FACT_DATA_FIELDS if name in data}
    return out


def bears_on_facts(record: dict[str, Any]) -> bool:
    """Whether `facts` reads anything of `record`: a record of another type that names no
    unit and states no promised date changes nothing, wherever it stands in the order."""
    data = record.get("data") or {}
    return (
        record.get("type") in FACT_TYPES
        or bool(record.get("unit_id"))
        or isinstance(data.get("promised_at"), str)
    )


def folded(
    known: list[dict[str, Any]], records: Iterable[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """The summaries of a dossier's records once `records` are folded into `known` (a record
    is immutable: one already known, by id, is left as it is), in order of occurrence; None
    when nothing changes (every record known already, or bearing on nothing)."""
    have = {str(s["_id"]) for s in known}
    new = {
        str(r["_id"]): fact_summary(r)
        for r in records
        if str(r["_id"]) not in have and bears_on_facts(r)
    }
    if not new:
        return None
    return sorted([*known, *new.values()], key=occurrence_key)


def facts_document(
    code: str, summaries: list[dict[str, Any]], calendar: WorkingCalendar, version: int
) -> dict[str, Any]:
    """A dossier's `dossier_facts` document: `facts` of its summaries, and the version of the
    summaries it was computed from."""
    return {"_id": code, **asdict(facts(summaries, calendar)), "version": version}


def facts_of_document(doc: dict[str, Any]) -> DossierFacts:
    return DossierFacts(**{name: doc.get(name) for name in DossierFacts.__dataclass_fields__})


def summarise(
    dossiers: dict[str, list[dict[str, Any]]],
    *,
    since: datetime,
    until: datetime,
    calendar: WorkingCalendar,
) -> list[dict[str, Any]]:
    """One row per (procedure, unit) with anything received or decided in the period, from
    each dossier's records (the reference the projection is checked against)."""
    return summarise_facts(
        (facts(records, calendar) for records in dossiers.values()), since=since, until=until
    )


def summarise_facts(
    dossiers: Iterable[DossierFacts], *, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """One row per (procedure, unit) with anything received or decided in the period."""
    rows: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"received": 0, "decided": 0, "on_time": 0, "late": 0, "days": []}
    )
    for f in dossiers:
        key = (f.procedure_code or "", f.unit_id or "")
        if f.received_at is not None and since <= f.received_at < until:
            rows[key]["received"] += 1
        if f.decided_at is not None and since <= f.decided_at < until:
            row = rows[key]
            row["decided"] += 1
            if f.on_time is not None:
                row["on_time" if f.on_time else "late"] += 1
            if f.working_days is not None:
                row["days"].append(f.working_days)
    out = []
    for (procedure, unit), row in sorted(rows.items()):
        timed = row["on_time"] + row["late"]
        out.append(
            {
                "procedure_code": procedure,
                "unit_id": unit,
                "received": row["received"],
                "decided": row["decided"],
                "on_time": row["on_time"],
                "late": row["late"],
                "on_time_rate": row["on_time"] / timed if timed else None,
                "median_working_days": statistics.median(row["days"]) if row["days"] else None,
            }
        )
    return out
