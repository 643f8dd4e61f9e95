"""Audit's event subscriptions: audit records every event, whatever its type.

`HANDLERS` is the explicit table event type → handler: every type in the event registry maps
to `record` (a test checks none is missing). A type audit does not know yet (a newer
producer) cannot be decoded: the consumer dead-letters it with the reason, and it is recorded
once replayed by a version that knows it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from services.audit.batching import Batcher
from services.audit.handlers import record
from shared.clock import Clock
from shared.contracts import Event
from shared.contracts.registry import EVENT_TYPES

Handle = Callable[[Event], Awaitable[None]]
QUEUE = "motcua.audit"
BINDINGS = ["#"]  # every routing key: every event


def handlers(*, batcher: Batcher, hmac_key: bytes, clock: Clock) -> dict[str, Handle]:
    """Event type → its handler: `record` for each."""
    recording = partial(record, batcher=batcher, hmac_key=hmac_key, clock=clock)
    return {event_type: recording for event_type in EVENT_TYPES}


def dispatcher(table: dict[str, Handle]) -> Handle:
    """The consumer's handler: the event's own handler from `table`."""

    async def handle(event: Event) -> None:
        try:
            chosen = table[event.type]
        except KeyError:
            raise LookupError(f"audit has no handler for {event.type!r}") from None
        await chosen(event)

    return handle
