"""Intake alone, as a process: safe retries and codes under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.amqp import Observer, observe
from tests.conftest import Isolation
from tests.e2e.flows import with_documents
from tests.e2e.harness import Services, eventually
from tests.factories import VALID_FORM, form

pytestmark = pytest.mark.e2e


@pytest.fixture
async def intake(isolation: Isolation, tmp_path: Path) -> AsyncIterator[tuple[Services, Observer]]:
    # The observer's queue is bound to every event, so intake's events are routable without
    # the other services.
    async with observe(isolation.amqp_url) as seen:
        env = {
            **isolation.service_env(),
            "MOTCUA_INTAKE_RATE_LIMIT_PER_MINUTE": "1000000",
            "MOTCUA_INTAKE_RATE_LIMIT_BURST": "1000000",
        }
        stack = Services(env=env, logs=tmp_path)
        stack.start("intake")
        try:
            stack.wait_ready("intake")
            yield stack, seen
        finally:
            stack.stop_all()


def _client(stack: Services, connections: int = 50) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.url("intake"),
        timeout=120,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def test_ten_concurrent_retries_with_one_key_create_one_dossier(
    intake: tuple[Services, Observer], mongo: Any, isolation: Isolation
) -> None:
    stack, seen = intake
    valid = with_documents(stack.url("intake"), VALID_FORM)
    key = str(uuid.uuid4())
    async with _client(stack) as client:
        answers = await asyncio.gather(
            *(
                client.post("/v1/dossiers", json=valid, headers={"Idempotency-Key": key})
                for _ in range(10)
            )
        )
    assert {a.status_code for a in answers} == {201}
    bodies = [a.json() for a in answers]
    assert all(b == bodies[0] for b in bodies)  # every retry gets the first answer
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 9
    dossiers = mongo[isolation.database("intake")]["dossiers"]
    assert await dossiers.count_documents({}) == 1
    await seen.wait_for("dossier.submitted")
    await asyncio.sleep(1)
    assert len(seen.events("dossier.submitted")) == 1


async def test_the_same_key_with_another_body_is_a_conflict_and_changes_nothing(
    intake: tuple[Services, Observer], mongo: Any, isolation: Isolation
) -> None:
    stack, _ = intake
    valid = with_documents(stack.url("intake"), VALID_FORM)
    key = str(uuid.uuid4())
    async with _client(stack) as client:
        first = await client.post("/v1/dossiers", json=valid, headers={"Idempotency-Key": key})
        other = {**form(full_name="Nguyễn Văn Khác"), "attachments": valid["attachments"]}
        again = await client.post("/v1/dossiers", json=other, headers={"Idempotency-Key": key})
        # A retry after a network loss, with the body's keys in another order, is the same.
        reordered = dict(reversed(list(valid.items())))
        retry = await client.post("/v1/dossiers", json=reordered, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    assert again.status_code == 409
    assert again.json()["code"] == "idempotency_key_reused"
    assert retry.status_code == 201 and retry.json()["code"] == first.json()["code"]
    assert await mongo[isolation.database("intake")]["dossiers"].count_documents({}) == 1


async def test_an_invalid_body_does_not_use_up_its_key(
    intake: tuple[Services, Observer], mongo: Any, isolation: Isolation
) -> None:
    stack, _ = intake
    valid = with_documents(stack.url("intake"), VALID_FORM)
    key = str(uuid.uuid4())
    async with _client(stack) as client:
        bad = await client.post(
            "/v1/dossiers", json=form(phone="1"), headers={"Idempotency-Key": key}
        )
        good = await client.post("/v1/dossiers", json=valid, headers={"Idempotency-Key": key})
    assert (bad.status_code, good.status_code) == (422, 201)


async def test_a_thousand_concurrent_submissions_get_a_thousand_codes(
    intake: tuple[Services, Observer], mongo: Any, isolation: Isolation
) -> None:
    stack, seen = intake
    valid = with_documents(stack.url("intake"), VALID_FORM)
    retried = 0

    async def submit_like_a_phone(client: httpx.AsyncClient) -> httpx.Response:
        # A client on a weak network retries with the same Idempotency-Key when a connection
        # drops mid-request; under this load a keep-alive connection can close under it.
        nonlocal retried
        key = str(uuid.uuid4())
        for attempt in range(3):
            try:
                return await client.post(
                    "/v1/dossiers", json=valid, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError:
                if attempt == 2:
                    raise
                retried += 1
        raise AssertionError("unreachable")

    async with _client(stack, connections=250) as client:
        answers = await asyncio.gather(*(submit_like_a_phone(client) for _ in range(1000)))
    assert [a.status_code for a in answers].count(201) == 1000, retried
    codes = {a.json()["code"] for a in answers}
    assert len(codes) == 1000
    numbers = sorted(int(code.rsplit("-", 1)[1]) for code in codes)
    assert numbers == list(range(1, 1001))  # one process: no gaps, even with retries
    assert await mongo[isolation.database("intake")]["dossiers"].count_documents({}) == 1000

    # Every dossier's event, at least once (a relay may publish one again if the flush's
    # pointer delete came late on a loaded machine: delivery is at least once, by event id).
    def published() -> set[str]:
        return {e["subject"] for e in seen.events("dossier.submitted")}

    await eventually(lambda: len(published()) >= 1000, timeout=120)
    assert published() == codes


async def test_every_procedures_openapi_example_is_accepted_over_http(
    intake: tuple[Services, Observer],
) -> None:
    stack, seen = intake
    url = stack.url("intake")
    content = httpx.get(f"{url}/openapi.json").json()["paths"]["/v1/dossiers"]["post"][
        "requestBody"
    ]["content"]["application/json"]
    assert len(content["schema"]["oneOf"]) == len(content["examples"]) == 11
    async with _client(stack) as client:
        for code, example in content["examples"].items():
            body = with_documents(url, example["value"])
            response = await client.post("/v1/dossiers", json=body)
            assert response.status_code == 201, (code, response.text)
            receipt = response.json()
            assert receipt["procedure_code"] == code
            assert receipt["promised_at"] >= receipt["received_at"]
    await eventually(lambda: len(seen.events("dossier.submitted")) >= 11, timeout=30)
