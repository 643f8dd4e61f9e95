"""Status by SMS end to end: the real intake and notify processes, RabbitMQ and the database;
the province's SMS gateway is a loopback stub that receives our SMS, and the test plays its
inbound side, calling notify's signed webhook as the gateway does."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.notify.messages import webhook_signature
from tests.conftest import Isolation
from tests.e2e.conftest import service_env
from tests.e2e.flows import submit
from tests.e2e.harness import Mailbox, Services, eventually
from tests.factories import form
from tests.httpstub import HttpStub, http_stub

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(b"province-sms-gateway-secret-0123").decode()
OWNER = "0912345678"  # as the dossier was filed
OTHER = "84987654321"


@pytest.fixture
def gateway() -> Iterator[HttpStub]:
    with http_stub() as stub:
        yield stub


@pytest.fixture
def stack(
    isolation: Isolation, mailbox: Mailbox, gateway: HttpStub, tmp_path: Path
) -> Iterator[Services]:
    env = {
        **service_env(isolation, mailbox),
        "MOTCUA_NOTIFY_SMS_GATEWAY_URL": f"{gateway.url}/sms/send",
        "MOTCUA_NOTIFY_SMS_INBOUND_SECRET": SECRET,
    }
    stack = Services(env=env, logs=tmp_path)
    try:
        for name in ("intake", "notify"):
            stack.start(name)
        for name in ("intake", "notify"):
            stack.wait_ready(name)
        yield stack
    finally:
        stack.stop_all()


def inbound(
    stack: Services, sender: str, text: str, message_id: str, *, secret: str = SECRET
) -> httpx.Response:
    """One inbound SMS, as the gateway calls us (signed now; a retry is signed again)."""
    body = json.dumps(
        {
            "from": sender,
            "to": "8088",
            "text": text,
            "received_at": "2026-12-01T08:00:00+07:00",
            "message_id": message_id,
        }
    ).encode()
    stamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": f"wh_{message_id}",
        "webhook-timestamp": str(stamp),
        "webhook-signature": webhook_signature(secret, f"wh_{message_id}", stamp, body),
    }
    return httpx.post(f"{stack.url('notify')}/v1/sms/inbound", content=body, headers=headers)


def sent_to(gateway: HttpStub, phone_84: str) -> list[dict[str, Any]]:
    return [r.json() for r in gateway.requests if r.json().get("to") == phone_84]


async def test_tt_from_the_dossier_s_phone_gets_one_sms_and_no_one_else_gets_a_status(
    stack: Services, gateway: HttpStub
) -> None:
    code = submit(stack, form(phone=OWNER))
    answered = inbound(stack, "84912345678", f"tt: {code.lower()}", "gw-1")
    assert answered.status_code == 200 and answered.json() == {"status": "requested"}
    [sms] = await eventually(lambda: sent_to(gateway, "84912345678"))
    assert sms["text"].startswith(f"Motcua: Ho so {code}: Moi dang ky. Hen tra ket qua ngay ")
    assert len(sms["text"]) <= 160 and sms["segments"] == 1 and sms["text"].isascii()

    # The gateway's retry of that SMS (a lost answer): taken once, answered once.
    assert inbound(stack, "84912345678", f"tt: {code.lower()}", "gw-1").json() == {
        "status": "duplicate"
    }
    # Another phone asks, then the owner again: when the owner's second answer is there,
    # the other phone's request was handled long before, and got nothing.
    assert inbound(stack, OTHER, f"TT {code}", "gw-2").json() == {"status": "requested"}
    assert inbound(stack, OWNER, f"TT {code}", "gw-3").json() == {"status": "requested"}
    await eventually(lambda: len(sent_to(gateway, "84912345678")) == 2)
    await asyncio.sleep(1)
    assert sent_to(gateway, OTHER) == []
    assert len(gateway.requests) == 2

    # A call not signed with the gateway's secret is refused, and nothing is sent.
    forged = "whsec_" + base64.b64encode(b"not-the-gateway-s-secret-0123456").decode()
    refused = inbound(stack, OWNER, f"TT {code}", "gw-4", secret=forged)
    assert refused.status_code == 401 and refused.json()["code"] == "bad_signature"

    # Twenty in a minute from one phone (two above, eighteen stray texts here), then the 21st.
    for n in range(18):
        assert inbound(stack, OWNER, "xin chao", f"gw-chat-{n}").json() == {"status": "ignored"}
    limited = inbound(stack, OWNER, f"TT {code}", "gw-21")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "60"
    assert inbound(stack, OTHER, "xin chao", "gw-other").status_code == 200  # its own count
    await asyncio.sleep(2)
    assert len(gateway.requests) == 2
    log = stack.log("notify") + stack.log("intake")
    assert "912345678" not in log.replace("+849*****678", "")  # phones are masked in logs
