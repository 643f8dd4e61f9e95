"""Intake's event subscriptions: which of review's events it follows, and what each does.

One table, event type → handler; decode errors, unknown types and unknown dossiers are
dead-lettered at once (retrying cannot help), anything else is retried by shared.messaging.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.intake import handlers, sms
from services.intake.domain import DomainError
from services.intake.ports import Dossiers
from services.intake.status import STATUS_OF_EVENT
from shared.contracts import DossierReassigned, Event, SmsStatusRequested
from shared.messaging import PermanentFailure

Handler = Callable[[Event, Dossiers], Awaitable[None]]


async def _record_step(event: Event, dossiers: Dossiers) -> None:
    await handlers.record_review_event(event, dossiers=dossiers)


async def _record_holder(event: Event, dossiers: Dossiers) -> None:
    await handlers.record_holder(event, dossiers=dossiers)


# Every status review announces is one step of the dossier the citizen follows; who holds its
# task tells intake the unit whose officers may read its documents.
HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(STATUS_OF_EVENT, _record_step),
    DossierReassigned.event_type: _record_holder,
    SmsStatusRequested.event_type: sms.on_status_requested,  # answered to the dossier's phone
}
QUEUE = "motcua.intake.status"


def bindings() -> list[str]:
    """The event types intake's queue is bound to."""
    return sorted(HANDLERS)


def consumer(dossiers: Dossiers) -> Callable[[Event], Awaitable[None]]:
    """The message handler of intake's queue."""

    async def handle(event: Event) -> None:
        handler = HANDLERS.get(event.type)
        if handler is None:
            raise PermanentFailure(f"intake does not handle {event.type}")
        try:
            await handler(event, dossiers)
        except DomainError as exc:
            raise PermanentFailure(f"{type(exc).__name__}: {exc}") from exc

    return handle
