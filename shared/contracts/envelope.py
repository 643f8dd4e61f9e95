"""The CloudEvents 1.0 envelope (structured JSON mode) that every Motcua event travels in."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from shared.clock import utcnow

# Namespace of the deterministic ids of derived events: uuid5(NS, "<cause>/<type>/<key>").
EVENT_NAMESPACE = uuid.UUID("6f1d3c1e-6b1a-4a8e-9a55-2f2b0c7d9e10")
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


class EventData(BaseModel):
    """Base of every event payload: frozen, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(BaseModel):
    """A CloudEvents 1.0 envelope; each event type subclasses it with its own `type` and `data`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str] = ""

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, description="Unique per event; consumers deduplicate on it.")
    source: str = Field(min_length=1, description="URI-reference of the producing service.")
    type: str
    time: datetime
    subject: str = Field(min_length=1, description="The dossier code (mã hồ sơ).")
    datacontenttype: Literal["application/json"] = "application/json"
    correlationid: str = Field(min_length=1, description="Shared by every event of one dossier.")
    causationid: str | None = Field(
        default=None, description="The id of the event that caused this one, if any."
    )
    data: EventData

    @classmethod
    def create(
        cls,
        *,
        source: str,
        subject: str,
        data: Any,
        correlationid: str | None = None,
        causationid: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
    ) -> Self:
        """A new event, e.g. a submission or an officer's decision (not derived from an event)."""
        event_id = id or str(uuid.uuid4())
        return cls(
            id=event_id,
            source=source,
            type=cls.event_type,
            time=time or utcnow(),
            subject=subject,
            correlationid=correlationid or event_id,
            causationid=causationid,
            data=data,
        )

    @classmethod
    def caused_by(
        cls, cause: Event, *, source: str, data: Any, time: datetime, key: str = ""
    ) -> Self:
        """An event derived from `cause`, with an id that is the same on every redelivery."""
        return cls(
            id=derived_id(cause.id, cls.event_type, key),
            source=source,
            type=cls.event_type,
            time=time,
            subject=cause.subject,
            correlationid=cause.correlationid,
            causationid=cause.id,
            data=data,
        )

    def to_json(self) -> bytes:
        """The structured-mode JSON body sent on the wire."""
        return self.model_dump_json().encode()


def derived_id(cause_id: str, event_type: str, key: str = "") -> str:
    """Deterministic id of an event derived from another one."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{cause_id}/{event_type}/{key}"))
