"""End to end: what a citizen (or a desk officer) can do with a dossier after submitting it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.amqp import observe
from tests.conftest import Isolation
from tests.e2e.flows import (
    PDF,
    SECRETS,
    act,
    assigned_officer,
    decide,
    status,
    submit,
    token,
    upload,
    wait_for_types,
    with_documents,
)
from tests.e2e.harness import Services, eventually
from tests.factories import CATALOGUE, VALID_FORM

pytestmark = pytest.mark.e2e


def _post(services: Services, path: str, code: str, body: Any = None) -> httpx.Response:
    return httpx.post(
        f"{services.url('intake')}/v1/dossiers/{code}/{path}",
        json=body,
        headers={"X-Dossier-Secret": SECRETS[code]},
    )


async def test_status_needs_the_receipts_secret_or_the_applicants_phone(
    services: Services,
) -> None:
    code = submit(services)
    url = f"{services.url('intake')}/v1/dossiers/{code}"
    receipt = status(services, code)
    assert receipt["promised_at"] and receipt["received_at"] and receipt["fee"] == 7000
    assert receipt["access_secret"] is None  # shown once, on the receipt only
    assert {d["document_type"] for d in receipt["documents"]} == {"ct01", "legal_residence_proof"}
    assert httpx.get(url).status_code == 404
    wrong = httpx.get(url, headers={"X-Dossier-Secret": "guess"})
    unknown = httpx.get(
        f"{services.url('intake')}/v1/dossiers/G01.99-000000-0000",
        headers={"X-Dossier-Secret": "guess"},
    )
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json()["detail"].replace(code, "X") == unknown.json()["detail"].replace(
        "G01.99-000000-0000", "X"
    )
    by_phone = httpx.get(url, params={"phone": "+84 912 345 678"})
    assert by_phone.status_code == 200 and by_phone.json()["code"] == code
    assert httpx.get(url, params={"phone": "0987654321"}).status_code == 404


async def test_a_withdrawal_closes_the_officers_task_and_comes_too_late_after_a_decision(
    services: Services, isolation: Isolation
) -> None:
    code = submit(services)
    task_id, officer_id = await assigned_officer(services, code)
    async with observe(isolation.amqp_url) as seen:
        response = _post(services, "withdraw", code, {"reason": "Chuyển nơi ở khác"})
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["status_code"]) == ("withdrawn", 7)
        [event] = await seen.wait_for("dossier.withdrawn")
    assert event["data"]["reason"] == "Chuyển nơi ở khác"
    assert (
        event["correlationid"]
        == (await wait_for_types(services, code, "dossier.submitted"))[0]["correlationid"]
    )

    async def closed() -> bool:
        return decide(services, task_id, token(officer_id)).status_code == 409

    await eventually(closed, timeout=30, interval=0.5)
    assert _post(services, "withdraw", code).status_code == 409

    decided = submit(services)
    task2, officer2 = await assigned_officer(services, decided)
    assert decide(services, task2, token(officer2)).status_code == 200
    await eventually(lambda: status(services, decided)["status"] == "approved")
    late = _post(services, "withdraw", decided)
    assert late.status_code == 409 and late.json()["code"] == "not_withdrawable"


async def test_a_requested_supplement_is_added_and_the_officer_goes_on(
    services: Services, isolation: Isolation
) -> None:
    code = submit(services)
    task_id, officer_id = await assigned_officer(services, code)
    bearer = token(officer_id)
    intake = services.url("intake")
    extra = upload(intake, "legal_residence_proof")
    added = {"attachments": [{"document_type": "legal_residence_proof", "id": extra["id"]}]}
    assert _post(services, "supplements", code, added).status_code == 409  # nothing asked yet

    assert act(services, task_id, bearer, "receive").status_code == 200
    asked = httpx.post(
        f"{services.url('review')}/v1/tasks/{task_id}/actions",
        json={
            "action": "request_supplement",
            "reason": "Hợp đồng thuê nhà bị mờ",
            "missing": ["legal_residence_proof"],
        },
        headers={"Authorization": f"Bearer {bearer}"},
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["waiting"]["whose_move"] == "citizen"
    assert asked.json()["waiting"]["clock"] == "paused"  # the SLA stops while the citizen acts
    assert asked.json()["history"][-1]["missing"] == ["legal_residence_proof"]
    await eventually(lambda: status(services, code)["status_code"] == 5)
    # The citizen is told which documents to add, as the officer ticked them.
    told = [h for h in status(services, code)["history"] if h.get("missing")]
    assert [h["missing"] for h in told] == [["legal_residence_proof"]]

    async with observe(isolation.amqp_url) as seen:
        response = _post(services, "supplements", code, {**added, "note": "Đã chụp lại"})
        assert response.status_code == 200, response.text
        [event] = await seen.wait_for("dossier.supplemented")
    assert (response.json()["status"], response.json()["status_code"]) == ("supplemented", 4)
    assert event["data"]["documents"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()

    def task() -> dict[str, Any]:
        return dict(
            httpx.get(
                f"{services.url('review')}/v1/tasks/{task_id}",
                headers={"Authorization": f"Bearer {bearer}"},
            ).json()
        )

    await eventually(lambda: task()["state"] == "checking")
    assert [h["action"] for h in task()["history"]] == [
        "receive",
        "request_supplement",
        "supplemented",
    ]
    assert act(services, task_id, bearer, "approve").status_code == 200
    await wait_for_types(
        services,
        code,
        "dossier.received",
        "dossier.supplement_requested",
        "dossier.supplemented",
        "dossier.approved",
    )


async def test_an_officer_at_the_desk_submits_for_a_citizen(services: Services) -> None:
    url = f"{services.url('intake')}/v1/desk/dossiers"
    body = with_documents(services.url("intake"), VALID_FORM)
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer x.y.z"}).status_code == 401
    response = httpx.post(
        url, json=body, headers={"Authorization": f"Bearer {token('cb-badinh-01')}"}
    )
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert (receipt["channel"], receipt["submitted_by"]) == (1, "cb-badinh-01")
    assert receipt["fee"] == 15000  # the desk fee of temporary residence
    events = await wait_for_types(services, receipt["code"], "dossier.submitted")
    assert events[0]["data"]["submitted_by"] == "cb-badinh-01"
    assert events[0]["data"]["channel"] == 1


async def test_attachments_are_checked_against_the_procedure(
    services: Services, mongo: Any, isolation: Isolation
) -> None:
    intake = services.url("intake")
    stored = upload(intake, "ct01")
    assert stored["sha256"] == hashlib.sha256(PDF).hexdigest() and stored["size"] == len(PDF)
    wrong_type = httpx.post(
        f"{intake}/v1/attachments",
        params={"document_type": "ct01"},
        content=b"MZ\x90\x00",
        headers={"Content-Type": "application/x-msdownload"},
    )
    assert wrong_type.status_code == 415

    def refused(
        attachments: list[dict[str, str]], body: dict[str, Any] = VALID_FORM
    ) -> dict[str, str]:
        response = httpx.post(
            f"{intake}/v1/dossiers",
            json={**body, "attachments": attachments},
            headers={"Accept-Language": "vi"},
        )
        assert response.status_code == 422, response.text
        return {e["field"]: e["code"] for e in response.json()["errors"]}

    assert refused([{"document_type": "ct01", "id": stored["id"]}]) == {
        "attachments[legal_residence_proof]": "missing_document"
    }
    assert refused(
        [
            {"document_type": "ct01", "id": "0" * 24},
            {"document_type": "legal_residence_proof", "id": stored["id"]},
        ]
    ) == {"attachments.0.id": "unknown_attachment"}
    assert refused(
        [
            {"document_type": "photo", "id": stored["id"]},
            {"document_type": "ct01", "id": stored["id"]},
            {"document_type": "legal_residence_proof", "id": stored["id"]},
        ]
    ) == {"attachments.0.document_type": "unknown_document"}
    passport = {"procedure_code": "1.001456", **CATALOGUE.procedures["1.001456"].example}
    assert refused([{"document_type": "portrait_photo", "id": stored["id"]}], passport) == {
        "attachments.0.id": "media_type_not_allowed"  # a PDF where a photo is needed
    }
    assert await mongo[isolation.database("intake")]["dossiers"].count_documents({}) == 0


async def test_abuse_limits(isolation: Isolation, tmp_path: Path) -> None:
    env = {
        **isolation.service_env(),
        "MOTCUA_INTAKE_RATE_LIMIT_PER_MINUTE": "6",
        "MOTCUA_INTAKE_RATE_LIMIT_BURST": "3",
        "MOTCUA_INTAKE_MAX_BODY_BYTES": "4096",
        "MOTCUA_INTAKE_MAX_ATTACHMENT_BYTES": "1000",
        "MOTCUA_INTAKE_MAX_ATTACHMENTS": "2",
    }
    stack = Services(env=env, logs=tmp_path)
    stack.start("intake")
    try:
        stack.wait_ready("intake")
        url = stack.url("intake")
        big = httpx.post(f"{url}/v1/dossiers", json={**VALID_FORM, "padding": "x" * 5000})
        assert big.status_code == 413 and big.json()["code"] == "body_too_large"
        huge_file = httpx.post(
            f"{url}/v1/attachments",
            params={"document_type": "ct01"},
            content=b"%PDF" + b"0" * 2000,
            headers={"Content-Type": "application/pdf"},
        )
        assert huge_file.status_code == 413
        many = {**VALID_FORM, "attachments": [{"document_type": "ct01", "id": "x"}] * 3}
        answers = [httpx.post(f"{url}/v1/dossiers", json=many) for _ in range(2)]
        assert answers[0].status_code == 422
        assert answers[0].json()["errors"][0] == {
            "field": "attachments",
            "code": "too_long",
            "message": "Too many entries.",
        }
        limited = [httpx.post(f"{url}/v1/dossiers", json=many) for _ in range(2)]
        assert limited[-1].status_code == 429
        assert int(limited[-1].headers["Retry-After"]) >= 1
        assert httpx.get(f"{url}/v1/procedures").status_code == 200  # reads are not limited
    finally:
        stack.stop_all()
