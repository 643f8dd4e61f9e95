"""Who the caller is: the officer their token names, their unit and its officers (for the
console's header, the names in a task's history, and whom a task can be handed to)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.review import lookup
from services.review.auth import CurrentOfficer
from services.review.desk import People
from services.review.roster import Officer, Role, Unit
from shared import roles

router = APIRouter(prefix="/v1", tags=["officers"])


class Colleague(BaseModel):
    id: str
    name: str
    role: Role
    role_name: str = Field(description="The role in Vietnamese.")
    active: bool


class Me(BaseModel):
    officer: Colleague
    unit: Unit | None = Field(description="The officer's unit and the wards it receives.")
    province_office: bool = Field(description="Whether the unit is the province office.")
    officers: list[Colleague] = Field(description="Every officer of the unit, active first.")


def _colleague(o: Officer) -> Colleague:
    return Colleague(
        id=o.id, name=o.name, role=o.role, role_name=roles.name_vi(o.role), active=o.active
    )


@router.get(
    "/me",
    response_model=Me,
    summary="Who I am: my name, role and unit, and my unit's officers",
    responses={401: {"description": "No or bad officer token (problem+json)"}},
)
async def whoami(officer: CurrentOfficer, people: People) -> Me:
    found = await lookup.colleagues(officer, directory=people)
    return Me(
        officer=_colleague(found.officer),
        unit=found.unit,
        province_office=found.province,
        officers=[_colleague(o) for o in found.officers],
    )
