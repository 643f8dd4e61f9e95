"""End to end: the review workflow through the officer API."""

from __future__ import annotations

import asyncio
import shutil
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.calendar import VIETNAM, WorkingCalendar
from tests.amqp import observe
from tests.conftest import Isolation
from tests.e2e.conftest import service_env
from tests.e2e.flows import act, assigned_officer, submit, timeline, token
from tests.e2e.harness import Mailbox, Services
from tests.factories import CATALOGUE

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


async def test_a_timer_due_while_review_is_down_fires_once_after_restart(
    isolation: Isolation, mailbox: Mailbox, tmp_path: Path
) -> None:
    # A workflow whose receipt step is due 10.8 working seconds after assignment, on a clock
    # shifted to a working Monday morning (time is injected, not slept through for hours).
    workflows = tmp_path / "workflows"
    shutil.copytree(Path("services/review/workflows"), workflows)
    one = workflows / "one-level.v1.yaml"
    one.write_text(
        one.read_text().replace(
            "receiving:  {status_code: 1, sla: {working_hours: 4}",
            "receiving:  {status_code: 1, sla: {working_hours: 0.003}",
        )
    )
    today = datetime.now(VIETNAM)
    monday = (today + timedelta(days=7 - today.weekday())).replace(
        hour=8, minute=0, second=0, microsecond=0
    )
    while not WorkingCalendar().is_working_day(monday.date()):  # say, a Tết Monday
        monday += timedelta(days=7)
    env = {
        **service_env(isolation, mailbox),
        "MOTCUA_REVIEW_WORKFLOWS_DIR": str(workflows),
        "MOTCUA_REVIEW_CLOCK_OFFSET_SECONDS": str((monday - today).total_seconds()),
        "MOTCUA_REVIEW_TIMER_INTERVAL_SECONDS": "0.5",
    }
    stack = Services(env=env, logs=tmp_path)
    try:
        stack.start_all()
        async with observe(isolation.amqp_url) as seen:
            code = submit(stack)
            task_id, _ = await assigned_officer(stack, code)
            stack.kill("review", signal.SIGTERM)  # down before the step is due
            await asyncio.sleep(14)
            assert seen.events("dossier.overdue") == []
            stack.start("review")
            stack.wait_ready("review")
            [overdue] = await seen.wait_for("dossier.overdue")
            await asyncio.sleep(3)  # six more timer rounds
            assert len(seen.events("dossier.overdue")) == 1
        assert overdue["data"]["escalated_to"] == "cb-pc06-gs"
        supervisor = token("cb-pc06-gs")
        queue = httpx.get(
            f"{stack.url('review')}/v1/tasks", headers={"Authorization": f"Bearer {supervisor}"}
        ).json()
        assert task_id in {t["id"] for t in queue}  # escalated into the supervisor's queue
        assert [e["type"] for e in await timeline(stack, code)].count("dossier.overdue") == 1
    finally:
        stack.stop_all()


EMITS = {"receive": "dossier.received", "propose": "dossier.checked", "approve": "dossier.approved"}


async def test_authorization_over_http_denied_calls_change_nothing(
    services: Services, isolation: Isolation
) -> None:
    """Permanent residence (two levels) at Hoàn Kiếm ward: the ward's officer receives and
    checks, its chief decides; nobody else may, and a refused call changes nothing."""
    body = {"procedure_code": "1.004222", **CATALOGUE.procedures["1.004222"].example}
    code = submit(services, body)
    task_id, officer_id = await assigned_officer(services, code)
    assert officer_id == "cb-hoankiem-01"
    review = services.url("review")

    def task_now(bearer: str) -> dict[str, Any]:
        return dict(
            httpx.get(
                f"{review}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {bearer}"}
            ).json()
        )

    officer, chief = token("cb-hoankiem-01"), token("cb-hoankiem-tp")
    foreign_officer, foreign_chief = token("cb-badinh-01"), token("cb-badinh-tp")
    supervisor = token("cb-pc06-gs")
    # (state the task is in, action, who tries, expected status)
    steps = [
        ("receiving", "receive", foreign_officer, 403),
        ("receiving", "receive", foreign_chief, 403),
        ("receiving", "receive", supervisor, 403),  # another unit (the province office)
        ("receiving", "approve", officer, 409),
        ("receiving", "receive", officer, 200),
        ("checking", "approve", chief, 409),  # the officer must propose first
        ("checking", "propose", chief, 403),  # proposing is the officer's
        ("checking", "propose", foreign_officer, 403),
        ("checking", "propose", officer, 200),
        ("approving", "approve", officer, 403),  # deciding is the chief's
        ("approving", "approve", foreign_chief, 403),
        ("approving", "approve", chief, 200),
    ]
    async with observe(isolation.amqp_url) as seen:
        for state, action, bearer, expected in steps:
            before = task_now(chief)
            assert before["state"] == state
            published = len(seen.messages)
            answer = act(services, task_id, bearer, action, "lý do")
            assert answer.status_code == expected, (state, action, answer.text)
            if expected == 200:  # let its event arrive before the next refusal is counted
                await seen.wait_for(EMITS[action])
            else:
                await asyncio.sleep(0.3)
                after = task_now(chief)
                assert (after["state"], after["history"]) == (before["state"], before["history"])
                assert len(seen.messages) == published  # no event for a refused call
    assert task_now(chief)["state"] == "decided"
    events = [e["type"] for e in await timeline(services, code)]
    assert events[-3:] == ["dossier.received", "dossier.checked", "dossier.approved"]
