"""End to end: the review workflow through the officer API."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.amqp import observe
from tests.conftest import Isolation
from tests.e2e.flows import act, assigned_officer, submit, token
from tests.e2e.harness import Services

pytestmark = pytest.mark.e2e


async def test_two_officers_deciding_at_once_one_wins_and_one_event_is_published(
    services: Services, isolation: Isolation
) -> None:
    code = submit(services)
    task_id, officer_id = await assigned_officer(services, code)
    officer, chief = token(officer_id), token("cb-badinh-tp")
    assert act(services, task_id, officer, "receive").status_code == 200
    url = f"{services.url('review')}/v1/tasks/{task_id}/actions"
    async with observe(isolation.amqp_url) as seen, httpx.AsyncClient() as client:
        answers = await asyncio.gather(
            client.post(
                url, json={"action": "approve"}, headers={"Authorization": f"Bearer {officer}"}
            ),
            client.post(
                url,
                json={"action": "reject", "reason": "Không đủ điều kiện"},
                headers={"Authorization": f"Bearer {chief}"},
            ),
        )
        await asyncio.sleep(2)
    assert sorted(a.status_code for a in answers) == [200, 409]
    loser = next(a for a in answers if a.status_code == 409)
    assert loser.headers["content-type"] == "application/problem+json"
    decisions = seen.events("dossier.approved") + seen.events("dossier.rejected")
    assert len({e["id"] for e in decisions}) == 1


async def test_an_action_not_allowed_now_answers_409_with_the_allowed_ones(
    services: Services,
) -> None:
    code = submit(services)
    task_id, officer_id = await assigned_officer(services, code)
    bearer = token(officer_id)
    early = act(services, task_id, bearer, "approve")  # not received yet
    assert early.status_code == 409
    assert early.json()["allowed_actions"] == ["receive", "refuse", "request_supplement"]
    task = httpx.get(
        f"{services.url('review')}/v1/tasks/{task_id}",
        headers={"Authorization": f"Bearer {bearer}"},
    ).json()
    assert (task["state"], task["status_code"]) == ("receiving", 1)  # nothing changed
    assert task["waiting"]["whose_move"] == "officer"
    assert task["waiting"]["due_at"] is not None  # the receipt step has its SLA
    assert task["allowed_actions"] == ["receive", "refuse", "request_supplement"]
    no_reason = act(services, task_id, bearer, "refuse")
    assert no_reason.status_code == 422 and no_reason.json()["code"] == "reason_required"
    refused = act(services, task_id, bearer, "refuse", "Không thuộc địa bàn")
    assert refused.status_code == 200
    assert (refused.json()["state"], refused.json()["status_code"]) == ("refused", 3)
    assert refused.json()["open"] is False
