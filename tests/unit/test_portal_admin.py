"""Units and officers screens: ward codes as typed, an officer's changes, and the forms over a
fake of review's admin API served over HTTP (httpx's MockTransport) that answers as review does
(403 to non-admins, 422 problem+json for an unknown role)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.portal import csrf
from services.portal.admin import changes, wards
from shared.roles import STAFF_ROLES
from tests.unit.test_portal_supervision import portal


def test_ward_codes_are_read_as_typed_once_each() -> None:
    assert wards("00004, 00070\n00004;00100  ") == ["00004", "00070", "00100"]
    assert wards("  ") == []


def test_an_officer_s_changes_say_what_changed_newest_first() -> None:
    history: list[dict[str, Any]] = [
        {"at": "2026-03-01T02:00:00+00:00", "by": "qt", "before": None,
         "after": {"name": "Lan", "role": "officer", "unit": "U", "active": True}},
        {"at": "2026-03-02T02:00:00+00:00", "by": "qt",
         "before": {"name": "Lan", "role": "officer", "unit": "U", "active": True},
         "after": {"name": "Lan", "role": "chief", "unit": "U", "active": False}},
    ]  # fmt: skip
    newest, first = changes(history)
    assert newest.at == datetime(2026, 3, 2, 2, tzinfo=UTC)
    assert newest.fields == [("role", "officer", "chief"), ("active", "true", "false")]
    assert first.fields[0] == ("name", "", "Lan")  # created: nothing before


def _problem(status: int, detail: str, **extra: Any) -> httpx.Response:
    body = {"status": status, "detail": detail, "code": "x", **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


class FakeReview:
    """Review's admin API: the directory in memory; the token is the caller's role."""

    def __init__(self) -> None:
        self.units: list[dict[str, Any]] = [{"id": "PC06-HN", "name": "Phòng PC06", "wards": []}]
        self.officers: list[dict[str, Any]] = [
            {"id": "cb-admin", "name": "Bùi Thanh Tâm", "role": "admin", "unit": "PC06-HN",
             "active": True},
        ]  # fmt: skip
        self.puts: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] != "Bearer tok-admin":
            return _problem(403, "Chỉ quản trị viên mới được thay đổi danh sách.")
        path = request.url.path.removeprefix("/v1/admin")
        if request.method == "GET":
            if path.endswith("/changes"):
                return httpx.Response(200, json=[])
            return httpx.Response(200, json=self.units if path == "/units" else self.officers)
        body = json.loads(request.content)
        kind, key = path.strip("/").split("/")
        if kind == "officers" and body["role"] not in STAFF_ROLES:
            errors = [{"field": "role", "code": "literal_error", "message": "Input should be…"}]
            return _problem(422, "Yêu cầu có trường không hợp lệ: role.", errors=errors)
        if body.get("unit") == "CAP-OTHER":  # a unit this admin does not manage
            return _problem(403, "Quản trị viên không quản lý đơn vị này.")
        self.puts.append((path, body))
        listed: list[dict[str, Any]] = self.units if kind == "units" else self.officers
        listed[:] = [x for x in listed if x["id"] != key] + [{"id": key, **body}]
        return httpx.Response(200, json={"id": key, **body})


@pytest.fixture
def review() -> FakeReview:
    return FakeReview()


@pytest.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, review: FakeReview
) -> AsyncIterator[httpx.AsyncClient]:
    async with portal(monkeypatch, review) as c:
        yield c


async def test_an_admin_creates_a_unit_and_sees_it_listed_with_a_notice(
    client: httpx.AsyncClient, review: FakeReview
) -> None:
    token = (await client.get("/probe/sign-in/admin/PC06-HN")).text
    form = {csrf.FIELD: token, "id": "CAP-X", "name": "Công an phường X", "wards": "00004, 00070"}
    created = await client.post("/admin/units", data=form)
    assert created.status_code == 303
    assert created.headers["location"] == "/admin/units?saved=CAP-X"
    assert review.puts == [
        ("/units/CAP-X", {"name": "Công an phường X", "wards": ["00004", "00070"]})
    ]
    listed = (await client.get(created.headers["location"])).text
    assert "Đã lưu đơn vị CAP-X." in listed
    assert re.search(r'<tr data-unit="CAP-X">.*?00004, 00070', listed, re.S)
    again = await client.post("/admin/units", data=form)
    assert again.status_code == 409  # create never overwrites: edit it instead
    assert "Đơn vị CAP-X đã có trong danh sách" in again.text
    assert len(review.puts) == 1


async def test_a_refused_edit_shows_the_api_s_message_beside_the_form(
    client: httpx.AsyncClient, review: FakeReview
) -> None:
    token = (await client.get("/probe/sign-in/admin/PC06-HN")).text
    form = {csrf.FIELD: token, "name": "Tâm", "role": "king", "unit": "PC06-HN", "active": "on"}
    refused = await client.post("/admin/officers/cb-admin", data=form)
    assert refused.status_code == 422
    assert "Yêu cầu có trường không hợp lệ: role." in refused.text
    assert '<form method="post" action="/admin/officers/cb-admin"' in refused.text
    assert review.officers[0]["role"] == "admin" and review.puts == []
    other = await client.post("/admin/officers", data={**form, "id": "cb-9", "role": "officer",
                                                       "unit": "CAP-OTHER"})  # fmt: skip
    assert other.status_code == 403
    assert "Quản trị viên không quản lý đơn vị này." in other.text
    assert '<form method="post" action="/admin/officers"' in other.text  # beside the form
    assert review.puts == []
    unknown = await client.get("/admin/officers/nobody")
    assert unknown.status_code == 404


async def test_others_get_the_api_s_403_as_a_page(client: httpx.AsyncClient) -> None:
    token = (await client.get("/probe/sign-in/officer/PC06-HN")).text
    for path in ("/admin/units", "/admin/officers"):
        page = await client.get(path)
        assert page.status_code == 403
        assert "Chỉ quản trị viên mới được thay đổi danh sách." in page.text
    posted = await client.post("/admin/units", data={csrf.FIELD: token, "id": "U", "name": "U"})
    assert posted.status_code == 403


async def test_a_form_without_its_token_changes_nothing(
    client: httpx.AsyncClient, review: FakeReview
) -> None:
    await client.get("/probe/sign-in/admin/PC06-HN")
    refused = await client.post("/admin/units", data={"id": "CAP-Y", "name": "Y"})
    assert refused.status_code == 403
    assert review.puts == []
