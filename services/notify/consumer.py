"""Notify's event subscriptions: an explicit table of event type → handler. The consumer decodes,
reads a replayed message's headers, calls the handler; shared.messaging acks or dead-letters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from services.notify import handlers
from services.notify.ports import Notifier, Replay
from services.notify.retries import DELIVERY_HEADER, REOPEN_HEADER
from services.notify.routing import Partner, Routing
from shared.contracts import DossierSubmitted, Event
from shared.messaging import MESSAGE_HEADERS, PermanentFailure

EventHandler = Callable[[Event, Notifier, Replay | None, bool], Awaitable[None]]


async def _submitted(
    event: Event, notifier: Notifier, replay: Replay | None, returned: bool
) -> None:
    if not isinstance(event, DossierSubmitted):
        raise PermanentFailure(f"{event.type} is not a dossier.submitted")
    await handlers.on_submitted(event, notifier=notifier, replay=replay, returned=returned)


async def _routed(event: Event, notifier: Notifier, replay: Replay | None, returned: bool) -> None:
    await handlers.on_event(event, notifier=notifier, replay=replay, returned=returned)


def table(routing: Routing, partners: list[Partner]) -> dict[str, EventHandler]:
    """Event type → handler: the submission (whose contact is kept), then every type routed to
    applicants or subscribed by a partner (routing and partners are data, so is this table)."""
    handled: dict[str, EventHandler] = dict.fromkeys(routing.routes, _routed)
    handled.update((event_type, _routed) for p in partners for event_type in p.events)
    handled[DossierSubmitted.event_type] = _submitted
    return handled


def replay_of(headers: Mapping[str, Any] | None) -> Replay | None:
    """The delivery a replayed parked message reopens, and which reopening it is."""
    delivery, number = (headers or {}).get(DELIVERY_HEADER), (headers or {}).get(REOPEN_HEADER)
    if not isinstance(delivery, str) or not str(number or "").isdigit():
        return None
    return delivery, int(str(number))


def returned_from_delay(headers: Mapping[str, Any] | None) -> bool:
    """Whether the message came back from one of notify's delay queues (RabbitMQ names the
    queues a dead-lettered message passed through in `x-death`): a retry of a stored delivery."""
    return bool((headers or {}).get("x-death"))


class NotifyConsumer:
    """What shared.messaging's consumer calls for each event of notify's queue."""

    def __init__(self, notifier: Notifier, handled: Mapping[str, EventHandler]) -> None:
        self.notifier = notifier
        self.handled = handled

    @property
    def bindings(self) -> list[str]:
        return sorted(self.handled)

    async def __call__(self, event: Event) -> None:
        handler = self.handled.get(event.type)
        if handler is None:  # a binding left from an older configuration
            raise PermanentFailure(f"notify has no handler for {event.type}")
        headers = MESSAGE_HEADERS.get()
        await handler(event, self.notifier, replay_of(headers), returned_from_delay(headers))
