"""Review's event subscriptions: which handler each event type goes to."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from shared.contracts import DossierSubmitted, DossierSupplemented, DossierWithdrawn, Event
from shared.messaging import PermanentFailure

QUEUE = "motcua.review"
EventHandler = Callable[[Event], Awaitable[None]]


def table(*, assign: EventHandler, follow_citizen: EventHandler) -> dict[str, EventHandler]:
    """Event type → the use case that handles it."""
    return {
        DossierSubmitted.event_type: assign,
        DossierWithdrawn.event_type: follow_citizen,
        DossierSupplemented.event_type: follow_citizen,
    }


def dispatcher(handlers: Mapping[str, EventHandler]) -> EventHandler:
    """One handler for the queue: the table's, or a permanent failure (dead-lettered)."""

    async def handle(event: Event) -> None:
        handler = handlers.get(event.type)
        if handler is None:
            raise PermanentFailure(f"review does not handle {event.type}")
        await handler(event)

    return handle
