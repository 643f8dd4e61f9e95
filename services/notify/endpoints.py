"""Partner accounts and their endpoints, as the API manages them: which events an endpoint
takes, the message a partner gets (its projection), and what one attempt's answer makes of the
message and the endpoint. Pure functions over frozen records; `endpoint_store` records them.

An endpoint sends its messages one at a time, oldest event first (per endpoint, hence per
dossier, in order), spaced by its rate limit. A failed message waits for its retry (the
backoff, or `Retry-After`) and holds the ones behind it; after its tries it is failed and the
next goes. 410 disables the endpoint at once; failures without a success for DISABLE_AFTER
disable it too. A recovery sends each failed message since T again, once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from services.notify.partners import (
    Outcome,
    SigningKeys,
    outcome,
    should_disable,
)
from shared.contracts import (
    Event,
    PartnerEndpointDisabled,
    PartnerEndpointDisabledData,
)
from shared.contracts.projections import project_json

MessageState = Literal["pending", "delivered", "failed"]
DisabledReason = Literal["gone", "failing", "partner", "operator"]
# Not subscribable: notify's own outcomes and operational events would notify about themselves.
UNSUBSCRIBABLE_PREFIXES = ("notification.", "partner.")
SEQ_TIME = "%Y%m%dT%H%M%S%f"  # ISO basic form: nx-27017 0.8.1 compares the extended one wrongly
EXCERPT = 500  # characters of an answer kept in the attempt log


def millis(at: datetime) -> int:
    """A moment as epoch milliseconds: what mutable fields store (nx-27017 0.8.1 reads a
    datetime written by `$set` back as a naive string)."""
    return int(at.timestamp() * 1000)


def moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def new_endpoint_id() -> str:
    return "ep_" + secrets.token_hex(8)


@dataclass(frozen=True)
class PartnerAccount:
    """A partner as operators created it: who to tell, what it may see (`scopes`)."""

    id: str
    name: str
    contact_email: str
    scopes: frozenset[str]
    api_key_hash: str
    created_at: datetime
    created_by: str
    version: int = 1


@dataclass(frozen=True)
class Endpoint:
    """A partner's webhook endpoint: where, what (event types; units, empty = the whole
    province), how fast, and its delivery state (`failing_since_ms`, `next_send_ms`: when it
    may send again, after a success by its rate limit, after a failure by its retry)."""

    id: str
    partner_id: str
    url: str
    event_types: tuple[str, ...]
    units: tuple[str, ...]
    description: str
    rate_limit_per_second: float
    enabled: bool
    keys: SigningKeys
    created_at: datetime
    disabled_reason: DisabledReason | None = None
    failing_since_ms: int = 0
    next_send_ms: int = 0
    last_status: int | None = None
    version: int = 1

    @property
    def failing_since(self) -> datetime | None:
        return moment(self.failing_since_ms) if self.failing_since_ms else None

    @property
    def spacing(self) -> timedelta:
        """The least time between two sends (the rate limit)."""
        return timedelta(seconds=1 / self.rate_limit_per_second)


def unit_of(event: Event) -> str | None:
    """The unit an event belongs to: its `unit_id`, else its `ward_code` (a submission names
    the ward whose police receive it), else none (it goes to whole-province endpoints only)."""
    data = event.data
    for name in ("unit_id", "ward_code"):
        value = getattr(data, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def wants(endpoint: Endpoint, event: Event) -> bool:
    """Whether `endpoint` takes `event`: enabled, one of its types, one of its units (none
    listed: the whole province)."""
    if not endpoint.enabled or event.type not in endpoint.event_types:
        return False
    return not endpoint.units or unit_of(event) in endpoint.units


def subscribable(event_type: str, known: set[str]) -> bool:
    return event_type in known and not event_type.startswith(UNSUBSCRIBABLE_PREFIXES)


def seq_of(event: Event) -> str:
    """Where a message stands in its endpoint's order: the event's time, then its id."""
    return f"{event.time.astimezone(UTC):{SEQ_TIME}}|{event.id}"


def message_id(endpoint_id: str, event_id: str) -> str:
    """One message per endpoint and event: the key that makes a redelivered event no second
    message."""
    return f"{endpoint_id}:{event_id}"


def webhook_id(message: str) -> str:
    """The `webhook-id` header: the same on every attempt of one message."""
    return "msg_" + hashlib.sha256(message.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PartnerMessage:
    """One event for one endpoint: its projection as sent (`body`), where it stands in the
    endpoint's order, and how its tries went. `try_limit`: how many tries it gets (a
    recovery's is one more)."""

    id: str
    endpoint_id: str
    partner_id: str
    event_id: str
    event_type: str
    dossier: str
    seq: str
    body: bytes
    created_at: datetime
    state: MessageState = "pending"
    tries: int = 0
    try_limit: int = 1
    last_status: int | None = None
    reason: str | None = None
    recovered: int = 0
    ready_ms: int = 0  # not sent before: an earlier event of its dossier may still come
    version: int = 0


def new_message(
    endpoint: Endpoint,
    event: Event,
    scopes: frozenset[str],
    *,
    tries: int,
    now: datetime,
    window: timedelta = timedelta(0),
) -> PartnerMessage:
    """The message `endpoint` gets for `event`: the partner's projection, as sent."""
    return PartnerMessage(
        id=message_id(endpoint.id, event.id),
        endpoint_id=endpoint.id,
        partner_id=endpoint.partner_id,
        event_id=event.id,
        event_type=event.type,
        dossier=event.subject,
        seq=seq_of(event),
        body=project_json(event, scopes),
        created_at=now,
        try_limit=tries,
        ready_ms=millis(now + window),
    )


@dataclass(frozen=True)
class Answer:
    """What one attempt got: an HTTP status (None: no answer), the excerpt, the wait a
    `Retry-After` asked for, the time it took."""

    status: int | None
    excerpt: str
    latency_ms: int
    wait: timedelta | None = None
    error: str | None = None

    @property
    def outcome(self) -> Outcome:
        return "failed" if self.status is None else outcome(self.status)


@dataclass(frozen=True)
class Step:
    """What an attempt makes of the message and its endpoint, and the event to publish when
    it disabled the endpoint."""

    message: PartnerMessage
    endpoint: Endpoint
    disabled: PartnerEndpointDisabled | None = None


def backoff(tries: int, *, base: timedelta, cap: timedelta) -> timedelta:
    """The wait after the `tries`-th failed try: base, doubling, at most `cap`."""
    factor: int = 2 ** max(tries - 1, 0)
    return min(base * factor, cap)


def after_attempt(
    message: PartnerMessage,
    endpoint: Endpoint,
    answer: Answer,
    *,
    now: datetime,
    base: timedelta,
    cap: timedelta,
    source: str,
) -> Step:
    """Decide the outcome of one attempt of `message` (its try already counted)."""
    sent = replace(message, last_status=answer.status, reason=answer.error)
    spaced = millis(now + endpoint.spacing)
    kind = answer.outcome
    if kind == "delivered":
        return Step(
            replace(sent, state="delivered", reason=None),
            replace(endpoint, failing_since_ms=0, next_send_ms=spaced, last_status=answer.status),
        )
    failing = endpoint.failing_since_ms or millis(now)
    endpoint = replace(endpoint, failing_since_ms=failing, last_status=answer.status)
    if kind == "gone" or should_disable(moment(failing), now):
        reason: DisabledReason = "gone" if kind == "gone" else "failing"
        return disable(
            replace(sent, state="failed"), endpoint, reason=reason, now=now, source=source
        )
    if message.tries >= message.try_limit:
        return Step(replace(sent, state="failed"), replace(endpoint, next_send_ms=spaced))
    wait = max(answer.wait or backoff(message.tries, base=base, cap=cap), endpoint.spacing)
    return Step(sent, replace(endpoint, next_send_ms=millis(now + wait)))


def disable(
    message: PartnerMessage,
    endpoint: Endpoint,
    *,
    reason: DisabledReason,
    now: datetime,
    source: str,
) -> Step:
    """The endpoint disabled by its answers, with the operational event that says so (its id
    derives from the endpoint and the run of failures: published again, it is the same)."""
    event = PartnerEndpointDisabled.create(
        id=disabled_event_id(endpoint),
        source=source,
        subject=f"partner-endpoint:{endpoint.id}",
        time=now,
        data=PartnerEndpointDisabledData(
            partner_id=endpoint.partner_id,
            endpoint_id=endpoint.id,
            url=endpoint.url,
            reason="gone" if reason == "gone" else "failing",
            failing_since=endpoint.failing_since,
            disabled_at=now,
            last_status=endpoint.last_status,
        ),
    )
    off = replace(endpoint, enabled=False, disabled_reason=reason)
    return Step(message, off, event)


def disabled_event_id(endpoint: Endpoint) -> str:
    digest = hashlib.sha256(f"{endpoint.id}/{endpoint.failing_since_ms}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def excerpt(text: str) -> str:
    return text[:EXCERPT]
