"""Review's officer API: the work queue, a task with why it waits, and workflow actions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from services.review import handlers
from services.review.auth import CurrentOfficer
from services.review.domain import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidAction,
    NotFound,
    Task,
)
from services.review.roster import Officer
from services.review.settings import ReviewSettings
from services.review.store import TaskStore
from services.review.workflow import Registry
from shared.calendar import WorkingCalendar
from shared.clock import Clock
from shared.problems import Problem
from shared.web import from_state

router = APIRouter(prefix="/v1", tags=["tasks"])

Tasks = Annotated[TaskStore, Depends(from_state("tasks", TaskStore))]
Settings = Annotated[ReviewSettings, Depends(from_state("settings", ReviewSettings))]
Workflows = Annotated[Registry, Depends(from_state("workflows", Registry))]
Calendar = Annotated[WorkingCalendar, Depends(from_state("calendar", WorkingCalendar))]


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


Now = Annotated[Clock, Depends(_clock)]


class Waiting(BaseModel):
    """Why a task waits: whose move it is, since when, and by when (None: no deadline)."""

    whose_move: str
    since: datetime
    due_at: datetime | None
    clock: str
    overdue: bool


class TaskView(BaseModel):
    id: str
    dossier_code: str
    procedure_code: str
    unit_id: str
    officer_id: str
    workflow: str
    workflow_version: int
    state: str
    status_code: int
    open: bool
    created_at: datetime
    waiting: Waiting | None
    allowed_actions: list[str]
    escalated_to: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    dossier: dict[str, Any]
    history: list[dict[str, Any]] = []


class ActionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"action": "approve", "reason": "Hồ sơ hợp lệ"}]},
    )

    action: str = Field(min_length=1, max_length=50)
    reason: str | None = Field(default=None, max_length=1000)


def _view(
    task: Task,
    officer: Officer,
    workflows: Registry,
    now: datetime,
    history: list[dict[str, Any]] | None = None,
) -> TaskView:
    workflow = workflows.get(task.workflow, task.workflow_version)
    state = workflow.state(task.state)
    waiting = None
    if not task.terminal:
        waiting = Waiting(
            whose_move=state.waits_for,
            since=task.state_since or task.created_at,
            due_at=task.due_at,
            clock=state.clock,
            overdue=task.due_at is not None and task.due_at < now,
        )
    mine = (
        officer.unit == task.unit_id
        and (officer.id == task.officer_id or officer.role in ("chief", "supervisor"))
    ) or officer.id == task.escalated_to
    return TaskView(
        id=task.id,
        dossier_code=task.dossier_code,
        procedure_code=task.procedure_code,
        unit_id=task.unit_id,
        officer_id=task.officer_id,
        workflow=task.workflow,
        workflow_version=task.workflow_version,
        state=task.state,
        status_code=task.status_code,
        open=task.is_open,
        created_at=task.created_at,
        waiting=waiting,
        allowed_actions=[
            a.name for a in workflow.actions_from(task.state, officer.role) if not a.trigger
        ]
        if mine
        else [],
        escalated_to=task.escalated_to,
        decided_by=task.decided_by,
        decided_at=task.decided_at,
        reason=task.reason,
        dossier=dict(task.dossier),
        history=history or [],
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
            "Thao tác không thực hiện được ở bước hiện tại.",
            code="action_not_allowed",
            extra={"allowed_actions": exc.allowed},
        )
    if isinstance(exc, InvalidAction):
        return Problem(422, str(exc), "Thao tác cần nêu lý do.", code="reason_required")
    return Problem(422, str(exc), "Yêu cầu không hợp lệ.", code="invalid_action")


@router.get("/tasks", response_model=list[TaskView], summary="My work queue")
async def list_tasks(
    officer: CurrentOfficer,
    tasks: Tasks,
    workflows: Workflows,
    clock: Now,
    state: Annotated[str | None, Query(max_length=50)] = None,
    procedure: Annotated[str | None, Query(max_length=50)] = None,
    overdue: bool | None = None,
    due_before: datetime | None = None,
) -> list[TaskView]:
    """Officers see the open tasks assigned to them; chiefs and supervisors their unit's."""
    query: dict[str, Any] = (
        {"officer_id": officer.id} if officer.role == "officer" else {"unit_id": officer.unit}
    )
    if officer.role == "supervisor":  # and what was escalated to them from other units
        query = {"$or": [query, {"escalated_to": officer.id}]}
    if state:
        query["state"] = state
    if procedure:
        query["procedure_code"] = procedure
    views = [_view(t, officer, workflows, clock()) for t in await tasks.open_tasks(query)]
    if overdue is not None:
        views = [v for v in views if v.waiting is not None and v.waiting.overdue == overdue]
    if due_before is not None:
        views = [
            v
            for v in views
            if v.waiting is not None
            and v.waiting.due_at is not None
            and v.waiting.due_at < due_before
        ]
    return views


@router.get(
    "/tasks/{task_id}", response_model=TaskView, summary="A task: dossier, history, why it waits"
)
async def get_task(
    task_id: str, officer: CurrentOfficer, tasks: Tasks, workflows: Workflows, clock: Now
) -> TaskView:
    task = await tasks.get(task_id)
    if task is None:
        raise _problem(NotFound(f"no task {task_id}"))
    if task.unit_id != officer.unit:
        raise _problem(Forbidden(f"task {task_id} belongs to another unit"))
    return _view(task, officer, workflows, clock(), await tasks.history(task_id))


@router.post(
    "/tasks/{task_id}/actions",
    response_model=TaskView,
    summary="Take a workflow action (receive, approve, request_supplement, ...)",
    responses={409: {"description": "Not allowed now; `allowed_actions` lists what is"}},
)
async def take_action(
    task_id: str,
    body: ActionRequest,
    officer: CurrentOfficer,
    tasks: Tasks,
    workflows: Workflows,
    calendar: Calendar,
    clock: Now,
    settings: Settings,
) -> TaskView:
    try:
        task = await handlers.act(
            task_id,
            body.action,
            body.reason,
            officer=officer,
            tasks=tasks,
            workflows=workflows,
            calendar=calendar,
            clock=clock,
            source=f"{settings.public_url}/v1/tasks",
        )
    except DomainError as exc:
        raise _problem(exc) from exc
    return _view(task, officer, workflows, clock(), await tasks.history(task_id))
