"""End to end: what the officer console calls, over the real services. A dossier's documents
served back to its receiving unit only, with their SHA-256 checked (a corrupted chunk is never
served); the queue by stage with counts, time left and search; a print recorded in the history
and in audit's timeline."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from bson import Binary, ObjectId
from pymongo import AsyncMongoClient

from shared.storage import Document
from tests.conftest import Isolation
from tests.e2e.flows import SAMPLES, act, assigned_officer, submit, token, wait_for_types
from tests.e2e.harness import Services, eventually
from tests.factories import CATALOGUE, VALID_FORM

pytestmark = pytest.mark.e2e

OTHER_UNIT = "cb-hoankiem-01"
CHIEF = "cb-badinh-tp"


def _get(url: str, bearer: str, **params: Any) -> httpx.Response:
    return httpx.get(url, params=params, headers={"Authorization": f"Bearer {bearer}"})


async def _documents(services: Services, code: str, bearer: str) -> dict[str, Any]:
    """The dossier's documents, once intake has learnt its receiving unit from review."""
    url = f"{services.url('intake')}/v1/officer/dossiers/{code}/documents"

    def listed() -> dict[str, Any] | None:
        answer = _get(url, bearer)
        if answer.status_code == 403 and answer.json()["code"] == "dossier_not_assigned":
            return None
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    found: dict[str, Any] = await eventually(listed, timeout=30)
    return found


async def test_documents_are_served_inline_to_the_receiving_unit_only_and_never_corrupted(
    services: Services, isolation: Isolation
) -> None:
    code = submit(services)
    _, officer_id = await assigned_officer(services, code)
    bearer = token(officer_id)
    listed = await _documents(services, code, bearer)
    procedure = CATALOGUE.procedures[VALID_FORM["procedure_code"]]
    required = [d for d in procedure.documents if d.required]
    assert listed["unit_id"] == "CAP-BADINH"
    assert [(d["kind"], d["name"]) for d in listed["documents"]] == [
        (d.type, d.name_vi) for d in required
    ]
    intake = services.url("intake")
    for doc, spec in zip(listed["documents"], required, strict=True):
        sample = SAMPLES[spec.media_types[0]]
        assert doc["uploaded_at"] and doc["size"] == len(sample)
        served = _get(f"{intake}{doc['href']}", bearer)
        assert served.status_code == 200
        assert served.content == sample
        assert hashlib.sha256(served.content).hexdigest() == doc["sha256"]
        assert served.headers["content-type"] == doc["content_type"] == spec.media_types[0]
        assert served.headers["content-disposition"].startswith("inline")
        assert served.headers["x-content-type-options"] == "nosniff"
    first = listed["documents"][0]
    refused = httpx.get(
        f"{intake}{first['href']}",
        headers={"Authorization": f"Bearer {token(OTHER_UNIT)}", "Accept-Language": "vi"},
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "đơn vị tiếp nhận" in refused.json()["detail"]
    assert (
        _get(f"{intake}/v1/officer/dossiers/{code}/documents", token(OTHER_UNIT)).status_code == 403
    )
    missing = _get(f"{intake}/v1/officer/dossiers/G01.99-000101-0001/documents/x", bearer)
    assert (missing.status_code, missing.json()["code"]) == (404, "dossier_not_found")
    other = _get(f"{intake}/v1/officer/dossiers/{code}/documents/{'0' * 24}", bearer)
    assert (other.status_code, other.json()["code"]) == (404, "document_not_found")

    # One byte of the stored file rots: it is refused, loudly, and never served.
    client: AsyncMongoClient[Document] = AsyncMongoClient(isolation.mongodb_url)
    try:
        chunks = client[isolation.database("intake")]["attachments.chunks"]
        where = {"files_id": ObjectId(first["id"]), "n": 0}
        chunk = await chunks.find_one(where)
        assert chunk is not None
        rotten = bytearray(chunk["data"])
        rotten[-1] ^= 0xFF
        await chunks.delete_one(where)  # nx-27017's GridFS tables match no update or replace
        await chunks.insert_one({**where, "data": Binary(bytes(rotten))})
    finally:
        await client.close()
    corrupt = _get(f"{intake}{first['href']}", bearer)
    assert corrupt.status_code == 500
    assert corrupt.json()["code"] == "document_corrupt"
    assert corrupt.headers["content-type"] == "application/problem+json"
    assert bytes(rotten) not in corrupt.content
    assert "does not match its SHA-256" in services.log("intake")


async def test_the_queue_by_stage_its_counts_search_and_a_print_in_the_history(
    services: Services,
) -> None:
    code = submit(services)
    task_id, officer_id = await assigned_officer(services, code)
    officer, chief = token(officer_id), token(CHIEF)
    tasks = f"{services.url('review')}/v1/tasks"
    [row] = [t for t in _get(tasks, officer, stage="reception").json() if t["id"] == task_id]
    assert (row["stage"], row["timeliness"], row["waiting"]["officer_id"]) == (
        "reception",
        "on_time",
        officer_id,
    )
    assert row["due_at"] == row["waiting"]["due_at"] and row["time_left"]["working_hours"] > 0
    assert {"action": "refuse", "requires_reason": True}.items() <= {
        **next(a for a in row["actions"] if a["action"] == "refuse")
    }.items()
    counts = _get(f"{tasks}/counts", officer).json()
    assert [s["stage"] for s in counts["stages"]] == [
        "reception",
        "in_process",
        "waiting_citizen",
        "handover",
    ]
    assert counts["stages"][0]["total"] == counts["total"] == 1
    refused = _get(f"{tasks}/counts", officer, scope="unit")
    assert (refused.status_code, refused.json()["code"]) == (403, "scope_not_allowed")
    assert _get(f"{tasks}/counts", chief, scope="unit").json()["total"] == 1
    me = _get(f"{services.url('review')}/v1/me", officer).json()
    assert (me["officer"]["id"], me["unit"]["id"], me["province_office"]) == (
        officer_id,
        "CAP-BADINH",
        False,
    )
    assert CHIEF in [o["id"] for o in me["officers"]]
    ward = VALID_FORM["residence"]["ward_code"]
    assert [t["id"] for t in _get(tasks, chief, scope="unit", ward=ward).json()] == [task_id]
    assert _get(tasks, chief, ward="99999").json() == []
    phone = VALID_FORM["applicant"]["phone"]
    assert [t["id"] for t in _get(tasks, chief, q=phone).json()] == [task_id]
    assert [t["id"] for t in _get(tasks, officer, q=code).json()] == [task_id]
    assert _get(tasks, token(OTHER_UNIT), q=code).json() == []

    printed = httpx.post(
        f"{tasks}/{task_id}/prints",
        json={"form": "receipt"},
        headers={"Authorization": f"Bearer {officer}"},
    )
    assert printed.status_code == 201, printed.text
    step = printed.json()["history"][-1]
    assert (step["action"], step["form"], step["decided_by"]) == ("print", "receipt", officer_id)
    assert printed.json()["state"] == "receiving"  # a print changes no state
    no_apology = httpx.post(
        f"{tasks}/{task_id}/prints",
        json={"form": "apology"},
        headers={"Authorization": f"Bearer {officer}"},
    )
    assert no_apology.status_code == 409
    foreign = httpx.post(
        f"{tasks}/{task_id}/prints",
        json={"form": "control"},
        headers={"Authorization": f"Bearer {token(OTHER_UNIT)}"},
    )
    assert foreign.status_code == 403
    events = await wait_for_types(services, code, "dossier.slip_printed")
    [record] = [e for e in events if e["type"] == "dossier.slip_printed"]
    assert record["data"]["form"] == "receipt" and record["actor"] == officer_id

    received = act(services, task_id, officer, "receive").json()
    assert received["stage"] == "in_process"
    receipt_step = received["history"][-1]
    assert (receipt_step["action"], receipt_step["on_time"]) == ("receive", True)
    assert receipt_step["due_at"] == row["due_at"]
    after = _get(f"{tasks}/counts", officer).json()
    assert [s["total"] for s in after["stages"]] == [0, 1, 0, 0]
