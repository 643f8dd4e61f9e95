"""Partner accounts' pure rules: credentials, signing secrets and their rotation, which endpoint
URLs are allowed, and what a delivery attempt's answer means.

No I/O here except the injected resolver of `check_endpoint_url`; the store, the API and the
delivery loop build on these functions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

from services.notify.messages import webhook_signature

# TODO(shared/contracts/identifiers.py): use PartnerId / EndpointId from the fuzz branch once
# it is merged into main; until then the same restricted alphabet is checked here.
PARTNER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"

API_KEY_PREFIX = "mcp_"
SECRET_PREFIX = "whsec_"
DISABLE_AFTER = timedelta(days=5)
RECOVER_AT_MOST = timedelta(days=14)

Outcome = Literal["delivered", "failed", "gone"]
Resolver = Callable[[str], Iterable[str]]


class UnsafeEndpoint(ValueError):
    """The endpoint URL is refused (what, and why, is in the message)."""


def new_api_key() -> str:
    """A partner's API key: shown once, only its hash is stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The stored form of an API key (SHA-256: the key is 256 random bits, no stretching needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), stored_hash)


def new_secret() -> str:
    """A signing secret per Standard Webhooks: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class SigningKeys:
    """An endpoint's signing secrets: the current one and, during a rotation's overlap, the
    previous one until `previous_until`."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def active(self, now: datetime) -> list[str]:
        """The secrets that sign a message sent at `now`: new first, the old one while the
        overlap lasts."""
        if self.previous and self.previous_until and now < self.previous_until:
            return [self.current, self.previous]
        return [self.current]

    def rotate(self, now: datetime, overlap: timedelta) -> tuple[SigningKeys, str]:
        """New keys and the new secret (shown once); the old secret keeps signing for
        `overlap`. Rotating again during an overlap drops the oldest secret."""
        fresh = new_secret()
        keys = replace(self, current=fresh, previous=self.current, previous_until=now + overlap)
        return keys, fresh


def signature_header(secrets_: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: one space-separated `v1,<sig>` entry per active secret."""
    return " ".join(webhook_signature(s, message_id, timestamp, body) for s in secrets_)


def _resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


NOT_PUBLIC_ALSO = (
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments (192.0.0.8 on 3.11)
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
)
"""Special-purpose ranges the Python this runs on may not call private."""


def _not_public(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if any(ip in net for net in NOT_PUBLIC_ALSO if net.version == ip.version):
        return "special-purpose"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:  # fec0::/10, deprecated
        return "site-local"
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        return _not_public(str(ip.sixtofour))  # 2002:7f00:1:: is 127.0.0.1
    if not ip.is_global:  # carrier-grade NAT (100.64.0.0/10) and the like
        return "not-global"
    return None


def check_endpoint_url(
    url: str,
    *,
    allow_private: bool,
    allow_loopback: bool = False,
    resolve: Resolver = _resolve,
) -> None:
    """Refuse (UnsafeEndpoint) a URL that is not http(s), has no host, does not resolve, or
    resolves to any private, loopback or link-local address: every address counts, so a name
    with one public and one private address is refused. `allow_private` lifts the rule;
    `allow_loopback` lifts it for loopback only (tests with partners on 127.0.0.1)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a port that is not a number raises here, not at the send
    except ValueError as exc:
        raise UnsafeEndpoint(f"the URL is not valid: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeEndpoint("the URL must be http(s)://host/...")
    if allow_private:
        return
    try:
        addresses = [host] if _is_ip(host) else list(resolve(host))
    except OSError as exc:
        raise UnsafeEndpoint(f"the host {host} does not resolve") from exc
    if not addresses:
        raise UnsafeEndpoint(f"the host {host} does not resolve")
    for address in addresses:
        kind = _not_public(address)
        if kind is None or (kind == "loopback" and allow_loopback):
            continue
        raise UnsafeEndpoint(f"the host {host} resolves to a {kind} address ({address})")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def outcome(status: int) -> Outcome:
    """What an endpoint's HTTP status means: 2xx delivered, 410 gone (disable at once),
    anything else failed (retried)."""
    if 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    return "failed"


def retry_after(header: str | None, now: datetime, *, cap: timedelta) -> timedelta | None:
    """The wait a `Retry-After` header asks for (seconds or an HTTP date), at most `cap`;
    None when absent or unreadable."""
    if not header:
        return None
    value = header.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to str.isdigit, not to int()
        return timedelta(seconds=min(int(value[:12]), int(cap.total_seconds())))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(when - now, timedelta(0)), cap)


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    """An endpoint failing without a success for DISABLE_AFTER is disabled."""
    return failing_since is not None and now - failing_since >= DISABLE_AFTER


def recover_since(since: datetime, now: datetime) -> datetime:
    """The start of a recovery, refused beyond RECOVER_AT_MOST back or in the future."""
    if since > now:
        raise ValueError("the recovery cannot start in the future")
    if now - since > RECOVER_AT_MOST:
        raise ValueError(f"a recovery goes back at most {RECOVER_AT_MOST.days} days")
    return since
