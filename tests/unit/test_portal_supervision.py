"""The unit's performance page: numbers the Vietnamese and the English way, the period asked
for, the figures by procedure with their total, and the overdue list, drawn from fake answers
of audit, intake and review served over HTTP (httpx's MockTransport)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from services.portal import app as portal_app
from services.portal import csrf, session
from services.portal.app import create_app
from services.portal.clients import Apis
from services.portal.settings import PortalSettings
from services.portal.supervision import (
    BadPeriod,
    Numbers,
    overdue,
    period,
    table,
    today_in_vietnam,
    units_in,
)

VI, EN = Numbers("vi"), Numbers("en")


def test_numbers_are_written_the_vietnamese_way_in_vietnamese() -> None:
    assert VI.percent(0.925) == "92,5 %"
    assert VI.percent(1.0) == "100,0 %"
    assert VI.number(1234567) == "1.234.567"
    assert VI.number(2.75, 1) == "2,8"
    assert VI.number(None) == "—" and VI.percent(None) == "—"
    assert VI.day(date(2026, 3, 5)) == "05/03/2026"
    assert VI.moment(datetime(2026, 3, 5, 2, 7, tzinfo=UTC)) == "09:07, 05/03/2026"
    assert VI.working_time(11.6) == "1 ngày 4 giờ"
    assert VI.working_time(3) == "3 giờ"


def test_numbers_are_written_the_english_way_in_english() -> None:
    assert EN.percent(0.925) == "92.5%"
    assert EN.number(1234567) == "1,234,567"
    assert EN.number(1234.5, 1) == "1,234.5"
    assert EN.day(date(2026, 3, 5)) == "5 Mar 2026"
    assert EN.moment(datetime(2026, 3, 5, 2, 7, tzinfo=UTC)) == "5 Mar 2026, 09:07"
    assert EN.working_time(11.6) == "1 d 4 h"


def test_the_period_runs_to_today_and_a_range_includes_its_last_day() -> None:
    today = date(2026, 3, 15)
    this_month = period("this_month", "", "", today)
    assert (this_month.since, this_month.until) == (date(2026, 3, 1), date(2026, 3, 16))
    last = period("last_month", "", "", today)
    assert (last.since, last.until, last.last_day) == (
        date(2026, 2, 1),
        date(2026, 3, 1),
        date(2026, 2, 28),
    )
    january = period("last_month", "", "", date(2026, 1, 10))
    assert (january.since, january.until) == (date(2025, 12, 1), date(2026, 1, 1))
    year = period("this_year", "", "", today)
    assert (year.since, year.until) == (date(2026, 1, 1), date(2026, 3, 16))
    chosen = period("range", "2026-02-10", "2026-02-20", today)
    assert (chosen.since, chosen.until) == (date(2026, 2, 10), date(2026, 2, 21))
    assert period("anything", "", "", today).kind == "this_month"
    longest = period("range", "2025-01-01", "2026-01-01", today)
    assert (longest.until - longest.since).days == 366


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        ("", "2026-02-20", "supervision.bad_dates"),
        ("2026-02-30", "2026-03-01", "supervision.bad_dates"),
        ("2026-02-20", "2026-02-10", "supervision.end_before_start"),
        ("2025-01-01", "2026-01-02", "supervision.too_long"),  # 367 days; audit takes 366
    ],
)
def test_a_range_the_api_would_refuse_is_refused(start: str, end: str, why: str) -> None:
    with pytest.raises(BadPeriod) as refused:
        period("range", start, end, date(2026, 3, 15))
    assert refused.value.key == why


def test_today_is_vietnam_s_day() -> None:
    assert today_in_vietnam(datetime(2026, 3, 15, 18, 0, tzinfo=UTC)) == date(2026, 3, 16)


ROWS: list[dict[str, Any]] = [
    {"procedure_code": "1.004194", "unit_id": "CAP-BADINH", "received": 10, "decided": 8,
     "on_time": 6, "late": 2, "on_time_rate": 0.75, "median_working_days": 2.5},
    {"procedure_code": "1.004194", "unit_id": "CAP-HOANKIEM", "received": 4, "decided": 4,
     "on_time": 4, "late": 0, "on_time_rate": 1.0, "median_working_days": 1.0},
    {"procedure_code": "2.001159", "unit_id": "CAP-BADINH", "received": 3, "decided": 1,
     "on_time": 0, "late": 0, "on_time_rate": None, "median_working_days": None},
]  # fmt: skip
NAMES = {"1.004194": "Đăng ký thường trú"}
BADINH = {"id": "CAP-BADINH", "name": "Công an phường Ba Đình", "wards": ["00004"]}


def test_the_table_keeps_the_unit_s_rows_by_procedure_with_their_total() -> None:
    lines, total = table(ROWS, "CAP-BADINH", NAMES)
    assert [(x.procedure_code, x.procedure_name) for x in lines] == [
        ("1.004194", "Đăng ký thường trú"),
        ("2.001159", "2.001159"),  # a code the catalogue does not name stays a code
    ]
    assert (lines[0].received, lines[0].decided, lines[0].on_time, lines[0].late) == (10, 8, 6, 2)
    assert lines[0].on_time_rate == 0.75 and lines[0].median_working_days == 2.5
    assert lines[1].on_time_rate is None  # nothing decided with a promised date
    assert (total.received, total.decided, total.on_time, total.late) == (13, 9, 6, 2)
    assert total.on_time_rate == 0.75
    assert total.median_working_days is None  # medians of two groups do not combine


def test_every_unit_sums_a_procedure_over_units() -> None:
    lines, total = table(ROWS, "", NAMES)
    assert (lines[0].received, lines[0].on_time, lines[0].late) == (14, 10, 2)
    assert lines[0].on_time_rate == pytest.approx(10 / 12)
    assert lines[0].median_working_days is None
    assert total.received == 17
    _, only = table(ROWS[:1], "CAP-BADINH", NAMES)
    assert only.median_working_days == 2.5  # one group: its median is the total's
    assert table(ROWS, "NOWHERE", NAMES) == ([], table([], "", {})[1])


def test_the_unit_picker_lists_the_units_the_statistics_name() -> None:
    assert units_in(ROWS, "PC06-HN", "") == ["CAP-BADINH", "CAP-HOANKIEM", "PC06-HN"]


def _task(task_id: str, due: str | None) -> dict[str, Any]:
    return {
        "id": task_id,
        "dossier_code": f"G01-{task_id}",
        "procedure_code": "1.004194",
        "procedure_name": "Đăng ký thường trú",
        "unit_id": "CAP-BADINH",
        "officer_id": "cb-badinh-01",
        "waiting": {"due_at": due} if due else None,
    }


def test_the_overdue_list_counts_working_time_since_the_due_moment() -> None:
    # Due Friday 2026-03-13 16:00 Vietnam time; now Monday 2026-03-16 09:00: Friday's last
    # hour, Saturday morning does not count, Monday 07:00-09:00.
    rows = overdue(
        [_task("t1", "2026-03-13T09:00:00+00:00"), _task("t2", None)],
        datetime(2026, 3, 16, 2, 0, tzinfo=UTC),
    )
    assert [r.task_id for r in rows] == ["t1"]
    assert rows[0].late_hours == pytest.approx(3.0)
    assert rows[0].holder == "cb-badinh-01"  # no name known: the id
    counted = {**_task("t3", "2026-03-13T09:00:00+00:00"), "time_left": {"working_hours": -12.5}}
    [row] = overdue([counted], datetime(2026, 3, 16, 2, 0, tzinfo=UTC), {"cb-badinh-01": "An"})
    assert (row.late_hours, row.holder) == (12.5, "An")  # review's own count, and the name


# --- the page, over fake services --------------------------------------------------------


probe = APIRouter()


@probe.get("/probe/sign-in/{role}/{unit}")
async def probe_sign_in(request: Request, role: str, unit: str) -> Response:
    """Sign in as `role` of `unit`; the token sent to the services is `tok-<role>`."""
    session.sign_in(
        request,
        session.SignedInOfficer(f"cb-{role}", "Phạm Quốc Cường", role, unit, f"tok-{role}", 4e9),
    )
    return PlainTextResponse(csrf.token(request))


class FakeServices:
    """Audit, intake and review as the portal sees them: what each was asked, canned answers."""

    def __init__(self) -> None:
        self.asked: list[httpx.Request] = []
        self.statistics_building = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request)
        path = request.url.path
        if path == "/v1/audit/statistics":
            if self.statistics_building:
                building = {
                    "status": 503,
                    "code": "statistics_being_built",
                    "detail": "Đang lập số liệu.",
                }
                return httpx.Response(503, json=building)
            return httpx.Response(200, json={"rows": ROWS})
        if path == "/v1/procedures":
            procedures = [{"code": "1.004194", "name_vi": NAMES["1.004194"], "name_en": "Perm"}]
            return httpx.Response(200, json=procedures)
        if path == "/v1/me":
            role = request.headers["authorization"].removeprefix("Bearer tok-")
            province = role in ("supervisor", "admin")
            unit = {"id": "PC06-HN", "name": "Phòng PC06"} if province else BADINH
            colleagues = [{"id": "cb-badinh-01", "name": "Trần Văn An"}]
            return httpx.Response(
                200, json={"unit": unit, "province_office": province, "officers": colleagues}
            )
        if path == "/v1/tasks":
            headers = {} if request.url.params.get("cursor") else {"X-Next-Cursor": "c2"}
            return httpx.Response(
                200, json=[_task("t1", "2026-03-13T09:00:00+00:00")], headers=headers
            )
        return httpx.Response(404, json={"detail": "?"})


@asynccontextmanager
async def portal(
    monkeypatch: pytest.MonkeyPatch, services: Callable[[httpx.Request], httpx.Response]
) -> AsyncIterator[httpx.AsyncClient]:
    """The portal in-process, with the probe's sign-in, calling `services` for every API."""
    monkeypatch.setattr(portal_app, "ROUTERS", [*portal_app.ROUTERS, probe])
    settings = PortalSettings(public_url="http://portal.test")
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://portal.test") as c,
    ):
        await app.state.apis.close()
        fake = httpx.AsyncClient(transport=httpx.MockTransport(services))
        app.state.apis = Apis(settings, fake)
        yield c


@pytest.fixture
async def fake() -> FakeServices:
    return FakeServices()


@pytest.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, fake: FakeServices
) -> AsyncIterator[httpx.AsyncClient]:
    async with portal(monkeypatch, fake) as c:
        yield c


def _cell(page: str, procedure: str, field: str) -> str:
    row = re.search(rf'<tr data-procedure="{re.escape(procedure)}">(.*?)</tr>', page, re.S)
    assert row, procedure
    cell = re.search(rf'data-field="{field}">([^<]*)<', row.group(1))
    assert cell, field
    return cell.group(1)


async def test_a_chief_sees_the_unit_s_figures_and_overdue_dossiers(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    await client.get("/probe/sign-in/chief/CAP-BADINH")
    page = await client.get("/supervision?kind=range&start=2026-02-01&end=2026-02-28&unit=X")
    assert page.status_code == 200
    text = page.text
    assert "Tỷ lệ hồ sơ giải quyết đúng hạn" in text
    assert _cell(text, "1.004194", "decided") == "8"
    assert _cell(text, "1.004194", "on_time_rate") == "75,0 %"
    assert _cell(text, "1.004194", "median_working_days") == "2,5"
    assert _cell(text, "", "received") == "13"
    assert "01/02/2026" in text and "28/02/2026" in text
    assert 'href="/dossiers/t1"' in text
    assert "Công an phường Ba Đình — từ 01/02/2026 đến 28/02/2026." in text
    assert "Trần Văn An" in text  # the holder's name, from review's /v1/me
    assert "cursor=c2" in text  # the next page of the overdue list
    fragment = re.search(r'hx-get="([^"]+)"', text)
    assert fragment
    assert fragment.group(1).startswith("/supervision/overdue?kind=range&amp;start=2026-02-01")
    following = await client.get(fragment.group(1).replace("&amp;", "&"))
    assert following.status_code == 200
    assert '<section id="overdue"' in following.text and "<html" not in following.text
    assert 'href="/dossiers/t1"' in following.text
    assert "Trang đầu" in following.text  # a later page links back to the first
    assert fake.asked[-1].url.params["cursor"] == "c2"
    asked = {r.url.path: r for r in fake.asked}
    stats = asked["/v1/audit/statistics"]
    assert dict(stats.url.params) == {"since": "2026-02-01", "until": "2026-03-01"}
    assert stats.headers["authorization"] == "Bearer tok-chief"
    assert asked["/v1/tasks"].url.params["overdue"] == "true"
    assert 'name="unit"' not in text  # a chief sees their own unit, whatever is asked


async def test_a_province_supervisor_picks_a_unit_in_english(client: httpx.AsyncClient) -> None:
    await client.get("/probe/sign-in/supervisor/PC06-HN")
    page = (await client.get("/supervision?unit=CAP-HOANKIEM&lang=en")).text
    assert '<option value="CAP-HOANKIEM" selected>' in page
    assert _cell(page, "1.004194", "on_time_rate") == "100.0%"
    assert _cell(page, "", "received") == "4"
    every = (await client.get("/supervision?unit=&lang=en")).text
    assert _cell(every, "", "received") == "17"
    # Review lists overdue work by the caller's own queue: the page says so for another unit.
    assert "overdue dossiers of your own queue" in page
    own = (await client.get("/supervision?unit=PC06-HN&lang=en")).text
    assert "overdue dossiers of your own queue" not in own


async def test_an_officer_and_a_bad_range_get_the_reason(client: httpx.AsyncClient) -> None:
    await client.get("/probe/sign-in/officer/CAP-BADINH")
    refused = await client.get("/supervision")
    assert refused.status_code == 403
    assert "Chỉ lãnh đạo đơn vị" in refused.text
    await client.get("/probe/sign-in/chief/CAP-BADINH")
    bad = await client.get("/supervision?kind=range&start=2026-02-20&end=2026-02-10")
    assert bad.status_code == 422
    assert "Đến ngày phải sau hoặc trùng từ ngày." in bad.text


async def test_statistics_not_ready_leave_the_overdue_list_on_the_page(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    fake.statistics_building = True
    await client.get("/probe/sign-in/chief/CAP-BADINH")
    page = await client.get("/supervision")
    assert page.status_code == 200
    assert "Đang lập số liệu." in page.text  # audit's own message, in place of the table
    assert 'id="overdue"' in page.text
