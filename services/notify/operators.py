"""Operators' use cases: resend one delivery, read a dossier's delivery log a page at a time,
and preview a template with sample data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notify.compose import address_of
from services.notify.domain import (
    Delivery,
    LogKey,
    claim,
    encode_cursor,
    log_page,
    new_delivery,
    resend_id,
    resend_root,
)
from services.notify.handlers import attempt, conclude
from services.notify.messages import APPLICANT_CHANNELS, masked, sms_segments
from services.notify.ports import Deliveries, DeliveryNotFound, Notifier, ResendConflict
from services.notify.routing import ChannelRoute, Planned, Routing
from services.notify.templates import Rendered, Templates


async def resend(delivery_id: str, *, requested_by: str, notifier: Notifier) -> Delivery:
    """An operator's resend of one delivery: a new delivery of the same message, tried once."""
    n = notifier
    original = await n.deliveries.load(delivery_id)
    if original is None:
        raise DeliveryNotFound(delivery_id)
    root = resend_root(original)
    first = original if root == original.id else await n.deliveries.load(root)
    if first is None:
        raise DeliveryNotFound(root)
    new_id = resend_id(original, first, await n.deliveries.resends(first))
    if new_id is None:
        raise ResendConflict(root)
    event = original.trigger
    contact = await n.recipients.recipient(event.subject) or {}
    key = original.recipient_key
    partner = next((p for p in n.partners if f"partner:{p.id}" == key), None)
    template = original.template
    route = (
        ChannelRoute(template=template, zalo_template_id=original.zalo_template_id)
        if template
        else None
    )
    planned = Planned(new_id, key, original.channel, route=route, partner=partner)
    address = address_of(planned, contact)
    fresh = new_delivery(
        event,
        planned,
        masked(planned.channel, address) if address else "",
        now=n.clock(),
        resend_of=root,
        requested_by=requested_by,
    )
    decision = claim(fresh, now=n.clock(), lease=n.lease, tries=1)
    saved = await n.deliveries.save(fresh, decision.delivery)
    if saved is None:  # the other of two clicks at once
        raise ResendConflict(new_id)
    delivery = await attempt(saved, planned, address, contact, notifier=n, tries=1)
    await conclude(delivery, notifier=n)
    return delivery


async def delivery_log(
    dossier_code: str, *, after: LogKey | None, limit: int, deliveries: Deliveries
) -> tuple[list[Delivery], str | None]:
    """A page of a dossier's deliveries, oldest first, and the cursor of the next (if any)."""
    live, archived = await deliveries.log(dossier_code, after=after, limit=limit)
    page, next_key = log_page(live, archived, limit=limit)
    return page, encode_cursor(next_key) if next_key else None


SAMPLE_CONTEXT: dict[str, Any] = {
    "event_type": "sample",
    "dossier_code": "G01.99-260609-0001",
    "full_name": "Nguyễn Thị Lan",
    "procedure_name": "Đăng ký tạm trú",
    "promised_at": datetime(2026, 6, 12, 10, 0, tzinfo=UTC),
    "previous_promised_at": datetime(2026, 6, 12, 10, 0, tzinfo=UTC) - timedelta(days=3),
    "reason": "Cần xác minh thêm thông tin nơi cư trú",
    "missing": ["Giấy tờ chứng minh chỗ ở hợp pháp"],
    "note": "Bản chụp rõ nét, đủ các trang",
    "fee": 7000,
}


@dataclass(frozen=True)
class Previewed:
    template: str
    language: str  # the one asked for, else the routing's default (no template in it)
    rendered: Rendered
    zalo_template_id: str | None


class TemplateNotRouted(LookupError):
    """No template of this channel is routed for this event type."""


def preview(
    event_type: str,
    channel: str,
    language: str,
    *,
    routing: Routing,
    templates: Templates,
    sms_max_segments: int,
) -> Previewed:
    """An event's template for a channel rendered with sample data (SMS as the gateway gets
    it)."""
    route = next(
        (r for c, r in routing.applicant_channels(event_type).items() if c == channel), None
    )
    if channel not in APPLICANT_CHANNELS or route is None:
        raise TemplateNotRouted(f"no {channel} notification is routed for {event_type}")
    context = {**SAMPLE_CONTEXT, "event_type": event_type}
    rendered = templates.render(route.template, channel, context, language=language)
    if channel == "sms":
        text = "".join(sms_segments(rendered.text, max_segments=sms_max_segments))
        rendered = Rendered(rendered.subject, text, rendered.html, rendered.data)
    used = templates.language_of(route.template, channel, language)
    return Previewed(route.template, used, rendered, route.zalo_template_id)
