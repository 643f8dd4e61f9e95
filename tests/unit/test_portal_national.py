"""The national-portal page: an operator re-sends the dossiers changed since a date over a fake
of notify's `POST /v1/dvcqg/resync` served over HTTP (httpx's MockTransport) that answers as
notify does (403 to officers and chiefs, 404 when the sync is off); a bad date sends nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.portal import csrf
from services.portal.national import since_of
from shared.calendar import VIETNAM
from tests.unit.test_portal_admin import _problem
from tests.unit.test_portal_supervision import portal


class FakeNotify:
    def __init__(self) -> None:
        self.enabled = True
        self.asked: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/v1/dvcqg/resync")
        if request.headers["authorization"] not in ("Bearer tok-admin", "Bearer tok-supervisor"):
            return _problem(403, "Chỉ quản trị viên hoặc lãnh đạo được đồng bộ lại.")
        if not self.enabled:
            return _problem(404, "Chưa bật đồng bộ với Cổng DVC quốc gia.")
        body = json.loads(request.content)
        self.asked.append(body)
        return httpx.Response(202, json={"since": body["since"], "limit": 5000})


@pytest.fixture
def notify() -> FakeNotify:
    return FakeNotify()


@pytest.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, notify: FakeNotify
) -> AsyncIterator[httpx.AsyncClient]:
    async with portal(monkeypatch, notify) as c:
        yield c


def test_the_day_typed_starts_at_midnight_in_vietnam_and_never_after_today() -> None:
    today = date(2026, 12, 2)
    assert since_of("2026-11-30", today) == datetime(2026, 11, 30, tzinfo=VIETNAM)
    assert since_of(" 2026-12-02 ", today).isoformat() == "2026-12-02T00:00:00+07:00"
    for typed, why in (("2026-12-03", "national.future_date"), ("30/11/2026", "national.bad_date")):
        with pytest.raises(ValueError, match=why):
            since_of(typed, today)


async def test_a_supervisor_resyncs_from_a_date_and_sees_it_queued(
    client: httpx.AsyncClient, notify: FakeNotify
) -> None:
    token = (await client.get("/probe/sign-in/supervisor/PC06-HN")).text
    page = await client.get("/admin/national")
    assert page.status_code == 200 and 'id="nav-national"' in page.text
    day = (datetime.now(VIETNAM).date() - timedelta(days=3)).isoformat()
    sent = await client.post("/admin/national/resync", data={csrf.FIELD: token, "since": day})
    assert (sent.status_code, sent.headers["location"]) == (303, f"/admin/national?queued={day}")
    assert notify.asked == [{"since": f"{day}T00:00:00+07:00"}]
    shown = await client.get(sent.headers["location"])
    assert f"Đã xếp hàng gửi lại các hồ sơ thay đổi từ ngày {day}." in shown.text


async def test_a_bad_date_an_officer_or_a_sync_turned_off_sends_nothing_and_says_why(
    client: httpx.AsyncClient, notify: FakeNotify
) -> None:
    token = (await client.get("/probe/sign-in/admin/PC06-HN")).text
    future = (datetime.now(VIETNAM).date() + timedelta(days=2)).isoformat()
    for typed, said in (
        ("hôm qua", "Ngày không hợp lệ"),
        (future, "Ngày bắt đầu không được sau hôm nay."),
    ):
        refused = await client.post(
            "/admin/national/resync", data={csrf.FIELD: token, "since": typed}
        )
        assert refused.status_code == 422 and said in refused.text
        assert 'id="form-problem"' in refused.text  # beside the form, the typed value kept
    assert notify.asked == []
    notify.enabled = False
    off = await client.post(
        "/admin/national/resync", data={csrf.FIELD: token, "since": "2026-11-01"}
    )
    assert off.status_code == 404 and "Chưa bật đồng bộ" in off.text
    token = (await client.get("/probe/sign-in/officer/PC06-HN")).text
    assert 'id="nav-national"' not in (await client.get("/admin/national")).text  # not theirs
    notify.enabled = True
    denied = await client.post(
        "/admin/national/resync", data={csrf.FIELD: token, "since": "2026-11-01"}
    )
    assert denied.status_code == 403 and "Chỉ quản trị viên hoặc lãnh đạo" in denied.text
    unsigned = await client.post("/admin/national/resync", data={"since": "2026-11-01"})
    assert unsigned.status_code == 403
    assert notify.asked == []
