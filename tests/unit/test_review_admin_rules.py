"""An admin cannot move or demote themself; an officer moved to another unit hands their
open tasks back to the old unit's queue (unassigned, a `release` recorded by the admin)."""

from __future__ import annotations

from typing import Any

import pytest

from services.review import administration
from services.review.domain import Forbidden
from services.review.roster import Officer
from shared.contracts import DossierReassignedData
from tests.unit.test_review_handlers import (
    ADMIN,
    COLLEAGUE,
    HOLDER,
    T0,
    FakeDirectory,
    FakeTasks,
    Published,
    _task,
)


def _ports() -> tuple[FakeTasks, Published, dict[str, Any]]:
    tasks, publish = FakeTasks(), Published()
    return tasks, publish, {"tasks": tasks, "clock": lambda: T0, "publish": publish, "source": "s"}


async def test_an_admin_cannot_move_themself() -> None:
    directory = FakeDirectory()
    _, publish, ports = _ports()
    moved = ADMIN.model_copy(update={"unit": "V"})
    with pytest.raises(administration.SelfMove):
        await administration.put_officer(ADMIN, moved, directory=directory, **ports)
    assert (await directory.roster()).officer(ADMIN.id) == ADMIN
    assert directory.changes == [] and publish.events == []


@pytest.mark.parametrize("change", [{"role": "chief"}, {"active": False}])
async def test_an_admin_cannot_demote_or_deactivate_themself(change: dict[str, Any]) -> None:
    directory = FakeDirectory()
    _, _, ports = _ports()
    with pytest.raises(administration.SelfDemotion):
        await administration.put_officer(
            ADMIN, ADMIN.model_copy(update=change), directory=directory, **ports
        )
    assert directory.changes == []


async def test_an_admin_may_rename_themself() -> None:
    directory = FakeDirectory()
    _, _, ports = _ports()
    renamed = ADMIN.model_copy(update={"name": "Quản trị"})
    assert await administration.put_officer(ADMIN, renamed, directory=directory, **ports)
    assert (await directory.roster()).officer(ADMIN.id) == renamed


async def test_a_moved_officer_hands_their_open_tasks_back_to_the_old_unit() -> None:
    directory = FakeDirectory()
    tasks, publish, ports = _ports()
    await tasks.create(_task(id="t1", dossier_code="D1"), [])
    await tasks.create(_task(id="t2", dossier_code="D2"), [])
    await tasks.create(_task(id="t3", dossier_code="D3", officer_id=COLLEAGUE.id), [])
    moved = HOLDER.model_copy(update={"unit": "V"})
    await administration.put_officer(ADMIN, moved, directory=directory, **ports)
    for task_id in ("t1", "t2"):
        task = await tasks.load(task_id)
        assert task is not None
        assert (task.officer_id, task.unit_id, task.state) == (None, "U", "checking")
    colleague_task = await tasks.load("t3")
    assert colleague_task is not None and colleague_task.officer_id == COLLEAGUE.id
    assert publish.types() == ["dossier.reassigned"] * 2
    data = [e.data for e in publish.events if isinstance(e.data, DossierReassignedData)]
    assert len(data) == 2
    assert {(d.action, d.previous_officer_id, d.officer_id, d.by) for d in data} == {
        ("release", HOLDER.id, None, ADMIN.id)
    }
    assert (await directory.roster()).officer(HOLDER.id) == moved


async def test_an_officer_who_stays_in_their_unit_keeps_their_tasks() -> None:
    directory = FakeDirectory()
    tasks, publish, ports = _ports()
    await tasks.create(_task(id="t1"), [])
    renamed = HOLDER.model_copy(update={"name": "Renamed"})
    await administration.put_officer(ADMIN, renamed, directory=directory, **ports)
    task = await tasks.load("t1")
    assert task is not None and task.officer_id == HOLDER.id
    assert publish.events == []


async def test_a_refused_move_hands_nothing_back() -> None:
    directory = FakeDirectory()
    tasks, publish, ports = _ports()
    await tasks.create(_task(id="t1"), [])
    ward_admin = Officer(id="a2", name="W", role="admin", unit="V")
    await directory.put_officer(ward_admin, by="seed")
    with pytest.raises(Forbidden):
        await administration.put_officer(
            ward_admin, HOLDER.model_copy(update={"unit": "V"}), directory=directory, **ports
        )
    task = await tasks.load("t1")
    assert task is not None and task.officer_id == HOLDER.id and publish.events == []


async def test_the_same_put_again_finishes_a_hand_back_cut_short() -> None:
    """The move was stored but the hand-back failed (a database blip): the officer, already in
    the new unit, still holds a task of the old one. The admin's PUT again releases it."""
    directory = FakeDirectory()
    tasks, publish, ports = _ports()
    moved = HOLDER.model_copy(update={"unit": "V"})
    await directory.put_officer(moved, by=ADMIN.id)  # stored before the failure
    await tasks.create(_task(id="t1", dossier_code="D1"), [])  # still held, unit U
    await administration.put_officer(ADMIN, moved, directory=directory, **ports)
    task = await tasks.load("t1")
    assert task is not None and (task.officer_id, task.unit_id) == (None, "U")
    assert publish.types() == ["dossier.reassigned"]
