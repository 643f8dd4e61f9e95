"""Status by SMS against fakes: the gateway's signature, `TT <code>` as phones type it, the
per-phone limit, one request per gateway message id, intake answering the dossier's own phone
only, and notify sending that answer once by SMS."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import pytest

from services.intake import sms as intake_sms
from services.intake.domain import Access, Dossier
from services.intake.status import Step
from services.notify.consumer import NotifyConsumer, table
from services.notify.inbound import (
    BadSignature,
    Inbound,
    InboundSms,
    answering,
    estimate,
    mobile,
    receive,
    requested_code,
    verify,
)
from services.notify.messages import ascii_text, sms_segments, webhook_signature
from services.notify.settings import NotifySettings
from shared.contracts import (
    Channel,
    DossierStatusReported,
    Event,
    PortalStatus,
    SmsStatusRequested,
    decode,
)
from tests.unit.test_notify_handlers import ROUTING, world

SECRET = "whsec_" + base64.b64encode(b"gateway-inbound-secret-0123456789").decode()
CODE = "G01.99-261201-0007"
PHONE = "+84912345678"
T0 = datetime(2026, 12, 1, 3, 0, 0, tzinfo=UTC)  # on a minute's first second


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = int(time.time() if at is None else at)
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": webhook_signature(secret, "msg_1", stamp, body),
    }


# --- the signature ---------------------------------------------------------------------------


def test_a_call_signed_with_the_secret_now_is_taken() -> None:
    body = b'{"text": "TT x"}'
    assert verify(SECRET, signed(body), body, now=time.time(), tolerance=300) == "msg_1"
    several = signed(body)
    several["webhook-signature"] = "v1,bm9wZQ== " + several["webhook-signature"]
    assert verify(SECRET, several, body, now=time.time(), tolerance=300) == "msg_1"


@pytest.mark.parametrize(
    "case", ["other secret", "changed body", "stale", "future", "no signature", "no timestamp"]
)
def test_a_call_not_signed_by_the_gateway_or_not_now_is_refused(case: str) -> None:
    body = b'{"text": "TT x"}'
    other = "whsec_" + base64.b64encode(b"someone-else-s-secret-0123456789").decode()
    headers = {
        "other secret": signed(body, secret=other),
        "changed body": signed(b'{"text": "TT y"}'),
        "stale": signed(body, at=time.time() - 301),
        "future": signed(body, at=time.time() + 301),
        "no signature": {**signed(body), "webhook-signature": ""},
        "no timestamp": {**signed(body), "webhook-timestamp": ""},
    }[case]
    with pytest.raises(BadSignature):
        verify(SECRET, headers, body, now=time.time(), tolerance=300)


def test_an_inbound_secret_that_is_not_whsec_base64_stops_notify_at_start() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        NotifySettings(sms_inbound_secret="not-a-secret")
    assert NotifySettings(sms_inbound_secret=SECRET).sms_inbound_secret


# --- the text --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"TT {CODE}",
        f"tt {CODE.lower()}",
        f"TT:{CODE}",
        f"  Tt :  {CODE}  ",
        f"T T {CODE}",
        f"ＴＴ {CODE}",  # full-width letters from a phone keyboard
        f"TT\u00a0{CODE}\n",
    ],
)
def test_tt_and_a_code_is_read_as_phones_type_it(text: str) -> None:
    assert requested_code(text) == CODE


@pytest.mark.parametrize(
    "text", ["", "TT", "Hello", f"KT {CODE}", f"TT {CODE} please", "TT G01.99", "TT 123"]
)
def test_anything_else_is_no_status_request(text: str) -> None:
    assert requested_code(text) is None


def test_the_sender_is_read_in_every_vietnamese_form() -> None:
    assert mobile("84912345678") == mobile("0912345678") == mobile("+84 912 345 678") == PHONE
    assert mobile("12025550123") is None


def test_the_last_minute_is_weighted_by_how_much_of_it_is_still_within_a_minute() -> None:
    assert estimate(20, 1, elapsed=0) == 21
    assert estimate(20, 1, elapsed=30) == 11
    assert estimate(0, 20, elapsed=59) == 20


# --- receiving ------------------------------------------------------------------------------


class FakeSeen:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def claim(self, message_id: str, now: datetime) -> bool:
        if message_id in self.ids:
            return False
        self.ids.add(message_id)
        return True

    async def release(self, message_id: str) -> None:
        self.ids.discard(message_id)


class FakeCounters:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}

    async def hit(self, key: str, window: int) -> int:
        self.counts[key, window] = self.counts.get((key, window), 0) + 1
        return self.counts[key, window]

    async def count(self, key: str, window: int) -> int:
        return self.counts.get((key, window), 0)


class Gateway:
    """The webhook's ports with fakes, and what it published."""

    def __init__(self, *, failing: bool = False) -> None:
        self.published: list[Event] = []
        self.now = T0
        self.failing = failing

        async def publish(event: Event) -> None:
            if self.failing:
                raise ConnectionError("broker down")
            self.published.append(event)

        self.seen = FakeSeen()
        self.inbound = Inbound(
            seen=self.seen,
            counters=FakeCounters(),
            publish=publish,
            clock=lambda: self.now,
            per_minute=20,
            source="urn:notify",
        )

    async def sms(self, text: str, *, sender: str = "84912345678", message_id: str = "") -> str:
        number = len(self.seen.ids) + 1
        sms = InboundSms.model_validate(
            {
                "from": sender,
                "to": "8088",
                "text": text,
                "received_at": self.now.isoformat(),
                "message_id": message_id or f"m{number}-{time.monotonic_ns()}",
            }
        )
        return await receive(sms, inbound=self.inbound)


async def test_a_status_request_is_published_once_per_gateway_message() -> None:
    g = Gateway()
    assert await g.sms(f"tt {CODE}", message_id="gw-1") == "requested"
    assert await g.sms(f"tt {CODE}", message_id="gw-1") == "duplicate"
    [event] = g.published
    assert isinstance(event, SmsStatusRequested) and event.subject == CODE
    assert (event.data.phone, event.data.message_id) == (PHONE, "gw-1")
    assert decode(event.to_json()) == event


async def test_a_text_that_is_no_request_publishes_nothing() -> None:
    g = Gateway()
    assert await g.sms("Xin chao") == "ignored"
    assert await g.sms(f"TT {CODE}", sender="12025550123") == "ignored"  # no Vietnamese mobile
    assert g.published == []


async def test_the_twenty_first_sms_in_a_minute_from_one_phone_is_refused() -> None:
    g = Gateway()
    for second in range(20):
        g.now = T0 + timedelta(seconds=second)
        assert await g.sms(f"TT {CODE}") == "requested"
    assert await g.sms(f"TT {CODE}") == "limited"
    assert await g.sms(f"TT {CODE}", sender="0987654321") == "requested"  # another phone
    assert len(g.published) == 21
    g.now = T0 + timedelta(seconds=20 + 60)  # a minute after the first ones
    assert await g.sms(f"TT {CODE}") == "requested"


async def test_a_burst_across_the_turn_of_a_minute_is_still_counted_as_one_minute() -> None:
    g = Gateway()
    g.now = T0 - timedelta(seconds=1)
    for _ in range(20):
        assert await g.sms(f"TT {CODE}") == "requested"
    g.now = T0 + timedelta(seconds=1)
    assert await g.sms(f"TT {CODE}") == "limited"


async def test_a_refused_or_failed_message_can_be_sent_again_by_the_gateway() -> None:
    g = Gateway(failing=True)
    with pytest.raises(ConnectionError):
        await g.sms(f"TT {CODE}", message_id="gw-9")
    g.failing = False
    assert await g.sms(f"TT {CODE}", message_id="gw-9") == "requested"


# --- intake's answer ---------------------------------------------------------------------


class FakeDossiers:
    """The one read and the publishing the answer needs."""

    def __init__(self, *dossiers: Dossier) -> None:
        self.dossiers = {d.code: d for d in dossiers}
        self.published: list[Event] = []

    async def get(self, code: str, *, with_outbox: bool = True) -> Dossier | None:
        return self.dossiers.get(code)

    async def publish(self, events: list[Event]) -> None:
        self.published.extend(events)


def dossier(*steps: Step) -> Dossier:
    return Dossier(
        code=CODE,
        procedure_code="1.004194",
        channel=Channel.ONLINE,
        submitted_at=T0,
        form={},
        receipt_promised_at=T0 + timedelta(days=3),
        steps=steps,
        access=Access(None, PHONE),
        correlation_id="corr-1",
    )


def request(phone: str = PHONE, code: str = CODE) -> SmsStatusRequested:
    return SmsStatusRequested.create(
        id="req-1",
        source="urn:notify",
        subject=code,
        data={"dossier_code": code, "phone": phone, "message_id": "gw-1", "received_at": T0},
    )


async def test_intake_answers_the_dossier_s_own_phone_with_its_status_and_date() -> None:
    received = Step("e1", "received", T0 + timedelta(hours=1))
    store = FakeDossiers(dossier(received))
    await intake_sms.on_status_requested(request(), store)  # type: ignore[arg-type]
    [answer] = store.published
    assert isinstance(answer, DossierStatusReported)
    assert answer.data.status_code == PortalStatus.RECEIVED
    assert answer.data.status == "Được tiếp nhận"
    assert answer.data.promised_at == T0 + timedelta(days=3)
    assert (answer.data.phone, answer.subject, answer.correlationid) == (PHONE, CODE, "corr-1")
    again = FakeDossiers(dossier(received))  # a redelivered request: the same answer id
    await intake_sms.on_status_requested(request(), again)  # type: ignore[arg-type]
    assert again.published[0].id == answer.id


async def test_intake_tells_another_phone_or_an_unknown_code_nothing() -> None:
    store = FakeDossiers(dossier())
    await intake_sms.on_status_requested(request(phone="+84987654321"), store)  # type: ignore[arg-type]
    await intake_sms.on_status_requested(request(code="G01.99-261201-0099"), store)  # type: ignore[arg-type]
    assert store.published == []


def test_every_portal_status_has_its_words() -> None:
    assert set(intake_sms.STATUS_WORDS) == set(PortalStatus)


# --- notify's reply --------------------------------------------------------------------------


def reported(status: str = "Được tiếp nhận") -> DossierStatusReported:
    return DossierStatusReported.create(
        id="answer-1",
        source="urn:intake",
        subject=CODE,
        data={
            "dossier_code": CODE,
            "status_code": 2,
            "status": status,
            "promised_at": datetime(2026, 12, 4, 3, 0, tzinfo=UTC),
            "phone": PHONE,
            "message_id": "gw-1",
        },
    )


async def test_notify_answers_by_one_sms_to_the_asking_phone_whatever_it_chose() -> None:
    w = world()  # no submission known: the answer names its phone
    consumer = NotifyConsumer(w.notifier, answering(table(ROUTING, [])))
    await consumer(reported())
    await consumer(reported())  # redelivered
    [message] = w.channels["sms"].sent
    assert message.to == PHONE
    assert (
        message.text
        == "Motcua: Ho so G01.99-261201-0007: Được tiếp nhận. Hen tra ket qua ngay 04/12/2026."
    )
    assert w.channels["email"].sent == [] and w.channels["zalo"].sent == []
    # a redelivery publishes the recorded outcome again, under the same event id
    assert {(e.type, e.id) for e in w.published} == {("notification.sent", w.published[0].id)}


def test_without_a_route_for_answers_notify_does_not_subscribe_to_them() -> None:
    routing = ROUTING.model_copy(
        update={
            "routes": {k: v for k, v in ROUTING.routes.items() if k != "dossier.status_reported"}
        }
    )
    assert "dossier.status_reported" not in answering(table(routing, []))


@pytest.mark.parametrize("status", sorted(intake_sms.STATUS_WORDS.values()))
def test_every_status_answer_fits_one_sms_with_the_longest_agency_code(status: str) -> None:
    w = world()
    longest = "G01.99.ABCDEFGHIJKLM-261201-00000001"
    route = ROUTING.applicant_channels("dossier.status_reported")["sms"]
    text = w.notifier.templates.render(
        route.template,
        "sms",
        {"dossier_code": longest, "status": status, "promised_at": "2026-12-04T03:00:00+00:00"},
    ).text
    assert sms_segments(text, max_segments=3) == [ascii_text(text)]
    assert len(ascii_text(text)) <= 160 and ascii_text(text).endswith("ngay 04/12/2026.")
