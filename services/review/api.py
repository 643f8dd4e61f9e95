"""Review's officer API: the work queue and decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from services.review import handlers
from services.review.auth import CurrentOfficer
from services.review.domain import Conflict, DomainError, Forbidden, NotFound, Task
from services.review.settings import ReviewSettings
from services.review.store import TaskStore
from shared.clock import utcnow
from shared.problems import Problem
from shared.web import from_state

router = APIRouter(prefix="/v1", tags=["tasks"])


Tasks = Annotated[TaskStore, Depends(from_state("tasks", TaskStore))]
Settings = Annotated[ReviewSettings, Depends(from_state("settings", ReviewSettings))]


class TaskView(BaseModel):
    id: str
    dossier_code: str
    procedure_code: str
    unit_id: str
    officer_id: str
    state: str
    created_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    dossier: dict[str, Any]


class DecisionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"decision": "approve", "reason": "Hồ sơ hợp lệ"}]},
    )

    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=1000)


def _view(task: Task) -> TaskView:
    return TaskView(
        id=task.id,
        dossier_code=task.dossier_code,
        procedure_code=task.procedure_code,
        unit_id=task.unit_id,
        officer_id=task.officer_id,
        state=task.state,
        created_at=task.created_at,
        decided_by=task.decided_by,
        decided_at=task.decided_at,
        reason=task.reason,
        dossier=dict(task.dossier),
    )


def _problem(exc: DomainError) -> Problem:
    if isinstance(exc, NotFound):
        return Problem(404, str(exc), "Không tìm thấy công việc.", code="task_not_found")
    if isinstance(exc, Forbidden):
        return Problem(403, str(exc), "Cán bộ không có quyền với hồ sơ này.", code="forbidden")
    if isinstance(exc, Conflict):
        return Problem(
            409,
            str(exc),
            "Hồ sơ đã được xử lý.",
            code="task_closed",
            extra={"allowed_actions": exc.allowed},
        )
    return Problem(422, str(exc), "Yêu cầu không hợp lệ.", code="invalid_decision")


@router.get("/tasks", response_model=list[TaskView], summary="My open tasks")
async def list_tasks(officer: CurrentOfficer, tasks: Tasks) -> list[TaskView]:
    """Officers see the tasks assigned to them; chiefs and supervisors their unit's."""
    query = {"officer_id": officer.id} if officer.role == "officer" else {"unit_id": officer.unit}
    return [_view(t) for t in await tasks.open_tasks(query)]


@router.get("/tasks/{task_id}", response_model=TaskView, summary="One task with its dossier")
async def get_task(task_id: str, officer: CurrentOfficer, tasks: Tasks) -> TaskView:
    task = await tasks.get(task_id)
    if task is None:
        raise _problem(NotFound(f"no task {task_id}"))
    if task.unit_id != officer.unit:
        raise _problem(Forbidden(f"task {task_id} belongs to another unit"))
    return _view(task)


@router.post(
    "/tasks/{task_id}/decision", response_model=TaskView, summary="Approve or reject a dossier"
)
async def decide_task(
    task_id: str,
    body: DecisionRequest,
    officer: CurrentOfficer,
    tasks: Tasks,
    settings: Settings,
) -> TaskView:
    try:
        task = await handlers.decide(
            task_id,
            body.decision,
            body.reason,
            officer=officer,
            tasks=tasks,
            clock=utcnow,
            source=f"{settings.public_url}/v1/tasks",
        )
    except DomainError as exc:
        raise _problem(exc) from exc
    return _view(task)
