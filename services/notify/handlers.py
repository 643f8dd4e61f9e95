"""Notify's use cases: remember who to tell, then tell them once per channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from services.notify.channels import Channel
from services.notify.compose import address_of, chosen_channels, compose, delivery_fields
from services.notify.domain import (
    ChannelRoute,
    Partner,
    Planned,
    Routing,
    SendError,
    fallback,
    plan,
    retry_wait,
    scrub,
)
from services.notify.retries import DELIVERY_HEADER, REOPEN_HEADER
from services.notify.store import FINISHED, NotifyStore
from services.notify.templates import Templates
from shared.clock import Clock
from shared.contracts import (
    DossierSubmitted,
    Event,
    NotificationFailed,
    NotificationFailedData,
    NotificationSent,
    NotificationSentData,
)
from shared.faults import FaultPoints
from shared.messaging import MESSAGE_HEADERS
from shared.outbox import events_of
from shared.storage import Document

log = logging.getLogger(__name__)


class RecipientNotKnownYet(Exception):
    """An event arrived before the submission it belongs to; retried later."""


class DeliveryNotFound(LookupError):
    """No delivery with this id."""


class ResendConflict(Exception):
    """The delivery, or its latest resend, is still under way (or another resend of it was
    created at the same moment)."""


class Retries(Protocol):
    async def schedule(self, event: Event, *, at_least: float) -> float: ...

    async def park(self, event: Event, *, delivery_id: str, reason: str, reopen: int) -> None: ...


@dataclass(frozen=True)
class Notifier:
    """Everything a delivery needs, wired once by the app."""

    store: NotifyStore
    channels: Mapping[str, Channel]
    templates: Templates
    routing: Routing
    partners: list[Partner]
    retries: Retries
    clock: Clock
    source: str
    tries: int
    delays: list[float]
    lease: timedelta
    faults: FaultPoints = field(default_factory=lambda: FaultPoints(""))


async def handle(event: Event, *, notifier: Notifier) -> None:
    """Deliver what `event` calls for, by every channel and to every partner concerned."""
    n = notifier
    if isinstance(event, DossierSubmitted):
        await remember(event, store=n.store)
    contact = await n.store.recipient(event.subject)
    if contact is None and n.routing.applicant_channels(event.type):
        raise RecipientNotKnownYet(f"no contact yet for dossier {event.subject}")
    chosen = list(contact.get("notify_by", [])) if contact else None
    reopen = replay_of(MESSAGE_HEADERS.get())
    for planned in plan(
        event.type,
        event.id,
        routing=n.routing,
        partners=n.partners,
        chosen=chosen,
        available=set(n.channels),
    ):
        wanted = reopen[1] if reopen and reopen[0] == planned.delivery_id else 0
        await deliver(event, planned, contact or {}, notifier=n, reopen=wanted)


def replay_of(headers: Mapping[str, Any] | None) -> tuple[str, int] | None:
    """The delivery a replayed parked message reopens, and which reopening it is."""
    delivery, number = (headers or {}).get(DELIVERY_HEADER), (headers or {}).get(REOPEN_HEADER)
    if not isinstance(delivery, str) or not str(number or "").isdigit():
        return None
    return delivery, int(str(number))


async def remember(event: DossierSubmitted, *, store: NotifyStore) -> None:
    data = event.data
    await store.remember(
        data.dossier_code,
        {
            "full_name": data.applicant.full_name,
            "email": data.applicant.email,
            "phone": data.applicant.phone,
            "notify_by": chosen_channels(data),
            "procedure_code": data.procedure_code,
            "promised_at": data.promised_at,
            "fee": data.fee,
        },
    )


async def deliver(
    event: Event,
    planned: Planned,
    contact: Mapping[str, Any],
    *,
    notifier: Notifier,
    depth: int = 0,
    reopen: int = 0,
) -> Document:
    """Send one delivery at most once; on a final failure, try the channel's fallback."""
    n = notifier
    address = address_of(planned, contact)
    fields = delivery_fields(event, planned, address)
    claim = await n.store.claim(
        planned.delivery_id, fields, now=n.clock(), lease=n.lease, tries=n.tries, reopen=reopen
    )
    if claim.kind == "send":
        await n.store.keep_trigger(event)
    if claim.kind == "busy":  # come back when the other attempt must be over
        delay = await n.retries.schedule(event, at_least=claim.wait)
        log.info(
            "delivery under way elsewhere; looking again in %.1fs",
            delay,
            extra={"dossier": event.subject, "delivery": planned.delivery_id},
        )
        return claim.delivery
    if claim.kind == "not_due":  # its retry message is on the way
        return claim.delivery
    delivery = claim.delivery
    if claim.kind == "send":
        delivery = await attempt(event, planned, delivery, address, contact, n=n, tries=n.tries)
    elif claim.kind == "exhausted":
        tried = int(delivery["attempts"]) - int(delivery.get("base", 0))
        reason = f"gave up after {tried} tries: no outcome was recorded"
        delivery = await give_up(event, planned, delivery, reason=reason, permanent=False, n=n)
    if delivery["status"] in FINISHED:
        # Also on a redelivery: publish the recorded outcome again, with the same event id.
        await n.store.outbox.flush(events_of(delivery, caused_by=event.id))
    if delivery["status"] == "failed" and depth < 2:
        other = fallback(planned, event.id, routing=n.routing, available=set(n.channels))
        if other is not None:
            await deliver(event, other, contact, notifier=n, depth=depth + 1)
    return delivery


async def attempt(
    event: Event,
    planned: Planned,
    delivery: Document,
    address: str,
    contact: Mapping[str, Any],
    *,
    n: Notifier,
    tries: int,
) -> Document:
    """One try at sending (the attempt is already recorded); records its outcome."""
    try:
        message = compose(event, planned, address, contact, templates=n.templates)
        provider_id = await bounded(n.channels[planned.channel].send(message), n.lease / 2)
        # A fault test halts here: the provider has the message, its outcome is not recorded.
        await n.faults.reach("notify.send.after_provider")
    except Exception as caught:
        if isinstance(caught, SendError):
            exc = caught
        else:  # a bug or a bad setting: retried like a transient failure, so the cap applies
            log.exception(
                "unexpected error while sending",
                extra={"dossier": event.subject, "delivery": delivery["_id"]},
            )
            exc = SendError(f"unexpected error: {type(caught).__name__}", permanent=False)
        return await _failed_attempt(event, planned, delivery, exc, address, n=n, tries=tries)
    now = n.clock()
    sent = NotificationSent.caused_by(
        event,
        source=n.source,
        time=now,
        key=outcome_key(delivery),
        data=NotificationSentData(
            **_common(event, planned, delivery), sent_at=now, provider_message_id=provider_id
        ),
    )
    return await n.store.settle(
        delivery,
        status="sent",
        fields={"provider_message_id": provider_id, "sent_at": now, "reason": None},
        event=sent,
        now=now,
    )


async def bounded(send: Awaitable[str], limit: timedelta) -> str:
    """A send cut short well before its lease ends, so no other handler takes it over while it
    is still running (an SMTP thread may linger: its resend carries the same Message-ID)."""
    try:
        async with asyncio.timeout(limit.total_seconds()):
            return await send
    except TimeoutError as exc:
        raise SendError(f"no answer within {limit.total_seconds():g}s", permanent=False) from exc


def outcome_key(delivery: Document) -> str:
    """What a delivery's notification.* event id derives from: a reopened delivery's new
    outcome is a new event."""
    reopens = int(delivery.get("reopens", 0))
    return f"{delivery['_id']}:reopen{reopens}" if reopens else str(delivery["_id"])


def _common(event: Event, planned: Planned, delivery: Document) -> dict[str, Any]:
    return {
        "dossier_code": event.subject,
        "channel": planned.channel,
        "recipient": delivery["recipient"],
        "trigger_event_id": event.id,
        "trigger_event_type": event.type,
    }


async def _failed_attempt(
    event: Event,
    planned: Planned,
    delivery: Document,
    exc: SendError,
    address: str,
    *,
    n: Notifier,
    tries: int,
) -> Document:
    """Schedule a retry of a transient failure while tries are left; else settle as failed."""
    attempts = int(delivery["attempts"]) - int(delivery.get("base", 0))  # since a reopening
    now = n.clock()
    problem = scrub(str(exc), planned.channel, address)  # providers echo addresses
    if not exc.permanent and attempts < tries:
        wanted = retry_wait(n.delays, exc, tries_made=attempts)
        delay = await n.retries.schedule(event, at_least=wanted)
        log.info(
            "delivery failed, retrying in %.1fs",
            delay,
            extra={"dossier": event.subject, "delivery": delivery["_id"], "reason": problem},
        )
        return await n.store.retry_later(
            delivery, reason=problem, next_at=now + timedelta(seconds=delay * 0.9), now=now
        )
    reason = problem if exc.permanent else f"gave up after {attempts} tries: {problem}"
    return await give_up(event, planned, delivery, reason=reason, permanent=exc.permanent, n=n)


async def give_up(
    event: Event,
    planned: Planned,
    delivery: Document,
    *,
    reason: str,
    permanent: bool,
    n: Notifier,
) -> Document:
    """Settle a delivery as failed for good, report it, and park its event for an operator."""
    now = n.clock()
    common = _common(event, planned, delivery)
    failed = NotificationFailed.caused_by(
        event,
        source=n.source,
        time=now,
        key=outcome_key(delivery),
        data=NotificationFailedData(**common, failed_at=now, reason=reason, permanent=permanent),
    )
    log.warning(
        "notification failed",
        extra={"dossier": event.subject, "recipient": common["recipient"], "reason": reason},
    )
    settled = await n.store.settle(
        delivery, status="failed", fields={"reason": reason}, event=failed, now=now
    )
    reopen = int(delivery.get("reopens", 0)) + 1
    await n.retries.park(event, delivery_id=delivery["_id"], reason=reason, reopen=reopen)
    return settled


async def resend(delivery_id: str, *, requested_by: str, notifier: Notifier) -> Document:
    """An operator's resend of one delivery: a new delivery of the same message, tried once."""
    n = notifier
    original = await n.store.delivery(delivery_id)
    event = await n.store.trigger(original["trigger_event_id"]) if original else None
    if original is None or event is None:
        raise DeliveryNotFound(delivery_id)
    root = str(original.get("resend_of") or original["_id"])
    # One resend at a time, once the message's last delivery is over: the new id follows from
    # that state, so two requests at once compete for the same insert and only one sends.
    first = original if root == original["_id"] else await n.store.delivery(root)
    count, latest = await n.store.last_resend(root)
    if any(d is not None and d["status"] not in FINISHED for d in (first, latest)):
        raise ResendConflict(root)
    contact = await n.store.recipient(event.subject) or {}
    key = str(original["recipient_key"])
    partner = next((p for p in n.partners if f"partner:{p.id}" == key), None)
    template = original.get("template")
    planned = Planned(
        f"{root}:resend{count + 1}",
        key,
        original["channel"],
        route=ChannelRoute(template=template, zalo_template_id=original.get("zalo_template_id"))
        if template
        else None,
        partner=partner,
    )
    address = address_of(planned, contact)
    fields = {
        **delivery_fields(event, planned, address),
        "resend_of": root,
        "requested_by": requested_by,
    }
    if not await n.store.create(planned.delivery_id, fields, now=n.clock()):
        raise ResendConflict(planned.delivery_id)
    claim = await n.store.claim(planned.delivery_id, fields, now=n.clock(), lease=n.lease, tries=1)
    if claim.kind != "send":
        raise ResendConflict(planned.delivery_id)
    delivery = await attempt(event, planned, claim.delivery, address, contact, n=n, tries=1)
    await n.store.outbox.flush(events_of(delivery, caused_by=event.id))
    return delivery
