"""End to end: an officer works a dossier in the console — the portal beside the four services,
each a process: the new dossier in the reception queue with its time left, its page, both
documents read back through the portal, received and approved by the page's forms, the history;
an officer of another unit refused the page and the documents; a refused action shown in
Vietnamese, changing nothing."""

from __future__ import annotations

import base64
import json
import re
import time
from html import unescape
from typing import Any

import httpx
import itsdangerous
import pytest

from services.intake.openapi import example
from services.portal import session
from services.portal.session import COOKIE
from services.portal.settings import PortalSettings
from tests.e2e.flows import SAMPLES, assigned_officer, submit, token
from tests.e2e.harness import Services, eventually
from tests.factories import CATALOGUE

pytestmark = pytest.mark.e2e
SECRET = "e2e-console-session-secret"


def signed_in(services: Services, officer_id: str, role: str, unit: str) -> httpx.Client:
    """A browser-like client whose session cookie holds the officer, as the portal's sign-in
    makes it (Starlette's signed session), with a real token of review's CLI."""
    # The token sealed as the portal seals it (a cookie holds it encrypted).
    cipher = session.cipher(PortalSettings(session_secret=SECRET))
    officer = {
        "id": officer_id,
        "name": officer_id,
        "role": role,
        "unit": unit,
        "token": cipher.encrypt(token(officer_id).encode()).decode(),
        "expires_at": time.time() + 3600,
        "via": "dev",
    }
    data = base64.b64encode(json.dumps({"officer": officer}).encode())
    cookie = itsdangerous.TimestampSigner(SECRET).sign(data).decode()
    client = httpx.Client(base_url=services.url("portal"), timeout=20)
    client.cookies.set(COOKIE, cookie)
    return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page carries the form token"
    return found.group(1)


def text_of(page: str) -> str:
    """The page's visible words, one space between."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def start_portal(services: Services) -> None:
    services.start("portal", MOTCUA_PORTAL_SESSION_SECRET=SECRET)
    services.wait_ready("portal")


async def new_dossier_and_its_officer(
    services: Services,
) -> tuple[str, str, str, httpx.Client]:
    """The portal started; a new dossier, its task, the officer it went to, signed in."""
    start_portal(services)
    code = submit(services)
    task_id, officer_id = await assigned_officer(services, code)
    return code, task_id, officer_id, signed_in(services, officer_id, "officer", "CAP-BADINH")


def review_task(services: Services, task_id: str, officer_id: str) -> dict[str, Any]:
    """The task as review itself answers it (what the portal's forms must not change)."""
    answer = httpx.get(
        f"{services.url('review')}/v1/tasks/{task_id}",
        headers={"Authorization": f"Bearer {token(officer_id)}"},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_an_officer_works_a_dossier_in_the_console(services: Services) -> None:
    code, task_id, officer_id, officer = await new_dossier_and_its_officer(services)

    queue = officer.get("/queues", params={"tab": "reception"})
    assert queue.status_code == 200, queue.text
    row = re.search(rf'<tr id="task-{task_id}".*?</tr>', queue.text, re.S)
    assert row, f"{code} is in the reception queue"
    words = text_of(row.group(0))
    assert code in words and "Nguyễn Thị Lan" in words
    assert re.search(r"(còn|quá hạn) \d+ (ngày|giờ|phút)", words), words
    assert re.search(r"Trong hạn|Sắp đến hạn|Quá hạn", words), words
    tab = re.search(r'id="tab-reception"[^>]*>(.*?)</a>', queue.text, re.S)
    assert tab and re.search(r'class="count"[^>]*>\s*[1-9]', tab.group(1)), "counted"

    by_code = officer.get("/dossiers", params={"code": code})
    assert (by_code.status_code, by_code.headers["location"]) == (303, f"/dossiers/{task_id}")
    english = officer.get(f"/dossiers/{task_id}", params={"lang": "en"})
    assert "Receive the dossier" in english.text and "Documents" in english.text
    page = officer.get(f"/dossiers/{task_id}", params={"lang": "vi"})
    assert page.status_code == 200, page.text
    assert page.text.count("<h1") == 1 and code in page.text
    assert "Nguyễn Thị Lan" in page.text and "Số 12 ngõ 34 phố Đội Cấn" in page.text
    links = sorted(set(re.findall(rf'src="(/documents/{re.escape(code)}/[^"]+)"', page.text)))
    required = [d for d in CATALOGUE.procedures["1.004194"].documents if d.required]
    assert len(links) == len(required) == 2
    for link in links:
        document = officer.get(link)
        assert document.status_code == 200, document.text
        assert document.content == SAMPLES["application/pdf"]  # what flows.upload sent
        assert document.headers["content-type"] == "application/pdf"
        assert document.headers["x-content-type-options"] == "nosniff"
        # A PDF: nothing loads or runs but Chromium's viewer (which a `sandbox` policy stops).
        policy = document.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
        assert "authorization" not in {k.lower() for k in document.headers}
    assert token(officer_id) not in page.text  # the token never reaches the browser

    form = csrf_of(page.text)
    received = officer.post(
        f"/dossiers/{task_id}/actions", data={"csrf_token": form, "action": "receive"}
    )
    assert received.status_code == 303
    assert received.headers["location"].startswith(f"/dossiers/{task_id}?done=receive")
    after = officer.get(received.headers["location"])
    assert 'id="notice"' in after.text and "Tiếp nhận hồ sơ" in text_of(after.text)
    # The supplement request's form lists the procedure's documents to tick.
    asking = re.search(r'<form[^>]*id="action-request_supplement".*?</form>', after.text, re.S)
    assert asking and asking.group(0).count('name="missing"') == len(required)
    # Documents named with a decision: review refuses it beside the form, nothing changes.
    odd = officer.post(
        f"/dossiers/{task_id}/actions",
        data={"csrf_token": form, "action": "approve", "missing": "ct01"},
    )
    assert odd.status_code == 422 and 'id="problem-action-approve"' in odd.text
    assert "Chỉ khi yêu cầu bổ sung mới nêu giấy tờ còn thiếu." in odd.text
    # A page left open from before the receipt acts on nothing: reload, then act.
    stale = officer.post(
        f"/dossiers/{task_id}/actions",
        data={"csrf_token": form, "action": "approve", "version": "1"},
    )
    assert stale.status_code == 409 and "Hồ sơ đã thay đổi" in stale.text
    assert re.search(r'name="version" value="(\d+)"', stale.text).group(1) != "1"  # type: ignore[union-attr]
    approved = officer.post(
        f"/dossiers/{task_id}/actions", data={"csrf_token": form, "action": "approve"}
    )
    assert approved.status_code == 303

    page = officer.get(f"/dossiers/{task_id}")
    history = re.search(r'<table id="history-table">.*?</table>', page.text, re.S)
    assert history
    steps = text_of(history.group(0))
    assert "Tiếp nhận hồ sơ" in steps and "Phê duyệt" in steps and officer_id in steps
    assert re.search(r"\d\d:\d\d \d\d/\d\d/\d{4}", steps), "each step's time"
    assert 'id="action-approve"' not in page.text  # no longer allowed: not offered

    # The page's print button: the control slip as a PDF, its print then in the history.
    assert f'action="/prints/control/{task_id}"' in page.text
    printed = officer.post(f"/prints/control/{task_id}", data={"csrf_token": form})
    assert printed.status_code == 200 and printed.content.startswith(b"%PDF")
    page = officer.get(f"/dossiers/{task_id}")
    assert "In phiếu: Phiếu kiểm soát quá trình giải quyết hồ sơ" in text_of(page.text)

    # A refused action: approve twice. Review's Vietnamese message, its status, no change.
    before = review_task(services, task_id, officer_id)
    again = officer.post(
        f"/dossiers/{task_id}/actions", data={"csrf_token": form, "action": "approve"}
    )
    assert again.status_code == 409
    assert "Thao tác không thực hiện được ở bước hiện tại." in again.text
    assert again.text.count("<h1") == 1 and 'role="alert"' in again.text
    unchanged = review_task(services, task_id, officer_id)
    assert (unchanged["state"], len(unchanged["history"])) == (
        before["state"],
        len(before["history"]),
    )

    # An officer of another unit: 403 on the page and on the documents.
    stranger = signed_in(services, "cb-hoankiem-01", "officer", "CAP-HOANKIEM")
    refused = stranger.get(f"/dossiers/{task_id}")
    assert refused.status_code == 403
    assert "Cán bộ không có quyền với hồ sơ này." in refused.text
    for link in links:
        assert stranger.get(link).status_code == 403
    assert code not in stranger.get("/queues").text


async def test_the_queue_pages_with_reviews_cursor_and_swaps_in_place(
    services: Services,
) -> None:
    start_portal(services)
    codes = [submit(services) for _ in range(3)]
    holders = {await assigned_officer(services, c) for c in codes}
    chief = signed_in(services, "cb-badinh-tp", "chief", "CAP-BADINH")

    async def all_listed() -> list[str] | None:
        seen, link = [], "/queues?tab=reception&scope=unit&size=2"
        while link:
            page = chief.get(link, headers={"HX-Request": "true"})
            assert page.status_code == 200 and "<html" not in page.text  # a fragment
            seen += re.findall(r'<tr id="task-([^"]+)"', page.text)
            more = re.search(r'id="next-page" rel="next" href="([^"]+)"', page.text)
            link = unescape(more.group(1)) if more else ""
        return seen if len(seen) >= len(holders) else None

    listed = await eventually(all_listed, timeout=20)
    assert {task_id for task_id, _ in holders} <= set(listed)
    found = chief.get("/queues", params={"q": codes[0]})
    assert found.status_code == 200
    assert len(re.findall(r'<tr id="task-', found.text)) == 1 and codes[0] in found.text


async def test_release_claim_and_a_refusal_beside_its_form(services: Services) -> None:
    code, task_id, officer_id, officer = await new_dossier_and_its_officer(services)
    page = officer.get(f"/dossiers/{task_id}")
    assert page.status_code == 200 and code in page.text
    form = csrf_of(page.text)
    assert 'id="release"' in page.text and 'id="claim"' not in page.text

    no_token = officer.post(f"/dossiers/{task_id}/release", data={})
    assert no_token.status_code == 403  # CSRF: refused before review is asked
    released = officer.post(
        f"/dossiers/{task_id}/release", data={"csrf_token": form, "reason": "Nghỉ phép"}
    )
    assert released.status_code == 303
    page = officer.get(released.headers["location"])
    assert "Hồ sơ đã được trả về đơn vị." in page.text
    assert 'id="claim"' in page.text and 'id="release"' not in page.text
    assert "chưa có người nhận" in text_of(page.text)
    claimed = officer.post(f"/dossiers/{task_id}/claim", data={"csrf_token": form})
    assert claimed.status_code == 303
    page = officer.get(claimed.headers["location"])
    assert "Bạn đã nhận xử lý hồ sơ." in page.text

    # Refusing at reception needs a reason: review's 422 shows beside that form, no change.
    refused = officer.post(
        f"/dossiers/{task_id}/actions", data={"csrf_token": form, "action": "refuse"}
    )
    assert refused.status_code == 422
    beside = re.search(r'<form[^>]*id="action-refuse".*?</form>', refused.text, re.S)
    assert beside and 'id="problem-action-refuse"' in beside.group(0)
    task = review_task(services, task_id, officer_id)
    assert task["state"] == "receiving" and task["officer_id"] == officer_id


async def test_a_supervisors_reassign_and_apology_refused_beside_their_forms(
    services: Services,
) -> None:
    start_portal(services)
    code = submit(services, example(CATALOGUE.procedures["nop-phat-giao-thong"]))
    task_id, holder = await assigned_officer(services, code)  # the province office's officer
    supervisor = signed_in(services, "cb-pc06-gs", "supervisor", "PC06-HN")
    page = supervisor.get(f"/dossiers/{task_id}")
    assert page.status_code == 200, page.text
    assert 'id="reassign"' in page.text and 'id="reassign-officer"' in page.text
    form = csrf_of(page.text)
    before = review_task(services, task_id, holder)

    # Handing it to the officer who already holds it: review says no, beside the form.
    again = supervisor.post(
        f"/dossiers/{task_id}/reassign", data={"csrf_token": form, "officer_id": holder}
    )
    assert again.status_code == 409
    beside = re.search(r'<details class="needs-reason" open>.*?</details>', again.text, re.S)
    assert beside and 'id="problem-reassign"' in beside.group(0)
    assert "Thao tác không thực hiện được ở bước hiện tại." in beside.group(0)

    # An apology with a date already past: refused beside its form, in Vietnamese.
    assert 'id="apology"' in page.text  # nothing was promised: an apology may set a date
    apology = {"csrf_token": form, "promised_time": "10:00", "reason": "Cần xác minh thêm"}
    past = supervisor.post(
        f"/dossiers/{task_id}/apology", data={**apology, "promised_date": "2020-01-06"}
    )
    assert past.status_code == 422, past.text
    beside = re.search(r'<details class="needs-reason" open>.*?</details>', past.text, re.S)
    assert beside and 'id="problem-apology"' in beside.group(0)
    assert "Ngày hẹn trả mới phải sau ngày hẹn cũ và sau thời điểm hiện tại." in beside.group(0)
    after = review_task(services, task_id, holder)
    assert (after["officer_id"], after["promised_at"], len(after["history"])) == (
        before["officer_id"],
        before["promised_at"],
        len(before["history"]),
    )

    # The new date as the officer typed it, in Vietnam's time: recorded and shown.
    done = supervisor.post(
        f"/dossiers/{task_id}/apology", data={**apology, "promised_date": "2099-01-05"}
    )
    assert done.status_code == 303
    page = supervisor.get(done.headers["location"])
    assert "Đã ghi phiếu xin lỗi với ngày hẹn trả mới." in page.text
    assert re.search(r'id="promised-at">10:00 05/01/2099<', page.text)
    assert review_task(services, task_id, holder)["promised_at"].startswith("2099-01-05T03:00")
