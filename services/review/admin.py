"""Administration of units and officers (role admin).

An admin of the province office (the directory's default unit) manages every unit and
officer; an admin of a ward unit manages that unit's officers. Officers are never deleted
(their names stay on the tasks they handled): set `active: false` instead.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from services.review.auth import CurrentOfficer
from services.review.directory import Directory, DirectoryError
from services.review.roster import Officer, Role, Roster, Unit
from shared.problems import Problem
from shared.web import from_state

router = APIRouter(prefix="/v1/admin", tags=["admin"])

People = Annotated[Directory, Depends(from_state("directory", Directory))]


class UnitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    wards: list[str] = Field(default_factory=list, description="Commune/ward codes received.")


class OfficerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role
    unit: str = Field(min_length=1, max_length=100)
    active: bool = True


def _forbidden(detail: str) -> Problem:
    return Problem(403, detail, "Chỉ quản trị viên mới được thay đổi danh sách.", code="forbidden")


def _province_admin(admin: Officer, roster: Roster) -> bool:
    return admin.role == "admin" and admin.unit == roster.default_unit


def _may_manage(admin: Officer, roster: Roster, *units: str) -> bool:
    return _province_admin(admin, roster) or (
        admin.role == "admin" and all(u == admin.unit for u in units)
    )


def _invalid(exc: DirectoryError) -> Problem:
    return Problem(422, str(exc), "Thay đổi làm danh sách không nhất quán.", code="invalid")


@router.get("/units", response_model=list[Unit], summary="Units and the wards each receives")
async def list_units(admin: CurrentOfficer, people: People) -> list[Unit]:
    roster = await people.roster()
    if admin.role != "admin":
        raise _forbidden("Only admins see the directory.")
    return list(roster.units)


@router.put("/units/{unit_id}", response_model=Unit, summary="Create or change a unit")
async def put_unit(unit_id: str, body: UnitBody, admin: CurrentOfficer, people: People) -> Unit:
    if not _province_admin(admin, await people.roster()):
        raise _forbidden("Only an admin of the province office manages units.")
    try:
        return await people.put_unit(Unit(id=unit_id, **body.model_dump()), by=admin.id)
    except DirectoryError as exc:
        raise _invalid(exc) from exc


@router.get("/officers", response_model=list[Officer], summary="Officers an admin manages")
async def list_officers(admin: CurrentOfficer, people: People) -> list[Officer]:
    roster = await people.roster()
    if admin.role != "admin":
        raise _forbidden("Only admins see the directory.")
    return [o for o in roster.officers if _may_manage(admin, roster, o.unit)]


@router.put("/officers/{officer_id}", response_model=Officer, summary="Create or change an officer")
async def put_officer(
    officer_id: str, body: OfficerBody, admin: CurrentOfficer, people: People
) -> Officer:
    roster = await people.roster()
    current = roster.officer(officer_id)
    units = [body.unit] + ([current.unit] if current else [])
    if not _may_manage(admin, roster, *units):
        raise _forbidden(f"{admin.id} may not manage officers of {', '.join(sorted(set(units)))}.")
    if officer_id == admin.id and (body.role != "admin" or not body.active):
        raise Problem(
            409,
            "An admin cannot demote or deactivate themself.",
            "Quản trị viên không tự hạ quyền hoặc tự ngừng hoạt động.",
            code="self_demotion",
        )
    try:
        return await people.put_officer(Officer(id=officer_id, **body.model_dump()), by=admin.id)
    except DirectoryError as exc:
        raise _invalid(exc) from exc


@router.get(
    "/officers/{officer_id}/changes", summary="Who changed an officer, when, from what to what"
)
async def officer_changes(
    officer_id: str, admin: CurrentOfficer, people: People
) -> list[dict[str, Any]]:
    roster = await people.roster()
    officer = roster.officer(officer_id)
    if officer is None or not _may_manage(admin, roster, officer.unit):
        raise _forbidden(f"{admin.id} may not see {officer_id}.")
    return await people.history("officer", officer_id)
