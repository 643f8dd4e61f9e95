"""Every notify handler against in-memory fakes of its ports (the store, the retry queues, the
channels, the clock, publishing): no network, seconds to run."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.notify import handlers, operators
from services.notify.app import load_routing
from services.notify.consumer import NotifyConsumer, replay_of, returned_from_delay, table
from services.notify.domain import Delivery, LogKey, log_key
from services.notify.messages import Message, SendError
from services.notify.ports import (
    DeliveryNotFound,
    Notifier,
    RecipientNotKnownYet,
    ResendConflict,
    Unreadable,
)
from services.notify.retries import DELIVERY_HEADER, REOPEN_HEADER
from services.notify.routing import Partner
from services.notify.settings import NotifySettings
from services.notify.templates import Templates
from shared.contracts import DossierSubmitted, Event
from shared.messaging import MESSAGE_HEADERS, PermanentFailure
from shared.storage import Document
from tests.factories import approved_event, submitted_event

SETTINGS = NotifySettings()
ROUTING = load_routing(SETTINGS.routing_file)
TEMPLATES = Templates(SETTINGS.templates_dir)
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
PARTNER = Partner(
    id="portal",
    url="http://127.0.0.1:1/hook",
    secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
    events=["dossier.approved"],
)


# --- fakes of the ports ----------------------------------------------------------------------


class FakeDeliveries:
    """The store's contract in memory: a live and a history map, writes guarded by version."""

    def __init__(self) -> None:
        self.live: dict[str, Delivery] = {}
        self.history: dict[str, Delivery] = {}
        self.before_save: Callable[[Delivery], Awaitable[None] | None] | None = None  # a racer
        # Stored documents that cannot be decoded: key → (version, check_at).
        self.unreadable: dict[str, tuple[int, datetime]] = {}

    async def load(self, delivery_id: str) -> Delivery | None:
        if delivery_id in self.live:
            return self.live[delivery_id]
        found = self.history.get(delivery_id)
        return replace(found, archived=True) if found else None

    async def save(self, previous: Delivery, new: Delivery) -> Delivery | None:
        if self.before_save is not None:
            hook, self.before_save = self.before_save, None
            if inspect.isawaitable(raced := hook(previous)):
                await raced
        saved = replace(new, version=previous.version + 1, archived=False)
        if previous.version and not previous.archived:
            stored = self.live.get(new.id)
            if stored is None or stored.version != previous.version:
                return None
        elif new.id in self.live:  # the insert of a new or reopened one: a duplicate key
            return None
        elif (kept := self.history.get(new.id)) and kept.version > previous.version:
            return None  # the insert's step back: moved to history since it was read
        self.live[new.id] = saved
        return saved

    async def archive(self, delivery: Delivery) -> None:
        if delivery.archived:
            return
        kept = self.history.get(delivery.id)
        if kept is None or kept.version < delivery.version:
            self.history[delivery.id] = replace(delivery, archived=False)
        if (live := self.live.get(delivery.id)) and live.version == delivery.version:
            del self.live[delivery.id]

    async def resends(self, root: Delivery) -> list[Delivery]:
        both = [*self.live.values(), *self.history.values()]
        return [d for d in both if d.resend_of == root.id]

    async def stuck(self, now: datetime, *, limit: int) -> list[Delivery | Unreadable]:
        due: list[tuple[datetime, Delivery | Unreadable]] = [
            (d.check_at, d) for d in self.live.values() if d.check_at is not None
        ]
        due += [
            (at, Unreadable(key, "bad trigger", {"_id": key, "version": v}))
            for key, (v, at) in self.unreadable.items()
        ]
        return [d for at, d in sorted(due, key=lambda pair: pair[0]) if at < now][:limit]

    async def postpone(self, unreadable: Unreadable, until: datetime) -> bool:
        version = unreadable.stored.get("version")
        if (bad := self.unreadable.get(unreadable.id)) and bad[0] == version:
            self.unreadable[unreadable.id] = (bad[0], until)
            return True
        return False

    async def log(
        self, dossier_code: str, *, after: LogKey | None, limit: int
    ) -> tuple[list[Delivery], list[Delivery]]:
        def page(stored: dict[str, Delivery], archived: bool) -> list[Delivery]:
            mine = [d for d in stored.values() if d.dossier_code == dossier_code]
            mine = [d for d in mine if after is None or log_key(d) > after]
            return [replace(d, archived=archived) for d in sorted(mine, key=log_key)][: limit + 1]

        return page(self.live, False), page(self.history, True)


class FakeRecipients:
    def __init__(self) -> None:
        self.contacts: dict[str, Document] = {}

    async def remember(self, dossier_code: str, contact: dict[str, Any]) -> None:
        self.contacts.setdefault(dossier_code, dict(contact))

    async def recipient(self, dossier_code: str) -> Document | None:
        return self.contacts.get(dossier_code)


@dataclass
class FakeRetries:
    delays: list[float]
    scheduled: list[tuple[str, float]] = field(default_factory=list)
    parked: list[tuple[str, str, int]] = field(default_factory=list)

    async def schedule(self, event: Event, *, at_least: float) -> float:
        delay = next((d for d in self.delays if d >= at_least), self.delays[-1])
        self.scheduled.append((event.id, delay))
        return delay

    async def park(self, event: Event, *, delivery_id: str, reason: str, reopen: int) -> None:
        self.parked.append((delivery_id, reason, reopen))


class FakeChannel:
    """A provider: records what it was given; `failures` are raised first, one per send."""

    def __init__(self, *failures: BaseException, delay: float = 0) -> None:
        self.failures: list[BaseException] = list(failures)
        self.sent: list[Message] = []
        self.delay = delay

    async def send(self, message: Message) -> str:
        await asyncio.sleep(self.delay)
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return f"p{len(self.sent)}"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    notifier: Notifier
    deliveries: FakeDeliveries
    recipients: FakeRecipients
    retries: FakeRetries
    channels: dict[str, FakeChannel]
    clock: Clock
    published: list[Event]

    def kinds(self) -> list[tuple[str, str]]:
        return [(e.type, e.data.channel) for e in self.published]  # type: ignore[attr-defined]


def world(
    *, tries: int = 3, lease: timedelta = LEASE, partners: list[Partner] | None = None, **ch: Any
) -> World:
    channels: dict[str, FakeChannel] = {
        "email": FakeChannel(),
        "sms": FakeChannel(),
        "zalo": FakeChannel(),
        **ch,
    }
    if partners:
        channels.setdefault("webhook", FakeChannel())
    deliveries, recipients = FakeDeliveries(), FakeRecipients()
    retries, clock, published = FakeRetries([1.0, 2.0, 4.0]), Clock(), []

    async def publish(event: Event) -> None:
        published.append(event)

    notifier = Notifier(
        deliveries=deliveries,
        recipients=recipients,
        channels=channels,
        templates=TEMPLATES,
        routing=ROUTING,
        partners=partners or [],
        retries=retries,
        publish=publish,
        clock=clock,
        source="urn:notify",
        tries=tries,
        delays=retries.delays,
        lease=lease,
    )
    return World(notifier, deliveries, recipients, retries, channels, clock, published)


def submitted(
    code: str = "G01.99-261102-0001", *, notify_by: list[str] | None = None, **data: Any
) -> DossierSubmitted:
    event = submitted_event(code=code)
    changes = {"notify_by": notify_by if notify_by is not None else ["sms"], **data}
    return event.model_copy(update={"data": event.data.model_copy(update=changes)})


# --- on_submitted, on_event, deliver ---------------------------------------------------------


async def test_a_decision_is_sent_once_per_chosen_channel_and_a_redelivery_sends_nothing() -> None:
    w = world()
    first = submitted(notify_by=["sms", "email"])
    await handlers.on_submitted(first, notifier=w.notifier)
    assert w.recipients.contacts[first.subject]["notify_by"] == ["sms", "email"]
    decision = approved_event(first)
    await handlers.on_event(decision, notifier=w.notifier)
    assert [len(w.channels[c].sent) for c in ("sms", "email", "zalo")] == [1, 1, 0]
    assert sorted(w.kinds()) == [("notification.sent", "email"), ("notification.sent", "sms")]
    # Finished deliveries left the live collection for history, with their outcome.
    assert w.deliveries.live == {}
    assert {d.status for d in w.deliveries.history.values()} == {"sent"}

    ids = {e.id for e in w.published}
    await handlers.on_event(decision, notifier=w.notifier)  # the broker delivers it again
    assert [len(w.channels[c].sent) for c in ("sms", "email")] == [1, 1]
    assert len(w.published) == 4 and {e.id for e in w.published} == ids  # the same events


async def test_an_event_before_its_submission_is_retried_later() -> None:
    w = world()
    with pytest.raises(RecipientNotKnownYet):
        await handlers.on_event(approved_event(submitted()), notifier=w.notifier)
    assert w.deliveries.live == {} and w.published == []


async def test_a_partner_hears_of_an_event_even_before_the_citizen_s_contact_is_known() -> None:
    w = world(partners=[PARTNER])
    decision = approved_event(submitted())
    with pytest.raises(RecipientNotKnownYet):
        await handlers.on_event(decision, notifier=w.notifier)
    w.recipients.contacts[decision.subject] = {"notify_by": []}  # opted out of everything
    await handlers.on_event(decision, notifier=w.notifier)
    [hook] = w.channels["webhook"].sent
    assert hook.to == "portal" and decision.id.encode() in hook.body
    assert w.kinds() == [("notification.sent", "webhook")]


async def test_an_id_card_dossier_s_message_names_the_procedure_the_events_gave() -> None:
    w = world()
    first = submitted(
        notify_by=["email"],
        procedure_code="the-can-cuoc",
        procedure_name="Cấp, đổi, cấp lại thẻ căn cước",
    )
    await handlers.on_submitted(first, notifier=w.notifier)
    decision = approved_event(first)  # review's event without a name: the submission's stands
    assert decision.data.procedure_name is None
    await handlers.on_event(decision, notifier=w.notifier)
    [mail] = w.channels["email"].sent
    assert "Hồ sơ Cấp, đổi, cấp lại thẻ căn cước mã số" in mail.text
    assert "thủ tục the-can-cuoc" not in mail.text

    # An event's own name wins; with neither, the code is named.
    named = approved_event(first)
    named = named.model_copy(
        update={"data": named.data.model_copy(update={"procedure_name": "Cấp thẻ căn cước"})}
    )
    await handlers.on_event(named, notifier=w.notifier)
    assert "Hồ sơ Cấp thẻ căn cước mã số" in w.channels["email"].sent[1].text
    unnamed = submitted("G01.99-261102-0002", notify_by=["email"], procedure_code="con-dau")
    await handlers.on_submitted(unnamed, notifier=w.notifier)
    await handlers.on_event(approved_event(unnamed), notifier=w.notifier)
    assert "Hồ sơ thủ tục con-dau mã số" in w.channels["email"].sent[2].text


async def test_a_transient_failure_waits_in_a_delay_queue_then_is_sent() -> None:
    w = world(sms=FakeChannel(SendError("HTTP 503", permanent=False)))
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    decision = approved_event(first)
    await handlers.on_event(decision, notifier=w.notifier)
    [waiting] = w.deliveries.live.values()
    assert (waiting.status, waiting.attempts, waiting.reason) == ("retrying", 1, "HTTP 503")
    assert w.retries.scheduled == [(decision.id, 1.0)]
    await handlers.on_event(decision, notifier=w.notifier)  # a copy before the retry is due
    assert w.channels["sms"].sent == [] and w.published == []
    w.clock.advance(1)
    await handlers.on_event(decision, notifier=w.notifier)  # the retry message is back
    [done] = w.deliveries.history.values()
    assert (done.status, done.attempts, done.reason) == ("sent", 2, None)
    assert w.kinds() == [("notification.sent", "sms")]


async def test_a_refused_zalo_message_is_reported_parked_and_falls_back_to_one_sms() -> None:
    w = world(zalo=FakeChannel(SendError("Zalo error -124: not a Zalo user", permanent=True)))
    first = submitted(notify_by=["zalo", "sms"])
    await handlers.on_submitted(first, notifier=w.notifier)
    decision = approved_event(first)
    await handlers.on_event(decision, notifier=w.notifier)
    assert len(w.channels["sms"].sent) == 1  # the citizen chose both: still one SMS
    assert set(w.kinds()) == {("notification.failed", "zalo"), ("notification.sent", "sms")}
    assert len({e.id for e in w.published}) == 2  # (the SMS's outcome is republished, same id)
    [(delivery_id, reason, reopen)] = w.retries.parked
    assert delivery_id.endswith(":zalo") and reason.startswith("Zalo error -124") and reopen == 1
    failed = w.deliveries.history[delivery_id]
    assert (failed.status, failed.attempts) == ("failed", 1)


async def test_a_try_under_way_elsewhere_is_looked_at_again_when_its_lease_ends() -> None:
    w = world()
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    decision = approved_event(first)
    release = asyncio.Event()

    class Slow(FakeChannel):
        async def send(self, message: Message) -> str:
            await release.wait()
            return await super().send(message)

    w.channels["sms"] = Slow()
    holder = asyncio.create_task(handlers.on_event(decision, notifier=w.notifier))
    await asyncio.sleep(0)
    w.clock.advance(20)
    await handlers.on_event(decision, notifier=w.notifier)  # a copy while the send runs
    assert w.retries.scheduled == [(decision.id, 4.0)]  # the longest wait ≥ the 40 s left
    release.set()
    await holder
    assert len(w.channels["sms"].sent) == 1 and len(w.published) == 1


async def test_a_try_whose_sender_died_is_taken_over_and_the_last_one_is_given_up() -> None:
    w = world(tries=2)
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    decision = approved_event(first)
    delivery_id = f"{decision.id}:applicant:sms"
    crash = SystemExit  # the process dies mid-send: nothing records the outcome

    class Dying(FakeChannel):
        async def send(self, message: Message) -> str:
            raise crash()

    w.channels["sms"] = Dying()
    for _ in range(2):
        with pytest.raises(SystemExit):
            await handlers.on_event(decision, notifier=w.notifier)
        assert w.deliveries.live[delivery_id].status == "sending"
        w.clock.advance(LEASE.total_seconds())
    await handlers.on_event(decision, notifier=w.notifier)  # both tries crashed: exhausted
    gave_up = w.deliveries.history[delivery_id]
    assert (gave_up.status, gave_up.attempts) == ("failed", 2)
    assert gave_up.reason == "gave up after 2 tries: no outcome was recorded"
    assert w.kinds() == [("notification.failed", "sms")] and len(w.retries.parked) == 1


async def parked_sms() -> tuple[World, Event, tuple[str, int]]:
    """A decision whose SMS was refused for good (one try) and parked: the replay to send."""
    w = world(tries=1, sms=FakeChannel(SendError("HTTP 400", permanent=True)))
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    decision = approved_event(first)
    await handlers.on_event(decision, notifier=w.notifier)
    [(delivery_id, _, reopen)] = w.retries.parked
    return w, decision, (delivery_id, reopen)


async def test_a_replayed_parked_delivery_is_reopened_once_with_its_tries_afresh() -> None:
    w, decision, (delivery_id, reopen) = await parked_sms()
    await handlers.on_event(decision, notifier=w.notifier)  # a plain redelivery: nothing new
    assert w.channels["sms"].sent == []
    for _ in range(2):  # two copies of the replayed message
        await handlers.on_event(decision, notifier=w.notifier, replay=(delivery_id, reopen))
    assert len(w.channels["sms"].sent) == 1
    done = w.deliveries.history[delivery_id]
    assert (done.status, done.attempts, done.base, done.reopens) == ("sent", 2, 1, 1)
    failed, sent = w.published[0], w.published[-1]
    assert (failed.type, sent.type) == ("notification.failed", "notification.sent")
    assert failed.id != sent.id  # a reopened delivery's outcome is a new event


async def test_a_replay_another_replica_reopened_and_finished_first_is_not_sent_again() -> None:
    """Two replicas decide "reopen, send" from the same history copy; the first reopens, sends
    and moves its outcome to history before the second's insert lands: the second steps back."""
    w, decision, replay = await parked_sms()
    delivery_id = replay[0]

    async def other_replica_first(previous: Delivery) -> None:
        assert previous.archived  # we decided on the history copy
        await handlers.on_event(decision, notifier=w.notifier, replay=replay)
        assert delivery_id not in w.deliveries.live  # sent, recorded and moved already

    w.deliveries.before_save = other_replica_first
    await handlers.on_event(decision, notifier=w.notifier, replay=replay)
    assert len(w.channels["sms"].sent) == 1
    assert delivery_id not in w.deliveries.live
    done = w.deliveries.history[delivery_id]
    assert (done.status, done.attempts, done.reopens) == ("sent", 2, 1)
    sent_ids = {e.id for e in w.published if e.type == "notification.sent"}
    assert len(sent_ids) == 1  # the loser republishes the winner's outcome, same id


async def test_the_outcome_of_a_try_that_outlived_its_lease_is_dropped() -> None:
    w = world()
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    decision = approved_event(first)

    def taken_over(previous: Delivery) -> None:  # another replica took the try meanwhile
        w.deliveries.live[previous.id] = replace(previous, version=previous.version + 1)

    class Stalled(FakeChannel):
        async def send(self, message: Message) -> str:
            w.deliveries.before_save = taken_over
            return await super().send(message)

    w.channels["sms"] = Stalled()
    delivery = await handlers.deliver(
        decision,
        next(iter(handlers.plan_of(decision, {"notify_by": ["sms"]}, notifier=w.notifier))),
        {"notify_by": ["sms"], "phone": "+84912345678"},
        notifier=w.notifier,
    )
    assert delivery.status == "sending"  # the other holder's record stands
    assert w.published == []


async def test_a_send_that_outlasts_half_its_lease_is_cut_short_and_retried() -> None:
    w = world(lease=timedelta(seconds=0.1), sms=FakeChannel(delay=0.2))
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    await handlers.on_event(approved_event(first), notifier=w.notifier)
    [waiting] = w.deliveries.live.values()
    assert (waiting.status, waiting.reason) == ("retrying", "no answer within 0.05s")


async def test_an_unexpected_error_while_sending_counts_against_the_tries() -> None:
    w = world(tries=1, sms=FakeChannel(ValueError("bad gateway URL")))
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    await handlers.on_event(approved_event(first), notifier=w.notifier)
    [failed] = w.deliveries.history.values()
    assert failed.reason == "gave up after 1 tries: unexpected error: ValueError"
    assert w.published[0].data.permanent is False  # type: ignore[attr-defined]


# --- the sweep -------------------------------------------------------------------------------


async def test_the_sweep_finishes_what_a_crash_left_in_flight() -> None:
    w = world()
    first = submitted(notify_by=["sms", "email"])
    await handlers.on_submitted(first, notifier=w.notifier)
    decision = approved_event(first)
    await handlers.on_event(decision, notifier=w.notifier)
    sms_id, mail_id = (f"{decision.id}:applicant:{c}" for c in ("sms", "email"))
    # As if the process died after recording the SMS's outcome, before publishing it; and the
    # e-mail's retry message was lost.
    w.deliveries.live[sms_id] = replace(w.deliveries.history.pop(sms_id), archived=False)
    mail = w.deliveries.history.pop(mail_id)
    w.deliveries.live[mail_id] = replace(
        mail, status="retrying", next_at=T0, check_at=T0, outbox=(), archived=False
    )
    w.published.clear()
    assert await handlers.sweep(notifier=w.notifier) == 0  # not due yet: nothing read twice
    w.clock.advance(3600)
    assert await handlers.sweep(notifier=w.notifier) == 2
    assert w.kinds() == [("notification.sent", "sms")]
    assert sms_id in w.deliveries.history and sms_id not in w.deliveries.live
    assert w.retries.scheduled == [(decision.id, 1.0)]  # the e-mail's event goes round again
    assert await handlers.sweep(notifier=w.notifier) == 0  # and is not taken up twice


async def test_the_sweep_runs_until_cancelled_at_its_interval() -> None:
    w = world()
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    await handlers.on_event(approved_event(first), notifier=w.notifier)
    [done] = w.deliveries.history.values()
    w.deliveries.live[done.id] = replace(done, check_at=T0 - timedelta(seconds=1))
    w.published.clear()
    looping = asyncio.create_task(handlers.sweep_forever(notifier=w.notifier, interval=0.01))
    await asyncio.sleep(0.05)
    looping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await looping
    assert w.deliveries.live == {} and len(w.published) == 1  # published once, then moved


async def test_the_sweep_gives_up_a_resend_whose_sender_died() -> None:
    w = world()
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    await handlers.on_event(approved_event(first), notifier=w.notifier)
    [original] = w.deliveries.history.values()
    w.channels["sms"].failures.append(SystemExit())
    with pytest.raises(SystemExit):
        await operators.resend(original.id, requested_by="admin-01", notifier=w.notifier)
    w.clock.advance(3600)
    assert await handlers.sweep(notifier=w.notifier) == 1
    gave_up = w.deliveries.history[f"{original.id}:resend1"]
    assert (gave_up.status, gave_up.resend_of) == ("failed", original.id)


async def test_the_sweep_gives_up_an_exhausted_zalo_message_and_falls_back_to_sms() -> None:
    w = world(tries=1)
    first = submitted(notify_by=["zalo"])
    await handlers.on_submitted(first, notifier=w.notifier)
    decision = approved_event(first)
    zalo_id = f"{decision.id}:applicant:zalo"
    w.channels["zalo"].failures.append(SystemExit())  # the sender dies mid-send
    with pytest.raises(SystemExit):
        await handlers.on_event(decision, notifier=w.notifier)  # (its message is acked later)
    w.clock.advance(3600)
    assert await handlers.sweep(notifier=w.notifier) == 1
    assert w.deliveries.history[zalo_id].status == "failed"
    assert len(w.channels["sms"].sent) == 1  # the fallback `deliver` would have tried
    assert w.kinds() == [("notification.failed", "zalo"), ("notification.sent", "sms")]
    assert w.deliveries.live == {}


async def test_a_delivery_that_cannot_be_read_is_put_off_and_the_others_are_swept() -> None:
    w = world()
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    await handlers.on_event(approved_event(first), notifier=w.notifier)
    [done] = w.deliveries.history.values()
    w.deliveries.live[done.id] = replace(done, check_at=T0, archived=False)  # not yet moved
    w.deliveries.unreadable["bad"] = (3, T0 - timedelta(days=1))  # oldest: first in the sweep
    w.published.clear()
    w.clock.advance(60)
    seen = _unreadable_seen()
    assert await handlers.sweep(notifier=w.notifier) == 2
    assert w.deliveries.live == {} and len(w.published) == 1  # the readable one was finished
    assert w.deliveries.unreadable["bad"] == (3, w.clock.now + handlers.UNREADABLE_AFTER)
    assert _unreadable_seen() == seen + 1  # the operators' metric (and alert)
    assert await handlers.sweep(notifier=w.notifier) == 0  # not read again at every sweep
    w.clock.advance(handlers.UNREADABLE_AFTER.total_seconds() + 1)
    assert await handlers.sweep(notifier=w.notifier) == 1  # looked at again, later
    assert _unreadable_seen() == seen + 2


def _unreadable_seen() -> float:
    return REGISTRY.get_sample_value("motcua_notify_unreadable_deliveries_total") or 0.0


async def test_a_delivery_the_sweep_fails_to_take_up_does_not_stop_the_others() -> None:
    w = world()
    first = submitted(notify_by=["sms", "email"])
    await handlers.on_submitted(first, notifier=w.notifier)
    decision = approved_event(first)
    await handlers.on_event(decision, notifier=w.notifier)
    for delivery in list(w.deliveries.history.values()):
        w.deliveries.live[delivery.id] = replace(
            w.deliveries.history.pop(delivery.id), archived=False, check_at=T0
        )
    w.published.clear()
    failing = [True]

    async def publish(event: Event) -> None:
        if failing.pop(0) if failing else False:
            raise ConnectionError("broker away")
        w.published.append(event)

    w.notifier = replace(w.notifier, publish=publish)
    w.clock.advance(3600)
    assert await handlers.sweep(notifier=w.notifier) == 2
    assert len(w.published) == 1 and len(w.deliveries.live) == 1  # one later, the other now
    assert await handlers.sweep(notifier=w.notifier) == 1
    assert len(w.published) == 2 and w.deliveries.live == {}


# --- operators -------------------------------------------------------------------------------


async def test_an_operator_resends_once_and_never_during_the_message_s_retries() -> None:
    w = world(sms=FakeChannel(SendError("HTTP 503", permanent=False)))
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    await handlers.on_event(approved_event(first), notifier=w.notifier)
    [retrying] = w.deliveries.live.values()
    with pytest.raises(ResendConflict):
        await operators.resend(retrying.id, requested_by="admin-01", notifier=w.notifier)
    with pytest.raises(DeliveryNotFound):
        await operators.resend("nothing", requested_by="admin-01", notifier=w.notifier)
    w.clock.advance(1)
    await handlers.on_event(retrying.trigger, notifier=w.notifier)  # the retry: sent
    again = await operators.resend(retrying.id, requested_by="admin-01", notifier=w.notifier)
    assert (again.id, again.status, again.resend_of) == (
        f"{retrying.id}:resend1",
        "sent",
        retrying.id,
    )
    assert again.requested_by == "admin-01"
    later = await operators.resend(again.id, requested_by="admin-02", notifier=w.notifier)
    assert later.id == f"{retrying.id}:resend2"  # a resend of a resend resends the message


async def test_two_clicks_at_once_resend_once() -> None:
    w = world(sms=FakeChannel(delay=0.01))
    first = submitted()
    await handlers.on_submitted(first, notifier=w.notifier)
    await handlers.on_event(approved_event(first), notifier=w.notifier)
    [original] = w.deliveries.history.values()
    clicks = await asyncio.gather(
        *(operators.resend(original.id, requested_by="a", notifier=w.notifier) for _ in "ab"),
        return_exceptions=True,
    )
    assert sorted(type(c).__name__ for c in clicks) == ["Delivery", "ResendConflict"]
    assert len(w.channels["sms"].sent) == 2  # the original and one resend


async def test_the_delivery_log_is_paged_with_a_cursor_and_counts_each_delivery_once() -> None:
    w = world()
    first = submitted(notify_by=["sms", "email", "zalo"])
    await handlers.on_submitted(first, notifier=w.notifier)
    await handlers.on_event(approved_event(first), notifier=w.notifier)
    # One of them is also still in `live` (moved a moment ago, not yet deleted there).
    some = next(iter(w.deliveries.history.values()))
    w.deliveries.live[some.id] = replace(some, version=some.version - 1)
    page, cursor = await operators.delivery_log(
        first.subject, after=None, limit=2, deliveries=w.deliveries
    )
    assert len(page) == 2 and cursor is not None
    from services.notify.domain import decode_cursor

    rest, end = await operators.delivery_log(
        first.subject, after=decode_cursor(cursor), limit=2, deliveries=w.deliveries
    )
    assert len(rest) == 1 and end is None
    assert sorted(d.channel for d in page + rest) == ["email", "sms", "zalo"]
    assert all(d.status == "sent" for d in page + rest)


def test_a_template_preview_is_rendered_with_sample_data() -> None:
    shown = operators.preview(
        "dossier.apology_issued",
        "sms",
        "vi",
        routing=ROUTING,
        templates=TEMPLATES,
        sms_max_segments=3,
    )
    assert shown.rendered.text.isascii() and "Hen tra ket qua moi" in shown.rendered.text
    zalo = operators.preview(
        "dossier.received", "zalo", "en", routing=ROUTING, templates=TEMPLATES, sms_max_segments=3
    )
    assert (zalo.zalo_template_id, zalo.language) == ("300001", "vi")
    with pytest.raises(operators.TemplateNotRouted):
        operators.preview(
            "dossier.assigned",
            "sms",
            "vi",
            routing=ROUTING,
            templates=TEMPLATES,
            sms_max_segments=3,
        )


# --- the consumer's table --------------------------------------------------------------------


async def test_the_consumer_routes_each_event_type_to_its_handler_and_refuses_others() -> None:
    w = world(partners=[PARTNER])
    handled = table(ROUTING, [PARTNER])
    assert "dossier.submitted" in handled and "dossier.approved" in handled
    consumer = NotifyConsumer(w.notifier, handled)
    assert consumer.bindings == sorted(handled)
    first = submitted()
    await consumer(first)
    assert first.subject in w.recipients.contacts
    MESSAGE_HEADERS.set({DELIVERY_HEADER: "x:applicant:sms", REOPEN_HEADER: "2"})
    assert replay_of(MESSAGE_HEADERS.get()) == ("x:applicant:sms", 2)
    await consumer(approved_event(first))
    assert len(w.channels["sms"].sent) == 1 and len(w.channels["webhook"].sent) == 1
    other = first.model_copy(update={"type": "dossier.assigned"})
    with pytest.raises(PermanentFailure, match=r"no handler for dossier\.assigned"):
        await consumer(other)
    assert replay_of({REOPEN_HEADER: "x"}) is None


def test_a_message_back_from_a_delay_queue_is_known_by_its_x_death() -> None:
    back = {"x-death": [{"queue": "motcua.notify.retry.30s", "reason": "expired", "count": 1}]}
    assert returned_from_delay(back)
    assert not returned_from_delay({}) and not returned_from_delay(None)
