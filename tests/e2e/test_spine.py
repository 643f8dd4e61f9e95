"""End to end: the four services as OS processes on real RabbitMQ and the MongoDB-wire server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure

from shared.messaging import REASON_HEADER
from shared.storage import Document
from tests.amqp import drain, observe, publish_raw
from tests.conftest import Isolation
from tests.e2e.flows import (
    assigned_officer,
    decide,
    status,
    submit,
    timeline,
    token,
    wait_for_types,
)
from tests.e2e.harness import Mailbox, Services, eventually
from tests.factories import form, submitted_event

pytestmark = pytest.mark.e2e

SPINE = [
    "dossier.submitted",
    "dossier.assigned",
    "dossier.received",
    "dossier.approved",
]
# The citizen is e-mailed twice: when the dossier is received and when it is decided.
NOTIFIED = ["dossier.received", "dossier.approved"]


async def test_a_dossier_is_submitted_assigned_approved_mailed_and_audited(
    services: Services, mailbox: Mailbox
) -> None:
    # The OpenAPI document's example is a complete, valid submission.
    openapi = httpx.get(f"{services.url('intake')}/openapi.json").json()
    content = openapi["paths"]["/v1/dossiers"]["post"]["requestBody"]["content"]
    example = content["application/json"]["examples"]["1.004194"]["value"]
    code = submit(services, example)
    assert code.startswith("G01.99-")
    procedures = httpx.get(f"{services.url('intake')}/v1/procedures").json()
    assert len(procedures) == 11
    one = httpx.get(f"{services.url('intake')}/v1/procedures/1.004194").json()
    assert one["deadline"]["working_days"] == 3
    assert "applicant" in one["form_schema"]["properties"]
    task_id, officer_id = await assigned_officer(services, code)
    assert officer_id in {"cb-badinh-01", "cb-badinh-02"}  # ward 00004 → Ba Đình ward police

    bearer = token(officer_id)
    mine = httpx.get(
        f"{services.url('review')}/v1/tasks", headers={"Authorization": f"Bearer {bearer}"}
    )
    assert mine.status_code == 200
    [task] = [t for t in mine.json() if t["dossier_code"] == code]
    assert task["id"] == task_id
    assert task["dossier"]["applicant"]["full_name"] == "Nguyễn Thị Lan"

    approved = decide(services, task_id, bearer, "approve", "Hồ sơ hợp lệ")
    assert approved.status_code == 200, approved.text
    assert (approved.json()["state"], approved.json()["status_code"]) == ("decided", 9)

    mails = await mailbox.wait(2)
    [mail] = [m for m in mails if "phê duyệt" in m["Subject"]]
    assert mail["To"] == "lan.nguyen@example.vn"
    assert code in mail["Subject"]
    plain = mail.get_body(("plain",))
    assert plain is not None
    body = plain.get_content()
    assert code in body and "phê duyệt" in body and "Nguyễn Thị Lan" in body

    async def notified() -> list[dict[str, Any]] | None:
        events = await timeline(services, code)
        sent = [e for e in events if e["type"] == "notification.sent"]
        return events if len(sent) >= len(NOTIFIED) and len(events) >= 6 else None

    events = await eventually(notified, timeout=45)
    steps = [e for e in events if not e["type"].startswith("notification.")]
    assert [e["type"] for e in steps] == SPINE  # in order, each exactly once
    sent = [e for e in events if e["type"] == "notification.sent"]
    assert sorted(e["data"]["trigger_event_type"] for e in sent) == sorted(NOTIFIED)
    assert len({e["correlationid"] for e in events}) == 1

    seen_by_citizen = status(services, code)
    assert (seen_by_citizen["status"], seen_by_citizen["status_code"]) == ("approved", 9)

    # Every service exposes Prometheus metrics that saw this traffic.
    published = 'motcua_events_published_total{service="review",type="dossier.approved"} 1.0'
    assert published in httpx.get(f"{services.url('review')}/metrics").text
    consumed = httpx.get(f"{services.url('audit')}/metrics").text
    assert 'motcua_events_consumed_total{outcome="handled",queue="motcua.audit"' in consumed
    intake_metrics = httpx.get(f"{services.url('intake')}/metrics").text
    assert 'route="/v1/dossiers",service="intake",status="201"' in intake_metrics


async def test_officer_endpoints_refuse_missing_bad_and_foreign_tokens(services: Services) -> None:
    code = submit(services)
    task_id, _ = await assigned_officer(services, code)
    url = f"{services.url('review')}/v1/tasks/{task_id}/actions"
    body = {"action": "receive"}

    assert httpx.post(url, json=body).status_code == 401
    bad = httpx.post(url, json=body, headers={"Authorization": "Bearer not.a.token"})
    assert bad.status_code == 401
    assert bad.headers["content-type"] == "application/problem+json"
    foreign = decide(services, task_id, token("cb-hoankiem-tp"))  # a chief, of another ward
    assert foreign.status_code == 403

    await asyncio.sleep(0.5)
    assert [e["type"] for e in await timeline(services, code)] == SPINE[:2]
    assert status(services, code)["status"] == "assigned"


async def _empty(collection: AsyncCollection[Document]) -> bool:
    """Whether `collection` holds nothing. nx-27017 0.8.1 cannot count some collections (GridFS
    files and chunks: "no such column: data" / "id"), and answers a `find_one({})` on others
    with "'list' object has no attribute 'limit'": so each is tried in turn."""
    try:
        return await collection.count_documents({}) == 0
    except OperationFailure as counting:
        try:
            return await collection.find_one({}) is None
        except OperationFailure:
            raise counting from None


async def test_invalid_input_is_refused_and_changes_nothing(
    services: Services, isolation: Isolation, mongo: object
) -> None:
    async with observe(isolation.amqp_url) as seen:
        response = httpx.post(
            f"{services.url('intake')}/v1/dossiers",
            json=form(personal_id="12", phone="555"),
            headers={"Accept-Language": "vi"},
        )
        await asyncio.sleep(1.5)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {e["field"] for e in problem["errors"]} == {"applicant.personal_id", "applicant.phone"}
    assert problem["title"] == "Dữ liệu không hợp lệ"
    messages = {e["field"]: e["message"] for e in problem["errors"]}
    assert messages["applicant.phone"].startswith("Không phải số di động Việt Nam")
    assert seen.messages == []
    client = mongo
    seeded = {"units", "officers", "directory_meta"}  # review's directory, from the roster
    seeded.add("leases")  # audit's ledger lease: which process settles and seals
    seeded.add("upgrades")  # the one-off steps each service notes done at start
    seeded.add("fact_changes")  # audit's count of statistics writes, set up at 0
    for service in ("intake", "review", "notify", "audit"):
        db = client[isolation.database(service)]  # type: ignore[index]
        for name in set(await db.list_collection_names()) - seeded:
            if name.endswith("chunks"):  # nx-27017 lists `attachments.chunks` as `..._chunks`
                continue  # a chunk is part of a file: the file's collection is checked
            assert await _empty(db[name]), f"{service}.{name} has documents"


async def test_bad_messages_are_dead_lettered_with_reason_and_consumers_go_on(
    services: Services, isolation: Isolation
) -> None:
    await publish_raw(isolation.amqp_url, "dossier.submitted", b"{not json")
    await publish_raw(
        isolation.amqp_url,
        "dossier.submitted",
        json.dumps({"type": "dossier.vanished", "id": "x"}).encode(),
    )
    for queue in ("motcua.review.dead", "motcua.audit.dead", "motcua.notify.dead"):
        dead = await drain(isolation.amqp_url, queue, expect=2)
        reasons = sorted(str(m.headers[REASON_HEADER]) for m in dead)
        assert reasons[0].startswith("body is not JSON"), queue
        assert reasons[1] == "unknown event type: 'dossier.vanished'", queue

    code = submit(services)
    await wait_for_types(services, code, "dossier.submitted", "dossier.assigned")


async def test_the_same_event_twice_is_stored_once_and_acted_on_once(
    services: Services, isolation: Isolation, mongo: object
) -> None:
    event = submitted_event(code="G01.99-261128-9001")
    async with observe(isolation.amqp_url) as seen:
        for _ in range(2):
            await publish_raw(isolation.amqp_url, event.type, event.to_json())
        await wait_for_types(services, event.subject, "dossier.submitted", "dossier.assigned")
        await eventually(lambda: len(seen.events("dossier.assigned")) >= 2, timeout=20)
        await asyncio.sleep(1)

    assigned = seen.events("dossier.assigned")
    assert len({e["id"] for e in assigned}) == 1  # re-published, never re-decided
    types = [e["type"] for e in await timeline(services, event.subject)]
    assert types == ["dossier.submitted", "dossier.assigned"]
    tasks = mongo[isolation.database("review")]["tasks"]  # type: ignore[index]
    assert await tasks.count_documents({"dossier_code": event.subject}) == 1
