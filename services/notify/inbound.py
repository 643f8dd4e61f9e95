"""Status by SMS, notify's side: the SMS gateway's signed webhook for each inbound SMS, read as
`TT <dossier code>`, limited per phone, and published as `sms.status_requested` (intake owns
the status and answers only the dossier's own phone); then the answer, `dossier.status_reported`,
sent back by SMS once, like any delivery.

The gateway's inbound contract: `POST /v1/sms/inbound`, JSON `{from, to, text, received_at,
message_id}`, signed per Standard Webhooks with the shared `whsec_` secret
(`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
id.timestamp.body>`); a timestamp more than five minutes off is refused, and a `message_id`
already taken is answered again without effect."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from services.notify import handlers
from services.notify.messages import mask_phone, webhook_key
from services.notify.ports import Notifier, Publish, Replay
from services.notify.routing import Planned, delivery_id
from shared.contracts import (
    DossierStatusReported,
    Event,
    SmsStatusRequested,
    SmsStatusRequestedData,
    derived_id,
)
from shared.messaging import PermanentFailure

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300  # Standard Webhooks' replay window
WINDOW_SECONDS = 60


class InboundSms(BaseModel):
    """One SMS the gateway received for our number."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    sender: str = Field(alias="from", min_length=1, max_length=32)
    to: str = Field(default="", max_length=32)
    text: str = Field(max_length=1600)
    received_at: datetime
    message_id: str = Field(min_length=1, max_length=200)


class BadSignature(Exception):
    """The webhook call is not signed by the gateway's secret, or not now."""


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float, tolerance: float
) -> str:
    """The `webhook-id` of a call signed with `secret` within `tolerance` seconds of `now`;
    BadSignature otherwise (every `v1,` signature of the header is tried, in constant time)."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit():
        raise BadSignature("missing webhook-id or webhook-timestamp")
    if abs(now - int(stamp)) > tolerance:
        raise BadSignature("timestamp outside the replay window")
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(webhook_key(secret), signed, hashlib.sha256).digest())
    for given in headers.get("webhook-signature", "").split():
        version, _, signature = given.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return msg_id
    raise BadSignature("no signature matches")


# `TT <code>`: any case, a colon or dot after TT, spaces anywhere around (NFKC first, so a
# phone keyboard's full-width letters and odd spaces read as plain ones).
_REQUEST = re.compile(r"^\s*T\s*T\s*[:.\-]?\s*(\S+)\s*$", re.IGNORECASE)
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9.]{0,19}-\d{6}-\d{4,8}$")
_MOBILE = re.compile(r"^(?:\+?84|0)([35789]\d{8})$")


def requested_code(text: str) -> str | None:
    """The dossier code of a `TT <code>` text, upper-cased; None for anything else."""
    match = _REQUEST.match(unicodedata.normalize("NFKC", text))
    if match is None:
        return None
    code = match.group(1).upper()
    return code if _CODE.match(code) else None


def mobile(raw: str) -> str | None:
    """A Vietnamese mobile number in +84 form (the gateway sends `84…`), else None."""
    match = _MOBILE.match(re.sub(r"[\s.\-()]", "", raw))
    return "+84" + match.group(1) if match else None


def estimate(previous: int, current: int, *, elapsed: float) -> float:
    """Requests in the last minute, from this minute's count and the last one's, weighted by
    how much of the last minute is still within a minute of now (a sliding window)."""
    return previous * (1 - elapsed / WINDOW_SECONDS) + current


class Seen(Protocol):
    async def claim(self, message_id: str, now: datetime) -> bool: ...

    async def release(self, message_id: str) -> None: ...


class Counters(Protocol):
    async def hit(self, key: str, window: int) -> int: ...

    async def count(self, key: str, window: int) -> int: ...


Outcome = Literal["requested", "ignored", "duplicate", "limited"]


@dataclass(frozen=True)
class Inbound:
    """What the inbound webhook needs (wired by the app, or by a test with fakes)."""

    seen: Seen
    counters: Counters
    publish: Publish
    clock: Callable[[], datetime]
    per_minute: int
    source: str


async def receive(sms: InboundSms, *, inbound: Inbound) -> Outcome:
    """Take one inbound SMS once (by its message id): count it against its phone, and
    publish the status request it makes, if it is one."""
    now = inbound.clock()
    phone = mobile(sms.sender)
    if not await inbound.seen.claim(sms.message_id, now):
        return "duplicate"
    try:
        return await _take(sms, phone, now, inbound)
    except BaseException:
        await inbound.seen.release(sms.message_id)  # not taken: the gateway's retry is new
        raise


async def _take(sms: InboundSms, phone: str | None, now: datetime, inbound: Inbound) -> Outcome:
    key = phone or sms.sender
    window, offset = divmod(now.timestamp(), WINDOW_SECONDS)
    current = await inbound.counters.hit(key, int(window))
    previous = await inbound.counters.count(key, int(window) - 1)
    if estimate(previous, current, elapsed=offset) > inbound.per_minute:
        log.warning("inbound SMS over the per-phone limit", extra={"phone": mask_phone(key)})
        await inbound.seen.release(sms.message_id)
        return "limited"
    code = requested_code(sms.text)
    if code is None or phone is None:  # no reply: an answer to every stray SMS costs money
        log.info("inbound SMS is no status request", extra={"phone": mask_phone(key)})
        return "ignored"
    event_id = derived_id(f"sms-inbound:{sms.message_id}", SmsStatusRequested.event_type)
    event = SmsStatusRequested.create(
        id=event_id,
        source=inbound.source,
        subject=code,
        time=now,
        data=SmsStatusRequestedData(
            dossier_code=code, phone=phone, message_id=sms.message_id, received_at=sms.received_at
        ),
    )
    await inbound.publish(event)
    log.info("status asked by SMS", extra={"dossier": code, "phone": mask_phone(phone)})
    return "requested"


async def on_status_reported(
    event: Event, notifier: Notifier, replay: Replay | None, returned: bool
) -> None:
    """Send intake's answer by SMS to the phone it names (the dossier's own), whatever
    channels the citizen chose for notices: they asked by SMS. Once per answer, as any
    delivery (its id is the answer's: a redelivered one finds it done)."""
    if not isinstance(event, DossierStatusReported):
        raise PermanentFailure(f"{event.type} is not a dossier.status_reported")
    route = notifier.routing.applicant_channels(event.type).get("sms")
    if route is None or "sms" not in notifier.channels:
        log.warning("a status asked by SMS cannot be answered: SMS is not configured")
        return
    planned = Planned(delivery_id(event.id, "applicant", "sms"), "applicant", "sms", route=route)
    reopen = replay[1] if replay and replay[0] == planned.delivery_id else 0
    contact = {"phone": event.data.phone}
    await handlers.deliver(
        event, planned, contact, notifier=notifier, reopen=reopen, stored=returned
    )


StatusHandler = Callable[[Event, Notifier, Replay | None, bool], Awaitable[None]]


def answering(handled: dict[str, StatusHandler]) -> dict[str, StatusHandler]:
    """Notify's consumer table with status answers sent by `on_status_reported` (to the
    phone that asked) in place of the routed handler (the citizen's chosen channels), if
    the routing table routes them at all."""
    if DossierStatusReported.event_type not in handled:
        return handled
    return {**handled, DossierStatusReported.event_type: on_status_reported}
