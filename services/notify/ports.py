"""The ports notify's handlers depend on (typing.Protocol: the store, the retry queues, the
channels), the bundle the app wires, and the use cases' errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.notify.channels import Channel
from services.notify.domain import Delivery, LogKey
from services.notify.routing import Partner, Routing
from services.notify.templates import Templates
from shared.clock import Clock
from shared.contracts import Event
from shared.faults import FaultPoints
from shared.storage import Document

Publish = Callable[[Event], Awaitable[None]]
Replay = tuple[str, int]  # the delivery a replayed parked message reopens, and which reopening


class RecipientNotKnownYet(Exception):
    """An event arrived before the submission it belongs to; retried later."""


class DeliveryContended(Exception):
    """Other handlers kept writing the delivery between our read and our write; retried later."""


class DeliveryNotFound(LookupError):
    """No delivery with this id."""


class ResendConflict(Exception):
    """The delivery, or its latest resend, is still under way (or another resend of it was
    created at the same moment)."""


@dataclass(frozen=True)
class Unreadable:
    """A stored delivery that cannot be decoded (its trigger, say): its key, why, and the
    document as read (a guarded write of it is keyed by the version it holds)."""

    id: str
    error: str
    stored: Mapping[str, Any] = field(default_factory=dict)


class Deliveries(Protocol):
    async def load(self, delivery_id: str) -> Delivery | None: ...

    async def save(self, previous: Delivery, new: Delivery) -> Delivery | None: ...

    async def archive(self, delivery: Delivery) -> None: ...

    async def resends(self, root: Delivery) -> list[Delivery]: ...

    async def stuck(self, now: datetime, *, limit: int) -> list[Delivery | Unreadable]: ...

    async def postpone(self, unreadable: Unreadable, until: datetime) -> bool: ...

    async def log(
        self, dossier_code: str, *, after: LogKey | None, limit: int
    ) -> tuple[list[Delivery], list[Delivery]]: ...


class Recipients(Protocol):
    async def remember(self, dossier_code: str, contact: dict[str, Any]) -> None: ...

    async def recipient(self, dossier_code: str) -> Document | None: ...


class Retries(Protocol):
    async def schedule(self, event: Event, *, at_least: float) -> float: ...

    async def park(self, event: Event, *, delivery_id: str, reason: str, reopen: int) -> None: ...


@dataclass(frozen=True)
class Notifier:
    """Everything a delivery needs, wired once by the app (or by a test, with fakes)."""

    deliveries: Deliveries
    recipients: Recipients
    channels: Mapping[str, Channel]
    templates: Templates
    routing: Routing
    partners: list[Partner]
    retries: Retries
    publish: Publish
    clock: Clock
    source: str
    tries: int
    delays: list[float]
    lease: timedelta
    faults: FaultPoints = field(default_factory=lambda: FaultPoints(""))
