"""Audit's HTTP routes.

Who may call what:
- timelines, search, export, verification and proofs show who did what to a dossier (with
  identifiers masked, but names and addresses in clear): any officer or inspector holding a
  valid bearer token, as every service checks them (`shared/auth.py`: HS256 or RS256);
- the latest seal and the statistics hold no personal data and are public: the seal's root is
  meant to be copied outside the database, and the statistics feed the public service index.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from services.audit import handlers, ledger
from services.audit.domain import start_of_day
from services.audit.handlers import reading
from services.audit.ledger import jsonable
from services.audit.privacy import without_keyed_hashes
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from shared.clock import utcnow
from shared.problems import Problem
from shared.web import OfficerClaims, from_state

router = APIRouter(prefix="/v1/audit", tags=["audit"])

Store = Annotated[AuditStore, Depends(from_state("store", AuditStore))]


Reader = OfficerClaims  # any valid officer or inspector token (HS256 or RS256)


class TimelineEntry(BaseModel):
    id: str
    type: str
    time: datetime
    source: str
    correlationid: str
    causationid: str | None
    recorded_at: datetime
    actor: str
    from_state: str | None
    to_state: str | None
    status_code: int | None
    procedure_code: str | None
    unit_id: str | None
    data: dict[str, Any]


class Timeline(BaseModel):
    dossier_code: str
    events: list[TimelineEntry]


def _not_found(code: str) -> Problem:
    return Problem(
        404,
        f"No events recorded for dossier {code}.",
        f"Chưa ghi nhận sự kiện nào của hồ sơ {code}.",
        code="dossier_not_found",
    )


@router.get("/dossiers/{code}", response_model=Timeline, summary="A dossier's timeline")
async def timeline(code: str, store: Store, _: Reader) -> Timeline:
    docs = await reading.timeline(code, store=store)
    if not docs:
        raise _not_found(code)
    return Timeline(dossier_code=code, events=[TimelineEntry(id=d["_id"], **d) for d in docs])


@router.get("/dossiers/{code}/verify", summary="Check a dossier's chain and the seals over it")
async def verify_dossier(code: str, request: Request, store: Store, _: Reader) -> dict[str, Any]:
    settings: AuditSettings = request.app.state.settings
    try:
        broken = await handlers.verify_dossier(
            code,
            store=store,
            hmac_key=_hmac_key(request),
            trusted=settings.trusted_keys(),
            unsealed_before=utcnow() - settings.unsealed_after(),
        )
    except handlers.UnknownDossier as exc:
        raise _not_found(code) from exc
    return {"dossier_code": code, "ok": broken is None, "broken": broken and broken.as_dict()}


@router.get("/verify", summary="Check every seal and chain (from a date)")
async def verify_all(
    request: Request,
    store: Store,
    _: Reader,
    since: date | None = None,
    expect_seal: Annotated[
        str | None,
        Query(description="SEQ:HASH of a seal kept outside the database (/seals/latest)"),
    ] = None,
) -> dict[str, Any]:
    settings: AuditSettings = request.app.state.settings
    try:
        expected = ledger.parse_expected_seal(expect_seal) if expect_seal else None
    except ValueError as exc:
        raise Problem(
            422,
            "`expect_seal` must be SEQ:HASH (a seal number, a colon, its 64 hex digit hash).",
            "`expect_seal` phải có dạng SỐ:HASH (số niêm phong, dấu hai chấm, 64 ký tự hex).",
            code="bad_expected_seal",
        ) from exc
    broken = await handlers.verify_all(
        store=store,
        since=start_of_day(since) if since else None,
        hmac_key=_hmac_key(request),
        trusted=settings.trusted_keys(),
        expect_seal=expected,
        unsealed_before=utcnow() - settings.unsealed_after(),
    )
    return {"ok": broken is None, "broken": broken and broken.as_dict()}


@router.get("/seals/latest", summary="The newest seal: its Merkle root, signature and key")
async def latest_seal(store: Store) -> dict[str, Any]:
    seal = await reading.latest_seal(store=store)
    if seal is None:
        raise Problem(404, "Nothing is sealed yet.", "Chưa có niêm phong nào.", code="no_seal")
    return dict(jsonable(seal))


@router.get("/records/{record_id}/proof", summary="Inclusion proof of a record in its seal")
async def record_proof(record_id: str, store: Store, _: Reader) -> dict[str, Any]:
    proof = await handlers.proof(record_id, store=store)
    if proof is None:
        raise Problem(
            404,
            f"Record {record_id} is unknown or not sealed yet.",
            f"Bản ghi {record_id} không tồn tại hoặc chưa được niêm phong.",
            code="not_sealed",
        )
    return dict(jsonable(proof))


# --- search and export ---------------------------------------------------------------------


@router.get("/records", summary="Search records, oldest first, a page at a time")
async def search(
    request: Request,
    store: Store,
    _: Reader,
    filters: Annotated[reading.Filters, Query()],
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    try:
        page, next_cursor = await reading.search(
            filters,
            cursor=cursor,
            limit=limit,
            store=store,
            hmac_key=_hmac_key(request),
        )
    except reading.BadCursor as exc:
        raise Problem(
            400, "The cursor is not one this API gave.", "Con trỏ không hợp lệ.", code="bad_cursor"
        ) from exc
    return {
        "records": [jsonable(without_keyed_hashes(d)) for d in page],
        "next_cursor": next_cursor,
    }


CSV_COLUMNS = [
    "_id",
    "dossier_code",
    "type",
    "time",
    "actor",
    "from_state",
    "to_state",
    "status_code",
    "procedure_code",
    "unit_id",
    "source",
    "recorded_at",
    "data",
]


@router.get("/export", summary="Stream the records of a time range as JSON Lines or CSV")
async def export(
    request: Request,
    store: Store,
    _: Reader,
    since: datetime,
    until: datetime,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    page = request.app.state.settings.export_page_size

    async def lines() -> AsyncIterator[str]:
        if format == "csv":
            yield ",".join(CSV_COLUMNS) + "\r\n"
        async for doc in reading.export(since, until, store=store, page=page):
            row = jsonable(without_keyed_hashes(doc))
            if format == "jsonl":
                yield json.dumps(row, ensure_ascii=False) + "\n"
                continue
            out = io.StringIO()
            row["data"] = json.dumps(row["data"], ensure_ascii=False)
            csv.writer(out).writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
            yield out.getvalue()

    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    return StreamingResponse(lines(), media_type=media)


def _cell(value: Any) -> Any:
    """A CSV cell; text a spreadsheet would run as a formula (=, +, -, @) is quoted with `'`
    (OWASP's advice against CSV injection: a citizen's note could start with `=`)."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _hmac_key(request: Request) -> bytes:
    return bytes(request.app.state.settings.hmac_key.get_secret_value(), "utf-8")


# --- statistics -----------------------------------------------------------------------------


MAX_STATISTICS_DAYS = reading.MAX_STATISTICS_DAYS


@router.get("/statistics", summary="Received, decided, on time, late, median working days")
async def statistics(
    request: Request,
    store: Store,
    since: date,
    until: date,
    unit_id: Annotated[str | None, Query(description="Only this unit's rows")] = None,
    procedure_code: Annotated[str | None, Query(description="Only this procedure's rows")] = None,
) -> dict[str, Any]:
    """Per procedure and unit for the days [since, until) (Vietnam time), at most a year
    (366 days): this route is public. Read from the per-dossier projection; on a database
    that predates it, 503 until audit has built it (in the background, at start)."""
    if until <= since:
        raise Problem(
            422,
            "`until` must be after `since`.",
            "Ngày kết thúc phải sau ngày bắt đầu.",
            code="bad_period",
        )
    if (until - since).days > MAX_STATISTICS_DAYS:
        raise Problem(
            422,
            f"The period may be at most {MAX_STATISTICS_DAYS} days.",
            f"Khoảng thời gian tối đa là {MAX_STATISTICS_DAYS} ngày.",
            code="period_too_long",
        )
    projection: handlers.Projection = request.app.state.projection
    if not await projection.ready(store):
        raise Problem(
            503,
            "Statistics are being built from the stored records; try again in a few minutes.",
            "Số liệu thống kê đang được xây dựng từ các bản ghi đã lưu; vui lòng thử lại sau ít "
            "phút.",
            code="statistics_being_built",
            headers={"Retry-After": "60"},
        )
    rows = await reading.statistics(
        start_of_day(since),
        start_of_day(until),
        store=store,
        unit_id=unit_id,
        procedure_code=procedure_code,
    )
    return {"since": since, "until": until, "rows": rows}
