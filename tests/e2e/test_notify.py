"""End to end: what the citizen hears when e-mail cannot be delivered."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.messaging import REASON_HEADER
from tests.amqp import drain
from tests.conftest import Isolation
from tests.e2e.conftest import service_env
from tests.e2e.flows import (
    assigned_officer,
    decide,
    inspector_headers,
    submit,
    timeline,
    token,
)
from tests.e2e.harness import Mailbox, Services, eventually
from tests.factories import VALID_FORM
from tests.httpstub import http_stub
from tools.devstack import free_port

pytestmark = pytest.mark.e2e


def _failure(events: list[dict[str, Any]], trigger: str) -> dict[str, Any]:
    """The one failure of the e-mail about `trigger` (the receipt was e-mailed too)."""
    about = [e for e in events if e["data"].get("trigger_event_type") == trigger]
    [failed] = [e for e in about if e["type"] == "notification.failed"]
    assert not any(e["type"] == "notification.sent" for e in events)
    return dict(failed["data"])


def _delivery(url: str, code: str, trigger: str) -> dict[str, Any]:
    log = httpx.get(
        f"{url}/v1/deliveries", params={"dossier": code}, headers=inspector_headers()
    ).json()["deliveries"]
    [delivery] = [d for d in log if d["trigger_event_type"] == trigger]
    return dict(delivery)


async def _failures(stack: Services, code: str, count: int) -> list[dict[str, Any]] | None:
    events = await timeline(stack, code)
    failed = [e for e in events if e["type"] == "notification.failed"]
    return events if len(failed) >= count else None


async def test_a_refused_address_is_reported_once_and_not_retried(
    services: Services, mailbox: Mailbox
) -> None:
    mailbox.refuse = "550 5.1.1 mailbox unavailable"
    code = submit(services)
    task_id, officer_id = await assigned_officer(services, code)
    assert (
        decide(services, task_id, token(officer_id), "reject", "Thiếu giấy tờ").status_code == 200
    )

    # The receipt's e-mail fails too; wait for both failures.
    events = await eventually(lambda: _failures(services, code, 2))
    failure = _failure(events, "dossier.rejected")
    assert failure["permanent"] is True
    assert "550" in str(failure["reason"])
    assert failure["recipient"] == "l***@example.vn"  # never the full address

    delivery = _delivery(services.url("notify"), code, "dossier.rejected")
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)


async def test_an_unreachable_mail_server_is_retried_then_reported(
    isolation: Isolation, mailbox: Mailbox, tmp_path: Path
) -> None:
    env = {
        **service_env(isolation, mailbox),
        "MOTCUA_NOTIFY_SMTP_PORT": str(free_port()),  # nothing listens there
        "MOTCUA_NOTIFY_DELIVERY_TRIES": "3",
    }
    stack = Services(env=env, logs=tmp_path)
    try:
        stack.start_all()
        code = submit(stack)
        task_id, officer_id = await assigned_officer(stack, code)
        assert decide(stack, task_id, token(officer_id)).status_code == 200
        events = await eventually(
            lambda: _failures(stack, code, 2)  # the receipt's e-mail and the decision's
        )
        failure = _failure(events, "dossier.approved")
        assert failure["permanent"] is False
        assert "gave up after 3 tries" in str(failure["reason"])
        delivery = _delivery(stack.url("notify"), code, "dossier.approved")
        assert (delivery["status"], delivery["attempts"]) == ("failed", 3)
        # Both events wait in the dead-letter queue, with why, for an operator.
        parked = await drain(isolation.amqp_url, "motcua.notify.dead", expect=2)
        reasons = {json.loads(m.body)["type"]: str(m.headers[REASON_HEADER]) for m in parked}
        assert set(reasons) == {"dossier.received", "dossier.approved"}
        assert all(r.startswith("gave up after 3 tries") for r in reasons.values())
    finally:
        stack.stop_all()


async def test_no_email_goes_to_a_citizen_who_did_not_choose_it(
    isolation: Isolation, mailbox: Mailbox, tmp_path: Path
) -> None:
    # A partner subscribed to the same decision: its webhook proves notify handled the event.
    secret = "whsec_" + base64.b64encode(b"motcua-partner-secret-0123456789").decode()
    with http_stub() as partner:
        partners = tmp_path / "partners.yaml"
        partners.write_text(
            f"partners:\n  - id: portal\n    url: {partner.url}/hook\n"
            f"    secret: {secret}\n    events: [dossier.approved]\n"
        )
        env = {**service_env(isolation, mailbox), "MOTCUA_NOTIFY_PARTNERS_FILE": str(partners)}
        stack = Services(env=env, logs=tmp_path)
        try:
            stack.start_all()
            code = submit(stack, {**VALID_FORM, "notify_by": ["sms"]})
            task_id, officer_id = await assigned_officer(stack, code)
            assert decide(stack, task_id, token(officer_id)).status_code == 200
            await eventually(lambda: partner.matching(code))
            deliveries = await eventually(lambda: _sent(stack, code))
            await asyncio.sleep(1)  # room for an e-mail, if one were sent after the webhook
            assert mailbox.messages == []
            assert [d["channel"] for d in deliveries] == ["webhook"]
        finally:
            stack.stop_all()


def _sent(stack: Services, code: str) -> list[dict[str, Any]]:
    deliveries = httpx.get(
        f"{stack.url('notify')}/v1/deliveries",
        params={"dossier": code},
        headers=inspector_headers(),
    )
    assert deliveries.status_code == 200, deliveries.text
    return [d for d in deliveries.json()["deliveries"] if d["status"] == "sent"]
