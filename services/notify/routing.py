"""Routing as data: which deliveries an event calls for (recipients × channels × templates),
partners' subscriptions, and the fallbacks between channels."""

from __future__ import annotations

import binascii
import uuid
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.notify.messages import ChannelName, webhook_key
from services.notify.partners import SigningKeys

TRACKING_NAMESPACE = uuid.UUID("1b7f4a52-3f0c-4c58-9a77-4d2d0f0c3a11")


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
    previous_secret: str | None = Field(
        default=None, pattern=r"^whsec_[A-Za-z0-9+/=]{24,}$", repr=False
    )
    # Aware: a naive time would fail every send at the comparison; refused at start instead.
    previous_secret_until: AwareDatetime | None = None
    scopes: list[Literal["personal_data"]] = Field(
        default_factory=list,
        description="What it may see beyond the projection: `personal_data` (personal ID, "
        "name, phone, e-mail, date of birth, address). Without it, every event is sent as its "
        "projection, as to partners of the partner API.",
    )

    def signing_keys(self) -> SigningKeys:
        """The secrets that sign this partner's webhooks (the previous one during a rotation)."""
        return SigningKeys(self.secret, self.previous_secret, self.previous_secret_until)

    @field_validator("url")
    @classmethod
    def _parsable(cls, url: str) -> str:
        if not urlsplit(url).hostname:  # urlsplit raises ValueError on a broken IPv6 host
            raise ValueError("the URL has no host")
        return url

    @field_validator("secret", "previous_secret")
    @classmethod
    def _decodable(cls, secret: str | None) -> str | None:
        if secret is None:
            return secret
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
