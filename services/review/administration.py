"""Administration of units and officers (role admin), as use cases over the directory port.

An admin of the province office (the directory's default unit) manages every unit and
officer; an admin of a ward unit manages that unit's officers. Officers are never deleted
(their names stay on the tasks they handled): set `active: false` instead.
"""

from __future__ import annotations

from typing import Any

from services.review.domain import Conflict, Forbidden
from services.review.ports import Directory
from services.review.roster import Officer, Roster, Unit
from shared import roles


class SelfDemotion(Conflict):
    """An admin tried to take away their own admin role or activity."""


def province_admin(admin: Officer, roster: Roster) -> bool:
    return admin.role in roles.DIRECTORY_ADMINS and admin.unit == roster.default_unit


def may_manage(admin: Officer, roster: Roster, *units: str) -> bool:
    """Province admins manage everyone; a unit's admin the officers of that unit."""
    return province_admin(admin, roster) or (
        admin.role in roles.DIRECTORY_ADMINS and all(u == admin.unit for u in units)
    )


async def list_units(admin: Officer, *, directory: Directory) -> list[Unit]:
    if admin.role not in roles.DIRECTORY_ADMINS:
        raise Forbidden("Only admins see the directory.")
    return list((await directory.roster()).units)


async def put_unit(admin: Officer, unit: Unit, *, directory: Directory) -> Unit:
    if not province_admin(admin, await directory.roster()):
        raise Forbidden("Only an admin of the province office manages units.")
    return await directory.put_unit(unit, by=admin.id)


async def list_officers(admin: Officer, *, directory: Directory) -> list[Officer]:
    if admin.role not in roles.DIRECTORY_ADMINS:
        raise Forbidden("Only admins see the directory.")
    roster = await directory.roster()
    return [o for o in roster.officers if may_manage(admin, roster, o.unit)]


async def put_officer(admin: Officer, officer: Officer, *, directory: Directory) -> Officer:
    roster = await directory.roster()
    current = roster.officer(officer.id)
    units = [officer.unit] + ([current.unit] if current else [])
    if not may_manage(admin, roster, *units):
        raise Forbidden(f"{admin.id} may not manage officers of {', '.join(sorted(set(units)))}.")
    if officer.id == admin.id and (
        officer.role not in roles.DIRECTORY_ADMINS or not officer.active
    ):
        raise SelfDemotion("An admin cannot demote or deactivate themself.")
    return await directory.put_officer(officer, by=admin.id)


async def officer_changes(
    admin: Officer, officer_id: str, *, directory: Directory
) -> list[dict[str, Any]]:
    roster = await directory.roster()
    officer = roster.officer(officer_id)
    if officer is None or not may_manage(admin, roster, officer.unit):
        raise Forbidden(f"{admin.id} may not see {officer_id}.")
    return await directory.history("officer", officer_id)
