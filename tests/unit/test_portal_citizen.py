"""The citizens' pages in-process over a fake intake: the catalogue, a procedure, its form; a
dossier filed with two documents as a plain form (no JavaScript), refused fields shown beside
each field in Vietnamese, the same page posted again giving the same receipt and one dossier;
the receipt's promised date, secret and QR link; the status page by secret or phone; withdraw
and supplement; the service worker's headers; the pages' compressed sizes within budget."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from services.portal import csrf
from services.portal.citizen import catalogue, common, receipt
from services.portal.citizen.status import proof_from
from tests.unit.test_portal_citizen_fakes import JPEG, PDF, PUBLIC, FakeIntake, portal_over

FORM = {
    "applicant.full_name": "Nguyễn Thị Ánh Tuyết",
    "applicant.date_of_birth": "1990-05-17",
    "applicant.sex": "female",
    "applicant.personal_id": "001190012345",
    "applicant.phone": "0912345678",
    "residence.ward_code": "00070",
    "residence.address": "Số 12 phố Hàng Gai",
    "notify_by": "sms",
}
APPLY = "/procedures/1.004194/apply"
STATUS_BUDGET = 14 * 1024
FORM_BUDGET = 50 * 1024


def files() -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("file.ct01", ("ct01.pdf", PDF, "application/pdf")),
        ("file.legal_residence_proof", ("hop-dong.jpg", JPEG, "image/jpeg")),
    ]


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, f"no hidden {name} in the page"
    return found.group(1)


async def form_page(client: httpx.AsyncClient) -> dict[str, str]:
    page = await client.get(APPLY)
    assert page.status_code == 200, page.text
    return {
        csrf.FIELD: hidden(page.text, csrf.FIELD),
        "idempotency_key": hidden(page.text, "idempotency_key"),
    }


def on_the_wire(answer: httpx.Response) -> int:
    """The whole response as sent: the status line and headers, and the body as compressed."""
    head = sum(len(k) + len(v) + 4 for k, v in answer.headers.raw) + 17
    return head + answer.num_bytes_downloaded


def test_words_for_dates_fees_and_deadlines() -> None:
    assert common.date_words("2026-12-04T17:15:00Z") == "ngày 05/12/2026", "Vietnam's day"
    assert common.date_words("2026-12-04T09:15:00+00:00", "en") == "4 December 2026"
    assert common.date_words(None) == ""

    def vi(key: str, **values: Any) -> str:
        return {"citizen.fee_amount": "{amount} đồng"}.get(key, key).format(**values)

    assert catalogue.fee_text(7000, vi) == "7.000 đồng"
    assert catalogue.fee_text(0, vi) == "citizen.free"
    assert catalogue.fee_text(None, vi) == ""
    days: Any = lambda key, **v: f"{v.get('days')}"  # noqa: E731
    assert catalogue.deadline_text({"working_days": 1.5}, days) == "1,5"


def test_the_qr_code_links_to_the_status_page_with_the_secret() -> None:
    link = receipt.status_link("https://dvc.example.vn/", "G01.99-261201-0001", "a+b/c")
    assert link == "https://dvc.example.vn/status/G01.99-261201-0001?secret=a%2Bb%2Fc"
    svg = str(receipt.qr_svg(link, "Mã QR"))
    assert svg.startswith('<svg role="img" ') and "<title>Mã QR</title>" in svg
    assert "style=" not in svg, "the CSP forbids style attributes"


def test_a_proof_is_the_secret_or_else_the_phone() -> None:
    assert proof_from({"secret": " s1 ", "phone": "0912"}).sent() == {
        "headers": {"X-Dossier-Secret": "s1"}
    }
    by_phone = proof_from({"phone": "0912 345 678"})
    assert by_phone.sent() == {"params": {"phone": "0912 345 678"}}
    assert by_phone.query() == "?phone=0912+345+678"
    assert not proof_from({})


async def test_the_catalogue_and_a_procedure_say_what_it_needs() -> None:
    async with portal_over(FakeIntake()) as client:
        listed = await client.get("/procedures")
        assert listed.status_code == 200
        assert '<a href="/procedures/1.004194">Đăng ký tạm trú</a>' in listed.text
        page = await client.get("/procedures/1.004194")
        assert "3 ngày làm việc" in page.text and "7.000 đồng" in page.text
        assert "Giấy tờ chứng minh chỗ ở hợp pháp" in page.text
        assert f'href="{APPLY}"' in page.text
        home = await client.get("/")
        assert 'href="/signin"' in home.text and 'action="/status"' in home.text
        assert "htmx" not in home.text, "the citizens' pages need no htmx"
        english = await client.get("/procedures/1.004194?lang=en")
        assert "Temporary residence registration" in english.text


async def test_a_citizen_files_once_whatever_the_retries() -> None:
    intake = FakeIntake()
    async with portal_over(intake) as client:
        sent = await form_page(client)

        # Refused: a bad phone beside its field, in Vietnamese; the values kept; nothing filed.
        refused = await client.post(
            APPLY, data={**FORM, **sent, "applicant.phone": "0123"}, files=files()
        )
        assert refused.status_code == 422
        beside = refused.text.split('id="f-applicant-phone-error"', 1)[1].split("</p>", 1)[0]
        assert "di động" in beside
        assert 'value="Nguyễn Thị Ánh Tuyết"' in refused.text
        assert not intake.dossiers
        kept = re.findall(r'name="doc\.(\w+)" value="([^"]+)"', refused.text)
        assert sorted(t for t, _ in kept) == ["ct01", "legal_residence_proof"]

        # The same page sent twice at once (a double tap), then again (a reload): one dossier.
        good = {**FORM, **sent}
        first, double = await asyncio.gather(
            client.post(APPLY, data=good, files=files()),
            client.post(APPLY, data=good, files=files()),
        )
        again = await client.post(APPLY, data=good, files=files())
        assert {first.status_code, double.status_code, again.status_code} == {303}
        assert first.headers["location"] == double.headers["location"] == again.headers["location"]
        assert len(intake.dossiers) == 1
        assert len(intake.files) == 2, "each file uploaded once for the page"
        [dossier] = intake.dossiers.values()
        assert sorted(d["document_type"] for d in dossier.answer["documents"]) == [
            "ct01",
            "legal_residence_proof",
        ]
        assert set(intake.forwarded) == {"203.0.113.7"}, "intake counts the citizen"

        # The receipt: code, promised date in words, the secret, the QR link; no secret in URL.
        location = first.headers["location"]
        assert location == "/receipts/G01.99-261201-0001"
        shown = await client.get(location)
        assert shown.status_code == 200
        assert "G01.99-261201-0001" in shown.text and "ngày 04/12/2026" in shown.text
        assert '<dd class="secret">SECRET1</dd>' in shown.text
        assert f'href="{PUBLIC}/status/G01.99-261201-0001?secret=SECRET1"' in shown.text
        assert "<svg" in shown.text and "<img" not in shown.text

        home = await client.get("/")
        assert 'href="/receipts/G01.99-261201-0001"' in home.text, "filed from this browser"

        # Another browser has no secret for it: it is asked for, not shown.
        async with portal_over(intake) as stranger:
            lost = await stranger.get(location)
            assert lost.status_code == 404 and "SECRET1" not in lost.text


async def test_a_file_of_the_wrong_type_is_refused_beside_its_document() -> None:
    intake = FakeIntake()
    async with portal_over(intake) as client:
        sent = await form_page(client)
        bad = [("file.ct01", ("ct01.html", b"<html>", "text/html")), files()[1]]
        refused = await client.post(APPLY, data={**FORM, **sent}, files=bad)
        assert refused.status_code == 422
        beside = refused.text.split('id="f-attachments-ct01--error"', 1)[1].split("</p>", 1)[0]
        assert "không đúng loại" in beside
        assert not intake.dossiers


async def filed(client: httpx.AsyncClient) -> str:
    sent = await form_page(client)
    answer = await client.post(APPLY, data={**FORM, **sent}, files=files())
    assert answer.status_code == 303
    return answer.headers["location"].rsplit("/", 1)[1]


async def test_status_by_secret_or_phone_then_withdraw() -> None:
    intake = FakeIntake()
    async with portal_over(intake) as client:
        code = await filed(client)
        intake.step(code, "received", 2)
        page = await client.get(f"/status/{code}?secret=SECRET1")
        assert page.status_code == 200
        assert '<dd class="status-now">Được tiếp nhận</dd>' in page.text
        assert "ngày 04/12/2026" in page.text
        assert 'href="?secret=SECRET1&amp;lang=en"' in page.text, "the proof kept in English"
        english = await client.get(f"/status/{code}?secret=SECRET1&lang=en")
        assert '<dd class="status-now">Received</dd>' in english.text
        await client.get("/?lang=vi")  # back to Vietnamese (the choice is kept in a cookie)
        by_phone = await client.get(f"/status/{code}", params={"phone": "0912345678"})
        assert "Được tiếp nhận" in by_phone.text
        wrong = await client.get(f"/status/{code}?secret=nope")
        assert wrong.status_code == 404 and "Không tìm thấy" in wrong.text
        found = await client.get("/status", params={"code": code, "secret": "SECRET1"})
        assert found.status_code == 303 and found.headers["location"].endswith("secret=SECRET1")

        confirm = await client.get(f"/status/{code}/withdraw?secret=SECRET1")
        token = hidden(confirm.text, csrf.FIELD)
        gone = await client.post(
            f"/status/{code}/withdraw", data={csrf.FIELD: token, "secret": "SECRET1"}
        )
        assert gone.status_code == 303
        after = await client.get(gone.headers["location"])
        assert "Công dân yêu cầu rút hồ sơ" in after.text and "Đã rút hồ sơ." in after.text
        twice = await client.post(
            f"/status/{code}/withdraw", data={csrf.FIELD: token, "secret": "SECRET1"}
        )
        assert twice.headers["location"].endswith("done=refused")
        no_token = await client.post(f"/status/{code}/withdraw", data={"secret": "SECRET1"})
        assert no_token.status_code == 403


async def test_a_supplement_request_is_answered_with_new_documents() -> None:
    intake = FakeIntake()
    async with portal_over(intake) as client:
        code = await filed(client)
        intake.step(code, "supplement_requested", 5)
        page = await client.get(f"/status/{code}?secret=SECRET1")
        assert "Yêu cầu bổ sung giấy tờ" in page.text
        assert f'href="/status/{code}/supplement?secret=SECRET1"' in page.text
        form = await client.get(f"/status/{code}/supplement?secret=SECRET1")
        data = {
            csrf.FIELD: hidden(form.text, csrf.FIELD),
            "idempotency_key": hidden(form.text, "idempotency_key"),
            "secret": "SECRET1",
            "note": "Đã chụp lại",
        }
        empty = await client.post(f"/status/{code}/supplement", data=data)
        assert empty.status_code == 422 and "ít nhất một tệp" in empty.text
        photo = [("file.legal_residence_proof", ("moi.jpg", JPEG, "image/jpeg"))]
        sent = await client.post(f"/status/{code}/supplement", data=data, files=photo)
        assert sent.status_code == 303, sent.text
        [added] = intake.supplements
        assert added["note"] == "Đã chụp lại"
        assert [a["document_type"] for a in added["attachments"]] == ["legal_residence_proof"]
        after = await client.get(sent.headers["location"])
        assert "Đang xử lý" in after.text and "Đã gửi giấy tờ bổ sung." in after.text


async def test_an_apology_shows_its_new_date() -> None:
    intake = FakeIntake()
    async with portal_over(intake) as client:
        code = await filed(client)
        intake.step(code, "apology_issued", 0)
        page = await client.get(f"/status/{code}?secret=SECRET1")
        assert "Ngày hẹn trả mới: ngày 04/12/2026" in page.text


async def test_the_service_worker_is_served_at_the_root() -> None:
    async with portal_over(FakeIntake()) as client:
        worker = await client.get("/sw.js")
        assert worker.status_code == 200
        assert worker.headers["service-worker-allowed"] == "/"
        assert worker.headers["cache-control"] == "no-cache"
        assert worker.headers["content-type"].startswith("text/javascript")
        imported = re.search(r'importScripts\("(/static/outbox\.[0-9a-f]{12}\.js)"\)', worker.text)
        assert imported, worker.text[:300]
        assert (await client.get(imported.group(1))).status_code == 200
        csp = worker.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "worker-src" not in csp, "worker-src falls back"


async def test_the_pages_are_light() -> None:
    """The status page's whole response within 14 KB compressed, the form under 50 KB; each
    page's size printed (what the middleware sends: gzip)."""
    intake = FakeIntake()
    async with portal_over(intake) as client:
        code = await filed(client)
        intake.step(code, "received", 2)
        intake.step(code, "checked", 4)
        sizes = {}
        for path in (
            "/",
            "/procedures",
            "/procedures/1.004194",
            APPLY,
            f"/receipts/{code}",
            f"/status/{code}?secret=SECRET1",
        ):
            answer = await client.get(path, headers={"Accept-Encoding": "gzip"})
            assert answer.status_code == 200, path
            assert answer.headers.get("content-encoding") == "gzip", path
            assert "<img" not in answer.text and "@font-face" not in answer.text
            sizes[path] = on_the_wire(answer)
        for path, size in sizes.items():
            print(f"{path}: {size} bytes (headers and gzip body)")
        assert sizes[f"/status/{code}?secret=SECRET1"] <= STATUS_BUDGET
        assert sizes[APPLY] < FORM_BUDGET
        css = await client.get("/")
        for asset in re.findall(r'href="(/static/[^"]+\.css)"', css.text):
            sheet = await client.get(asset)
            assert "immutable" in sheet.headers["cache-control"]
            assert "@font-face" not in sheet.text and "url(" not in sheet.text


def test_a_receipt_is_kept_sealed_and_for_minutes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared computer keeps no receipt (nor its secret) for the next person."""
    from types import SimpleNamespace

    from services.portal import session
    from services.portal.citizen import receipt
    from services.portal.settings import PortalSettings

    state = SimpleNamespace(session_cipher=session.cipher(PortalSettings()))
    request: Any = SimpleNamespace(session={}, app=SimpleNamespace(state=state))
    now = 1_000_000.0
    monkeypatch.setattr("services.portal.citizen.receipt.time.time", lambda: now)
    receipt.remember(request, "G01.99-261201-0001", "Kx7-q2Zr")
    assert "Kx7-q2Zr" not in str(request.session)  # sealed in the cookie
    assert receipt.remembered(request, "G01.99-261201-0001") == "Kx7-q2Zr"
    assert receipt.filed_here(request) == ["G01.99-261201-0001"]
    now += receipt.KEPT_FOR_SECONDS + 1
    assert receipt.filed_here(request) == []
    assert receipt.remembered(request, "G01.99-261201-0001") == ""
