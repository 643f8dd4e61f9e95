"""End to end with two replicas of review consuming and answering at once: each dossier gets
one task, two officers deciding on different replicas get one 200 and one 409 and one event,
an SLA timer fires once, and a finished task leaves the live queue but stays readable."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from shared.calendar import VIETNAM, WorkingCalendar
from tests.amqp import observe
from tests.conftest import Isolation
from tests.e2e.conftest import service_env
from tests.e2e.flows import assigned_officer, submit, token
from tests.e2e.harness import Mailbox, Services, eventually

pytestmark = pytest.mark.e2e


def _short_receipt(tmp_path: Path) -> Path:
    """The shipped workflows, with a receipt step due 10.8 working seconds after assignment."""
    workflows = tmp_path / "workflows"
    shutil.copytree(Path("services/review/workflows"), workflows)
    one = workflows / "one-level.v1.yaml"
    one.write_text(
        one.read_text().replace(
            "receiving:  {status_code: 1, sla: {working_hours: 4}",
            "receiving:  {status_code: 1, sla: {working_hours: 0.003}",
        )
    )
    return workflows


def _to_a_working_monday() -> float:
    today = datetime.now(VIETNAM)
    monday = (today + timedelta(days=7 - today.weekday())).replace(
        hour=8, minute=0, second=0, microsecond=0
    )
    while not WorkingCalendar().is_working_day(monday.date()):
        monday += timedelta(days=7)
    return (monday - today).total_seconds()


def _post(url: str, bearer: str, body: dict[str, str]) -> httpx.Response:
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {bearer}"})


async def test_two_replicas_one_task_each_one_winner_one_timer_firing(
    isolation: Isolation, mailbox: Mailbox, tmp_path: Path
) -> None:
    env = {
        **service_env(isolation, mailbox),
        "MOTCUA_REVIEW_WORKFLOWS_DIR": str(_short_receipt(tmp_path)),
        "MOTCUA_REVIEW_CLOCK_OFFSET_SECONDS": str(_to_a_working_monday()),
        "MOTCUA_REVIEW_TIMER_INTERVAL_SECONDS": "0.5",
    }
    stack = Services(env=env, logs=tmp_path)
    try:
        stack.start_all()
        stack.start("review#2")
        stack.wait_ready("review#2")
        one, two = stack.url("review"), stack.url("review#2")
        async with observe(isolation.amqp_url) as seen:
            codes = [submit(stack)]  # received at once, before its receipt step falls due
            decided_id, holder = await assigned_officer(stack, codes[0])
            chief = token("cb-badinh-tp")
            received = _post(
                f"{one}/v1/tasks/{decided_id}/actions", token(holder), {"action": "receive"}
            )
            assert received.status_code == 200, received.text
            codes += [submit(stack) for _ in range(3)]
            assigned = [(decided_id, holder)] + [
                await assigned_officer(stack, c) for c in codes[1:]
            ]
            late_id = assigned[1][0]
            async with httpx.AsyncClient() as client:
                answers = await asyncio.gather(
                    client.post(
                        f"{one}/v1/tasks/{decided_id}/actions",
                        json={"action": "approve"},
                        headers={"Authorization": f"Bearer {token(holder)}"},
                    ),
                    client.post(
                        f"{two}/v1/tasks/{decided_id}/actions",
                        json={"action": "reject", "reason": "Không đủ điều kiện"},
                        headers={"Authorization": f"Bearer {chief}"},
                    ),
                )
            assert sorted(a.status_code for a in answers) == [200, 409]
            # The other three stay in receipt: their step falls due, each fires once.
            overdue = await seen.wait_for("dossier.overdue", count=3, timeout=60)
            await asyncio.sleep(3)  # six more rounds on each replica
            assert len(seen.events("dossier.overdue")) == 3
            assert {e["subject"] for e in overdue} == set(codes[1:])
        assigned_events = seen.events("dossier.assigned")
        assert sorted(e["subject"] for e in assigned_events) == sorted(codes)  # one task each
        decisions = seen.events("dossier.approved") + seen.events("dossier.rejected")
        assert len(decisions) == 1
        queue = _get(two, token("cb-pc06-gs"), "/v1/tasks")
        assert late_id in {t["id"] for t in queue.json()}  # escalated, seen from either replica
        # The decided task (non-terminal: delivery remains) is still open work of the unit.
        page = _get(one, chief, "/v1/tasks", limit="2")
        assert len(page.json()) == 2 and page.headers.get("x-next-cursor")
        rest = _get(two, chief, "/v1/tasks", cursor=page.headers["x-next-cursor"], limit="10")
        listed = [t["id"] for t in page.json() + rest.json()]
        assert sorted(listed) == sorted(t for t, _ in assigned) and len(set(listed)) == 4
        winner = next(a for a in answers if a.status_code == 200).json()
        delivered = _post(f"{two}/v1/tasks/{decided_id}/actions", chief, {"action": "deliver"})
        assert delivered.status_code == 200, delivered.text

        def finished() -> list[str]:
            return [t["id"] for t in _get(one, chief, "/v1/tasks", closed="true").json()]

        assert await eventually(lambda: decided_id in finished(), timeout=30)
        assert decided_id not in [t["id"] for t in _get(two, chief, "/v1/tasks").json()]
        kept = _get(one, chief, f"/v1/tasks/{decided_id}").json()  # history, read by key
        assert kept["state"] == "delivered" and [h["action"] for h in kept["history"]] == [
            "receive",
            winner["history"][-1]["action"],
            "deliver",
        ]
    finally:
        stack.stop_all()


def _get(base: str, bearer: str, path: str, **params: str) -> httpx.Response:
    answer = httpx.get(
        f"{base}{path}", params=params, headers={"Authorization": f"Bearer {bearer}"}
    )
    assert answer.status_code == 200, answer.text
    return answer
