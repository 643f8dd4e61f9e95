"""What a channel sends and the words it is made of: the Message, addresses (masked for logs and
events), SMS text in GSM-7 segments, Standard Webhooks signatures, and how a provider's answer
reads as a failure (SendError). Pure functions, no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

ChannelName = Literal["email", "sms", "zalo", "webhook"]
APPLICANT_CHANNELS: tuple[ChannelName, ...] = ("email", "sms", "zalo")


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
