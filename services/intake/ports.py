"""What intake's handlers depend on: the ports its adapters (store.py, attachments.py, the
catalogue, the clock, the outbox) satisfy, and the in-memory fakes of the unit tests too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any, Protocol

from services.intake.attachments import StoredFile
from services.intake.catalogue import Procedures
from services.intake.domain import Dossier
from services.intake.idempotency import KeyRecord
from services.intake.status import Step
from shared.contracts import Event

Publish = Callable[[list[Event]], Awaitable[None]]
"""Publish stored events now (confirmed); what fails is published later by the relay."""


class FiledBefore(Exception):
    """A dossier was filed under this idempotency key already (a late holder of the key)."""

    def __init__(self, first: Dossier) -> None:
        super().__init__(first.code)
        self.first = first


class Dossiers(Protocol):
    async def next_number(self, series: str, day: date) -> int: ...

    async def add(
        self, dossier: Dossier, events: list[Event], *, series: str, number: int
    ) -> bool: ...

    async def get(self, code: str, *, with_outbox: bool = True) -> Dossier | None: ...

    async def by_idempotency_key(self, key: str) -> Dossier | None: ...

    async def save(self, dossier: Dossier, events: list[Event]) -> bool: ...

    async def add_step(
        self, code: str, step: Step, *, unit_id: str | None = None
    ) -> bool | None: ...

    async def set_unit(self, code: str, unit_id: str, at: datetime) -> bool | None: ...


class Attachments(Protocol):
    async def put(self, data: bytes, *, media_type: str, document_type: str) -> dict[str, Any]: ...

    async def describe(self, ids: list[str]) -> dict[str, dict[str, Any]]: ...

    async def open(self, file_id: str) -> StoredFile | None:
        """The file's bytes, checked against its recorded SHA-256 and length before any is
        returned (CorruptAttachment if they differ); None if there is no such file."""
        ...


class Keys(Protocol):
    async def claim(self, key: str, body_hash: str, now: datetime) -> bool: ...

    async def get(self, key: str) -> KeyRecord | None: ...

    async def take_over(self, record: KeyRecord, now: datetime) -> bool: ...

    async def answer(self, key: str, answer: dict[str, Any], *, lease: int) -> bool: ...


__all__ = ["Attachments", "Dossiers", "FiledBefore", "Keys", "Procedures", "Publish"]
