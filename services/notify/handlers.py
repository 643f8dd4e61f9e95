"""Notify's use cases: remember who to tell, then tell them once."""

from __future__ import annotations

import logging
from typing import Protocol

from services.notify.domain import Email, SendError, decision_email, mask_email
from services.notify.store import NotifyStore
from shared.clock import Clock
from shared.contracts import (
    DossierApproved,
    DossierRejected,
    DossierSubmitted,
    Event,
    NotificationFailed,
    NotificationFailedData,
    NotificationSent,
    NotificationSentData,
)
from shared.messaging import PermanentFailure
from shared.outbox import events_of

log = logging.getLogger(__name__)


class RecipientNotKnownYet(Exception):
    """A decision arrived before the submission it belongs to; retried later."""


class DeliveryInProgress(Exception):
    """Another handler holds this delivery's attempt right now; retried later."""


class Mailer(Protocol):
    async def send(self, email: Email, *, message_id: str | None = None) -> str: ...


async def handle(
    event: Event,
    *,
    store: NotifyStore,
    mailer: Mailer,
    clock: Clock,
    source: str,
    max_attempts: int,
) -> None:
    if isinstance(event, DossierSubmitted):
        await remember(event, store=store)
    elif isinstance(event, DossierApproved | DossierRejected):
        await notify_decision(
            event,
            store=store,
            mailer=mailer,
            clock=clock,
            source=source,
            max_attempts=max_attempts,
        )
    else:
        raise PermanentFailure(f"notify does not handle {event.type}")


async def remember(event: DossierSubmitted, *, store: NotifyStore) -> None:
    applicant = event.data.applicant
    await store.remember(
        event.data.dossier_code,
        {
            "full_name": applicant.full_name,
            "email": applicant.email,
            "phone": applicant.phone,
            # Older events carry no choice: e-mail was then the only channel.
            "notify_by": list(event.data.notify_by) or ["email"],
        },
    )


async def notify_decision(
    event: DossierApproved | DossierRejected,
    *,
    store: NotifyStore,
    mailer: Mailer,
    clock: Clock,
    source: str,
    max_attempts: int,
) -> None:
    """E-mail the applicant once per decision event, then publish the outcome."""
    contact = await store.recipient(event.subject)
    if contact is None:
        raise RecipientNotKnownYet(f"no contact yet for dossier {event.subject}")
    if "email" not in contact.get("notify_by", ["email"]):
        log.info("the citizen did not choose e-mail", extra={"dossier": event.subject})
        return
    common = {
        "dossier_code": event.subject,
        "channel": "email",
        "recipient": mask_email(str(contact.get("email") or "")),
        "trigger_event_id": event.id,
        "trigger_event_type": event.type,
    }
    delivery_id = f"{event.id}:email"
    delivery, mine = await store.begin(delivery_id, common)
    if delivery["status"] == "sending":
        if not mine:
            raise DeliveryInProgress(f"delivery {delivery_id} is being attempted elsewhere")
        status, fields, result = await _attempt(
            event,
            contact,
            common,
            int(delivery["attempts"]),
            mailer=mailer,
            clock=clock,
            source=source,
            max_attempts=max_attempts,
        )
        delivery = await store.settle(delivery, status=status, fields=fields, event=result)
    # Also on a redelivery: publish the recorded outcome again, with the same event id.
    await store.outbox.flush(events_of(delivery, caused_by=event.id))


async def _attempt(
    event: Event,
    contact: dict[str, object],
    common: dict[str, str],
    attempts: int,
    *,
    mailer: Mailer,
    clock: Clock,
    source: str,
    max_attempts: int,
) -> tuple[str, dict[str, object], Event]:
    """One try at sending; the outcome to record, or SendError re-raised to retry later."""
    address = str(contact.get("email") or "")
    try:
        if not address:
            raise SendError("the applicant gave no e-mail address", permanent=True)
        email = decision_email(event, to=address, full_name=str(contact.get("full_name", "")))
        message_id = await mailer.send(email, message_id=f"<{event.id}@motcua.local>")
    except SendError as exc:
        if not exc.permanent and attempts < max_attempts:
            raise  # the consumer retries after a pause
        now = clock()
        reason = str(exc) if exc.permanent else f"gave up after {attempts} tries: {exc}"
        failed = NotificationFailed.caused_by(
            event,
            source=source,
            time=now,
            key="email",
            data=NotificationFailedData(
                **common, failed_at=now, reason=reason, permanent=exc.permanent
            ),
        )
        log.warning("notification failed", extra={"dossier": event.subject, "reason": reason})
        return "failed", {"reason": reason}, failed
    now = clock()
    sent = NotificationSent.caused_by(
        event,
        source=source,
        time=now,
        key="email",
        data=NotificationSentData(**common, sent_at=now, provider_message_id=message_id),
    )
    return "sent", {"provider_message_id": message_id, "sent_at": now}, sent
