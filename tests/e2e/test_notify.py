"""End to end: what the citizen hears when e-mail cannot be delivered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.conftest import Isolation
from tests.e2e.conftest import service_env
from tests.e2e.flows import assigned_officer, decide, submit, token, wait_for_types
from tests.e2e.harness import Mailbox, Services
from tests.factories import VALID_FORM
from tools.devstack import free_port

pytestmark = pytest.mark.e2e


def _failure(events: list[dict[str, object]]) -> dict[str, object]:
    [failed] = [e for e in events if e["type"] == "notification.failed"]
    assert not any(e["type"] == "notification.sent" for e in events)
    data = failed["data"]
    assert isinstance(data, dict)
    return data


async def test_a_refused_address_is_reported_once_and_not_retried(
    services: Services, mailbox: Mailbox
) -> None:
    mailbox.refuse = "550 5.1.1 mailbox unavailable"
    code = submit(services)
    task_id, officer_id = await assigned_officer(services, code)
    assert (
        decide(services, task_id, token(officer_id), "reject", "Thiếu giấy tờ").status_code == 200
    )

    events = await wait_for_types(services, code, "dossier.rejected", "notification.failed")
    failure = _failure(events)
    assert failure["permanent"] is True
    assert "550" in str(failure["reason"])
    assert failure["recipient"] == "l***@example.vn"  # never the full address

    [delivery] = httpx.get(
        f"{services.url('notify')}/v1/deliveries", params={"dossier": code}
    ).json()
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)


async def test_an_unreachable_mail_server_is_retried_then_reported(
    isolation: Isolation, mailbox: Mailbox, tmp_path: Path
) -> None:
    env = {
        **service_env(isolation, mailbox),
        "MOTCUA_NOTIFY_SMTP_PORT": str(free_port()),  # nothing listens there
        "MOTCUA_MAX_ATTEMPTS": "3",
    }
    stack = Services(env=env, logs=tmp_path)
    try:
        stack.start_all()
        code = submit(stack)
        task_id, officer_id = await assigned_officer(stack, code)
        assert decide(stack, task_id, token(officer_id)).status_code == 200
        events = await wait_for_types(stack, code, "notification.failed")
        failure = _failure(events)
        assert failure["permanent"] is False
        assert "gave up after 3 tries" in str(failure["reason"])
        [delivery] = httpx.get(
            f"{stack.url('notify')}/v1/deliveries", params={"dossier": code}
        ).json()
        assert (delivery["status"], delivery["attempts"]) == ("failed", 3)
    finally:
        stack.stop_all()


async def test_no_email_goes_to_a_citizen_who_did_not_choose_it(
    services: Services, mailbox: Mailbox
) -> None:
    code = submit(services, {**VALID_FORM, "notify_by": ["sms"]})
    task_id, officer_id = await assigned_officer(services, code)
    assert decide(services, task_id, token(officer_id)).status_code == 200
    await wait_for_types(services, code, "dossier.approved")
    await asyncio.sleep(2)
    assert mailbox.messages == []
    deliveries = httpx.get(f"{services.url('notify')}/v1/deliveries", params={"dossier": code})
    assert deliveries.json() == []
