"""Routes of the national-portal sync: a dossier's sync state, and an operator's re-sync."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import AwareDatetime, BaseModel

from services.notify.national.sync import Sync
from shared.problems import Problem
from shared.web import OfficerClaims

router = APIRouter(prefix="/v1/dvcqg", tags=["national portal"])
OPERATOR_ROLES = ("admin", "supervisor")
RESYNC_LIMIT = 5000


async def sync_of(request: Request) -> Sync:
    sync = getattr(request.app.state, "dvcqg", None)
    if not isinstance(sync, Sync):
        raise Problem(
            404,
            "Synchronisation with the national portal is not enabled.",
            "Chưa bật đồng bộ với Cổng DVC quốc gia.",
            code="dvcqg_disabled",
        )
    return sync


SyncDep = Annotated[Sync, Depends(sync_of)]


class PendingView(BaseModel):
    kind: str
    event_id: str
    status: int


class SyncView(BaseModel):
    dossier_code: str
    state: str
    added: bool
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    next_try_at: datetime | None = None
    pending: list[PendingView]


class Resync(BaseModel):
    since: AwareDatetime


class ResyncAccepted(BaseModel):
    since: datetime
    limit: int


@router.get("/dossiers/{code}", response_model=SyncView, summary="A dossier's sync state")
async def sync_state(
    sync: SyncDep, _: OfficerClaims, code: Annotated[str, Path(min_length=1, max_length=64)]
) -> SyncView:
    doc = await sync.store.get(code)
    if doc is None:
        raise Problem(
            404,
            f"Dossier {code} has no sync state.",
            f"Hồ sơ {code} chưa có trạng thái đồng bộ.",
            code="dvcqg_not_found",
        )
    return SyncView(
        dossier_code=code,
        state=str(doc.get("state", "pending")),
        added=bool(doc.get("added")),
        last_attempt_at=doc.get("last_attempt_at"),
        last_success_at=doc.get("last_success_at"),
        last_error=doc.get("last_error"),
        next_try_at=datetime.fromtimestamp(doc["due_at"], UTC) if doc.get("due_at") else None,
        pending=[
            PendingView(kind=o["kind"], event_id=o["event_id"], status=o["status"])
            for o in doc.get("ops", [])
        ],
    )


@router.post("/resync", status_code=202, response_model=ResyncAccepted, summary="Re-send dossiers")
async def resync(sync: SyncDep, claims: OfficerClaims, body: Resync, request: Request) -> Any:
    """Queue add, update and progress again for every dossier changed since `since` (at most
    RESYNC_LIMIT, oldest first), in the background."""
    if claims.role not in OPERATOR_ROLES:
        raise Problem(
            403,
            "Only an admin or a supervisor may re-sync with the national portal.",
            "Chỉ quản trị viên hoặc lãnh đạo được đồng bộ lại.",
            code="forbidden",
        )
    request.app.state.runtime.background(
        sync.resync(body.since, RESYNC_LIMIT, marker=f"resync:{claims.officer_id}"), "dvcqg-resync"
    )
    return ResyncAccepted(since=body.since, limit=RESYNC_LIMIT)
