"""Administration routes of units and officers (role admin); the rules are in
administration.py."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from services.review import administration
from services.review.administration import SelfDemotion, SelfMove
from services.review.auth import CurrentOfficer
from services.review.desk import AtDesk
from services.review.directory import Directory, DirectoryError
from services.review.domain import Forbidden
from services.review.roster import Officer, Role, Unit
from shared.contracts.identifiers import IDENTIFIER_PATTERN, Text, UnitId
from shared.problems import Problem
from shared.web import from_state

T = TypeVar("T")
router = APIRouter(prefix="/v1/admin", tags=["admin"])

People = Annotated[Directory, Depends(from_state("directory", Directory))]
UnitPath = Annotated[str, Path(pattern=IDENTIFIER_PATTERN, max_length=64, description="Unit id.")]
OfficerPath = Annotated[
    str, Path(pattern=IDENTIFIER_PATTERN, max_length=64, description="Officer id.")
]
Name = Annotated[Text, Field(min_length=1, max_length=200)]


class UnitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    wards: list[Annotated[str, Field(pattern=r"^[0-9]{5}$")]] = Field(
        default_factory=list, max_length=2000, description="Commune/ward codes received."
    )


class OfficerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    role: Role
    unit: UnitId
    active: bool = True


async def _run(work: Awaitable[T]) -> T:
    """Run an admin use case; its refusals as problem+json."""
    try:
        return await work
    except SelfMove as exc:
        raise Problem(
            409,
            str(exc),
            "Quản trị viên không tự chuyển mình sang đơn vị khác; nhờ quản trị viên khác.",
            code="self_move",
        ) from exc
    except SelfDemotion as exc:
        raise Problem(
            409,
            str(exc),
            "Quản trị viên không tự hạ quyền hoặc tự ngừng hoạt động.",
            code="self_demotion",
        ) from exc
    except Forbidden as exc:
        raise Problem(
            403, str(exc), "Chỉ quản trị viên mới được thay đổi danh sách.", code="forbidden"
        ) from exc
    except DirectoryError as exc:
        raise Problem(
            422, str(exc), "Thay đổi làm danh sách không nhất quán.", code="invalid"
        ) from exc


@router.get("/units", response_model=list[Unit], summary="Units and the wards each receives")
async def list_units(admin: CurrentOfficer, people: People) -> list[Unit]:
    return await _run(administration.list_units(admin, directory=people))


@router.put("/units/{unit_id}", response_model=Unit, summary="Create or change a unit")
async def put_unit(
    unit_id: UnitPath, body: UnitBody, admin: CurrentOfficer, people: People
) -> Unit:
    unit = Unit(id=unit_id, **body.model_dump())
    return await _run(administration.put_unit(admin, unit, directory=people))


@router.get("/officers", response_model=list[Officer], summary="Officers an admin manages")
async def list_officers(admin: CurrentOfficer, people: People) -> list[Officer]:
    return await _run(administration.list_officers(admin, directory=people))


@router.put("/officers/{officer_id}", response_model=Officer, summary="Create or change an officer")
async def put_officer(officer_id: OfficerPath, body: OfficerBody, desk: AtDesk) -> Officer:
    """An officer moved to another unit hands their open tasks back to the old unit's queue
    (unassigned; a `release` by this admin is recorded on each)."""
    officer = Officer(id=officer_id, **body.model_dump())
    return await _run(
        administration.put_officer(
            desk.officer,
            officer,
            directory=desk.directory,
            tasks=desk.tasks,
            clock=desk.clock,
            publish=desk.publish,
            source=desk.source,
        )
    )


@router.get(
    "/officers/{officer_id}/changes", summary="Who changed an officer, when, from what to what"
)
async def officer_changes(
    officer_id: OfficerPath, admin: CurrentOfficer, people: People
) -> list[dict[str, Any]]:
    return await _run(administration.officer_changes(admin, officer_id, directory=people))
