"""The print routes in-process, over a fake review and intake: the receipt, control and apology
slips as inline PDFs from a task, each print recorded; a refused print is the error page."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from services.intake.catalogue import load_catalogue
from services.portal import prints, session
from tests.unit.test_portal_desk import portal_over

CATALOGUE = load_catalogue()
CODE = "G01.99-261201-0007"
CHIEF = session.SignedInOfficer(
    "cb-hoankiem-tp", "Vũ Thị Hà", "chief", "CAP-HOANKIEM", "tok", 4e9, via="dev"
)


def task(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "task-1",
        "dossier_code": CODE,
        "procedure_code": "1.004194",
        "procedure_name": "Đăng ký tạm trú",
        "unit_id": "CAP-HOANKIEM",
        "officer_id": "cb-hoankiem-01",
        "created_at": "2026-12-01T01:30:05Z",
        "promised_at": "2026-12-04T09:15:00Z",
        "dossier": {
            "dossier_code": CODE,
            "channel": 1,
            "submitted_at": "2026-12-01T01:30:00Z",
            "received_at": "2026-12-01T01:30:00Z",
            "promised_at": "2026-12-04T09:15:00Z",
            "submitted_by": "cb-hoankiem-01",
            "ward_code": "00070",
            "fee": 15000,
            "applicant": {"full_name": "Nguyễn Thị Ánh Tuyết", "phone": "+84912345678"},
            "residence": {"ward_code": "00070", "address": "Số 12 phố Hàng Gai"},
            "documents": [{"document_type": "ct01"}, {"document_type": "legal_residence_proof"}],
        },
        "history": [
            {
                "action": "receive",
                "officer_id": "cb-hoankiem-01",
                "decided_by": "cb-hoankiem-01",
                "decided_at": "2026-12-01T02:00:00Z",
                "due_at": "2026-12-01T09:00:00Z",
                "promised_at": "2026-12-04T09:15:00Z",
            },
        ],
    }
    return {**base, **changes}


APOLOGY = {
    "action": "apologise",
    "officer_id": "cb-hoankiem-01",
    "decided_by": "cb-hoankiem-tp",
    "decided_at": "2026-12-05T02:00:00Z",
    "reason": "Cần xác minh thêm với chủ nhà trọ",
    "promised_at": "2026-12-09T09:00:00Z",
}


@dataclass
class FakeServices:
    """Review's tasks and prints, intake's procedures."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=lambda: {"task-1": task()})
    printed: list[tuple[str, str]] = field(default_factory=list)
    refuse: bool = False
    refuse_prints: bool = False
    me: dict[str, Any] = field(
        default_factory=lambda: {
            "officer": {"id": "cb-hoankiem-tp", "name": "Vũ Thị Hà"},
            "unit": {"id": "CAP-HOANKIEM", "name": "Công an phường Hoàn Kiếm", "wards": []},
            "officers": [],
        }
    )
    """Review's GET /v1/me (the roster file names the officers it leaves out)."""

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/me":
            return httpx.Response(200, json=self.me)
        if path.startswith("/v1/procedures/"):
            p = CATALOGUE.procedures[path.rsplit("/", 1)[1]]
            return httpx.Response(200, json=p.summary())
        if path == "/v1/tasks":
            q = request.url.params.get("q")
            return httpx.Response(
                200, json=[t for t in self.tasks.values() if t["dossier_code"] == q]
            )
        task_id = path.split("/")[3]
        if self.refuse:
            body = {"code": "forbidden", "detail": "Cán bộ không có quyền với hồ sơ này."}
            return httpx.Response(403, json=body)
        if path.endswith("/prints") and self.refuse_prints:
            body = {"code": "action_not_allowed", "detail": "Công việc đã đóng."}
            return httpx.Response(409, json=body)
        if path.endswith("/prints"):
            self.printed.append((task_id, json.loads(request.content)["form"]))
            return httpx.Response(201, json=self.tasks[task_id])
        return httpx.Response(200, json=self.tasks[task_id])


@pytest.fixture
def fake() -> FakeServices:
    return FakeServices()


@pytest.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, fake: FakeServices
) -> AsyncIterator[httpx.AsyncClient]:
    async with portal_over(monkeypatch, fake, CHIEF) as c:
        yield c


def text_of(pdf: bytes) -> str:
    out = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True)
    return " ".join(out.stdout.decode("utf-8").split())


async def test_the_receipt_prints_inline_with_the_dossier_and_is_recorded(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    answer = await client.post(f"/prints/receipt/{CODE}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == f'inline; filename="giay-tiep-nhan-{CODE}.pdf"'
    text = text_of(answer.content)
    for printed in (
        CODE,
        "Nguyễn Thị Ánh Tuyết",
        "Đỗ Minh Dũng",  # the desk officer who received it, from the roster
        "Đăng ký tạm trú",
        "Công an phường Hoàn Kiếm",
        "Tờ khai thay đổi thông tin cư trú (CT01)",
        "16 giờ 15 phút, ngày 04/12/2026",
    ):
        assert printed in text, printed
    assert fake.printed == [("task-1", "receipt")]


async def test_a_receipt_printed_after_filing_leads_the_citizen_to_the_dossier(
    client: httpx.AsyncClient,
) -> None:
    printed = await client.post(f"/prints/receipt/{CODE}", data={"secret": "Kx7-q2Zr"})
    assert f"status/{CODE}?secret=Kx7-q2Zr" in text_of(printed.content).replace(" ", "")
    forged = await client.post(f"/prints/receipt/{CODE}", data={"secret": "a&b=<c>"})
    assert "secret=" not in text_of(forged.content)


async def test_the_control_slip_lists_the_steps(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    answer = await client.post("/prints/control/task-1")
    assert answer.status_code == 200, answer.text
    assert 'filename="phieu-kiem-soat-' in answer.headers["content-disposition"]
    text = text_of(answer.content)
    assert "Tiếp nhận hồ sơ" in text and "Đỗ Minh Dũng" in text
    assert fake.printed == [("task-1", "control")]


async def test_the_names_come_from_review_when_it_gives_them(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    fake.me = {
        "officer": {"id": "cb-hoankiem-tp", "name": "Vũ Thị Hà"},
        "unit": {"id": "CAP-HOANKIEM", "name": "Công an phường Hoàn Kiếm (mới)", "wards": []},
        "officers": [{"id": "cb-hoankiem-02", "name": "Lý Thị Mai"}],
    }
    step = {**task()["history"][0], "officer_id": "cb-hoankiem-02", "name_vi": "Tiếp nhận"}
    fake.tasks["task-1"] = task(history=[step])
    text = text_of((await client.post("/prints/control/task-1")).content)
    assert "Lý Thị Mai" in text and "Công an phường Hoàn Kiếm (mới)" in text


async def test_the_apology_slip_has_the_reason_and_the_new_date(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    fake.tasks["task-1"] = task(history=[*task()["history"], APOLOGY])
    answer = await client.post("/prints/apology/task-1")
    assert answer.status_code == 200, answer.text
    text = text_of(answer.content)
    assert "Cần xác minh thêm với chủ nhà trọ" in text
    assert "16 giờ 00 phút, ngày 09/12/2026" in text  # the new date
    assert "16 giờ 15 phút, ngày 04/12/2026" in text  # the date it replaces
    assert "Vũ Thị Hà" in text
    assert fake.printed == [("task-1", "apology")]


async def test_no_apology_slip_without_an_apology(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    answer = await client.post("/prints/apology/task-1")
    assert answer.status_code == 409
    assert "chưa có thư xin lỗi" in answer.text and fake.printed == []


async def test_a_print_the_api_refuses_is_the_error_page_and_no_pdf(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    fake.refuse = True
    answer = await client.post("/prints/control/task-1")
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert "Cán bộ không có quyền với hồ sơ này." in answer.text


async def test_a_print_review_does_not_record_gives_no_pdf(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    fake.refuse_prints = True
    answer = await client.post(f"/prints/receipt/{CODE}")
    assert answer.status_code == 409
    assert answer.headers["content-type"].startswith("text/html")
    assert "Công việc đã đóng." in answer.text


async def test_a_print_needs_the_forms_csrf_token(client: httpx.AsyncClient) -> None:
    del client.headers["x-csrf-token"]
    assert (await client.post(f"/prints/receipt/{CODE}")).status_code == 403


def test_the_header_names_the_province_police_and_place() -> None:
    assert prints.issuer("Công an phường Hoàn Kiếm", "00070") == {
        "name": "Công an phường Hoàn Kiếm",
        "parent": "Công an thành phố Hà Nội",
        "place": "Hà Nội",
    }


async def test_a_slip_the_task_cannot_fill_is_a_message_not_a_crash(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    undated = task(history=[*task()["history"], {**APOLOGY, "promised_at": None}])
    undated["promised_at"] = None
    fake.tasks["task-1"] = undated
    answer = await client.post("/prints/apology/task-1")
    assert answer.status_code == 409
    assert "chưa đủ thông tin để in" in answer.text and fake.printed == []


async def test_a_receipt_without_a_promised_date_is_refused_not_invented(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    undated = task()
    undated["promised_at"] = None
    undated["dossier"] = {**undated["dossier"], "promised_at": None}
    fake.tasks["task-1"] = undated
    answer = await client.post(f"/prints/receipt/{undated['dossier_code']}")
    assert answer.status_code == 409
    assert "chưa đủ thông tin để in" in answer.text and fake.printed == []
