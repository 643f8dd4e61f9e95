"""Notify's pure rules: routing, masking, SMS text, retry delays, webhook signatures, templates."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.notify.app import load_routing
from services.notify.compose import chosen_channels, compose, template_context
from services.notify.domain import backoff_delays, pick_delay, retry_wait
from services.notify.handlers import contact_of
from services.notify.messages import (
    SendError,
    ascii_text,
    http_failure,
    mask_email,
    mask_phone,
    phone_84,
    scrub,
    septets,
    sms_segments,
    webhook_signature,
)
from services.notify.operators import SAMPLE_CONTEXT
from services.notify.routing import Partner, Planned, Routing, fallback, plan
from services.notify.settings import NotifySettings
from services.notify.templates import Templates, UnknownTemplate
from shared.contracts import (
    DossierApologyData,
    DossierApologyIssued,
    DossierSubmitted,
    DossierSupplementRequested,
    DossierSupplementRequestedData,
    PortalStatus,
    load,
)
from tests.factories import submitted_event

SETTINGS = NotifySettings()
ROUTING = load_routing(SETTINGS.routing_file)
TEMPLATES = Templates(SETTINGS.templates_dir)
SECRET = "whsec_" + base64.b64encode(b"a partner's shared secret, 32 b!").decode()
PARTNER = Partner(
    id="portal", url="http://127.0.0.1:1/hook", secret=SECRET, events=["dossier.approved"]
)


def test_addresses_are_masked() -> None:
    assert mask_email("lan.nguyen@example.vn") == "l***@example.vn"
    assert "lan.nguyen" not in mask_email("lan.nguyen@example.vn")
    assert mask_phone("+84912345678") == "+849*****678"


def test_phones_go_in_84_form() -> None:
    assert phone_84("+84912345678") == "84912345678"
    assert phone_84("0912345678") == "84912345678"
    with pytest.raises(SendError) as err:
        phone_84("12345")
    assert err.value.permanent


def test_vietnamese_becomes_plain_ascii() -> None:
    text = "Hồ sơ của Nguyễn Thị Lan đã được phê duyệt. ĐĂNG KÝ TẠM TRÚ"
    assert ascii_text(text) == "Ho so cua Nguyen Thi Lan da duoc phe duyet. DANG KY TAM TRU"


def test_a_long_sms_is_cut_to_the_segment_limit() -> None:
    long = "Lý do: thiếu giấy tờ chứng minh chỗ ở hợp pháp. " * 20
    for max_segments in (1, 2, 3):
        parts = sms_segments(long, max_segments=max_segments)
        text = "".join(parts)
        assert text.isascii() and text.endswith("...")
        assert len(parts) == max_segments
        assert all(len(p) <= (160 if max_segments == 1 else 153) for p in parts)
    assert sms_segments("Ngắn gọn", max_segments=3) == ["Ngan gon"]


def test_characters_without_a_decomposition_keep_their_meaning_in_ascii() -> None:
    assert ascii_text("Từ 01/07–15/07") == "Tu 01/07-15/07"  # not 01/0715/07
    assert ascii_text("“Giấy hẹn” ‘số 2’ — ½ phí × 2 • `x`") == (
        "\"Giay hen\" 'so 2' - 1/2 phi x 2 - 'x'"
    )
    assert ascii_text("Phí ₫7.000") == "Phi  7.000"  # no look-alike: a space, not a merge


def test_sms_length_counts_gsm7_septets() -> None:
    assert septets("a[b]") == 6
    braces = "{x}" * 70  # 210 characters, 350 septets: more than two segments
    parts = sms_segments(braces, max_segments=2)
    assert all(septets(p) <= 153 for p in parts) and len(parts) == 2
    assert "".join(parts).endswith("...")
    assert sms_segments("|" * 80, max_segments=1) == ["|" * 80]  # exactly 160 septets
    [cut] = sms_segments("|" * 81, max_segments=1)
    assert septets(cut) <= 160 and cut.endswith("...")


def test_transient_and_permanent_http_failures() -> None:
    assert http_failure(200, "") is None
    for status in (408, 429, 500, 503):
        failure = http_failure(status, "busy")
        assert failure is not None and not failure.permanent
    for status in (400, 404, 422):
        failure = http_failure(status, "no")
        assert failure is not None and failure.permanent
    for status in (401, 403, 407):  # our key refused: fixable, so nothing sent meanwhile is lost
        failure = http_failure(status, "bad key")
        assert failure is not None and not failure.permanent and failure.slow
        assert retry_wait([1, 2, 4], failure, tries_made=1) == 4
    busy = http_failure(503, "busy")
    assert busy is not None and retry_wait([1, 2, 4], busy, tries_made=1) == 1


def test_backoff_doubles_and_picks_a_long_enough_queue() -> None:
    delays = backoff_delays(30, 5)
    assert delays == [30, 60, 120, 240]
    assert pick_delay(delays, 45) == 1
    assert pick_delay(delays, 1000) == 3
    assert backoff_delays(1, 1) == [1]


def test_signatures_verify_with_the_standard_webhooks_library() -> None:
    body = b'{"type":"dossier.approved","subject":"G01.99-260609-0001"}'
    now = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": webhook_signature(SECRET, "msg_1", now, body),
    }
    assert Webhook(SECRET).verify(body, headers)["type"] == "dossier.approved"
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"approved", b"rejected"), headers)
    old = now - 600
    stale = {**headers, "webhook-timestamp": str(old)}
    stale["webhook-signature"] = webhook_signature(SECRET, "msg_1", old, body)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(body, stale)


def test_partners_need_a_whsec_secret_and_cannot_subscribe_to_notifications() -> None:
    with pytest.raises(ValidationError):
        Partner(id="p", url="http://x", secret="plain", events=["dossier.approved"])
    with pytest.raises(ValidationError):
        Partner(id="p", url="http://x", secret=SECRET, events=["notification.sent"])


def test_a_partner_secret_or_url_that_cannot_be_used_stops_the_start() -> None:
    # Passes the pattern, but 29 base64 characters cannot be decoded.
    with pytest.raises(ValidationError, match="base64"):
        Partner(id="p", url="http://x", secret="whsec_" + "A" * 29, events=["dossier.approved"])
    with pytest.raises(ValidationError):
        Partner(id="p", url="http://[::1/", secret=SECRET, events=["dossier.approved"])


def test_routing_follows_the_citizens_choice_and_partner_subscriptions() -> None:
    planned = plan(
        "dossier.approved",
        "e1",
        routing=ROUTING,
        partners=[PARTNER],
        chosen=["sms", "zalo"],
        available={"email", "sms", "zalo", "webhook"},
    )
    assert {(p.recipient, p.channel) for p in planned} == {
        ("partner:portal", "webhook"),
        ("applicant", "sms"),
        ("applicant", "zalo"),
    }
    assert len({p.delivery_id for p in planned}) == 3
    # A channel without a configured provider is left out; unrouted events notify nobody.
    assert [
        p.channel
        for p in plan(
            "dossier.approved",
            "e1",
            routing=ROUTING,
            partners=[],
            chosen=["sms"],
            available={"email"},
        )
    ] == []
    assert (
        plan(
            "dossier.assigned",
            "e1",
            routing=ROUTING,
            partners=[PARTNER],
            chosen=["email"],
            available={"email", "webhook"},
        )
        == []
    )


def test_zalo_falls_back_to_the_sms_delivery_itself() -> None:
    available = {"email", "sms", "zalo"}
    [zalo, sms] = sorted(
        plan(
            "dossier.received",
            "e1",
            routing=ROUTING,
            partners=[],
            chosen=["zalo", "sms"],
            available=available,
        ),
        key=lambda p: p.channel,
        reverse=True,
    )
    other = fallback(zalo, "e1", routing=ROUTING, available=available)
    assert other is not None and other.delivery_id == sms.delivery_id  # never a second SMS
    assert fallback(sms, "e1", routing=ROUTING, available=available) is None
    assert fallback(zalo, "e1", routing=ROUTING, available={"zalo"}) is None


@pytest.mark.parametrize("event_type", sorted(ROUTING.routes))
def test_every_routed_event_has_a_template_for_each_channel(event_type: str) -> None:
    for channel, route in ROUTING.applicant_channels(event_type).items():
        rendered = TEMPLATES.render(route.template, channel, SAMPLE_CONTEXT)
        if channel == "email":
            assert "G01.99-260609-0001" in rendered.subject
            assert "Kính gửi Nguyễn Thị Lan" in rendered.text
            assert "<p>" in rendered.html
        elif channel == "zalo":
            assert rendered.data["dossier_code"] == "G01.99-260609-0001"
            assert route.zalo_template_id
        else:
            assert "G01.99-260609-0001" in rendered.text


def test_the_issue_requires_these_events_routed() -> None:
    assert {
        "dossier.received",
        "dossier.supplement_requested",
        "dossier.payment_requested",
        "dossier.approved",
        "dossier.rejected",
        "dossier.refused",
        "dossier.apology_issued",
        "dossier.result_delivered",
    } <= set(ROUTING.routes)


def test_html_is_escaped_but_the_text_part_is_not() -> None:
    context: dict[str, Any] = {**SAMPLE_CONTEXT, "reason": "<script>alert(1)</script> & co"}
    rendered = TEMPLATES.render("rejected", "email", context)
    assert "<script>" in rendered.text
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html and "&amp; co" in rendered.html


def test_languages_fall_back_to_vietnamese() -> None:
    english = TEMPLATES.render("approved", "email", SAMPLE_CONTEXT, language="en")
    assert english.subject.startswith("Dossier G01.99-260609-0001 has been approved")
    fallback_vi = TEMPLATES.render("received", "email", SAMPLE_CONTEXT, language="en")
    assert "tiếp nhận" in fallback_vi.subject
    with pytest.raises(UnknownTemplate):
        TEMPLATES.render("no-such-template", "email", SAMPLE_CONTEXT)


def test_the_apology_gives_the_reason_and_the_new_date_in_vietnam_time() -> None:
    new_date = datetime(2026, 6, 15, 17, 30, tzinfo=UTC)  # already 16/06 in Hà Nội
    event = DossierApologyIssued.create(
        source="s",
        subject="G01.99-260609-0001",
        data=DossierApologyData(
            dossier_code="G01.99-260609-0001",
            task_id="t",
            procedure_code="1.004194",
            procedure_name="Đăng ký tạm trú",
            unit_id="U",
            officer_id="o",
            issued_at=new_date - timedelta(days=4),
            reason="Cần xác minh thêm",
            previous_promised_at=new_date - timedelta(days=3),
            promised_at=new_date,
            status_code=PortalStatus.IN_PROCESS,
        ),
    )
    context = template_context(event, {"full_name": "Lan", "promised_at": None})
    rendered = TEMPLATES.render("apology", "email", context)
    assert "Cần xác minh thêm" in rendered.text
    assert "Ngày hẹn trả kết quả mới: 16/06/2026" in rendered.text
    assert "13/06/2026" in rendered.text  # the date that was missed
    assert "Đăng ký tạm trú" in rendered.text


def test_a_supplement_request_names_the_missing_documents_as_the_submission_did() -> None:
    submitted = submitted_event("G01.99-261201-0009")
    submitted = submitted.model_copy(
        update={
            "data": submitted.data.model_copy(update={"document_names": {"ct01": "Tờ khai CT01"}})
        }
    )
    contact = contact_of(submitted)
    asked = DossierSupplementRequested.create(
        source="urn:test",
        subject=submitted.subject,
        data=DossierSupplementRequestedData(
            dossier_code=submitted.subject,
            task_id="t1",
            officer_id="o",
            requested_at=datetime.now(UTC),
            missing=["ct01", "legal_residence_proof"],
            note="Ảnh mờ",
        ),
    )
    context = template_context(asked, contact)
    assert context["missing"] == ["Tờ khai CT01", "legal_residence_proof"]  # unnamed: its id
    sms = TEMPLATES.render("supplement_requested", "sms", context)
    assert sms.text.endswith(
        "giay to: Tờ khai CT01, legal_residence_proof. Ảnh mờ"
    )  # folded to ASCII when sent
    assert template_context(asked, {})["missing"] == ["ct01", "legal_residence_proof"]


def test_a_providers_error_never_carries_the_full_address() -> None:
    assert scrub("550 <lan.nguyen@example.vn>: no such user", "email", "lan.nguyen@example.vn") == (
        "550 <l***@example.vn>: no such user"
    )
    said = "invalid phone 84912345678 (0912345678, +84912345678)"
    assert scrub(said, "sms", "+84912345678") == (
        "invalid phone +849*****678 (+849*****678, +849*****678)"
    )
    assert scrub("no subscriber 912345678", "zalo", "+84912345678") == (
        "no subscriber +849*****678"
    )


def test_a_routing_table_that_cannot_work_is_refused_at_start() -> None:
    from services.notify.app import check_routes

    assert check_routes(ROUTING, TEMPLATES) == []
    broken = Routing.model_validate(
        {
            "routes": {
                "dossier.received": {
                    "applicant": {"sms": {"template": "nowhere"}, "zalo": {"template": "received"}}
                }
            }
        }
    )
    assert check_routes(broken, TEMPLATES) == [
        "dossier.received: no template nowhere/sms",
        "dossier.received: Zalo needs a zalo_template_id",
    ]
    with pytest.raises(ValidationError, match="typo"):
        Routing.model_validate({"routes": {}, "typo": 1})


def test_the_lease_must_outlast_a_send() -> None:
    with pytest.raises(ValidationError, match="must exceed the longest provider timeout"):
        NotifySettings(delivery_lease_seconds=5, http_timeout_seconds=10)


def test_an_empty_channel_choice_is_an_opt_out_and_only_an_old_event_falls_back_to_email() -> None:
    raw = submitted_event(code="G01.99-260609-0001").model_dump(mode="json")

    def decoded(**change: Any) -> DossierSubmitted:
        data = {k: v for k, v in raw["data"].items() if k != "notify_by"} | change
        event = load({**raw, "data": data})
        assert isinstance(event, DossierSubmitted)
        return event

    assert chosen_channels(decoded(notify_by=[]).data) == []
    assert chosen_channels(decoded(notify_by=["zalo"]).data) == ["zalo"]
    assert chosen_channels(decoded().data) == ["email"]  # before the choice existed


def test_a_partner_of_the_partners_file_gets_the_projection_its_scopes_allow() -> None:
    event = submitted_event("G01.99-261201-0010")
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()

    def body(**extra: Any) -> str:
        partner = Partner(
            id="cong-tinh", url="https://p.example/h", secret=secret, events=["*"], **extra
        )
        planned = Planned("d1", "partner:cong-tinh", "webhook", partner=partner)
        return compose(event, planned, partner.url, {}, templates=TEMPLATES).body.decode()

    hidden = body()
    assert event.data.applicant.personal_id not in hidden
    assert event.data.applicant.phone not in hidden and event.subject in hidden
    assert event.data.applicant.personal_id in body(scopes=["personal_data"])
