"""Desk submission through the portal beside the four services: an officer signed in (the
development sign-in) files a dossier for a citizen with two documents; the same form posted
twice is one dossier with one receipt; a refused form creates nothing; the receipt prints as a
PDF with the code, the promised date and the Vietnamese names, recorded in the history."""

from __future__ import annotations

import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx

from services.portal import csrf
from shared.calendar import VIETNAM
from tests.e2e.flows import PDF, SAMPLES, token
from tests.e2e.harness import Services

OFFICER = "cb-hoankiem-01"  # Đỗ Minh Dũng, Công an phường Hoàn Kiếm (ward 00070)
FORM = {
    "applicant.full_name": "Nguyễn Thị Ánh Tuyết",
    "applicant.date_of_birth": "1990-05-17",
    "applicant.sex": "female",
    "applicant.personal_id": "001190012345",
    "applicant.phone": "0912 345 678",
    "residence.ward_code": "00070",
    "residence.address": "Số 12 phố Hàng Gai",
    "residence.housing_basis": "rented",
    "stay_from": "2026-12-01",
    "stay_until": "2027-11-30",
    "notify_by": "sms",
}


def files() -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("file.ct01", ("ct01.pdf", PDF, "application/pdf")),
        ("file.legal_residence_proof", ("hop-dong.jpg", SAMPLES["image/jpeg"], "image/jpeg")),
    ]


def portal(services: Services) -> httpx.Client:
    """The portal, signed in as OFFICER through the development sign-in."""
    services.start("portal", MOTCUA_PORTAL_DEVELOPMENT_SIGNIN="true")
    services.wait_ready("portal")
    return signed_in(services, OFFICER)


def signed_in(services: Services, officer_id: str) -> httpx.Client:
    client = httpx.Client(base_url=services.url("portal"), timeout=30)
    listing = client.get("/signin/dev")
    answer = client.post(
        "/signin/dev",
        data={csrf.FIELD: csrf_token(listing.text), "officer_id": officer_id, "next": "/desk"},
    )
    assert answer.status_code == 303, answer.text
    return client


def csrf_token(html: str) -> str:
    found = re.search(rf'name="{csrf.FIELD}" value="([^"]+)"', html)
    assert found, "the page has a form"
    return found.group(1)


def form_page(client: httpx.Client) -> tuple[str, str]:
    page = client.get("/desk/1.004194")
    assert page.status_code == 200, page.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert key
    return csrf_token(page.text), key.group(1)


def post_form(client: httpx.Client, data: dict[str, str]) -> httpx.Response:
    return client.post("/desk/1.004194", data=data, files=files())


def receipt_code(html: str) -> str:
    found = re.search(r'<dd class="code">([^<]+)</dd>', html)
    assert found, html[:2000]
    return found.group(1)


def test_an_officer_files_a_dossier_at_the_desk_once(services: Services) -> None:
    client = portal(services)
    assert "Đăng ký tạm trú" in client.get("/desk").text

    # Refused: a bad phone is shown beside its field, in Vietnamese; nothing is filed.
    csrf_value, key = form_page(client)
    bad = {**FORM, csrf.FIELD: csrf_value, "idempotency_key": key, "applicant.phone": "0123"}
    refused = client.post("/desk/1.004194", data=bad, files=files())
    assert refused.status_code == 422
    beside = refused.text.split('id="f-applicant-phone-error"', 1)[1].split("</p>", 1)[0]
    assert "Không phải số di động Việt Nam" in beside
    assert 'value="Nguyễn Thị Ánh Tuyết"' in refused.text, "the values are kept"

    # The same form posted twice at once (a double click), then again (a reload): one dossier,
    # the same receipt.
    good = {**FORM, csrf.FIELD: csrf_value, "idempotency_key": key}
    with ThreadPoolExecutor(2) as pool:
        clicks = [pool.submit(post_form, client, good) for _ in range(2)]
        first, double = (c.result() for c in clicks)
    again = post_form(client, good)
    assert first.status_code == double.status_code == again.status_code == 200, first.text
    code = receipt_code(first.text)
    assert receipt_code(double.text) == receipt_code(again.text) == code
    assert code.endswith("-0001"), "the refused form took no number: nothing was filed"
    secret = re.search(r'<dd class="secret">([^<]+)</dd>', first.text)
    assert secret and secret.group(1) in again.text
    assert re.search(r"\d\d giờ \d\d phút, ngày \d\d/\d\d/\d{4}", first.text)

    # One dossier, at the desk, by this officer, with both documents; the next form is a new one.
    status = httpx.get(
        f"{services.url('intake')}/v1/dossiers/{code}",
        headers={"X-Dossier-Secret": secret.group(1)},
    ).json()
    assert (status["channel"], status["submitted_by"]) == (1, OFFICER)
    assert sorted(d["document_type"] for d in status["documents"]) == [
        "ct01",
        "legal_residence_proof",
    ]
    csrf_value, other_key = form_page(client)
    other = {**good, csrf.FIELD: csrf_value, "idempotency_key": other_key}
    assert receipt_code(client.post("/desk/1.004194", data=other, files=files()).text).endswith(
        "-0002"
    )


def pdf_text(pdf: bytes) -> str:
    out = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True, timeout=60
    )
    return out.stdout.decode("utf-8")


def test_the_desk_receipt_prints_and_the_print_is_in_the_history(services: Services) -> None:
    client = portal(services)
    csrf_value, key = form_page(client)
    filed = client.post(
        "/desk/1.004194",
        data={**FORM, csrf.FIELD: csrf_value, "idempotency_key": key},
        files=files(),
    )
    code = receipt_code(filed.text)
    printed = client.post(f"/prints/receipt/{code}", data={csrf.FIELD: csrf_value})
    assert printed.status_code == 200, printed.text
    assert printed.headers["content-type"] == "application/pdf"
    assert printed.headers["content-disposition"] == f'inline; filename="giay-tiep-nhan-{code}.pdf"'
    text = pdf_text(printed.content)
    assert code in text
    for name in ("Nguyễn Thị Ánh Tuyết", "Đỗ Minh Dũng", "Đăng ký tạm trú"):
        assert name in text, name
    task = find_task(services, code)
    promised = datetime.fromisoformat(task["promised_at"]).astimezone(VIETNAM)
    assert f"{promised:%H} giờ {promised:%M} phút, ngày {promised:%d/%m/%Y}" in text
    # Recorded before the PDF was answered: who printed which slip.
    history = find_task(services, code)["history"]
    [step] = [s for s in history if s.get("action") == "print" and s.get("form") == "receipt"]
    assert step["decided_by"] == OFFICER


def test_the_control_slip_prints_for_the_unit_only(services: Services) -> None:
    client = portal(services)
    csrf_value, key = form_page(client)
    filed = client.post(
        "/desk/1.004194",
        data={**FORM, csrf.FIELD: csrf_value, "idempotency_key": key},
        files=files(),
    )
    code = receipt_code(filed.text)
    task_id = find_task(services, code)["id"]
    printed = client.post(f"/prints/control/{task_id}", data={csrf.FIELD: csrf_value})
    assert printed.status_code == 200, printed.text
    assert (
        printed.headers["content-disposition"] == f'inline; filename="phieu-kiem-soat-{code}.pdf"'
    )
    text = pdf_text(printed.content)
    assert code in text and "PHIẾU KIỂM SOÁT" in text and "Nguyễn Thị Ánh Tuyết" in text

    # An officer of another unit: review refuses, the portal shows why and prints nothing.
    elsewhere = signed_in(services, "cb-badinh-01")
    token_elsewhere = csrf_token(elsewhere.get("/desk/1.004194").text)
    refused = elsewhere.post(f"/prints/control/{task_id}", data={csrf.FIELD: token_elsewhere})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert "Cán bộ không có quyền với hồ sơ này." in refused.text


def find_task(services: Services, code: str) -> dict[str, Any]:
    """The dossier's task (review's search by code), once review has made it."""
    bearer = {"Authorization": f"Bearer {token(OFFICER)}"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = httpx.get(
            f"{services.url('review')}/v1/tasks", params={"q": code}, headers=bearer
        ).json()
        for task in found:
            if task["dossier_code"] == code:
                return dict(task)
        time.sleep(0.2)
    raise AssertionError(f"no task for {code}")
