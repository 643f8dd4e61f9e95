"""Reading: a dossier's timeline, search and export a page at a time, statistics."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from services.audit.domain import Record, with_states_before
from services.audit.ports import Search
from services.audit.privacy import keyed_hash
from services.audit.statistics import facts_of_document, summarise, summarise_facts
from services.audit.timerange import TimeRange
from shared.calendar import WorkingCalendar

MAX_STATISTICS_DAYS = 366
# Receipt waits for the next working moment, which a long holiday such as Tết pushes more than
# a week later: dossiers submitted up to a fortnight before a period may be received in it.
RECEIPT_LEAD = timedelta(days=15)


class BadCursor(ValueError):
    """A search cursor this API did not give."""


class Filters(BaseModel):
    """What a search asks for (every field optional)."""

    dossier_code: str | None = None
    type: str | None = None
    actor: str | None = None
    procedure_code: str | None = None
    unit_id: str | None = None
    personal_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self, hmac_key: bytes) -> tuple[dict[str, Any], TimeRange]:
        """The equality filter (on fields each first in a declared index) and time range."""
        query: dict[str, Any] = {
            name: value
            for name, value in (
                ("dossier_code", self.dossier_code),
                ("type", self.type),
                ("actor", self.actor),
                ("procedure_code", self.procedure_code),
                ("unit_id", self.unit_id),
            )
            if value is not None
        }
        if self.personal_id is not None:
            query["applicant_id_hmac"] = keyed_hash(self.personal_id, hmac_key)
        return query, TimeRange("time", since=self.since, until=self.until)


def encode_cursor(doc: Record) -> str:
    raw = json.dumps([doc["time"].isoformat(), doc["_id"]])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, rid = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), str(rid)
    except (ValueError, TypeError) as exc:
        raise BadCursor(cursor) from exc


async def timeline(code: str, *, store: Search) -> list[Record]:
    """The dossier's records in order, each with the state before it (empty: unknown)."""
    return with_states_before(await store.timeline(code))


async def latest_seal(*, store: Search) -> dict[str, Any] | None:
    """The newest seal (its root is meant to be copied outside the database)."""
    return await store.last_seal()


async def search(
    filters: Filters, *, cursor: str | None, limit: int, store: Search, hmac_key: bytes
) -> tuple[list[Record], str | None]:
    """A page of records matching `filters`, oldest first, and the cursor of the next one."""
    query, window = filters.query(hmac_key)
    after = decode_cursor(cursor) if cursor else None
    docs = await store.search(query, window, after, limit + 1)
    page = docs[:limit]
    return page, encode_cursor(page[-1]) if len(docs) > limit else None


def export(since: datetime, until: datetime, *, store: Search, page: int) -> AsyncIterator[Record]:
    """Every record stamped in [since, until), in order, read `page` at a time."""
    return store.stream({}, TimeRange("time", since=since, until=until), page)


async def statistics(
    since: datetime,
    until: datetime,
    *,
    store: Search,
    unit_id: str | None = None,
    procedure_code: str | None = None,
) -> list[dict[str, Any]]:
    """Per procedure and unit for [since, until) (of one unit or procedure if asked): the
    dossiers received in it and those decided in it, read from their `dossier_facts` in two
    queries on the period's indexes (no record is read)."""
    ask = {"unit_id": unit_id, "procedure_code": procedure_code}
    by_code = {
        str(doc["_id"]): doc
        for field in ("received_at", "decided_at")
        for doc in await store.facts_in(field, since, until, **ask)
    }
    return summarise_facts(map(facts_of_document, by_code.values()), since=since, until=until)


async def statistics_from_records(
    since: datetime, until: datetime, *, store: Search, calendar: WorkingCalendar
) -> list[dict[str, Any]]:
    """The same rows folded from the records themselves: the decided ones (the decision
    event is stamped when it is taken) and those submitted up to `RECEIPT_LEAD` before the
    period, found by type and time on the index (type, time), then read whole by dossier
    code. What statistics did before `dossier_facts`, and what tests and
    benchmarks/audit_statistics.py check the projection against; it reads every record of
    every dossier of the period."""
    codes = await store.codes_with(["dossier.approved", "dossier.rejected"], since, until)
    codes |= await store.codes_with(["dossier.submitted"], since - RECEIPT_LEAD, until)
    by_code: dict[str, list[Record]] = {}
    for doc in await store.dossiers_records(sorted(codes)):
        by_code.setdefault(doc["dossier_code"], []).append(doc)
    return summarise(by_code, since=since, until=until, calendar=calendar)
