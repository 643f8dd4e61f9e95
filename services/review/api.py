"""Review's officer API: the work queue, a task with why it waits, and workflow actions."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.review import handlers, ownership
from services.review.access import allowed_actions
from services.review.auth import CurrentOfficer
from services.review.directory import Directory
from services.review.domain import Conflict, DomainError, Forbidden, InvalidAction, NotFound, Task
from services.review.ports import Publish
from services.review.roster import Officer
from services.review.settings import ReviewSettings
from services.review.store import TaskStore
from services.review.workflow import Registry
from shared.calendar import WorkingCalendar
from shared.clock import Clock
from shared.problems import Problem
from shared.web import from_state

T = TypeVar("T")
router = APIRouter(prefix="/v1", tags=["tasks"])

Tasks = Annotated[TaskStore, Depends(from_state("tasks", TaskStore))]
Settings = Annotated[ReviewSettings, Depends(from_state("settings", ReviewSettings))]
Workflows = Annotated[Registry, Depends(from_state("workflows", Registry))]
Calendar = Annotated[WorkingCalendar, Depends(from_state("calendar", WorkingCalendar))]
People = Annotated[Directory, Depends(from_state("directory", Directory))]


async def _clock(request: Request) -> Clock:
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
    procedure_name: str = Field(description="The procedure's Vietnamese name (else its code).")
    unit_id: str
    officer_id: str | None = Field(description="Who holds it; None: released, to be claimed.")
    workflow: str
    workflow_version: int
    state: str
    status_code: int
    open: bool
    created_at: datetime
    waiting: Waiting | None
    allowed_actions: list[str]
    escalated_to: str | None = None
    promised_at: datetime | None = Field(
        default=None, description="Ngày hẹn trả in force (moved by pauses and apologies)."
    )
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


def _view(task: Task, officer: Officer, workflows: Registry, now: datetime) -> TaskView:
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
    return TaskView(
        id=task.id,
        dossier_code=task.dossier_code,
        procedure_code=task.procedure_code,
        procedure_name=task.procedure_label,
        unit_id=task.unit_id,
        officer_id=task.officer_id,
        workflow=task.workflow,
        workflow_version=task.workflow_version,
        state=task.state,
        status_code=task.status_code,
        open=task.is_open,
        created_at=task.created_at,
        waiting=waiting,
        allowed_actions=allowed_actions(task, workflow, officer),
        escalated_to=task.escalated_to,
        promised_at=task.promised_at,
        decided_by=task.decided_by,
        decided_at=task.decided_at,
        reason=task.reason,
        dossier=dict(task.dossier),
        history=[step.view() for step in task.steps],
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
        return Problem(422, str(exc), exc.message_vi, code=exc.code)
    return Problem(422, str(exc), "Yêu cầu không hợp lệ.", code="invalid_action")


@dataclass(frozen=True)
class Desk:
    """What every task route needs: the caller and review's adapters."""

    officer: Officer
    tasks: TaskStore
    workflows: Registry
    calendar: WorkingCalendar
    directory: Directory
    clock: Clock
    source: str

    @property
    def publish(self) -> Publish:
        return self.tasks.publish

    async def answer(self, work: Awaitable[Task]) -> TaskView:
        """Run a use case; its domain errors as problem+json, its task as the caller sees it."""
        task = await _answer(work)
        return _view(task, self.officer, self.workflows, self.clock())


async def _answer(work: Awaitable[T]) -> T:
    try:
        return await work
    except DomainError as exc:
        raise _problem(exc) from exc


async def _desk(
    officer: CurrentOfficer,
    tasks: Tasks,
    workflows: Workflows,
    calendar: Calendar,
    people: People,
    clock: Now,
    settings: Settings,
) -> Desk:
    return Desk(officer, tasks, workflows, calendar, people, clock, _source(settings))


AtDesk = Annotated[Desk, Depends(_desk)]


@router.get("/tasks", response_model=list[TaskView], summary="My work queue, a page at a time")
async def list_tasks(
    response: Response,
    request: Request,
    desk: AtDesk,
    state: Annotated[str | None, Query(max_length=50)] = None,
    procedure: Annotated[str | None, Query(max_length=50)] = None,
    overdue: bool | None = None,
    due_before: datetime | None = None,
    closed: Annotated[
        bool, Query(description="Finished work (from history), most recent first.")
    ] = False,
    cursor: Annotated[
        str | None, Query(max_length=500, description="From `X-Next-Cursor`.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[TaskView]:
    """Officers see the open tasks they hold and those released to their unit; chiefs and
    supervisors their unit's (supervisors also what was escalated to them); soonest due first.
    The next page's cursor comes in the `X-Next-Cursor` header (and a `Link: rel="next"`)."""
    if closed:
        work = handlers.finished(desk.officer, tasks=desk.tasks, cursor=cursor, limit=limit)
    else:
        work = handlers.queue(
            desk.officer,
            tasks=desk.tasks,
            clock=desk.clock,
            state=state,
            procedure=procedure,
            overdue=overdue,
            due_before=due_before,
            cursor=cursor,
            limit=limit,
        )
    page = await _answer(work)
    if page.next_cursor:
        response.headers["X-Next-Cursor"] = page.next_cursor
        following = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{following}>; rel="next"'
    now = desk.clock()
    return [_view(t, desk.officer, desk.workflows, now) for t in page.tasks]


@router.get(
    "/tasks/{task_id}", response_model=TaskView, summary="A task: dossier, history, why it waits"
)
async def get_task(task_id: str, desk: AtDesk) -> TaskView:
    return await desk.answer(handlers.show(task_id, officer=desk.officer, tasks=desk.tasks))


@router.post(
    "/tasks/{task_id}/actions",
    response_model=TaskView,
    summary="Take a workflow action (receive, approve, request_supplement, ...)",
    responses={409: {"description": "Not allowed now; `allowed_actions` lists what is"}},
)
async def take_action(task_id: str, body: ActionRequest, desk: AtDesk) -> TaskView:
    return await desk.answer(
        handlers.act(
            task_id,
            body.action,
            body.reason,
            officer=desk.officer,
            tasks=desk.tasks,
            workflows=desk.workflows,
            calendar=desk.calendar,
            clock=desk.clock,
            publish=desk.publish,
            source=desk.source,
        )
    )


class HandOver(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000)


class Reassignment(HandOver):
    officer_id: str = Field(min_length=1, max_length=100, description="The new holder.")


class Apology(BaseModel):
    """Phiếu xin lỗi và hẹn lại ngày trả kết quả."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reason": "Cần xác minh thêm thông tin cư trú",
                    "promised_at": "2026-12-10T10:00:00+07:00",
                }
            ]
        },
    )

    reason: str = Field(min_length=1, max_length=1000)
    promised_at: datetime = Field(description="The new promised result date (with its offset).")


@router.post("/tasks/{task_id}/claim", response_model=TaskView, summary="Claim a released task")
async def claim_task(task_id: str, desk: AtDesk) -> TaskView:
    return await desk.answer(
        ownership.claim(
            task_id,
            officer=desk.officer,
            tasks=desk.tasks,
            clock=desk.clock,
            publish=desk.publish,
            source=desk.source,
        )
    )


@router.post(
    "/tasks/{task_id}/release", response_model=TaskView, summary="Give a task back to the unit"
)
async def release_task(task_id: str, body: HandOver, desk: AtDesk) -> TaskView:
    return await desk.answer(
        ownership.release(
            task_id,
            body.reason,
            officer=desk.officer,
            tasks=desk.tasks,
            clock=desk.clock,
            publish=desk.publish,
            source=desk.source,
        )
    )


@router.post(
    "/tasks/{task_id}/reassign",
    response_model=TaskView,
    summary="Hand a task to another officer of its unit (supervisors)",
)
async def reassign_task(task_id: str, body: Reassignment, desk: AtDesk) -> TaskView:
    return await desk.answer(
        ownership.reassign(
            task_id,
            body.officer_id,
            body.reason,
            officer=desk.officer,
            tasks=desk.tasks,
            directory=desk.directory,
            clock=desk.clock,
            publish=desk.publish,
            source=desk.source,
        )
    )


@router.post(
    "/tasks/{task_id}/apology",
    response_model=TaskView,
    summary="Apologise for a late dossier and set a new promised date (dossier.apology_issued)",
)
async def issue_apology(task_id: str, body: Apology, desk: AtDesk) -> TaskView:
    if body.promised_at.tzinfo is None:
        raise Problem(
            422,
            "promised_at needs a UTC offset (e.g. +07:00).",
            "Ngày hẹn trả cần có múi giờ (ví dụ +07:00).",
            code="invalid_date",
        )
    return await desk.answer(
        ownership.apologise(
            task_id,
            body.promised_at,
            body.reason,
            officer=desk.officer,
            tasks=desk.tasks,
            calendar=desk.calendar,
            clock=desk.clock,
            publish=desk.publish,
            source=desk.source,
        )
    )


def _source(settings: ReviewSettings) -> str:
    return f"{settings.public_url}/v1/tasks"
