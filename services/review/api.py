"""Review's officer API: the work queue by stage, its counts and search, a task with why it
waits, workflow actions, who holds it, the apology, and the slips printed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.review import handlers, lookup, ownership
from services.review.desk import AtDesk, answer
from services.review.ports import StageCount
from services.review.stages import OPEN_STAGES, STAGE_NAMES_EN, STAGE_NAMES_VI, Stage
from services.review.views import TaskView
from shared.contracts import SlipForm
from shared.contracts.identifiers import Identifier, MultilineText, OfficerId
from shared.problems import Problem

router = APIRouter(prefix="/v1", tags=["tasks"])

Reason = Annotated[MultilineText, Field(max_length=1000)]
Scope = Literal["mine", "unit", "unassigned"]
PROBLEMS: dict[int | str, dict[str, str]] = {
    401: {"description": "No or bad officer token (problem+json)"},
    403: {"description": "Not this officer's unit or role (problem+json)"},
    404: {"description": "No such task (problem+json)"},
}


class ActionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"action": "approve", "reason": "Hồ sơ hợp lệ"}]},
    )

    action: str = Field(min_length=1, max_length=50)
    reason: Reason | None = None
    missing: list[Identifier] = Field(
        default_factory=list,
        max_length=30,
        description="With a supplement request: the document types the citizen must add.",
    )
    expected_version: int | None = Field(
        default=None,
        ge=1,
        description="The task's `version` as the caller saw it: 409 if it changed since.",
    )


class StageCountView(BaseModel):
    stage: Stage
    name_vi: str
    name_en: str
    total: int = Field(description="Open tasks in this stage.")
    overdue: int = Field(description="Of them, past their step's deadline.")
    due_soon: int = Field(description="Of them, due soon (not yet overdue).")


class QueueCounts(BaseModel):
    """How many open tasks each stage of the officer's queue holds (a stage with none is 0)."""

    at: datetime = Field(description="The moment `overdue` and `due_soon` were counted at.")
    scope: Scope | None
    stages: list[StageCountView] = Field(description="In the order " + ", ".join(OPEN_STAGES))
    total: int
    overdue: int
    due_soon: int


class PrintRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"form": "receipt"}]})

    form: SlipForm = Field(
        description="receipt (giấy tiếp nhận hồ sơ và hẹn trả kết quả), control (phiếu kiểm "
        "soát quá trình giải quyết), apology (phiếu xin lỗi và hẹn lại ngày trả kết quả)."
    )


ScopeQuery = Annotated[
    Scope | None,
    Query(
        description="mine: held by me (and, for supervisors, escalated to me); unassigned: "
        "released to my unit; unit: my whole unit (chiefs, supervisors, admins; 403 for an "
        "officer). Default: all I may work on."
    ),
]


@router.get(
    "/tasks/counts",
    response_model=QueueCounts,
    summary="How many open tasks each stage of my queue holds, overdue and due soon",
    responses={401: PROBLEMS[401], 403: PROBLEMS[403]},
)
async def count_tasks(desk: AtDesk, scope: ScopeQuery = None) -> QueueCounts:
    """One indexed count per part of the scope (at most two), over open tasks only."""
    found = await answer(
        lookup.counts(desk.officer, tasks=desk.tasks, clock=desk.clock, scope=scope)
    )
    return QueueCounts(
        at=found.at,
        scope=scope,
        stages=[_stage_count(stage, found.stages[stage]) for stage in OPEN_STAGES],
        total=found.total,
        overdue=found.overdue,
        due_soon=found.due_soon,
    )


def _stage_count(stage: Stage, count: StageCount) -> StageCountView:
    return StageCountView(
        stage=stage,
        name_vi=STAGE_NAMES_VI[stage],
        name_en=STAGE_NAMES_EN[stage],
        total=count.total,
        overdue=count.overdue,
        due_soon=count.due_soon,
    )


@router.get(
    "/tasks",
    response_model=list[TaskView],
    summary="My work queue by stage, filtered or searched, a page at a time",
    responses={401: PROBLEMS[401], 403: PROBLEMS[403], 422: {"description": "Bad cursor"}},
)
async def list_tasks(
    response: Response,
    request: Request,
    desk: AtDesk,
    scope: ScopeQuery = None,
    stage: Annotated[
        Stage | None, Query(description="One queue: " + ", ".join(OPEN_STAGES))
    ] = None,
    state: Annotated[str | None, Query(max_length=50)] = None,
    procedure: Annotated[str | None, Query(max_length=50)] = None,
    ward: Annotated[
        str | None, Query(max_length=20, description="Mã phường/xã the dossier was filed for.")
    ] = None,
    overdue: Annotated[
        bool | None, Query(description="true: past the step's deadline; false: not yet.")
    ] = None,
    due_soon: Annotated[
        bool, Query(description="Due soon: near the step's deadline, not yet past it.")
    ] = False,
    due_before: datetime | None = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=50,
            description="Search: an exact dossier code, or the applicant's exact mobile number "
            "(0912345678 or +84912345678); open and finished tasks of my unit, open first; the "
            "other filters and the cursor do not apply.",
        ),
    ] = None,
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
    Each task carries its stage, due_at, timeliness and working time left. The next page's
    cursor comes in the `X-Next-Cursor` header (and a `Link: rel="next"`)."""
    if q is not None:
        found = await answer(lookup.search(desk.officer, q, tasks=desk.tasks, limit=limit))
        return [desk.view(t) for t in found]
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
            scope=scope,
            stage=stage,
            ward=ward,
            due_soon=due_soon,
        )
    page = await answer(work)
    if page.next_cursor:
        response.headers["X-Next-Cursor"] = page.next_cursor
        following = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{following}>; rel="next"'
    return [desk.view(t) for t in page.tasks]


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
            missing=body.missing,
            expected_version=body.expected_version,
        )
    )


class HandOver(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = None


class Reassignment(HandOver):
    officer_id: OfficerId = Field(description="The new holder.")


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

    reason: Annotated[Reason, Field(min_length=1)]
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


@router.post(
    "/tasks/{task_id}/prints",
    response_model=TaskView,
    status_code=status.HTTP_201_CREATED,
    summary="Record a printed slip (receipt, control, apology) in the history",
    responses={**PROBLEMS, 409: {"description": "Closed, or no apology to print"}},
)
async def record_print(task_id: str, body: PrintRequest, desk: AtDesk) -> TaskView:
    """Who printed which slip, when: a step of the task's history (action `print`, `form`)
    and `dossier.slip_printed`. Officers of the task's unit (or the supervisor it was
    escalated to); the task keeps its state and holder."""
    return await desk.answer(
        ownership.print_slip(
            task_id,
            body.form,
            officer=desk.officer,
            tasks=desk.tasks,
            clock=desk.clock,
            publish=desk.publish,
            source=desk.source,
        )
    )
