"""Notify's pure rules: routing, addresses, SMS text, retry delays and webhook signatures."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

ChannelName = Literal["email", "sms", "zalo", "webhook"]
APPLICANT_CHANNELS: tuple[ChannelName, ...] = ("email", "sms", "zalo")
TRACKING_NAMESPACE = uuid.UUID("1b7f4a52-3f0c-4c58-9a77-4d2d0f0c3a11")

PROCEDURE_NAMES = {
    "1.004222": "Đăng ký thường trú",
    "1.004194": "Đăng ký tạm trú",
    "1.002755": "Gia hạn tạm trú",
    "1.003677": "Khai báo tạm vắng",
    "2.001159": "Thông báo lưu trú",
    "2.001178": "Xác nhận số Chứng minh nhân dân",
    "1.001456": "Cấp hộ chiếu phổ thông",
}


class SendError(Exception):
    """A channel could not deliver; `permanent` says whether retrying can help, `slow` that a
    retry should wait longest (a credential or setting someone has to fix first)."""

    def __init__(self, message: str, *, permanent: bool, slow: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.slow = slow


# Our own credentials or proxy refused: nothing about the message is wrong, and everything sent
# meanwhile would be lost if these were final. Retried, with the longest wait.
CREDENTIAL_HTTP_STATUSES = (401, 403, 407)
CREDENTIAL_SMTP_CODES = (454, 530, 535)
# Zalo ZNS error codes worth a retry: -100 "unknown error, try again later" (zalo.cloud).
ZALO_TRANSIENT_ERRORS = (-100,)


@dataclass(frozen=True)
class Message:
    """One message for one channel, ready to hand to its adapter.

    `to` is the address (e-mail), the phone (SMS, Zalo) or the partner id (webhook);
    `tracking_id` is the same on every attempt, so a provider can spot a resend."""

    channel: ChannelName
    to: str
    tracking_id: str
    subject: str = ""
    text: str = ""
    html: str = ""
    template_id: str = ""
    template_data: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""


# --- routing as data ---------------------------------------------------------------------------


class ChannelRoute(BaseModel):
    """Which template (a folder of the templates directory) a channel uses for an event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    template: str = Field(min_length=1)
    zalo_template_id: str | None = Field(
        default=None, description="The ZNS template id Zalo approved (Zalo only)."
    )


class Routing(BaseModel):
    """Event type → recipients → channels → template, plus fallbacks between channels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_language: str = "vi"
    fallbacks: dict[ChannelName, ChannelName] = Field(default_factory=dict)
    routes: dict[str, dict[Literal["applicant"], dict[ChannelName, ChannelRoute]]]

    def applicant_channels(self, event_type: str) -> dict[ChannelName, ChannelRoute]:
        return dict(self.routes.get(event_type, {}).get("applicant", {}))


class Partner(BaseModel):
    """A partner system that receives signed webhooks for the event types it subscribes to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    url: str = Field(pattern=r"^https?://")
    secret: str = Field(pattern=r"^whsec_[A-Za-z0-9+/=]{24,}$", repr=False)
    events: list[str] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _parsable(cls, url: str) -> str:
        if not urlsplit(url).hostname:  # urlsplit raises ValueError on a broken IPv6 host
            raise ValueError("the URL has no host")
        return url

    @field_validator("secret")
    @classmethod
    def _decodable(cls, secret: str) -> str:
        try:
            webhook_key(secret)
        except binascii.Error as exc:
            raise ValueError("the part after whsec_ is not valid base64") from exc
        return secret

    @field_validator("events")
    @classmethod
    def _no_loops(cls, events: list[str]) -> list[str]:
        if any(e.startswith("notification.") for e in events):
            raise ValueError("notification events would notify about themselves")
        return events


@dataclass(frozen=True)
class Planned:
    """One delivery an event calls for: to whom, by which channel, with which template."""

    delivery_id: str
    recipient: str  # `applicant` or `partner:<id>`
    channel: ChannelName
    route: ChannelRoute | None = None
    partner: Partner | None = None


def delivery_id(event_id: str, recipient: str, channel: str) -> str:
    """The key that makes a send happen once: event × recipient × channel."""
    return f"{event_id}:{recipient}:{channel}"


def tracking_id(delivery: str) -> str:
    """A short stable id given to the provider on every attempt of one delivery."""
    return uuid.uuid5(TRACKING_NAMESPACE, delivery).hex


def plan(
    event_type: str,
    event_id: str,
    *,
    routing: Routing,
    partners: list[Partner],
    chosen: list[str] | None,
    available: set[str],
) -> list[Planned]:
    """The deliveries an event calls for. `chosen` is the applicant's channels (None: unknown
    yet); channels without a configured provider are left out."""
    planned = [
        Planned(
            delivery_id(event_id, f"partner:{p.id}", "webhook"),
            f"partner:{p.id}",
            "webhook",
            partner=p,
        )
        for p in partners
        if event_type in p.events and "webhook" in available
    ]
    if chosen is not None:
        for channel, route in routing.applicant_channels(event_type).items():
            if channel in chosen and channel in available:
                planned.append(
                    Planned(
                        delivery_id(event_id, "applicant", channel),
                        "applicant",
                        channel,
                        route=route,
                    )
                )
    return planned


def fallback(
    planned: Planned, event_id: str, *, routing: Routing, available: set[str]
) -> Planned | None:
    """The delivery to try when `planned` failed for good (Zalo → SMS), if any. It has the id
    the fallback channel's own delivery would have, so a citizen who chose both gets one."""
    target = routing.fallbacks.get(planned.channel)
    if planned.recipient != "applicant" or planned.route is None:
        return None
    if target is None or target not in available:
        return None
    return Planned(
        delivery_id(event_id, "applicant", target),
        "applicant",
        target,
        route=ChannelRoute(template=planned.route.template),
    )


# --- addresses ---------------------------------------------------------------------------------


def mask_email(address: str) -> str:
    """`lan.nguyen@example.vn` → `l***@example.vn`: enough to recognise, not to reuse."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_phone(phone: str) -> str:
    """`+84912345678` → `+849*****678`."""
    digits = phone.strip()
    return f"{digits[:4]}*****{digits[-3:]}" if len(digits) >= 8 else "***"


def phone_84(phone: str) -> str:
    """A Vietnamese mobile number in the `84xxxxxxxxx` form Zalo and SMS gateways expect."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if digits.startswith("0"):
        digits = "84" + digits[1:]
    if not (digits.startswith("84") and len(digits) == 11):
        raise SendError(f"not a Vietnamese mobile number: {mask_phone(phone)}", permanent=True)
    return digits


def masked(channel: str, address: str) -> str:
    """The recipient as events and logs may show it."""
    if channel == "email":
        return mask_email(address)
    if channel in ("sms", "zalo"):
        return mask_phone(address)
    return address  # a partner id


def scrub(text: str, channel: str, address: str) -> str:
    """`text` (a provider's error, say) without the full address in any form it may take."""
    if not address or channel == "webhook":
        return text
    forms = {address}
    digits = "".join(ch for ch in address if ch.isdigit())
    if channel != "email" and len(digits) >= 9:
        forms |= {digits, "0" + digits[-9:], digits[-9:]}  # 84…, 0…, and the bare 9 digits
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, masked(channel, address))
    return text


# --- SMS ---------------------------------------------------------------------------------------

SINGLE_SEGMENT = 160
CONCATENATED_SEGMENT = 153  # a 7-bit segment of a multi-part SMS keeps 7 characters of header


# Characters with no decomposition: their ASCII look-alikes (before and after NFKD: `½` becomes
# `1⁄2`). The backtick is ASCII but not GSM-7, so it becomes an apostrophe too.
ASCII_LOOKALIKES = str.maketrans(
    {
        "đ": "d", "Đ": "D", "–": "-", "—": "-", "‐": "-", "‑": "-", "−": "-", "‘": "'",
        "’": "'", "‚": "'", "`": "'", "“": '"', "”": '"', "„": '"', "«": '"', "»": '"',
        "•": "-", "·": "-", "×": "x", "÷": "/", "⁄": "/", "…": "...",
    }
)  # fmt: skip
# GSM-7 characters sent as an escape and the character: two septets each.
GSM_EXTENDED = frozenset("[]{}\\^~|")


def ascii_text(text: str) -> str:
    """Vietnamese without diacritics, in plain ASCII: `Hồ sơ đã duyệt` → `Ho so da duyet`;
    dashes and quotes as their ASCII look-alikes, anything else without one as a space."""
    decomposed = unicodedata.normalize("NFKD", text.translate(ASCII_LOOKALIKES))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch if ch.isascii() else " " for ch in stripped.translate(ASCII_LOOKALIKES))


def septets(text: str) -> int:
    """The GSM-7 length of ASCII `text`: what an SMS segment's limit counts."""
    return len(text) + sum(ch in GSM_EXTENDED for ch in text)


def _fit(text: str, budget: int) -> int:
    """How many leading characters of `text` fit in `budget` septets."""
    used = 0
    for index, ch in enumerate(text):
        used += 2 if ch in GSM_EXTENDED else 1
        if used > budget:
            return index
    return len(text)


def sms_segments(text: str, *, max_segments: int) -> list[str]:
    """`text` as ASCII SMS segments, cut (with `...`) to fit `max_segments` (counted in GSM-7
    septets: `[ ] { } \\ ^ ~ |` take two)."""
    text = " ".join(ascii_text(text).split())
    if septets(text) <= SINGLE_SEGMENT:
        return [text]
    limit = max_segments * CONCATENATED_SEGMENT if max_segments > 1 else SINGLE_SEGMENT
    if septets(text) > limit:
        text = text[: _fit(text, limit - 3)].rstrip() + "..."
    if septets(text) <= SINGLE_SEGMENT:
        return [text]
    parts = []
    while text:
        cut = _fit(text, CONCATENATED_SEGMENT)
        parts.append(text[:cut])
        text = text[cut:]
    return parts


# --- failures and retries ----------------------------------------------------------------------


def http_failure(status: int, detail: str) -> SendError | None:
    """None for a 2xx answer; else a SendError, transient for 408, 429 and 5xx, and for our
    own credentials refused (401, 403, 407: retried after the longest wait)."""
    if 200 <= status < 300:
        return None
    if status in CREDENTIAL_HTTP_STATUSES:
        return SendError(f"HTTP {status}: {detail[:200]}", permanent=False, slow=True)
    transient = status in (408, 429) or status >= 500
    return SendError(f"HTTP {status}: {detail[:200]}", permanent=not transient)


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


# --- Standard Webhooks -------------------------------------------------------------------------


def webhook_key(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for (binascii.Error if it is not base64)."""
    return base64.b64decode(secret.removeprefix("whsec_") + "==")


def webhook_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` keyed by the `whsec_` secret."""
    key = webhook_key(secret)
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"
