"""Notify's HTTP calls to providers against a real loopback server: what is worth a retry."""

from __future__ import annotations

import httpx
import pytest

from services.notify.channels import SmsChannel, post_json
from services.notify.messages import Message, SendError
from services.notify.settings import NotifySettings
from tests.httpstub import http_stub
from tools.devstack import free_port

pytestmark = pytest.mark.integration


async def test_a_refused_connection_is_transient_but_a_malformed_request_is_not() -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        with pytest.raises(SendError) as refused:  # nothing listens there
            await post_json(client, f"http://127.0.0.1:{free_port()}/", content=b"{}", headers={})
        assert not refused.value.permanent
        with http_stub() as stub:
            with pytest.raises(SendError) as illegal:
                await post_json(client, stub.url, content=b"{}", headers={"X-Key": "Bearer "})
            assert illegal.value.permanent
            assert stub.requests == []


async def test_an_sms_gateway_without_a_key_gets_no_authorization_header() -> None:
    with http_stub((200, {"message_id": "gw-1"})) as stub:
        settings = NotifySettings(sms_gateway_url=f"{stub.url}/send")
        async with httpx.AsyncClient(timeout=2) as client:
            sent = await SmsChannel(settings, client).send(
                Message("sms", "+84912345678", "t" * 32, text="Hồ sơ đã được tiếp nhận")
            )
    assert sent == "gw-1"
    [request] = stub.requests
    assert "authorization" not in request.headers
    assert request.json()["text"] == "Ho so da duoc tiep nhan"
