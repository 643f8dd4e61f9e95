"""The unit's performance for chiefs, supervisors and admins: the on-time rate (tỷ lệ hồ sơ giải
quyết đúng hạn, QĐ 766/QĐ-TTg) by procedure for a period, from audit's statistics, and the
overdue tasks now, from review's queue; numbers written the way the page's language writes them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.portal.clients import ApiProblem, Apis
from services.portal.rendering import Pages
from services.portal.session import Officer, SignedInOfficer
from shared import roles
from shared.calendar import HOURS_PER_DAY, VIETNAM, WorkingCalendar

router = APIRouter(include_in_schema=False)

WATCHERS: frozenset[str] = frozenset({roles.CHIEF, roles.SUPERVISOR, roles.ADMIN})
"""Who sees a unit's performance."""
PERIODS = ("this_month", "last_month", "this_year", "range")
MAX_DAYS = 366  # audit's limit on one period
OVERDUE_PAGE = 20
CALENDAR = WorkingCalendar()


# --- numbers and dates, the Vietnamese way or the English way ------------------------------


@dataclass(frozen=True)
class Numbers:
    """Write numbers and dates for `lang`: "92,5 %" and 02/12/2026 in Vietnamese,
    "92.5%" and 2 Dec 2026 in English."""

    lang: str

    def number(self, value: float | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        text = f"{value:,.{digits}f}"  # 1,234.5
        if self.lang == "vi":
            text = text.replace(",", " ").replace(".", ",").replace(" ", ".")
        return text

    def percent(self, rate: float | None) -> str:
        """A rate in [0, 1] as a percentage with one decimal."""
        if rate is None:
            return "—"
        text = self.number(rate * 100, 1)
        return f"{text} %" if self.lang == "vi" else f"{text}%"

    def day(self, value: date) -> str:
        if self.lang == "vi":
            return value.strftime("%d/%m/%Y")
        return f"{value.day} {value.strftime('%b %Y')}"

    def moment(self, value: datetime) -> str:
        """A moment in Vietnam time."""
        local = value.astimezone(VIETNAM)
        if self.lang == "vi":
            return f"{local:%H:%M}, {self.day(local.date())}"
        return f"{self.day(local.date())}, {local:%H:%M}"

    def working_time(self, hours: float) -> str:
        """Working hours as days and hours of the shared calendar (8 hours a day)."""
        whole = round(hours)
        days, rest = divmod(whole, HOURS_PER_DAY)
        if self.lang == "vi":
            return f"{days} ngày {rest} giờ" if days else f"{rest} giờ"
        return f"{days} d {rest} h" if days else f"{rest} h"


# --- the period -----------------------------------------------------------------------------


class BadPeriod(ValueError):
    """A date range the page cannot ask for; `key` names the text that says why."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True)
class Period:
    kind: str
    since: date
    until: date
    """The day after the last one (audit counts [since, until))."""

    @property
    def last_day(self) -> date:
        return self.until - timedelta(days=1)


def today_in_vietnam(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(VIETNAM).date()


def period(kind: str, start: str, end: str, today: date) -> Period:
    """The period the page asks for: this month or this year up to today, last month, or the
    days `start` to `end` (ISO dates, both included)."""
    tomorrow = today + timedelta(days=1)
    if kind == "last_month":
        first = today.replace(day=1)
        return Period(kind, (first - timedelta(days=1)).replace(day=1), first)
    if kind == "this_year":
        return Period(kind, today.replace(month=1, day=1), tomorrow)
    if kind != "range":
        return Period("this_month", today.replace(day=1), tomorrow)
    try:
        since, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise BadPeriod("supervision.bad_dates") from exc
    if last < since:
        raise BadPeriod("supervision.end_before_start")
    if (last - since).days + 1 > MAX_DAYS:
        raise BadPeriod("supervision.too_long")
    return Period(kind, since, last + timedelta(days=1))


# --- the table ------------------------------------------------------------------------------


@dataclass
class Line:
    """One procedure's figures (or the total) for the unit."""

    procedure_code: str
    procedure_name: str
    received: int = 0
    decided: int = 0
    on_time: int = 0
    late: int = 0
    median_working_days: float | None = None
    medians: list[float] = field(default_factory=list, repr=False)

    @property
    def on_time_rate(self) -> float | None:
        timed = self.on_time + self.late
        return self.on_time / timed if timed else None

    def add(self, row: dict[str, Any]) -> None:
        for name in ("received", "decided", "on_time", "late"):
            setattr(self, name, getattr(self, name) + int(row.get(name) or 0))
        if row.get("median_working_days") is not None:
            self.medians.append(float(row["median_working_days"]))


def table(rows: list[dict[str, Any]], unit: str, names: dict[str, str]) -> tuple[list[Line], Line]:
    """The rows of `unit` (every unit if empty) by procedure, and their total. A median is
    shown only where audit gave exactly one: medians of several groups do not combine."""
    lines: dict[str, Line] = {}
    total = Line("", "")
    groups = 0
    for row in rows:
        if unit and row.get("unit_id") != unit:
            continue
        code = str(row.get("procedure_code") or "")
        line = lines.setdefault(code, Line(code, names.get(code, code)))
        line.add(row)
        total.add(row)
        groups += 1
    for line in [*lines.values(), total]:
        line.median_working_days = line.medians[0] if len(line.medians) == 1 else None
    if groups > 1:
        total.median_working_days = None
    return sorted(lines.values(), key=lambda line: line.procedure_code), total


def units_in(rows: list[dict[str, Any]], *also: str) -> list[str]:
    """The units the statistics name, for the unit picker."""
    return sorted(({str(r.get("unit_id") or "") for r in rows} | set(also)) - {""})


# --- the overdue list -----------------------------------------------------------------------


@dataclass(frozen=True)
class Overdue:
    task_id: str
    dossier_code: str
    procedure_name: str
    unit_id: str
    holder: str | None
    due_at: datetime
    late_hours: float


def overdue(
    tasks: list[dict[str, Any]], now: datetime, names: dict[str, str] | None = None
) -> list[Overdue]:
    """The overdue tasks review gave, with the working time since each was due (review's own
    count when it gives one) and the holder's name where `names` has it."""
    out = []
    for task in tasks:
        due = task.get("due_at") or (task.get("waiting") or {}).get("due_at")
        if not due:
            continue
        due_at = datetime.fromisoformat(due)
        left = (task.get("time_left") or {}).get("working_hours")
        holder = task.get("officer_id")
        out.append(
            Overdue(
                task_id=task["id"],
                dossier_code=task["dossier_code"],
                procedure_name=task.get("procedure_name") or task["procedure_code"],
                unit_id=task["unit_id"],
                holder=(names or {}).get(holder, holder) if holder else None,
                due_at=due_at,
                late_hours=-float(left) if left is not None else late_hours(due_at, now),
            )
        )
    return out


def late_hours(due_at: datetime, now: datetime) -> float:
    return CALENDAR.working_hours_between(due_at, now)


@dataclass(frozen=True)
class Me:
    """What review's `/v1/me` says of the officer: whether they work at the province office
    (and may look at any unit), their unit's name and their colleagues' names."""

    province: bool
    unit_name: str
    names: dict[str, str]

    @classmethod
    def of(cls, me: dict[str, Any]) -> Me:
        unit = me.get("unit") or {}
        names = {o["id"]: o["name"] for o in me.get("officers") or []}
        return cls(bool(me.get("province_office")), str(unit.get("name") or ""), names)


# --- the page -------------------------------------------------------------------------------


@router.get("/supervision")
async def performance(
    request: Request,
    officer: Officer,
    kind: str = "this_month",
    start: str = "",
    end: str = "",
    unit: str | None = None,
    cursor: str = "",
) -> Response:
    pages: Pages = request.app.state.pages
    apis: Apis = request.app.state.apis
    lang = pages.language(request)
    t = pages.catalogue.translator(lang)
    if officer.role not in WATCHERS:
        problem = ApiProblem(403, t("supervision.forbidden"), "forbidden")
        return pages.render(request, "error.html", status=403, problem=problem)
    context: dict[str, Any] = {
        "numbers": Numbers(lang),
        "periods": PERIODS,
        "kind": kind,
        "start": start,
        "end": end,
    }
    try:
        chosen = period(kind, start, end, today_in_vietnam())
    except BadPeriod as exc:
        me = Me.of(await _me(apis, officer, lang))
        problem = ApiProblem(422, t(exc.key), "bad_period")
        return pages.render(
            request,
            "supervision/performance.html",
            status=422,
            problem=problem,
            **_unit_choice(officer, me, unit, []),
            **context,
        )
    statistics, catalogue, who, queue = await asyncio.gather(
        _statistics(apis, officer, lang, chosen),
        apis.get("intake", "/v1/procedures", token=None, lang=lang),
        _me(apis, officer, lang),
        _overdue(request, officer, lang, cursor),
    )
    me = Me.of(who)
    names = {p["code"]: p["name_vi" if lang == "vi" else "name_en"] for p in catalogue}
    # Audit may be unable to answer (building its statistics after an upgrade): its message
    # in place of the table, and the overdue list still shown.
    unanswered = statistics if isinstance(statistics, ApiProblem) else None
    rows = [] if unanswered else statistics["rows"]
    choice = _unit_choice(officer, me, unit, rows)
    lines, total = table(rows, choice["unit"], names)
    return pages.render(
        request,
        "supervision/performance.html",
        problem=unanswered,
        period=chosen,
        lines=lines,
        total=total,
        **choice,
        overdue=overdue(queue.tasks, datetime.now(UTC), me.names),
        pager=queue.pager,
        **context,
    )


async def _statistics(
    apis: Apis, officer: SignedInOfficer, lang: str, chosen: Period
) -> dict[str, Any] | ApiProblem:
    """Audit's statistics of the period, or the problem it answered."""
    try:
        body: dict[str, Any] = await apis.get(
            "audit",
            "/v1/audit/statistics",
            token=officer.token,
            lang=lang,
            params={"since": chosen.since.isoformat(), "until": chosen.until.isoformat()},
        )
    except ApiProblem as problem:
        if problem.status == 401:
            raise  # signed out: the page sends the officer to sign in again
        return problem
    return body


def _unit_choice(
    officer: SignedInOfficer, me: Me, asked: str | None, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The unit shown: the officer's own, or at the province office the one asked for (every
    unit if empty); the statistics are public, the choice only narrows them."""
    unit = (officer.unit if asked is None else asked) if me.province else officer.unit
    return {
        "unit": unit,
        "unit_name": me.unit_name if unit == officer.unit else unit,
        "picks_unit": me.province,
        "units": units_in(rows, officer.unit, unit) if me.province else [],
    }


async def _me(apis: Apis, officer: SignedInOfficer, lang: str) -> dict[str, Any]:
    me: dict[str, Any] = await apis.get("review", "/v1/me", token=officer.token, lang=lang)
    return me


@router.get("/supervision/overdue")
async def overdue_fragment(request: Request, officer: Officer, cursor: str = "") -> Response:
    """One page of the overdue list alone, for htmx's paging (the links work without it)."""
    pages: Pages = request.app.state.pages
    lang = pages.language(request)
    if officer.role not in WATCHERS:
        t = pages.catalogue.translator(lang)
        problem = ApiProblem(403, t("supervision.forbidden"), "forbidden")
        return pages.render(request, "error.html", status=403, problem=problem)
    who, queue = await asyncio.gather(
        _me(request.app.state.apis, officer, lang), _overdue(request, officer, lang, cursor)
    )
    rows = overdue(queue.tasks, datetime.now(UTC), Me.of(who).names)
    return pages.render(
        request, "supervision/overdue.html", numbers=Numbers(lang), overdue=rows, pager=queue.pager
    )


@dataclass(frozen=True)
class Queue:
    tasks: list[dict[str, Any]]
    pager: list[tuple[str, str, str, str]]
    """(page URL, fragment URL, text key, rel) of the first and the next page."""


async def _overdue(request: Request, officer: SignedInOfficer, lang: str, cursor: str) -> Queue:
    """One page of the overdue tasks in the officer's scope, with the links to the first and
    the next page (whole page, and the fragment htmx swaps in)."""
    apis: Apis = request.app.state.apis
    answer = await apis.call(
        "GET",
        "review",
        "/v1/tasks",
        token=officer.token,
        lang=lang,
        params={"overdue": "true", "limit": OVERDUE_PAGE, "cursor": cursor},
    )
    following = answer.headers.get("x-next-cursor")
    pager = [
        (*_links(request, None), "supervision.first_page", "") if cursor else None,
        (*_links(request, following), "supervision.next_page", "next") if following else None,
    ]
    return Queue(list(answer.body), [p for p in pager if p])


def _links(request: Request, cursor: str | None) -> tuple[str, str]:
    """The performance page with the overdue list at `cursor` (its first page if None), and
    that page of the list alone (with the page's filters, so its own links keep them)."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "lang")]
    if cursor:
        query.append(("cursor", cursor))
    kept = urlencode(query)
    return f"/supervision?{kept}#overdue", f"/supervision/overdue?{kept}"
