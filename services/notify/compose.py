"""The words of a delivery: the template's context, the address, the message to send."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError

from services.notify.messages import Message, SendError
from services.notify.routing import ChannelRoute, Planned, tracking_id
from services.notify.templates import Templates, UnknownTemplate
from shared.contracts import DossierSubmittedData, Event
from shared.contracts.projections import project_json


def chosen_channels(data: DossierSubmittedData) -> list[str]:
    """The channels the applicant chose. An explicit empty choice is an opt-out; only an
    older event, which has no choice at all, falls back to e-mail when there is an address."""
    if "notify_by" in data.model_fields_set:
        return list(data.notify_by)
    return ["email"] if data.applicant.email else []


def template_context(event: Event, contact: Mapping[str, Any]) -> dict[str, Any]:
    """What templates may use, from the event and what the submission told us."""
    data = event.data.model_dump()
    return {
        "event_type": event.type,
        "dossier_code": event.subject,
        "full_name": contact.get("full_name") or "",
        "procedure_name": procedure_name(data, contact),
        # Review fills in the promised date in force; until then, the one given at submission.
        "promised_at": data.get("promised_at") or contact.get("promised_at"),
        "previous_promised_at": data.get("previous_promised_at"),
        "reason": data.get("reason"),
        "missing": document_names(data.get("missing") or [], contact),
        "note": data.get("note"),
        "fee": contact.get("fee"),
        "status": data.get("status"),  # a status asked by SMS, in words
    }


def document_names(missing: list[str], contact: Mapping[str, Any]) -> list[str]:
    """The documents a supplement request asks for, by the names the submission gave their
    types (a type it did not name, or a dossier submitted before names were sent, by its id)."""
    names = contact.get("document_names") or {}
    return [str(names.get(kind) or kind) for kind in missing]


def procedure_name(data: Mapping[str, Any], contact: Mapping[str, Any]) -> str:
    """The procedure's Vietnamese name: the event's own, else the one its submission gave (kept
    with the contact), else `thủ tục <code>`."""
    procedure = data.get("procedure_code") or contact.get("procedure_code") or ""
    if data.get("procedure_name"):
        return str(data["procedure_name"])
    if contact.get("procedure_name") and contact.get("procedure_code") in (None, procedure):
        return str(contact["procedure_name"])
    return f"thủ tục {procedure}"


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
        scopes = frozenset(planned.partner.scopes if planned.partner else ())
        return Message("webhook", address, tracking, body=project_json(event, scopes))
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
