"""The words of a delivery: the template's context, the address, the message to send."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError

from services.notify.domain import (
    PROCEDURE_NAMES,
    ChannelRoute,
    Message,
    Planned,
    SendError,
    masked,
    tracking_id,
)
from services.notify.templates import Templates, UnknownTemplate
from shared.contracts import DossierSubmittedData, Event


def chosen_channels(data: DossierSubmittedData) -> list[str]:
    """The channels the applicant chose. An explicit empty choice is an opt-out; only an
    older event, which has no choice at all, falls back to e-mail when there is an address."""
    if "notify_by" in data.model_fields_set:
        return list(data.notify_by)
    return ["email"] if data.applicant.email else []


def template_context(event: Event, contact: Mapping[str, Any]) -> dict[str, Any]:
    """What templates may use, from the event and what the submission told us."""
    data = event.data.model_dump()
    procedure = data.get("procedure_code") or contact.get("procedure_code") or ""
    return {
        "event_type": event.type,
        "dossier_code": event.subject,
        "full_name": contact.get("full_name") or "",
        "procedure_name": PROCEDURE_NAMES.get(procedure, f"thủ tục {procedure}"),
        # Review fills in the promised date in force; until then, the one given at submission.
        "promised_at": data.get("promised_at") or contact.get("promised_at"),
        "previous_promised_at": data.get("previous_promised_at"),
        "reason": data.get("reason"),
        "missing": list(data.get("missing") or []),
        "note": data.get("note"),
        "fee": contact.get("fee"),
    }


def address_of(planned: Planned, contact: Mapping[str, Any]) -> str:
    if planned.recipient.startswith("partner:"):
        return planned.recipient.removeprefix("partner:")
    key = "email" if planned.channel == "email" else "phone"
    return str(contact.get(key) or "")


def compose(
    event: Event,
    planned: Planned,
    address: str,
    contact: Mapping[str, Any],
    *,
    templates: Templates,
) -> Message:
    """The message of one delivery. Raises a permanent SendError if it cannot be made."""
    tracking = tracking_id(planned.delivery_id)
    if planned.channel == "webhook":
        return Message("webhook", address, tracking, body=event.to_json())
    if not address:
        raise SendError(f"the applicant gave no {planned.channel} address", permanent=True)
    route = planned.route or ChannelRoute(template=event.type)
    try:
        rendered = templates.render(
            route.template, planned.channel, template_context(event, contact)
        )
    except (UnknownTemplate, TemplateError, ValueError) as exc:
        raise SendError(
            f"template {route.template}/{planned.channel}: {exc}", permanent=True
        ) from exc
    return Message(
        planned.channel,
        address,
        tracking,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        template_id=route.zalo_template_id or "",
        template_data=rendered.data,
    )


def delivery_fields(event: Event, planned: Planned, address: str) -> dict[str, Any]:
    """What the delivery log keeps about a delivery (the address only masked)."""
    route = planned.route
    return {
        "dossier_code": event.subject,
        "channel": planned.channel,
        "recipient": masked(planned.channel, address) if address else "",
        "recipient_key": planned.recipient,
        "trigger_event_id": event.id,
        "trigger_event_type": event.type,
        "template": route.template if route else None,
        "zalo_template_id": route.zalo_template_id if route else None,
    }
