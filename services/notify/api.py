"""Notify's HTTP routes: the delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from services.notify.store import NotifyStore
from shared.web import from_state

router = APIRouter(prefix="/v1", tags=["deliveries"])


Store = Annotated[NotifyStore, Depends(from_state("store", NotifyStore))]


class DeliveryView(BaseModel):
    id: str
    dossier_code: str
    channel: str
    recipient: str
    trigger_event_type: str
    status: str
    attempts: int
    reason: str | None = None
    created_at: datetime
    updated_at: datetime


@router.get("/deliveries", response_model=list[DeliveryView], summary="A dossier's deliveries")
async def list_deliveries(
    store: Store, dossier: Annotated[str, Query(min_length=1)]
) -> list[DeliveryView]:
    cursor = store.deliveries.find({"dossier_code": dossier}).sort("created_at", 1)
    return [DeliveryView(id=doc["_id"], **doc) async for doc in cursor]
