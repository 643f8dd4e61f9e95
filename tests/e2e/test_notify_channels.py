"""Notify alone against real providers on loopback: aiosmtpd for e-mail, small HTTP servers for
the SMS gateway, Zalo ZNS and a partner. Events are published straight onto the exchange."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.notify.messages import webhook_signature
from shared import auth
from shared.contracts import (
    DossierReceived,
    DossierSubmitted,
    DossierSupplementRequested,
    DossierSupplementRequestedData,
    DossierTransitionData,
    Event,
    PortalStatus,
)
from shared.deadletters import replay
from shared.messaging import REASON_HEADER
from shared.settings import DEV_JWT_SECRET
from tests.amqp import Observer, drain, observe, publish_raw
from tests.conftest import Isolation
from tests.e2e.flows import inspector_headers
from tests.e2e.harness import Mailbox, Services, eventually
from tests.factories import approved_event, submitted_event
from tests.httpstub import HttpStub, http_stub

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(b"motcua-partner-secret-0123456789").decode()
PROMISED = datetime(2026, 6, 12, 3, 0, tzinfo=UTC)  # 10:00 in Hà Nội
LEASE = 4.0  # longer than a send may take (the providers' timeouts below), even on a busy CI


@dataclass
class Providers:
    sms: HttpStub
    zalo: HttpStub
    partner: HttpStub


@pytest.fixture
def providers() -> Iterator[Providers]:
    zns_ok = (200, {"error": 0, "data": {"msg_id": "z1"}})
    with http_stub() as sms, http_stub(zns_ok) as zalo, http_stub() as partner:
        yield Providers(sms, zalo, partner)


@pytest.fixture
def notify(
    isolation: Isolation, mailbox: Mailbox, providers: Providers, tmp_path: Path
) -> Iterator[Services]:
    with notify_service(isolation, mailbox, providers, tmp_path) as stack:
        yield stack


@contextmanager
def notify_service(
    isolation: Isolation,
    mailbox: Mailbox,
    providers: Providers,
    tmp_path: Path,
    **overrides: str,
) -> Iterator[Services]:
    """Notify against the loopback providers; `overrides` replace its environment's values."""
    partners = tmp_path / "partners.yaml"
    partners.write_text(
        "partners:\n"
        "  - id: portal\n"
        f"    url: {providers.partner.url}/hooks/motcua\n"
        f"    secret: {SECRET}\n"
        "    events: [dossier.received, dossier.approved]\n"
    )
    env = {
        **isolation.service_env(),
        "MOTCUA_NOTIFY_SMTP_PORT": str(mailbox.port),
        "MOTCUA_NOTIFY_SMS_GATEWAY_URL": f"{providers.sms.url}/sms/send",
        "MOTCUA_NOTIFY_SMS_API_KEY": "sms-key",
        "MOTCUA_NOTIFY_SMS_MAX_SEGMENTS": "2",
        "MOTCUA_NOTIFY_ZALO_BASE_URL": f"{providers.zalo.url}/v3",
        "MOTCUA_NOTIFY_ZALO_ACCESS_TOKEN": "zalo-token",
        "MOTCUA_NOTIFY_PARTNERS_FILE": str(partners),
        "MOTCUA_NOTIFY_RETRY_BASE_SECONDS": "0.5",
        "MOTCUA_NOTIFY_DELIVERY_LEASE_SECONDS": str(LEASE),
        "MOTCUA_NOTIFY_HTTP_TIMEOUT_SECONDS": "3",
        "MOTCUA_NOTIFY_SMTP_TIMEOUT_SECONDS": "3",
        "MOTCUA_RETRY_DELAY_SECONDS": "0.2",
        "MOTCUA_OUTBOX_INTERVAL_SECONDS": "0.5",
        **overrides,
    }
    stack = Services(env=env, logs=tmp_path)
    try:
        stack.start("notify")
        stack.wait_ready("notify")
        yield stack
    finally:
        stack.stop_all()


def submitted(
    code: str, *, notify_by: list[str], phone: str = "+84912345678", email: str | None = None
) -> DossierSubmitted:
    event = submitted_event(code=code)
    applicant = event.data.applicant.model_copy(
        update={"phone": phone, "email": email or "lan.nguyen@example.vn"}
    )
    data = event.data.model_copy(
        update={
            "applicant": applicant,
            "notify_by": notify_by,
            "promised_at": PROMISED,
            "fee": 7000,
            "procedure_name": "Đăng ký tạm trú",  # intake names the procedure on its events
        }
    )
    return event.model_copy(update={"data": data})


def received(cause: DossierSubmitted) -> DossierReceived:
    return DossierReceived.create(
        source="urn:test",
        subject=cause.subject,
        correlationid=cause.correlationid,
        data=DossierTransitionData(
            dossier_code=cause.subject,
            task_id="t1",
            procedure_code="1.004194",
            workflow_version=1,
            action="receive",
            from_state="receiving",
            to_state="processing",
            unit_id="U",
            actor="cb-01",
            at=datetime.now(UTC),
            status_code=PortalStatus.RECEIVED,
        ),
    )


async def publish(isolation: Isolation, *events: Event) -> None:
    for event in events:
        await publish_raw(isolation.amqp_url, event.type, event.to_json())


def deliveries(stack: Services, code: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.url('notify')}/v1/deliveries",
        params={"dossier": code},
        headers=inspector_headers(),
    )
    assert response.status_code == 200, response.text
    return list(response.json()["deliveries"])


def notifications(
    seen: Observer, code: str, kind: str, channel: str | None = None
) -> list[dict[str, Any]]:
    return [
        e
        for e in seen.events(f"notification.{kind}")
        if e["subject"] == code and channel in (None, e["data"]["channel"])
    ]


def bearer(role: str) -> dict[str, str]:
    claims = auth.OfficerClaims(f"{role}-01", role, "U")
    token = auth.issue(claims, secret=DEV_JWT_SECRET, issuer="motcua", ttl=timedelta(minutes=5))
    return {"Authorization": f"Bearer {token}"}


async def test_each_channel_sends_its_documented_request(
    notify: Services, isolation: Isolation, mailbox: Mailbox, providers: Providers
) -> None:
    code = "G01.99-260609-0001"
    first = submitted(code, notify_by=["email", "sms", "zalo"])
    async with observe(isolation.amqp_url) as seen:
        event = received(first)
        await publish(isolation, first, event)
        await eventually(lambda: len({e["id"] for e in notifications(seen, code, "sent")}) == 4)

    # E-mail: Vietnamese with diacritics, plain text and HTML, the promised date in Hà Nội time.
    [mail] = await mailbox.wait(1)
    assert isinstance(mail, EmailMessage)
    assert mail["To"] == "lan.nguyen@example.vn"
    assert mail["Subject"] == f"Hồ sơ {code} đã được tiếp nhận"
    plain = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert plain is not None and html is not None
    assert "Ngày hẹn trả kết quả: 12/06/2026" in plain.get_content()
    assert "<p>" in html.get_content() and "Nguyễn Thị Lan" in html.get_content()

    # SMS gateway: ASCII text with the promised date.
    [sms] = providers.sms.requests
    assert (sms.method, sms.path) == ("POST", "/sms/send")
    assert sms.headers["authorization"] == "Bearer sms-key"
    assert sms.headers["content-type"] == "application/json"
    body = sms.json()
    assert body["to"] == "84912345678" and body["sender"] == "MOTCUA"
    assert body["text"].isascii() and body["segments"] == 1
    assert f"Ho so {code} da duoc tiep nhan" in body["text"] and "12/06/2026" in body["text"]
    assert len(body["reference"]) == 32

    # Zalo ZNS exactly as DOMAIN.md: phone in 84 form, template id and data, tracking id.
    [zns] = providers.zalo.requests
    assert (zns.method, zns.path) == ("POST", "/v3/message/template")
    assert zns.headers["access_token"] == "zalo-token"
    assert zns.headers["content-type"] == "application/json"
    zbody = zns.json()
    assert set(zbody) == {"phone", "template_id", "template_data", "tracking_id"}
    assert (zbody["phone"], zbody["template_id"]) == ("84912345678", "300001")
    assert zbody["template_data"] == {
        "customer_name": "Nguyễn Thị Lan",
        "dossier_code": code,
        "procedure": "Đăng ký tạm trú",
        "promised_date": "12/06/2026",
    }
    assert zbody["tracking_id"] != body["reference"]

    # The partner verifies the CloudEvent with the off-the-shelf Standard Webhooks library.
    [hook] = providers.partner.requests
    assert (hook.method, hook.path) == ("POST", "/hooks/motcua")
    assert hook.headers["content-type"] == "application/json"
    cloud_event = Webhook(SECRET).verify(hook.body, hook.headers)
    assert (cloud_event["id"], cloud_event["type"]) == (event.id, "dossier.received")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(
            hook.body.replace(code.encode(), b"G01.99-260609-9999"), hook.headers
        )
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(hook.body, {**hook.headers, "webhook-timestamp": "1700000000"})
    # A replay of a genuine delivery, signed six minutes ago, is refused as too old.
    old = int(hook.headers["webhook-timestamp"]) - 360
    replay = {
        **hook.headers,
        "webhook-timestamp": str(old),
        "webhook-signature": webhook_signature(SECRET, hook.headers["webhook-id"], old, hook.body),
    }
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(hook.body, replay)

    # Events and the log show who was told, masked: never a full address or phone number.
    sent = notifications(seen, code, "sent")
    assert {(e["data"]["channel"], e["data"]["recipient"]) for e in sent} == {
        ("email", "l***@example.vn"),
        ("sms", "+849*****678"),
        ("zalo", "+849*****678"),
        ("webhook", "portal"),
    }
    assert not any("lan.nguyen@" in json.dumps(e) or "912345678" in json.dumps(e) for e in sent)
    log = deliveries(notify, code)
    assert sorted((d["channel"], d["status"], d["attempts"]) for d in log) == [
        ("email", "sent", 1),
        ("sms", "sent", 1),
        ("webhook", "sent", 1),
        ("zalo", "sent", 1),
    ]
    assert all("912345678" not in json.dumps(d) for d in log)


async def test_a_vietnamese_sms_arrives_as_ascii_within_the_segment_limit(
    notify: Services, isolation: Isolation, providers: Providers
) -> None:
    code = "G01.99-260609-0002"
    first = submitted(code, notify_by=["sms"])
    note = "Đề nghị bổ sung bản sao có chứng thực giấy tờ chứng minh chỗ ở hợp pháp. " * 8
    ask = DossierSupplementRequested.create(
        source="urn:test",
        subject=code,
        correlationid=first.correlationid,
        data=DossierSupplementRequestedData(
            dossier_code=code,
            task_id="t1",
            officer_id="cb-01",
            requested_at=datetime.now(UTC),
            missing=["Giấy tờ chứng minh chỗ ở hợp pháp"],
            note=note,
        ),
    )
    await publish(isolation, first, ask)
    [sms] = await providers.sms.wait(1)
    text = sms.json()["text"]
    assert text.isascii()
    assert text.startswith(f"Motcua: Ho so {code} can bo sung giay to: Giay to chung minh cho o")
    assert "De nghi bo sung ban sao co chung thuc" in text
    assert len(text) <= 2 * 153 and text.endswith("...")
    assert sms.json()["segments"] == 2


async def test_the_same_event_three_times_sends_one_message_per_channel(
    notify: Services, isolation: Isolation, mailbox: Mailbox, providers: Providers
) -> None:
    code = "G01.99-260609-0003"
    first = submitted(code, notify_by=["email", "sms", "zalo"])
    decision = approved_event(first)
    async with observe(isolation.amqp_url) as seen:
        await publish(isolation, first, decision, decision, decision)
        await eventually(lambda: len({e["id"] for e in notifications(seen, code, "sent")}) == 4)
        # Let the copies that found a send under way come back and look again.
        await asyncio.sleep(LEASE + 1)  # copies that found the send under way look again by then
    assert len(mailbox.messages) == 1
    assert len(providers.sms.requests) == 1
    assert len(providers.zalo.requests) == 1
    assert len(providers.partner.requests) == 1
    assert len({e["id"] for e in notifications(seen, code, "sent")}) == 4
    assert notifications(seen, code, "failed") == []
    assert len(deliveries(notify, code)) == 4


async def test_a_send_cut_short_by_a_crash_is_resent_with_the_same_id(
    notify: Services, isolation: Isolation, providers: Providers
) -> None:
    code = "G01.99-260609-0009"
    notify.kill("notify")
    notify.start("notify", MOTCUA_FAULT_POINTS="notify.send.after_provider")
    notify.wait_ready("notify")
    first = submitted(code, notify_by=["sms"])
    async with observe(isolation.amqp_url) as seen:
        await publish(isolation, first, approved_event(first))
        await providers.partner.wait(1)  # the partner's webhook goes first
        await eventually(lambda: "fault point reached" in notify.log("notify"))
        notify.kill("notify")  # dies after the partner took it, before recording that
        assert notifications(seen, code, "sent") == []

        notify.start("notify")
        notify.wait_ready("notify")
        # (A recorded outcome is republished, same id, whenever the event comes back.)
        await eventually(lambda: len({e["id"] for e in notifications(seen, code, "sent")}) == 2)
        await asyncio.sleep(2)  # room for any further duplicate
    # The partner got the same webhook-id twice: Standard Webhooks' key to drop the resend.
    first_try, second_try = providers.partner.requests
    assert first_try.headers["webhook-id"] == second_try.headers["webhook-id"]
    assert first_try.body == second_try.body
    assert len(providers.sms.requests) == 1
    assert len({e["id"] for e in notifications(seen, code, "sent")}) == 2
    log = sorted((d["channel"], d["status"], d["attempts"]) for d in deliveries(notify, code))
    assert log == [("sms", "sent", 1), ("webhook", "sent", 2)]


async def test_a_busy_provider_is_retried_while_other_messages_keep_flowing(
    isolation: Isolation, mailbox: Mailbox, providers: Providers, tmp_path: Path
) -> None:
    # One message at a time: had the handler slept through the backoff, the other dossier
    # would wait behind it.
    with notify_service(isolation, mailbox, providers, tmp_path, MOTCUA_PREFETCH="1") as notify:
        await _busy_provider_is_retried(notify, isolation, providers)


async def _busy_provider_is_retried(
    notify: Services, isolation: Isolation, providers: Providers
) -> None:
    slow, other = "G01.99-260609-0004", "G01.99-260609-0005"
    providers.sms.answer(
        (503, {"error": "busy"}), (503, {"error": "busy"}), containing="84911111111"
    )
    first = submitted(slow, notify_by=["sms"], phone="+84911111111")
    second = submitted(other, notify_by=["sms"], phone="+84922222222")
    async with observe(isolation.amqp_url) as seen:
        await publish(isolation, first, approved_event(first), second, approved_event(second))
        await eventually(lambda: notifications(seen, slow, "sent", "sms"), timeout=30)
    tries = providers.sms.matching("84911111111")
    [served] = providers.sms.matching("84922222222")
    assert len(tries) == 3  # delivered once, after two retries
    assert len({t.json()["reference"] for t in tries}) == 1  # the provider can tell a resend
    assert served.at < tries[-1].at  # the other dossier did not wait for the retries
    assert notifications(seen, slow, "failed") == []
    [log] = [d for d in deliveries(notify, slow) if d["channel"] == "sms"]
    assert (log["status"], log["attempts"]) == ("sent", 3)


async def test_a_refusal_is_not_retried_and_is_reported_once(
    notify: Services, isolation: Isolation, providers: Providers
) -> None:
    code = "G01.99-260609-0006"
    providers.sms.answer((400, {"error": "invalid number"}))
    first = submitted(code, notify_by=["sms"])
    async with observe(isolation.amqp_url) as seen:
        await publish(isolation, first, approved_event(first))
        [failed] = await seen.wait_for("notification.failed")
        await asyncio.sleep(2)  # longer than the first retry would wait
    assert len(providers.sms.requests) == 1
    assert len(seen.events("notification.failed")) == 1
    assert failed["data"]["permanent"] is True
    assert "HTTP 400" in failed["data"]["reason"]
    [log] = [d for d in deliveries(notify, code) if d["channel"] == "sms"]
    assert (log["status"], log["attempts"]) == ("failed", 1)
    # The event is kept where an operator can see why it failed.
    [parked] = await drain(isolation.amqp_url, "motcua.notify.dead", expect=1)
    assert "HTTP 400" in str(parked.headers[REASON_HEADER])
    assert json.loads(parked.body)["type"] == "dossier.approved"


async def test_zalo_refusing_falls_back_to_one_sms(
    notify: Services, isolation: Isolation, providers: Providers
) -> None:
    code = "G01.99-260609-0007"
    providers.zalo.answer((200, {"error": -124, "message": "Phone is not a Zalo user"}))
    first = submitted(code, notify_by=["zalo"])
    async with observe(isolation.amqp_url) as seen:
        await publish(isolation, first, approved_event(first))
        await eventually(lambda: notifications(seen, code, "sent", "sms"))
        [failed] = notifications(seen, code, "failed")
    assert failed["data"]["channel"] == "zalo"
    assert failed["data"]["reason"] == "Zalo error -124: Phone is not a Zalo user"
    [sms] = providers.sms.requests
    assert "da duoc phe duyet" in sms.json()["text"]
    assert len(providers.zalo.requests) == 1
    assert sorted((d["channel"], d["status"]) for d in deliveries(notify, code)) == [
        ("sms", "sent"),
        ("webhook", "sent"),
        ("zalo", "failed"),
    ]


async def test_operators_resend_and_preview_templates(
    notify: Services, isolation: Isolation, providers: Providers
) -> None:
    code = "G01.99-260609-0008"
    first = submitted(code, notify_by=["sms"])
    # Audit is not running: the observer is what notification events are routed to.
    async with observe(isolation.amqp_url):
        await publish(isolation, first, approved_event(first))
        await providers.sms.wait(1)
        [delivery] = await eventually(
            lambda: [
                d
                for d in deliveries(notify, code)
                if (d["channel"], d["status"]) == ("sms", "sent")
            ]
        )
        url = f"{notify.url('notify')}/v1/deliveries/{delivery['id']}/resend"

        nobody = httpx.post(url)
        assert nobody.status_code == 401
        assert nobody.headers["content-type"] == "application/problem+json"
        log = f"{notify.url('notify')}/v1/deliveries"
        assert httpx.get(log, params={"dossier": code}).status_code == 401  # it names channels
        officer = httpx.post(
            url,
            headers=bearer("officer"),
        )
        assert officer.status_code == 403
        assert len(providers.sms.requests) == 1  # refused calls changed nothing
        missing = httpx.post(f"{url}x", headers=bearer("admin"))
        assert missing.status_code == 404

        again = httpx.post(url, headers=bearer("supervisor"))
        assert again.status_code == 200, again.text
        assert (again.json()["status"], again.json()["resend_of"]) == ("sent", delivery["id"])
        assert again.json()["requested_by"] == "supervisor-01"
        assert len(providers.sms.requests) == 2
        assert len([d for d in deliveries(notify, code) if d["channel"] == "sms"]) == 2

    preview = httpx.get(f"{notify.url('notify')}/v1/templates/dossier.apology_issued/sms/preview")
    assert preview.status_code == 200
    assert preview.json()["text"].isascii() and "Hen tra ket qua moi" in preview.json()["text"]
    email = httpx.get(
        f"{notify.url('notify')}/v1/templates/dossier.approved/email/preview", params={"lang": "en"}
    ).json()
    assert email["language"] == "en" and email["subject"].startswith("Dossier")
    zalo = httpx.get(f"{notify.url('notify')}/v1/templates/dossier.received/zalo/preview").json()
    assert zalo["template_id"] == "300001" and zalo["template_data"]["promised_date"]
    unknown = httpx.get(
        f"{notify.url('notify')}/v1/templates/dossier.assigned/sms/preview",
        headers={"Accept-Language": "vi"},
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "template_not_found"


async def test_a_double_click_or_a_resend_during_retries_sends_nothing_twice(
    notify: Services, isolation: Isolation, providers: Providers
) -> None:
    done, retrying = "G01.99-260609-0010", "G01.99-260609-0011"
    providers.sms.answer(*[(503, {"error": "busy"})] * 4, containing="84933333333")
    first = submitted(done, notify_by=["sms"], phone="+84944444444")
    second = submitted(retrying, notify_by=["sms"], phone="+84933333333")

    def sms_of(code: str, status: str) -> list[dict[str, Any]]:
        return [
            d for d in deliveries(notify, code) if (d["channel"], d["status"]) == ("sms", status)
        ]

    async with observe(isolation.amqp_url):
        await publish(isolation, first, approved_event(first), second, approved_event(second))
        [sent] = await eventually(lambda: sms_of(done, "sent"))
        [busy] = await eventually(lambda: sms_of(retrying, "retrying"))

        url = f"{notify.url('notify')}/v1/deliveries/{{}}/resend"
        # A resend while the original is still being retried would send it twice.
        refused = httpx.post(url.format(busy["id"]), headers=bearer("admin"))
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "resend_conflict"

        providers.sms.delay = 0.5  # the first resend is still at the provider
        async with httpx.AsyncClient() as client:
            clicks = await asyncio.gather(
                *(client.post(url.format(sent["id"]), headers=bearer("admin")) for _ in range(2))
            )
        assert sorted(c.status_code for c in clicks) == [200, 409], [c.text for c in clicks]
        assert len(providers.sms.matching("84944444444")) == 2  # the original and one resend
        providers.sms.delay = 0
        later = httpx.post(url.format(sent["id"]), headers=bearer("admin"))
        assert later.status_code == 200, later.text
        assert later.json()["id"] == f"{sent['id']}:resend2"
        assert len(providers.sms.matching("84944444444")) == 3
    assert not [d for d in sms_of(retrying, "sent") if d.get("resend_of")]


async def test_an_unexpected_error_while_sending_is_capped_and_reported(
    isolation: Isolation, mailbox: Mailbox, providers: Providers, tmp_path: Path
) -> None:
    code = "G01.99-260609-0009"
    first = submitted(code, notify_by=["sms"])
    # A gateway URL httpx refuses to parse: not an httpx.HTTPError, not a SendError.
    broken = {
        "MOTCUA_NOTIFY_SMS_GATEWAY_URL": "http://[::1/sms/send",
        "MOTCUA_NOTIFY_DELIVERY_TRIES": "2",
    }
    with notify_service(isolation, mailbox, providers, tmp_path, **broken) as stack:
        async with observe(isolation.amqp_url) as seen:
            await publish(isolation, first, approved_event(first))
            await eventually(lambda: notifications(seen, code, "failed", "sms"), timeout=30)
            await asyncio.sleep(1.5)  # longer than another retry would wait
        [failed] = notifications(seen, code, "failed", "sms")
        assert failed["data"]["reason"].startswith("gave up after 2 tries: unexpected error")
        assert failed["data"]["permanent"] is False
        [log] = [d for d in deliveries(stack, code) if d["channel"] == "sms"]
        assert (log["status"], log["attempts"]) == ("failed", 2)
    parked = await drain(isolation.amqp_url, "motcua.notify.dead", expect=1)
    assert [json.loads(m.body)["type"] for m in parked] == ["dossier.approved"]


async def test_replaying_a_parked_delivery_sends_it_once_more(
    notify: Services, isolation: Isolation, providers: Providers
) -> None:
    code = "G01.99-260609-0012"
    providers.sms.answer((400, {"error": "gateway misconfigured"}))
    first = submitted(code, notify_by=["sms"])
    async with observe(isolation.amqp_url) as seen:
        await publish(isolation, first, approved_event(first))
        await eventually(lambda: notifications(seen, code, "failed", "sms"))
        # The operator fixes the gateway (it now answers 200) and replays what was parked.
        moved = await eventually(lambda: replay(isolation.amqp_url, "motcua.notify", 10))
        assert moved == 1
        [sent] = await eventually(lambda: notifications(seen, code, "sent", "sms"))
        assert await replay(isolation.amqp_url, "motcua.notify", 10) == 0
        await asyncio.sleep(1)  # room for a second send, if there were one
    assert len(providers.sms.requests) == 2  # the refused one and the replayed one
    assert len(notifications(seen, code, "sent", "sms")) == 1
    [failed] = notifications(seen, code, "failed", "sms")
    assert sent["id"] != failed["id"]
    [log] = [d for d in deliveries(notify, code) if d["channel"] == "sms"]
    assert (log["status"], log["attempts"]) == ("sent", 2)


async def test_a_send_that_outlasts_half_its_lease_is_cut_short_and_retried(
    notify: Services, isolation: Isolation, providers: Providers
) -> None:
    code = "G01.99-260609-0013"
    providers.sms.delay = LEASE / 2 + 0.5  # within the HTTP timeout, beyond the send's bound
    first = submitted(code, notify_by=["sms"])

    def sms(status: str) -> list[dict[str, Any]]:
        return [
            d for d in deliveries(notify, code) if (d["channel"], d["status"]) == ("sms", status)
        ]

    async with observe(isolation.amqp_url) as seen:
        await publish(isolation, first, approved_event(first))
        [retrying] = await eventually(lambda: sms("retrying"))
        assert retrying["reason"] == f"no answer within {LEASE / 2:g}s"
        providers.sms.delay = 0
        await eventually(lambda: notifications(seen, code, "sent", "sms"))
    [log] = sms("sent")
    assert log["attempts"] == 2
