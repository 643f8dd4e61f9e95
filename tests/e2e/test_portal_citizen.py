"""Citizens' pages through the portal beside the four services, as plain HTML forms (no
JavaScript): a temporary-residence dossier filed with two documents, the same post again giving
the same receipt and one dossier; its status page from the receipt's QR link showing
"Được tiếp nhận" once an officer received it; the citizen withdraws it; another answers a
supplement request with a new photo. The status page's whole response within 14 KB gzip."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from services.portal import csrf
from tests.e2e.flows import PDF, SAMPLES, act, assigned_officer, token
from tests.e2e.harness import Services, eventually

pytestmark = pytest.mark.e2e

APPLY = "/procedures/1.004194/apply"
FORM = {
    "applicant.full_name": "Nguyễn Thị Ánh Tuyết",
    "applicant.date_of_birth": "1990-05-17",
    "applicant.sex": "female",
    "applicant.personal_id": "001190012345",
    "applicant.phone": "0912 345 678",
    "residence.ward_code": "00070",
    "residence.address": "Số 12 phố Hàng Gai",
    "residence.housing_basis": "rented",
    "notify_by": "sms",
}
STATUS_BUDGET = 14 * 1024


def files() -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("file.ct01", ("ct01.pdf", PDF, "application/pdf")),
        ("file.legal_residence_proof", ("hop-dong.jpg", SAMPLES["image/jpeg"], "image/jpeg")),
    ]


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, f"no {name} in the page"
    return found.group(1)


def citizen(services: Services) -> httpx.Client:
    services.start("portal")
    services.wait_ready("portal")
    return httpx.Client(base_url=services.url("portal"), timeout=30)


def file_dossier(client: httpx.Client) -> tuple[str, str, httpx.Response]:
    """(code, secret, the receipt page) of a dossier filed from a fresh form page."""
    page = client.get(APPLY)
    assert page.status_code == 200, page.text
    data = {
        **FORM,
        csrf.FIELD: hidden(page.text, csrf.FIELD),
        "idempotency_key": hidden(page.text, "idempotency_key"),
    }
    filed = client.post(APPLY, data=data, files=files())
    assert filed.status_code == 303, filed.text
    again = client.post(APPLY, data=data, files=files())  # a reload after a timeout
    assert again.status_code == 303 and again.headers["location"] == filed.headers["location"]
    shown = client.get(filed.headers["location"])
    assert shown.status_code == 200, shown.text
    code = filed.headers["location"].rsplit("/", 1)[1]
    secret = re.search(r'<dd class="secret">([^<]+)</dd>', shown.text)
    assert secret, shown.text[:2000]
    return code, secret.group(1), shown


def dossier(services: Services, code: str, secret: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{services.url('intake')}/v1/dossiers/{code}", headers={"X-Dossier-Secret": secret}
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_a_citizen_files_follows_and_withdraws_a_dossier(services: Services) -> None:
    client = citizen(services)
    assert "Đăng ký tạm trú" in client.get("/procedures").text
    code, secret, receipt = file_dossier(client)
    assert code.endswith("-0001"), "the second post filed nothing new"
    assert re.search(r"ngày \d\d/\d\d/\d{4}", receipt.text)
    filed = dossier(services, code, secret)
    assert filed["channel"] == 2
    assert sorted(d["document_type"] for d in filed["documents"]) == [
        "ct01",
        "legal_residence_proof",
    ]

    # The QR's link, after the officer receives the dossier: "Được tiếp nhận".
    link = re.search(r'<figcaption>[^<]*<a href="([^"]+)"', receipt.text)
    assert link and link.group(1).endswith(f"/status/{code}?secret={secret}")
    task_id, officer_id = await assigned_officer(services, code)
    assert act(services, task_id, token(officer_id), "receive").status_code == 200
    await eventually(lambda: dossier(services, code, secret)["status_code"] == 2)
    status = httpx.get(link.group(1), headers={"Accept-Encoding": "gzip"})
    assert '<dd class="status-now">Được tiếp nhận</dd>' in status.text
    head = sum(len(k) + len(v) + 4 for k, v in status.headers.raw) + 17
    size = head + status.num_bytes_downloaded
    print(f"status page: {size} bytes, headers and gzip body")
    assert status.headers["content-encoding"] == "gzip" and size <= STATUS_BUDGET

    # Withdrawn after a confirmation; by phone as well as by secret.
    confirm = client.get(f"/status/{code}/withdraw", params={"phone": "0912345678"})
    assert confirm.status_code == 200, confirm.text
    gone = client.post(
        f"/status/{code}/withdraw",
        data={csrf.FIELD: hidden(confirm.text, csrf.FIELD), "phone": "0912345678"},
    )
    assert gone.status_code == 303, gone.text
    after = client.get(gone.headers["location"])
    assert "Công dân yêu cầu rút hồ sơ" in after.text
    assert dossier(services, code, secret)["status"] == "withdrawn"


async def test_a_citizen_answers_a_supplement_request(services: Services) -> None:
    client = citizen(services)
    code, secret, _ = file_dossier(client)
    task_id, officer_id = await assigned_officer(services, code)
    bearer = token(officer_id)
    assert act(services, task_id, bearer, "receive").status_code == 200
    asked = act(services, task_id, bearer, "request_supplement", "Hợp đồng thuê nhà bị mờ")
    assert asked.status_code == 200, asked.text
    await eventually(lambda: dossier(services, code, secret)["status_code"] == 5)

    page = client.get(f"/status/{code}", params={"secret": secret})
    assert "Yêu cầu bổ sung giấy tờ" in page.text
    assert "Ghi chú của cán bộ: Hợp đồng thuê nhà bị mờ" in page.text  # what to do, told
    [step] = [h for h in dossier(services, code, secret)["history"] if h["reason"]]
    assert (step["status"], step["reason"]) == ("supplement_requested", "Hợp đồng thuê nhà bị mờ")
    form = client.get(f"/status/{code}/supplement", params={"secret": secret})
    assert form.status_code == 200, form.text
    photo = [("file.legal_residence_proof", ("chup-lai.png", SAMPLES["image/png"], "image/png"))]
    sent = client.post(
        f"/status/{code}/supplement",
        data={
            csrf.FIELD: hidden(form.text, csrf.FIELD),
            "idempotency_key": hidden(form.text, "idempotency_key"),
            "secret": secret,
            "note": "Đã chụp lại",
        },
        files=photo,
    )
    assert sent.status_code == 303, sent.text
    assert "Đã gửi giấy tờ bổ sung." in client.get(sent.headers["location"]).text
    now = dossier(services, code, secret)
    assert (now["status"], now["status_code"]) == ("supplemented", 4)
    assert len(now["documents"]) == 2, "intake lists the filed documents only"
