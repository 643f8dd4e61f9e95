"""Administration of units and officers (role admin), as use cases over the directory port.

An admin of the province office (the directory's default unit) manages every unit and
officer; an admin of a ward unit manages that unit's officers. Officers are never deleted
(their names stay on the tasks they handled): set `active: false` instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.review import handover
from services.review.access import Scope
from services.review.domain import Conflict, Forbidden, Task
from services.review.handlers import commit
from services.review.ports import Directory, Publish, QueueFilter, Tasks
from services.review.roster import Officer, Roster, Unit
from services.review.steps import Decision
from shared import roles
from shared.clock import Clock


class SelfDemotion(Conflict):
    """An admin tried to take away their own admin role or activity."""


class SelfMove(Conflict):
    """An admin tried to move themself to another unit."""


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


def check_officer_change(admin: Officer, roster: Roster, officer: Officer) -> Officer | None:
    """Refuse a change `admin` may not make; return the officer as they are now (None: new)."""
    current = roster.officer(officer.id)
    units = [officer.unit] + ([current.unit] if current else [])
    if not may_manage(admin, roster, *units):
        raise Forbidden(f"{admin.id} may not manage officers of {', '.join(sorted(set(units)))}.")
    if officer.id == admin.id:
        if officer.role not in roles.DIRECTORY_ADMINS or not officer.active:
            raise SelfDemotion("An admin cannot demote or deactivate themself.")
        if officer.unit != admin.unit:
            raise SelfMove("An admin cannot move themself to another unit; ask another admin.")
    return current


def hand_back(task: Task, moved: Officer, *, by: Officer, at: datetime, source: str) -> Decision:
    """An officer moved out of the task's unit: the task goes back to that unit's queue,
    unassigned, recorded as a release by the admin who moved them."""
    return handover.hand_over(
        task,
        "release",
        to=None,
        by=by,
        at=at,
        reason=f"{moved.id} moved to {moved.unit}",
        source=source,
    )


async def put_officer(
    admin: Officer,
    officer: Officer,
    *,
    directory: Directory,
    tasks: Tasks,
    clock: Clock,
    publish: Publish,
    source: str,
) -> Officer:
    """Create or change an officer; one moved to another unit hands their open tasks of the
    old unit back to its queue. Any change of an existing officer hands back what they still
    hold outside their unit, so the same PUT again finishes a hand-back a failure cut short."""
    current = check_officer_change(admin, await directory.roster(), officer)
    saved = await directory.put_officer(officer, by=admin.id)
    if current is not None:
        await hand_back_all(
            saved, by=admin, tasks=tasks, clock=clock, publish=publish, source=source
        )
    return saved


async def hand_back_all(
    moved: Officer,
    *,
    by: Officer,
    tasks: Tasks,
    clock: Clock,
    publish: Publish,
    source: str,
    batch: int = 100,
    rounds: int = 20,
) -> int:
    """Release every open task `moved` holds outside their (new) unit; return how many.

    Each is a step guarded by the task's version: one that changed meanwhile is reloaded
    and decided again, so a task the officer finished or released meanwhile is left alone."""
    released = 0
    mine = [Scope(officer_id=moved.id)]
    for _ in range(rounds):
        held = [
            t
            for t in await tasks.queue(mine, QueueFilter(), None, batch)
            if t.unit_id != moved.unit
        ]
        if not held:
            return released
        for task in held:
            try:
                await commit(
                    tasks, publish, task, hand_back(task, moved, by=by, at=clock(), source=source)
                )
                released += 1
            except Conflict:
                continue  # changed meanwhile: the next round reloads it
    return released


async def officer_changes(
    admin: Officer, officer_id: str, *, directory: Directory
) -> list[dict[str, Any]]:
    roster = await directory.roster()
    officer = roster.officer(officer_id)
    if officer is None or not may_manage(admin, roster, officer.unit):
        raise Forbidden(f"{admin.id} may not see {officer_id}.")
    return await directory.history("officer", officer_id)
