"""What every officer route of review needs: the caller and review's adapters (`Desk`), and
its domain errors answered as problem+json in Vietnamese and English."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from services.review.access import ScopeRefused
from services.review.auth import CurrentOfficer
from services.review.directory import Directory
from services.review.domain import Conflict, DomainError, Forbidden, InvalidAction, NotFound, Task
from services.review.ports import Publish
from services.review.roster import Officer
from services.review.settings import ReviewSettings
from services.review.store import TaskStore
from services.review.views import TaskView, view
from services.review.workflow import Registry
from shared.calendar import WorkingCalendar
from shared.clock import Clock
from shared.problems import Problem
from shared.web import from_state

T = TypeVar("T")

Tasks = Annotated[TaskStore, Depends(from_state("tasks", TaskStore))]
Settings = Annotated[ReviewSettings, Depends(from_state("settings", ReviewSettings))]
Workflows = Annotated[Registry, Depends(from_state("workflows", Registry))]
Calendar = Annotated[WorkingCalendar, Depends(from_state("calendar", WorkingCalendar))]
People = Annotated[Directory, Depends(from_state("directory", Directory))]


async def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


Now = Annotated[Clock, Depends(_clock)]


def problem(exc: DomainError) -> Problem:
    """A domain error as the API answers it."""
    if isinstance(exc, NotFound):
        return Problem(404, str(exc), "Không tìm thấy công việc.", code="task_not_found")
    if isinstance(exc, ScopeRefused):
        return Problem(
            403,
            str(exc),
            "Cán bộ chỉ xem được hồ sơ mình đang giữ và hồ sơ chưa có người nhận của đơn vị.",
            code="scope_not_allowed",
        )
    if isinstance(exc, Forbidden):
        return Problem(403, str(exc), "Cán bộ không có quyền với hồ sơ này.", code="forbidden")
    if isinstance(exc, Conflict):
        return Problem(
            409,
            str(exc),
            exc.message_vi,
            code=exc.code,
            extra={"allowed_actions": exc.allowed},
        )
    if isinstance(exc, InvalidAction):
        return Problem(422, str(exc), exc.message_vi, code=exc.code)
    return Problem(422, str(exc), "Yêu cầu không hợp lệ.", code="invalid_action")


async def answer(work: Awaitable[T]) -> T:
    """Run a use case; its domain errors as problem+json."""
    try:
        return await work
    except DomainError as exc:
        raise problem(exc) from exc


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

    def view(self, task: Task) -> TaskView:
        """The task as the caller sees it now."""
        return view(task, self.officer, self.workflows, self.calendar, self.clock())

    async def answer(self, work: Awaitable[Task]) -> TaskView:
        """Run a use case; its domain errors as problem+json, its task as the caller sees it."""
        return self.view(await answer(work))


async def _desk(
    officer: CurrentOfficer,
    tasks: Tasks,
    workflows: Workflows,
    calendar: Calendar,
    people: People,
    clock: Now,
    settings: Settings,
) -> Desk:
    return Desk(officer, tasks, workflows, calendar, people, clock, source(settings))


AtDesk = Annotated[Desk, Depends(_desk)]


def source(settings: ReviewSettings) -> str:
    """The events' source: review's task API."""
    return f"{settings.public_url}/v1/tasks"
