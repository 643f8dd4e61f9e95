"""The pure rules of API-managed partner endpoints: which events an endpoint takes, the
message it gets (its projection), and what each answer makes of the message and the endpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.notify.endpoint_delivery import bindings
from services.notify.endpoints import (
    Answer,
    Endpoint,
    PartnerMessage,
    after_attempt,
    backoff,
    disabled_event_id,
    millis,
    new_message,
    seq_of,
    unit_of,
    wants,
    webhook_id,
)
from services.notify.partner_accounts import UrlPolicy, check_url
from services.notify.partner_api import EndpointIn, PartnerIn
from services.notify.partners import SigningKeys, UnsafeEndpoint, new_secret
from services.notify.settings import NotifySettings
from tests.factories import approved_event, submitted_event

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
BASE, CAP = timedelta(seconds=5), timedelta(hours=1)


def endpoint(**changes: object) -> Endpoint:
    made = Endpoint(
        id="ep_1",
        partner_id="p1",
        url="https://partner.example/hook",
        event_types=("dossier.submitted", "dossier.approved"),
        units=(),
        description="",
        rate_limit_per_second=2.0,
        enabled=True,
        keys=SigningKeys(new_secret()),
        created_at=T0,
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def message(**changes: object) -> PartnerMessage:
    event = submitted_event()
    made = new_message(endpoint(), event, frozenset(), tries=3, now=T0)
    return replace(made, **changes)  # type: ignore[arg-type]


def answer(status: int | None, wait: timedelta | None = None) -> Answer:
    return Answer(status, "", 12, wait=wait)


def decide(m: PartnerMessage, e: Endpoint, a: Answer, now: datetime = T0):  # type: ignore[no-untyped-def]
    return after_attempt(m, e, a, now=now, base=BASE, cap=CAP, source="urn:notify")


def test_an_endpoint_takes_its_types_and_units_only() -> None:
    submitted = submitted_event()
    in_ward = submitted.model_copy(
        update={"data": submitted.data.model_copy(update={"ward_code": "W1"})}
    )
    approved = approved_event(submitted)  # unit U
    assert unit_of(submitted) is None and unit_of(in_ward) == "W1" and unit_of(approved) == "U"
    province = endpoint()
    assert wants(province, submitted) and wants(province, approved)
    units = endpoint(units=("W1",))
    assert wants(units, in_ward)
    assert not wants(units, submitted)  # no unit: whole-province endpoints only
    assert not wants(units, approved)
    assert not wants(endpoint(event_types=("dossier.approved",)), in_ward)
    assert not wants(endpoint(enabled=False), in_ward)


def test_the_message_is_the_partners_projection_and_one_per_endpoint_and_event() -> None:
    event = submitted_event()
    plain = new_message(endpoint(), event, frozenset(), tries=3, now=T0)
    personal = new_message(endpoint(), event, frozenset({"personal_data"}), tries=3, now=T0)
    assert event.data.applicant.personal_id.encode() not in plain.body
    assert json.loads(personal.body)["data"]["applicant"]["personal_id"]
    assert plain.id == personal.id == f"ep_1:{event.id}"  # a redelivery makes no second one
    assert webhook_id(plain.id) == webhook_id(personal.id)
    later = approved_event(event).model_copy(update={"time": event.time + timedelta(seconds=1)})
    assert seq_of(event) < seq_of(later)


def test_a_success_ends_a_run_of_failures_and_spaces_the_next_send() -> None:
    step = decide(message(tries=1), endpoint(failing_since_ms=millis(T0) - 1000), answer(204))
    assert step.message.state == "delivered" and step.disabled is None
    assert step.endpoint.failing_since_ms == 0
    assert step.endpoint.next_send_ms == millis(T0 + timedelta(seconds=0.5))  # 2 a second


def test_a_failure_waits_its_backoff_or_retry_after_and_starts_a_run() -> None:
    step = decide(message(tries=2), endpoint(), answer(503))
    assert step.message.state == "pending"
    assert step.endpoint.failing_since_ms == millis(T0)
    assert step.endpoint.next_send_ms == millis(T0 + BASE * 2)
    asked = decide(message(tries=1), endpoint(), answer(429, wait=timedelta(seconds=90)))
    assert asked.endpoint.next_send_ms == millis(T0 + timedelta(seconds=90))
    assert backoff(20, base=BASE, cap=CAP) == CAP


def test_a_message_out_of_tries_fails_and_the_next_one_goes() -> None:
    step = decide(message(tries=3), endpoint(), answer(500))
    assert step.message.state == "failed" and step.endpoint.enabled
    assert step.endpoint.next_send_ms == millis(T0 + timedelta(seconds=0.5))


def test_410_disables_at_once_with_the_operational_event() -> None:
    step = decide(message(tries=1), endpoint(), answer(410))
    assert not step.endpoint.enabled and step.endpoint.disabled_reason == "gone"
    assert step.message.state == "failed"
    assert step.disabled is not None
    assert step.disabled.data.reason == "gone" and step.disabled.data.last_status == 410
    assert step.disabled.subject == "partner-endpoint:ep_1"


def test_five_days_of_failures_disable_once_with_the_same_event_id() -> None:
    since = millis(T0 - timedelta(days=5))
    almost = decide(message(tries=1), endpoint(failing_since_ms=since + 1000), answer(503))
    assert almost.endpoint.enabled and almost.disabled is None
    step = decide(message(tries=1), endpoint(failing_since_ms=since), answer(None))
    assert step.disabled is not None and step.endpoint.disabled_reason == "failing"
    again = decide(message(tries=1), endpoint(failing_since_ms=since), answer(502), now=T0)
    assert again.disabled is not None and again.disabled.id == step.disabled.id
    assert disabled_event_id(endpoint(failing_since_ms=since + 1)) != step.disabled.id


def test_the_api_refuses_bad_identifiers_text_and_types() -> None:
    with pytest.raises(ValidationError):
        PartnerIn.model_validate({"id": "a b", "name": "x", "contact_email": "a@b.vn"})
    with pytest.raises(ValidationError):
        PartnerIn.model_validate({"id": "ok", "name": "a\u202eb", "contact_email": "a@b.vn"})
    with pytest.raises(ValidationError):
        EndpointIn.model_validate(
            {"url": "https://x.vn", "event_types": ["dossier.submitted"], "units": ["Ü"]}
        )
    decomposed = "Phu\u031bo\u031b\u0300ng"  # Phường typed with combining marks
    shown = EndpointIn.model_validate(
        {"url": "https://x.vn", "event_types": ["dossier.submitted"], "description": decomposed}
    )
    assert shown.description == "Phường"
    assert "notification.sent" not in bindings() and "dossier.submitted" in bindings()
    assert "partner.endpoint_disabled" in bindings()  # its people are told


def test_partner_settings_default_to_safe_values() -> None:
    settings = NotifySettings()
    assert not settings.allow_loopback_endpoints and not settings.allow_private_endpoints
    assert settings.clock_offset_seconds == 0
    assert settings.partner_order_window_seconds > 0


async def test_a_name_resolving_to_loopback_is_refused_unless_loopback_is_allowed() -> None:
    with pytest.raises(UnsafeEndpoint):
        await check_url("http://localhost:8080/hook", UrlPolicy())
    await check_url("http://localhost:8080/hook", UrlPolicy(allow_loopback=True))
    with pytest.raises(UnsafeEndpoint):
        await check_url("http://10.0.0.1/hook", UrlPolicy(allow_loopback=True))
    await check_url("http://10.0.0.1/hook", UrlPolicy(allow_private=True))


def test_a_partner_lease_must_outlast_a_send_started_at_its_half() -> None:
    with pytest.raises(ValidationError):
        NotifySettings(partner_lease_seconds=15, http_timeout_seconds=10)
