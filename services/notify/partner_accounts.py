"""Use cases of partner accounts and endpoints: operators create partners (the API key shown
once), a partner manages its endpoints (the secret shown once, at creation and at rotation),
resends one message and recovers what failed since a time. Every change is written to the
change log with who made it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from services.notify.endpoint_delivery import PartnerDelivery
from services.notify.endpoint_store import EndpointStore
from services.notify.endpoints import (
    Endpoint,
    PartnerAccount,
    PartnerMessage,
    new_endpoint_id,
)
from services.notify.partners import (
    SigningKeys,
    UnsafeEndpoint,
    check_endpoint_url,
    hash_api_key,
    new_api_key,
    new_secret,
    recover_since,
)
from shared.clock import Clock


class NotFound(LookupError):
    """No such partner, endpoint or message (or not this partner's)."""


MAX_ENDPOINTS = 20


class TooMany(Exception):
    """The partner has as many endpoints as it may."""


class Conflict(Exception):
    """A partner with this id exists, or the record changed meanwhile."""


@dataclass(frozen=True)
class UrlPolicy:
    """Which endpoint addresses are accepted (operators' settings)."""

    allow_private: bool = False
    allow_loopback: bool = False


async def _nothing(event_types: Iterable[str]) -> None:
    return None


@dataclass(frozen=True)
class Accounts:
    """What the use cases need, wired once by the app (or a test)."""

    store: EndpointStore
    delivery: PartnerDelivery
    clock: Clock
    policy: UrlPolicy
    overlap: timedelta
    follow: Callable[[Iterable[str]], Awaitable[None]] = _nothing
    """Bind the partner queue to the event types an endpoint takes
    (endpoint_delivery.Subscriptions); by default nothing (a test without a broker)."""


async def check_url(url: str, policy: UrlPolicy) -> list[str]:
    """Refuse (UnsafeEndpoint) an address the policy does not allow; names are resolved
    without blocking the loop. The addresses checked (none when the policy allows private
    ones): a send connects to one of them, not to what the name resolves to a moment later."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError as exc:
        raise UnsafeEndpoint(f"the URL is not valid: {exc}") from exc
    addresses: list[str] = []
    if host and not policy.allow_private:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, proto=socket.IPPROTO_TCP
            )
            addresses = sorted({str(info[4][0]) for info in infos})
        except OSError:
            addresses = []
    check_endpoint_url(
        url,
        allow_private=policy.allow_private,
        allow_loopback=policy.allow_loopback,
        resolve=lambda _host: addresses,
    )
    return addresses


async def _changed(a: Accounts, partner_id: str, by: str, action: str, **what: Any) -> None:
    await a.store.log_change(
        {"partner_id": partner_id, "by": by, "action": action, **what}, a.clock()
    )


# --- partners (operators) ----------------------------------------------------------------------


async def create_partner(
    a: Accounts, *, partner_id: str, name: str, contact_email: str, scopes: frozenset[str], by: str
) -> tuple[PartnerAccount, str]:
    """A new partner and its API key (shown once; only its hash is kept)."""
    key = new_api_key()
    partner = PartnerAccount(
        id=partner_id,
        name=name,
        contact_email=contact_email,
        scopes=scopes,
        api_key_hash=hash_api_key(key),
        created_at=a.clock(),
        created_by=by,
    )
    if not await a.store.add_partner(partner):
        raise Conflict(partner_id)
    await _changed(
        a, partner_id, by, "partner.created", fields={"name": name, "scopes": sorted(scopes)}
    )
    return partner, key


async def partner(a: Accounts, partner_id: str) -> PartnerAccount:
    found = await a.store.partner(partner_id)
    if found is None:
        raise NotFound(partner_id)
    return found


async def update_partner(
    a: Accounts, partner_id: str, *, by: str, changes: dict[str, Any]
) -> PartnerAccount:
    current = await partner(a, partner_id)
    if "scopes" in changes:
        changes = {**changes, "scopes": frozenset(changes["scopes"])}
    new = replace(current, **changes, version=current.version + 1)
    if not await a.store.save_partner(current, new):
        raise Conflict(partner_id)
    shown = {k: sorted(v) if isinstance(v, frozenset) else v for k, v in changes.items()}
    await _changed(a, partner_id, by, "partner.updated", fields=shown)
    return new


async def new_partner_key(a: Accounts, partner_id: str, *, by: str) -> str:
    """Replace the partner's API key (the old one stops working at once); shown once."""
    current = await partner(a, partner_id)
    key = new_api_key()
    new = replace(current, api_key_hash=hash_api_key(key), version=current.version + 1)
    if not await a.store.save_partner(current, new):
        raise Conflict(partner_id)
    await _changed(a, partner_id, by, "partner.key_replaced")
    return key


async def delete_partner(a: Accounts, partner_id: str, *, by: str) -> None:
    """Delete a partner and its endpoints (their messages expire with the logs)."""
    current = await partner(a, partner_id)
    await a.store.delete_endpoints_of(partner_id)
    if not await a.store.delete_partner(current):
        raise Conflict(partner_id)
    await _changed(a, partner_id, by, "partner.deleted")


# --- endpoints (the partner) -------------------------------------------------------------------


async def create_endpoint(
    a: Accounts, owner: PartnerAccount, *, fields: dict[str, Any], by: str
) -> tuple[Endpoint, str]:
    """A new endpoint and its signing secret (shown once); at most MAX_ENDPOINTS a partner
    (every event reads the enabled endpoints: their number stays small)."""
    if len(await a.store.endpoints_of(owner.id)) >= MAX_ENDPOINTS:
        raise TooMany(f"a partner has at most {MAX_ENDPOINTS} endpoints")
    await check_url(fields["url"], a.policy)
    secret = new_secret()
    endpoint = Endpoint(
        id=new_endpoint_id(),
        partner_id=owner.id,
        url=fields["url"],
        event_types=tuple(fields["event_types"]),
        units=tuple(fields.get("units") or ()),
        description=fields.get("description", ""),
        rate_limit_per_second=float(fields.get("rate_limit_per_second", 10.0)),
        enabled=bool(fields.get("enabled", True)),
        keys=SigningKeys(secret),
        created_at=a.clock(),
        disabled_reason=None if fields.get("enabled", True) else "partner",
    )
    await a.store.add_endpoint(endpoint)
    if endpoint.enabled:
        await a.follow(endpoint.event_types)  # after the write (Subscriptions says why)
    await _changed(
        a, owner.id, by, "endpoint.created", endpoint_id=endpoint.id, fields=_shown(fields)
    )
    return endpoint, secret


def _shown(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


async def endpoint(a: Accounts, owner: PartnerAccount, endpoint_id: str) -> Endpoint:
    found = await a.store.endpoint(endpoint_id)
    if found is None or found.partner_id != owner.id:
        raise NotFound(endpoint_id)
    return found


async def update_endpoint(
    a: Accounts, owner: PartnerAccount, endpoint_id: str, *, changes: dict[str, Any], by: str
) -> Endpoint:
    """Change an endpoint. Enabling it again starts afresh: no failure run, no wait."""
    current = await endpoint(a, owner, endpoint_id)
    if "url" in changes:
        await check_url(changes["url"], a.policy)
    values: dict[str, Any] = dict(changes)
    for name in ("event_types", "units"):
        if name in values:
            values[name] = tuple(values[name] or ())
    if values.get("enabled") is True and not current.enabled:
        values |= {"disabled_reason": None, "failing_since_ms": 0, "next_send_ms": 0}
    elif values.get("enabled") is False and current.enabled:
        values["disabled_reason"] = "partner"
    new = replace(current, **values)
    if not await a.store.save_endpoint(current, new):
        raise Conflict(endpoint_id)
    if new.enabled:
        await a.follow(new.event_types)  # after the write (Subscriptions says why)
    await _changed(
        a, owner.id, by, "endpoint.updated", endpoint_id=endpoint_id, fields=_shown(changes)
    )
    if new.enabled and not current.enabled:
        await a.store.wake(endpoint_id, _ms(a.clock()))
        a.delivery.wake.set()
    return replace(new, version=current.version + 1)


async def delete_endpoint(a: Accounts, owner: PartnerAccount, endpoint_id: str, *, by: str) -> None:
    current = await endpoint(a, owner, endpoint_id)
    if not await a.store.delete_endpoint(current):
        raise Conflict(endpoint_id)
    await _changed(a, owner.id, by, "endpoint.deleted", endpoint_id=endpoint_id)


async def rotate_secret(
    a: Accounts, owner: PartnerAccount, endpoint_id: str, *, by: str
) -> tuple[Endpoint, str]:
    """A new secret (shown once); the old one keeps signing beside it for the overlap."""
    current = await endpoint(a, owner, endpoint_id)
    keys, secret = current.keys.rotate(a.clock(), a.overlap)
    new = replace(current, keys=keys)
    if not await a.store.save_endpoint(current, new):
        raise Conflict(endpoint_id)
    until = keys.previous_until.isoformat() if keys.previous_until else None
    await _changed(
        a, owner.id, by, "endpoint.secret_rotated", endpoint_id=endpoint_id, old_until=until
    )
    return replace(new, version=current.version + 1), secret


async def resend(
    a: Accounts, owner: PartnerAccount, endpoint_id: str, message_id: str, *, by: str
) -> PartnerMessage:
    """Send one message of the endpoint again, now, once."""
    await endpoint(a, owner, endpoint_id)
    message = await a.store.message(message_id)
    if message is None or message.endpoint_id != endpoint_id:
        raise NotFound(message_id)
    await _changed(
        a, owner.id, by, "message.resent", endpoint_id=endpoint_id, message_id=message_id
    )
    return await a.delivery.resend(message)


async def recover(
    a: Accounts, owner: PartnerAccount, endpoint_id: str, *, since: datetime, by: str
) -> int:
    """Every message that failed since `since` (≤ 14 days back) is sent again, once, in the
    background at the endpoint's rate limit. ValueError for a time out of reach."""
    current = await endpoint(a, owner, endpoint_id)
    start = recover_since(since, a.clock())
    moved = await a.delivery.recover(current, start)
    await _changed(
        a,
        owner.id,
        by,
        "endpoint.recovered",
        endpoint_id=endpoint_id,
        since=start.isoformat(),
        messages=moved,
    )
    return moved


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
