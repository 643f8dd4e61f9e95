"""What review answers about a task: the response models of its officer API (documented in its
OpenAPI), and how a task reads for the officer asking."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.review.access import allowed_actions, may_act
from services.review.domain import Task
from services.review.roster import Officer
from services.review.stages import STAGES, Stage, Timeliness, stage_of, time_left, timeliness
from services.review.steps import asks_for_documents
from services.review.workflow import Registry, Workflow
from shared import roles
from shared.calendar import WorkingCalendar

ACTION_NAMES_VI: dict[str, str] = {
    "receive": "Tiếp nhận hồ sơ",
    "record": "Ghi nhận",
    "refuse": "Từ chối tiếp nhận",
    "request_supplement": "Yêu cầu bổ sung hồ sơ",
    "request_payment": "Yêu cầu nộp phí, lệ phí",
    "confirm_payment": "Xác nhận đã nộp phí",
    "propose": "Trình lãnh đạo phê duyệt",
    "send_back": "Trả lại để xử lý lại",
    "approve": "Phê duyệt",
    "reject": "Từ chối giải quyết",
    "stop": "Dừng xử lý",
    "deliver": "Trả kết quả",
    # Steps that keep the workflow state, and the citizen's own.
    "claim": "Nhận xử lý hồ sơ",
    "release": "Trả hồ sơ về đơn vị",
    "reassign": "Chuyển cán bộ xử lý",
    "apologise": "Xin lỗi và hẹn lại ngày trả kết quả",
    "print": "In phiếu",
    "supplemented": "Công dân bổ sung hồ sơ",
    "withdraw": "Công dân rút hồ sơ",
}


class Waiting(BaseModel):
    """Why a task waits: whose move it is, since when, and by when (None: no deadline)."""

    whose_move: str = Field(description="`officer`, `chief`, `citizen` or `nobody`.")
    whose_move_name: str = Field(description="Whose move, in Vietnamese (e.g. Công dân).")
    officer_id: str | None = Field(
        default=None,
        description="The holder, when it is an officer's move and someone holds the task "
        "(None: released to the unit, to be claimed; or a chief's or the citizen's move).",
    )
    since: datetime
    due_at: datetime | None
    clock: str = Field(description="`running`, or `paused` while the citizen must act.")
    overdue: bool


class TimeLeft(BaseModel):
    """Working time to the step's deadline in the shared calendar (8-hour working days)."""

    working_hours: float = Field(description="Signed: negative once the step is overdue.")
    days: int = Field(description="Whole working days of its size (overdue by, if negative).")
    hours: float = Field(description="Working hours beyond those days.")


class ActionView(BaseModel):
    """A workflow action the officer may take now, and whether it needs a reason."""

    action: str
    name_vi: str = Field(description="What the action is called, in Vietnamese.")
    requires_reason: bool
    reason: Literal["required", "optional", "none"]
    asks_documents: bool = Field(
        default=False,
        description="It asks the citizen for documents: `missing` may name the ones needed.",
    )


class TaskView(BaseModel):
    id: str
    dossier_code: str
    procedure_code: str
    procedure_name: str = Field(description="The procedure's Vietnamese name (else its code).")
    unit_id: str
    officer_id: str | None = Field(description="Who holds it; None: released, to be claimed.")
    workflow: str
    workflow_version: int
    version: int = Field(
        description="The task's version: send it as an action's `expected_version` to act "
        "only on the task as it was shown."
    )
    state: str
    status_code: int
    stage: Stage = Field(
        description="The console's queue: " + ", ".join(STAGES) + " (see review/stages.py)."
    )
    open: bool
    created_at: datetime
    due_at: datetime | None = Field(
        default=None, description="The current step's deadline (None: paused, closed, no SLA)."
    )
    timeliness: Timeliness | None = Field(
        default=None, description="on_time, due_soon or overdue (None: no deadline runs)."
    )
    time_left: TimeLeft | None = None
    waiting: Waiting | None
    allowed_actions: list[str]
    actions: list[ActionView] = Field(
        default_factory=list,
        description="`allowed_actions` with their names and whether a reason is required.",
    )
    escalated_to: str | None = None
    promised_at: datetime | None = Field(
        default=None, description="Ngày hẹn trả in force (moved by pauses and apologies)."
    )
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    dossier: dict[str, Any]
    history: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Each step: version, action (a workflow action, claim, release, "
        "reassign, apologise or print), state, officer_id (holder after), decided_by, "
        "decided_at, reason, promised_at, due_at (the deadline of the step it finished), "
        "on_time, form (a printed slip), name_vi (what the step is called).",
    )


def _actions(task: Task, workflow: Workflow, officer: Officer) -> list[ActionView]:
    if not may_act(task, officer):
        return []
    return [
        ActionView(
            action=a.name,
            name_vi=ACTION_NAMES_VI.get(a.name, a.name),
            requires_reason=a.reason == "required",
            reason=a.reason,
            asks_documents=asks_for_documents(a.emits),
        )
        for a in workflow.actions_from(task.state, officer.role)
        if not a.trigger
    ]


def _waiting(task: Task, workflow: Workflow, now: datetime) -> Waiting | None:
    if task.terminal:
        return None
    state = workflow.state(task.state)
    return Waiting(
        whose_move=state.waits_for,
        whose_move_name=roles.name_vi(state.waits_for)
        if state.waits_for != "nobody"
        else "Không ai",
        officer_id=task.officer_id if state.waits_for == roles.OFFICER else None,
        since=task.state_since or task.created_at,
        due_at=task.due_at,
        clock=state.clock,
        overdue=task.due_at is not None and task.due_at < now,
    )


def view(
    task: Task, officer: Officer, workflows: Registry, calendar: WorkingCalendar, now: datetime
) -> TaskView:
    """The task as `officer` sees it at `now`."""
    workflow = workflows.get(task.workflow, task.workflow_version)
    left = time_left(task, now, calendar)
    return TaskView(
        id=task.id,
        dossier_code=task.dossier_code,
        procedure_code=task.procedure_code,
        procedure_name=task.procedure_label,
        unit_id=task.unit_id,
        officer_id=task.officer_id,
        workflow=task.workflow,
        workflow_version=task.workflow_version,
        version=task.version,
        state=task.state,
        status_code=task.status_code,
        stage=stage_of(task),
        open=task.is_open,
        created_at=task.created_at,
        due_at=task.due_at,
        timeliness=timeliness(task, now),
        time_left=TimeLeft(working_hours=left.working_hours, days=left.days, hours=left.hours)
        if left
        else None,
        waiting=_waiting(task, workflow, now),
        allowed_actions=allowed_actions(task, workflow, officer),
        actions=_actions(task, workflow, officer),
        escalated_to=task.escalated_to,
        promised_at=task.promised_at,
        decided_by=task.decided_by,
        decided_at=task.decided_at,
        reason=task.reason,
        dossier=dict(task.dossier),
        history=[
            {**step.view(), "name_vi": ACTION_NAMES_VI.get(step.action, step.action)}
            for step in task.steps
        ],
    )
