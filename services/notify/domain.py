"""Notify's decisions over a typed `Delivery` aggregate: may this handler send now (claim), what a
try's outcome makes of the delivery, when to retry, which log page comes next. Pure functions:
they return the new state and the events, and the store only records them."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from services.notify.messages import ChannelName, SendError
from services.notify.routing import Planned
from shared.contracts import (
    Event,
    NotificationFailed,
    NotificationFailedData,
    NotificationSent,
    NotificationSentData,
)

Status = Literal["sending", "retrying", "sent", "failed"]
FINISHED: tuple[Status, ...] = ("sent", "failed")
# How long after its next due moment (lease end, retry, outcome) a delivery still in the live
# collection counts as stuck (a crash, a lost retry message) for the sweep to pick up.
STUCK_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class Delivery:
    """One message to one recipient by one channel, for one event: its state, its tries, the
    lease of the try under way, its last outcome, and the event that outcome emits (outbox).

    `attempts` counts every try started; `base` those started before the latest reopening
    (a replay of a failed delivery counts its tries afresh); `version` how many times it was
    saved (0: not stored yet); `archived`: read from the history of finished deliveries."""

    id: str
    dossier_code: str
    channel: ChannelName
    recipient: str  # masked
    recipient_key: str  # `applicant` or `partner:<id>`
    trigger: Event
    created_at: datetime
    updated_at: datetime
    status: Status = "sending"
    attempts: int = 0
    base: int = 0
    reopens: int = 0
    lease_until: datetime | None = None
    next_at: datetime | None = None
    check_at: datetime | None = None
    reason: str | None = None
    provider_message_id: str | None = None
    sent_at: datetime | None = None
    template: str | None = None
    zalo_template_id: str | None = None
    resend_of: str | None = None
    requested_by: str | None = None
    version: int = 0
    archived: bool = False
    outbox: tuple[Event, ...] = ()

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def tries(self) -> int:
        """Tries started since the delivery was created or last reopened."""
        return self.attempts - self.base


def new_delivery(
    event: Event,
    planned: Planned,
    recipient: str,
    *,
    now: datetime,
    resend_of: str | None = None,
    requested_by: str | None = None,
) -> Delivery:
    """The delivery `planned` would be if nothing is stored for it yet (not tried, version 0)."""
    route = planned.route
    return Delivery(
        id=planned.delivery_id,
        dossier_code=event.subject,
        channel=planned.channel,
        recipient=recipient,
        recipient_key=planned.recipient,
        trigger=event,
        created_at=now,
        updated_at=now,
        template=route.template if route else None,
        zalo_template_id=route.zalo_template_id if route else None,
        resend_of=resend_of,
        requested_by=requested_by,
    )


# --- claim ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """What a handler may do with a delivery now.

    `send`: save `delivery` (a new try under this handler's lease), then send; `finished`: the
    outcome is recorded; `busy`: a try started less than a lease ago (`wait` seconds left);
    `not_due`: a retry is scheduled and comes back by itself; `exhausted`: every try was started
    and the last never recorded its outcome (the sender crashed or hung each time)."""

    kind: Literal["send", "finished", "busy", "not_due", "exhausted"]
    delivery: Delivery
    wait: float = 0.0


def claim(
    delivery: Delivery, *, now: datetime, lease: timedelta, tries: int, reopen: int = 0
) -> Claim:
    """Decide whether this handler takes the next try of `delivery`. `reopen` is the replay a
    parked message is (0: none): a failed delivery reopens once per replay, its tries afresh."""
    if reopen > delivery.reopens and delivery.status == "failed":
        delivery = replace(
            delivery, status="retrying", base=delivery.attempts, reopens=reopen, next_at=None
        )
    if delivery.finished:
        return Claim("finished", delivery)
    if delivery.version and delivery.status == "sending" and delivery.lease_until is not None:
        if now < delivery.lease_until:
            return Claim("busy", delivery, wait=(delivery.lease_until - now).total_seconds())
        if delivery.tries >= tries:  # no try left to take over
            return Claim("exhausted", delivery)
    elif delivery.status == "retrying" and delivery.next_at is not None and now < delivery.next_at:
        return Claim("not_due", delivery)
    until = now + lease
    return Claim(
        "send",
        replace(
            delivery,
            status="sending",
            attempts=delivery.attempts + 1,
            lease_until=until,
            next_at=None,
            check_at=until + STUCK_AFTER,
            updated_at=now,
            outbox=(),
        ),
    )


# --- outcomes ------------------------------------------------------------------------------------


def outcome_key(delivery: Delivery) -> str:
    """What a delivery's notification.* event id derives from: a reopened delivery's new
    outcome is a new event."""
    return f"{delivery.id}:reopen{delivery.reopens}" if delivery.reopens else delivery.id


def _about(delivery: Delivery) -> dict[str, Any]:
    return {
        "dossier_code": delivery.dossier_code,
        "channel": delivery.channel,
        "recipient": delivery.recipient,
        "trigger_event_id": delivery.trigger.id,
        "trigger_event_type": delivery.trigger.type,
    }


def _settled(delivery: Delivery, now: datetime, event: Event, **fields: Any) -> Delivery:
    return replace(
        delivery,
        **fields,
        lease_until=None,
        next_at=None,
        check_at=now + STUCK_AFTER,
        updated_at=now,
        outbox=(event,),
    )


def sent(delivery: Delivery, *, provider_id: str, now: datetime, source: str) -> Delivery:
    """The try was delivered: the delivery is sent, with its `notification.sent` to publish."""
    event = NotificationSent.caused_by(
        delivery.trigger,
        source=source,
        time=now,
        key=outcome_key(delivery),
        data=NotificationSentData(**_about(delivery), sent_at=now, provider_message_id=provider_id),
    )
    return _settled(
        delivery,
        now,
        event,
        status="sent",
        provider_message_id=provider_id,
        sent_at=now,
        reason=None,
    )


def failed(
    delivery: Delivery, *, reason: str, permanent: bool, now: datetime, source: str
) -> Delivery:
    """The delivery failed for good, with its `notification.failed` to publish."""
    event = NotificationFailed.caused_by(
        delivery.trigger,
        source=source,
        time=now,
        key=outcome_key(delivery),
        data=NotificationFailedData(
            **_about(delivery), failed_at=now, reason=reason, permanent=permanent
        ),
    )
    return _settled(delivery, now, event, status="failed", reason=reason)


def retrying(delivery: Delivery, *, reason: str, next_at: datetime, now: datetime) -> Delivery:
    """A transient failure: the delivery waits for its retry message, due at `next_at`."""
    return replace(
        delivery,
        status="retrying",
        reason=reason,
        lease_until=None,
        next_at=next_at,
        check_at=next_at + STUCK_AFTER,
        updated_at=now,
        outbox=(),
    )


def exhausted_reason(delivery: Delivery) -> str:
    return f"gave up after {delivery.tries} tries: no outcome was recorded"


@dataclass(frozen=True)
class Retry:
    wait: float  # seconds, at least


@dataclass(frozen=True)
class GiveUp:
    reason: str
    permanent: bool


def after_failure(
    delivery: Delivery, failure: SendError, problem: str, *, tries: int, delays: list[float]
) -> Retry | GiveUp:
    """Retry a transient failure while tries are left; else give up. `problem` is the failure
    as it may be shown (the address scrubbed)."""
    if not failure.permanent and delivery.tries < tries:
        return Retry(retry_wait(delays, failure, tries_made=delivery.tries))
    reason = problem if failure.permanent else f"gave up after {delivery.tries} tries: {problem}"
    return GiveUp(reason, failure.permanent)


def backoff_delays(base_seconds: float, tries: int) -> list[float]:
    """The wait before retry 1, 2, ... of a delivery that may be tried `tries` times."""
    return [base_seconds * 2**level for level in range(max(tries - 1, 1))]


def retry_wait(delays: list[float], failure: SendError, *, tries_made: int) -> float:
    """The wait before retrying after `tries_made` tries: the backoff, or its longest step for a
    failure someone has to fix first (`slow`)."""
    return delays[-1 if failure.slow else min(tries_made - 1, len(delays) - 1)]


def pick_delay(delays: list[float], at_least: float) -> int:
    """The index of the shortest delay that is at least `at_least` (else the longest)."""
    for index, delay in enumerate(delays):
        if delay >= at_least:
            return index
    return len(delays) - 1


def nudged(delivery: Delivery, *, now: datetime) -> Delivery:
    """A stuck delivery whose event the sweep handed back: not stuck again before long."""
    return replace(delivery, check_at=now + STUCK_AFTER)


# --- resends -------------------------------------------------------------------------------------


def resend_id(original: Delivery, root: Delivery, resends: Iterable[Delivery]) -> str | None:
    """The id of an operator's next resend of `original`'s message, or None while the message's
    first delivery or its latest resend is still under way. Two requests at once compute the
    same id, so only one of them creates it."""
    latest = max(resends, key=lambda d: _resend_number(d.id), default=None)
    if any(d is not None and not d.finished for d in (root, latest)):
        return None
    number = _resend_number(latest.id) if latest else 0
    return f"{resend_root(original)}:resend{number + 1}"


def resend_root(delivery: Delivery) -> str:
    return delivery.resend_of or delivery.id


def _resend_number(delivery_id: str) -> int:
    return int(delivery_id.rpartition(":resend")[2])


# --- the delivery log ----------------------------------------------------------------------------

# Where a delivery stands in its dossier's log: creation time (fixed width, UTC), then id. One
# string, so one index key orders the log (a compound index naming `_id` breaks nx-27017 0.8.1),
# in ISO 8601's basic form: nx-27017 0.8.1 compares a string that starts like an extended ISO
# date wrongly (`$gt` matches nothing).
LogKey = str
LOG_TIME = "%Y%m%dT%H%M%S%f"


def log_key(delivery: Delivery) -> LogKey:
    return f"{delivery.created_at.astimezone(UTC):{LOG_TIME}}|{delivery.id}"


def log_page(
    live: Iterable[Delivery], archived: Iterable[Delivery], *, limit: int
) -> tuple[list[Delivery], LogKey | None]:
    """One page of a dossier's log, oldest first, from both pages read (each sorted, `limit + 1`
    long): a delivery in both (reopened, or moved a moment ago) counts once, as saved last.
    Returns the page and where the next one starts (None: this is the last)."""
    newest: dict[str, Delivery] = {}
    for delivery in (*live, *archived):
        kept = newest.get(delivery.id)
        if kept is None or delivery.version > kept.version:
            newest[delivery.id] = delivery
    ordered = sorted(newest.values(), key=log_key)
    page = ordered[:limit]
    return page, (log_key(page[-1]) if len(ordered) > limit else None)


def encode_cursor(key: LogKey) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def decode_cursor(cursor: str) -> LogKey:
    """The position a cursor this API gave stands for (ValueError if it is not one)."""
    try:
        key = base64.urlsafe_b64decode(cursor.encode()).decode()
        at, _, delivery_id = key.partition("|")
        datetime.strptime(at, LOG_TIME)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise ValueError("not a cursor of this log") from exc
    if not delivery_id:
        raise ValueError("not a cursor of this log")
    return key
