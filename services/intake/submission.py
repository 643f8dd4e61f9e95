"""Reads a submission against the catalogue: which procedure, the form, how to reach the citizen.

The body is the procedure's form fields plus `procedure_code`, `notify_by` (channels the
citizen chose: sms, email, zalo) and `applicant_kind` (1 citizen, 2 enterprise, 3 state agency,
4 organisation). Every problem is reported at once, one entry per field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from services.intake.catalogue import FormError, Procedure, Procedures, check_rules, lookup
from services.intake.documents import references
from services.intake.messages import entry, from_validation_error

NOTIFY_CHANNELS = ("sms", "email", "zalo")
ENVELOPE = ("procedure_code", "notify_by", "applicant_kind", "attachments")


@dataclass(frozen=True)
class Submission:
    procedure: Procedure
    form: dict[str, Any]  # validated, JSON-ready
    notify_by: tuple[str, ...]
    applicant_kind: int
    channel: int
    attachments: tuple[dict[str, str], ...] = ()

    @property
    def applicant(self) -> dict[str, Any]:
        applicant: dict[str, Any] = self.form["applicant"]
        return applicant

    @property
    def ward_code(self) -> str | None:
        route = self.procedure.routing_ward
        return str(lookup(self.form, route)) if route else None

    @property
    def fee(self) -> int | None:
        return self.procedure.fee.amount(self.channel, self.form)


def parse(
    body: Any, catalogue: Procedures, *, channel: int, max_attachments: int = 20
) -> Submission:
    """A valid submission, or FormError listing every invalid field."""
    if not isinstance(body, dict):
        raise FormError([entry("body", "body_type")])
    code = body.get("procedure_code")
    procedure = catalogue.get(code) if isinstance(code, str) else None
    if procedure is None:
        error = "missing" if code is None else "unknown_procedure"
        raise FormError([entry("procedure_code", error)])
    errors: list[dict[str, str]] = []
    notify_by = _notify_by(body.get("notify_by", ["sms"]), errors)
    refs, attachment_errors = references(body.get("attachments"), max_attachments)
    errors += attachment_errors
    kind = body.get("applicant_kind", 1)
    if kind not in procedure.applicant_kinds:
        errors.append(entry("applicant_kind", "applicant_kind_not_allowed"))
    if channel not in procedure.channels:
        errors.append(entry("channel", "channel_not_allowed"))
    form: BaseModel | None = None
    try:
        form = procedure.model.model_validate({k: v for k, v in body.items() if k not in ENVELOPE})
    except ValidationError as exc:
        errors += from_validation_error(exc)
    if form is not None:
        errors += check_rules(procedure, form.model_dump())
        if "email" in notify_by and not form.model_dump()["applicant"].get("email"):
            errors.append(entry("applicant.email", "email_required"))
    if errors or form is None:
        raise FormError(errors)
    return Submission(
        procedure=procedure,
        form=form.model_dump(mode="json", exclude_none=True),
        notify_by=notify_by,
        applicant_kind=int(kind),
        channel=channel,
        attachments=tuple(refs),
    )


def _notify_by(raw: Any, errors: list[dict[str, str]]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        errors.append(entry("notify_by", "list_type"))
        return ()
    unknown = [c for c in raw if c not in NOTIFY_CHANNELS]
    if unknown:
        errors.append(entry("notify_by", "literal_error"))
    return tuple(dict.fromkeys(c for c in raw if c in NOTIFY_CHANNELS))
