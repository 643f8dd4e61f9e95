"""Notify's delivering use cases: remember who to tell, tell them once per channel, sweep what a
crash left behind. Each loads the delivery once, lets `domain` decide, and saves the decision in
one guarded write; the ports of `ports.py` are all it knows of the world."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from datetime import datetime, timedelta
from typing import Any

from services.notify.compose import address_of, chosen_channels, compose
from services.notify.domain import (
    Claim,
    Delivery,
    Retry,
    after_failure,
    claim,
    exhausted_reason,
    failed,
    new_delivery,
    nudged,
    retrying,
    sent,
)
from services.notify.messages import SendError, masked, scrub
from services.notify.metrics import UNREADABLE
from services.notify.ports import (
    Deliveries,
    DeliveryContended,
    Notifier,
    RecipientNotKnownYet,
    Replay,
    Unreadable,
)
from services.notify.routing import ChannelRoute, Partner, Planned, fallback, plan
from shared.clock import Clock
from shared.contracts import DossierSubmitted, Event

log = logging.getLogger(__name__)

# Of handlers racing for one delivery one writes; a loser reads again and decides again.
LOAD_ROUNDS = 5
# The sweep's one indexed query on the live collection, this often: it only finds what a crash
# or a lost message left (retries come back by themselves, through the delay queues).
SWEEP_INTERVAL = 60.0
# When the sweep looks again at a stored delivery it cannot read (an operator must repair it).
UNREADABLE_AFTER = timedelta(hours=1)


# --- events --------------------------------------------------------------------------------------


async def on_submitted(
    event: DossierSubmitted,
    *,
    notifier: Notifier,
    replay: Replay | None = None,
    returned: bool = False,
) -> None:
    """A submission: keep the applicant's contact, then deliver what it calls for."""
    contact = contact_of(event)
    await notifier.recipients.remember(event.subject, contact)
    await _deliver_all(event, contact, notifier=notifier, replay=replay, returned=returned)


async def on_event(
    event: Event, *, notifier: Notifier, replay: Replay | None = None, returned: bool = False
) -> None:
    """Deliver what `event` calls for, by every channel and to every partner concerned.
    `returned`: the message came back from a delay queue (a retry), so its deliveries are
    stored and are loaded at once."""
    contact = await notifier.recipients.recipient(event.subject)
    if contact is None and notifier.routing.applicant_channels(event.type):
        raise RecipientNotKnownYet(f"no contact yet for dossier {event.subject}")
    await _deliver_all(event, contact, notifier=notifier, replay=replay, returned=returned)


def contact_of(event: DossierSubmitted) -> dict[str, Any]:
    """What later notifications need to know about the applicant and the procedure."""
    data = event.data
    return {
        "full_name": data.applicant.full_name,
        "email": data.applicant.email,
        "phone": data.applicant.phone,
        "notify_by": chosen_channels(data),
        "procedure_code": data.procedure_code,
        "procedure_name": data.procedure_name,
        "promised_at": data.promised_at,
        "fee": data.fee,
        "document_names": dict(data.document_names),
    }


def plan_of(
    event: Event, contact: Mapping[str, Any] | None, *, notifier: Notifier
) -> list[Planned]:
    """The deliveries `event` calls for, given the applicant's choice (None: not known yet)."""
    n = notifier
    return plan(
        event.type,
        event.id,
        routing=n.routing,
        partners=n.partners,
        chosen=list(contact.get("notify_by", [])) if contact else None,
        available=set(n.channels),
    )


async def _deliver_all(
    event: Event,
    contact: Mapping[str, Any] | None,
    *,
    notifier: Notifier,
    replay: Replay | None,
    returned: bool,
) -> None:
    for planned in plan_of(event, contact, notifier=notifier):
        reopen = replay[1] if replay and replay[0] == planned.delivery_id else 0
        await deliver(
            event, planned, contact or {}, notifier=notifier, reopen=reopen, stored=returned
        )


async def deliver(
    event: Event,
    planned: Planned,
    contact: Mapping[str, Any],
    *,
    notifier: Notifier,
    depth: int = 0,
    reopen: int = 0,
    stored: bool = False,
) -> Delivery:
    """Send one delivery at most once; on a final failure, try the channel's fallback.
    `stored`: it is known to be stored already (a retry), so it is loaded first."""
    n = notifier
    address = address_of(planned, contact)
    recipient = masked(planned.channel, address) if address else ""
    fresh = new_delivery(event, planned, recipient, now=n.clock())
    decision, delivery = await take(
        fresh,
        deliveries=n.deliveries,
        clock=n.clock,
        lease=n.lease,
        tries=n.tries,
        reopen=reopen,
        stored=stored,
    )
    if decision.kind == "busy":  # come back when the other try must be over
        delay = await n.retries.schedule(event, at_least=decision.wait)
        log.info(
            "delivery under way elsewhere; looking again in %.1fs",
            delay,
            extra={"dossier": event.subject, "delivery": delivery.id},
        )
        return delivery
    if decision.kind == "not_due":  # its retry message is on the way
        return delivery
    if decision.kind == "send":
        delivery = await attempt(delivery, planned, address, contact, notifier=n, tries=n.tries)
    elif decision.kind == "exhausted":
        delivery = await give_up(delivery, reason=exhausted_reason(delivery), permanent=False, n=n)
    # Also on a redelivery: publish the recorded outcome again, with the same event id.
    await settle(delivery, planned, contact, notifier=n, depth=depth)
    return delivery


async def settle(
    delivery: Delivery,
    planned: Planned,
    contact: Mapping[str, Any],
    *,
    notifier: Notifier,
    depth: int = 0,
) -> None:
    """A finished delivery's end: publish its outcome and move it to history; if it failed for
    good, deliver the same event by the channel's fallback (Zalo → SMS), if any."""
    n = notifier
    await conclude(delivery, notifier=n)
    if delivery.status == "failed" and depth < 2:
        event = delivery.trigger
        other = fallback(planned, event.id, routing=n.routing, available=set(n.channels))
        if other is not None:
            await deliver(event, other, contact, notifier=n, depth=depth + 1)


def planned_of(
    delivery: Delivery, *, partners: list[Partner], delivery_id: str | None = None
) -> Planned:
    """The plan a stored delivery was made from (under `delivery_id`, for a resend of it)."""
    key = delivery.recipient_key
    partner = next((p for p in partners if f"partner:{p.id}" == key), None)
    template = delivery.template
    route = (
        ChannelRoute(template=template, zalo_template_id=delivery.zalo_template_id)
        if template
        else None
    )
    return Planned(delivery_id or delivery.id, key, delivery.channel, route=route, partner=partner)


async def take(
    fresh: Delivery,
    *,
    deliveries: Deliveries,
    clock: Clock,
    lease: timedelta,
    tries: int,
    reopen: int = 0,
    stored: bool = False,
) -> tuple[Claim, Delivery]:
    """Load the delivery (or start from `fresh`), decide the claim, and save a new try in one
    guarded write: of handlers racing for it, one wins and the others decide again.

    Most deliveries are new: the first round reads nothing and inserts `fresh`; the insert
    finds out whether one is in flight (refused), and its check of history whether one is
    finished (a redelivered event's: the insert steps back). Either way the next round loads
    it and decides on what is stored. A retry (`stored`) and a replay of a parked message load
    first: they are about a stored one."""
    for round_ in range(LOAD_ROUNDS):
        if round_ == 0 and reopen == 0 and not stored:
            current = fresh
        else:
            current = await deliveries.load(fresh.id) or fresh
        decision = claim(current, now=clock(), lease=lease, tries=tries, reopen=reopen)
        if decision.kind != "send":
            return decision, decision.delivery
        saved = await deliveries.save(current, decision.delivery)
        if saved is not None:
            return decision, saved
    raise DeliveryContended(fresh.id)


async def conclude(delivery: Delivery, *, notifier: Notifier) -> None:
    """A finished delivery: publish its outcome event (confirmed), then move it to history."""
    if not delivery.finished:
        return
    for event in delivery.outbox:
        await notifier.publish(event)
    await notifier.deliveries.archive(delivery)


async def attempt(
    delivery: Delivery,
    planned: Planned,
    address: str,
    contact: Mapping[str, Any],
    *,
    notifier: Notifier,
    tries: int,
) -> Delivery:
    """One try at sending (the try is already saved under our lease); records its outcome."""
    n = notifier
    try:
        message = compose(delivery.trigger, planned, address, contact, templates=n.templates)
        provider_id = await bounded(n.channels[planned.channel].send(message), n.lease / 2)
        # A fault test halts here: the provider has the message, its outcome is not recorded.
        await n.faults.reach("notify.send.after_provider")
    except Exception as caught:
        if isinstance(caught, SendError):
            exc = caught
        else:  # a bug or a bad setting: retried like a transient failure, so the cap applies
            log.exception(
                "unexpected error while sending",
                extra={"dossier": delivery.dossier_code, "delivery": delivery.id},
            )
            exc = SendError(f"unexpected error: {type(caught).__name__}", permanent=False)
        return await _failed_try(delivery, exc, scrub(str(exc), planned.channel, address), n, tries)
    outcome = sent(delivery, provider_id=provider_id, now=n.clock(), source=n.source)
    return await _record(delivery, outcome, n)


async def bounded(send: Awaitable[str], limit: timedelta) -> str:
    """A send cut short well before its lease ends, so no other handler takes it over while it
    is still running (an SMTP thread may linger: its resend carries the same Message-ID)."""
    try:
        async with asyncio.timeout(limit.total_seconds()):
            return await send
    except TimeoutError as exc:
        raise SendError(f"no answer within {limit.total_seconds():g}s", permanent=False) from exc


async def _failed_try(
    delivery: Delivery, exc: SendError, problem: str, n: Notifier, tries: int
) -> Delivery:
    """Schedule a retry of a transient failure while tries are left; else give up."""
    step = after_failure(delivery, exc, problem, tries=tries, delays=n.delays)
    if isinstance(step, Retry):
        delay = await n.retries.schedule(delivery.trigger, at_least=step.wait)
        log.info(
            "delivery failed, retrying in %.1fs",
            delay,
            extra={"dossier": delivery.dossier_code, "delivery": delivery.id, "reason": problem},
        )
        now = n.clock()
        waiting = retrying(
            delivery, reason=problem, next_at=now + timedelta(seconds=delay * 0.9), now=now
        )
        return await _record(delivery, waiting, n)
    return await give_up(delivery, reason=step.reason, permanent=step.permanent, n=n)


async def give_up(delivery: Delivery, *, reason: str, permanent: bool, n: Notifier) -> Delivery:
    """Settle a delivery as failed for good, parking its event for an operator first (a copy
    parked twice reopens once: it says which reopening it is)."""
    log.warning(
        "notification failed",
        extra={"dossier": delivery.dossier_code, "recipient": delivery.recipient, "reason": reason},
    )
    await n.retries.park(
        delivery.trigger, delivery_id=delivery.id, reason=reason, reopen=delivery.reopens + 1
    )
    outcome = failed(delivery, reason=reason, permanent=permanent, now=n.clock(), source=n.source)
    return await _record(delivery, outcome, n)


async def _record(previous: Delivery, outcome: Delivery, n: Notifier) -> Delivery:
    """Save a try's outcome; if our lease ran out and another handler took over, its record
    stands and ours is dropped."""
    saved = await n.deliveries.save(previous, outcome)
    if saved is not None:
        return saved
    log.warning("a try outlived its lease; its outcome is dropped", extra={"delivery": previous.id})
    return await n.deliveries.load(previous.id) or previous


# --- the sweep -----------------------------------------------------------------------------------


async def sweep(*, notifier: Notifier, limit: int = 100) -> int:
    """Finish what a crash or a lost message left in flight long past its due moment (one
    indexed query): publish and move a finished delivery; give up a try that can have no
    other (then try its fallback channel, as `deliver` does); hand any other's event back to
    notify. Each is taken up on its own: one that cannot be read or handled is logged (an
    unreadable one is looked at again only after UNREADABLE_AFTER) and the others go on.
    Returns how many it took up."""
    n = notifier
    now = n.clock()
    stuck = await n.deliveries.stuck(now, limit=limit)
    for delivery in stuck:
        if isinstance(delivery, Unreadable):
            log.error(
                "a stored delivery cannot be read; looking again in %s: %s",
                UNREADABLE_AFTER,
                delivery.error,
                extra={"delivery": delivery.id},
            )
            UNREADABLE.inc()
            await n.deliveries.postpone(delivery, now + UNREADABLE_AFTER)
            continue
        try:
            await _sweep_one(delivery, now=now, n=n)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning(
                "the sweep could not take up a delivery",
                exc_info=True,
                extra={"delivery": delivery.id},
            )
    return len(stuck)


async def _sweep_one(delivery: Delivery, *, now: datetime, n: Notifier) -> None:
    if delivery.resend_of:  # a resend is tried once, and only by hand: no fallback either
        if not delivery.finished:
            reason = exhausted_reason(delivery)
            delivery = await give_up(delivery, reason=reason, permanent=False, n=n)
        await conclude(delivery, notifier=n)
        return
    decision = claim(delivery, now=now, lease=n.lease, tries=n.tries)
    if decision.kind == "exhausted":
        reason = exhausted_reason(delivery)
        delivery = await give_up(delivery, reason=reason, permanent=False, n=n)
    elif not delivery.finished:
        if await n.deliveries.save(delivery, nudged(delivery, now=now)) is not None:
            await n.retries.schedule(delivery.trigger, at_least=0)
        return
    failed_for_good = delivery.status == "failed"  # its fallback needs the applicant's contact
    contact = await n.recipients.recipient(delivery.dossier_code) if failed_for_good else None
    await settle(delivery, planned_of(delivery, partners=n.partners), contact or {}, notifier=n)


async def sweep_forever(*, notifier: Notifier, interval: float) -> None:
    """Sweep at a long interval; failures are logged and tried again on the next round."""
    while True:
        try:
            if count := await sweep(notifier=notifier):
                log.warning("the sweep took up %d stuck delivery(ies)", count)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("delivery sweep failed; will try again", exc_info=True)
        await asyncio.sleep(interval)
