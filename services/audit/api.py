"""Audit's HTTP routes: a dossier's timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from services.audit.store import AuditStore
from shared.problems import Problem
from shared.web import from_state

router = APIRouter(prefix="/v1/audit", tags=["audit"])


Store = Annotated[AuditStore, Depends(from_state("store", AuditStore))]


class TimelineEntry(BaseModel):
    id: str
    type: str
    time: datetime
    source: str
    correlationid: str
    causationid: str | None
    recorded_at: datetime
    data: dict[str, Any]


class Timeline(BaseModel):
    dossier_code: str
    events: list[TimelineEntry]


@router.get("/dossiers/{code}", response_model=Timeline, summary="A dossier's timeline")
async def timeline(code: str, store: Store) -> Timeline:
    docs = await store.timeline(code)
    if not docs:
        raise Problem(
            404,
            f"No events recorded for dossier {code}.",
            f"Chưa ghi nhận sự kiện nào của hồ sơ {code}.",
            code="dossier_not_found",
        )
    return Timeline(dossier_code=code, events=[TimelineEntry(id=d["_id"], **d) for d in docs])
