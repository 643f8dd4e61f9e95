from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.review.domain import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidAction,
    Task,
    check_action,
    pick_officer,
)
from services.review.roster import Officer, load_roster
from services.review.settings import DEFAULT_ROSTER
from services.review.workflow import load_all

WORKFLOWS = load_all()
TWO = WORKFLOWS.for_new("1.004222")


def _task(state: str = "receiving", **changes: object) -> Task:
    base: dict[str, object] = {
        "id": "t1",
        "dossier_code": "D1",
        "procedure_code": "1.004222",
        "unit_id": "U1",
        "officer_id": "o1",
        "state": state,
        "created_at": datetime.now(UTC),
        "correlation_id": "c",
        "dossier": {},
        "workflow": "two-level",
        "terminal": TWO.state(state).terminal,
    }
    base.update(changes)
    return Task(**base)  # type: ignore[arg-type]


ASSIGNEE = Officer(id="o1", name="A", role="officer", unit="U1")
COLLEAGUE = Officer(id="o2", name="B", role="officer", unit="U1")
CHIEF = Officer(id="c1", name="C", role="chief", unit="U1")
SUPERVISOR = Officer(id="s1", name="S", role="supervisor", unit="U1")
ADMIN = Officer(id="a1", name="Q", role="admin", unit="U1")
FOREIGN_CHIEF = Officer(id="x1", name="D", role="chief", unit="U2")
FOREIGN_OFFICER = Officer(id="o1", name="E", role="officer", unit="U2")


def test_the_least_loaded_officer_gets_the_task() -> None:
    assert pick_officer([ASSIGNEE, COLLEAGUE], {"o1": 3, "o2": 1}) == COLLEAGUE
    assert pick_officer([ASSIGNEE, COLLEAGUE], {}) == ASSIGNEE
    with pytest.raises(DomainError):
        pick_officer([], {})


# role × action (in the state where the action exists) × own/other unit → allowed?
MATRIX = [
    # state, action, officer, allowed
    ("receiving", "receive", ASSIGNEE, True),
    ("receiving", "receive", COLLEAGUE, False),
    ("receiving", "receive", CHIEF, True),
    ("receiving", "receive", SUPERVISOR, False),
    ("receiving", "receive", ADMIN, False),
    ("receiving", "receive", FOREIGN_CHIEF, False),
    ("receiving", "receive", FOREIGN_OFFICER, False),
    ("checking", "propose", ASSIGNEE, True),
    ("checking", "propose", CHIEF, False),
    ("checking", "propose", FOREIGN_OFFICER, False),
    ("approving", "approve", ASSIGNEE, False),
    ("approving", "approve", CHIEF, True),
    ("approving", "approve", SUPERVISOR, False),
    ("approving", "approve", FOREIGN_CHIEF, False),
    ("approving", "reject", CHIEF, True),
    ("approving", "send_back", CHIEF, True),
    ("checking", "stop", CHIEF, True),
    ("checking", "stop", SUPERVISOR, True),
    ("checking", "stop", ASSIGNEE, False),
    ("checking", "stop", ADMIN, False),
    ("decided", "deliver", ASSIGNEE, True),
    ("decided", "deliver", COLLEAGUE, False),
    ("supplement", "supplemented", ASSIGNEE, False),  # only the citizen's own act does it
]


@pytest.mark.parametrize(("state", "action", "officer", "allowed"), MATRIX)
def test_authorization_matrix(state: str, action: str, officer: Officer, allowed: bool) -> None:
    task = _task(state)
    if allowed:
        step = check_action(task, TWO, officer, action, "lý do")
        assert step.action.name == action
    else:
        with pytest.raises(Forbidden):
            check_action(task, TWO, officer, action, "lý do")


def test_an_action_of_another_state_is_a_conflict_listing_what_is_allowed() -> None:
    with pytest.raises(Conflict) as caught:
        check_action(_task("checking"), TWO, ASSIGNEE, "approve", None)
    assert caught.value.allowed == ["request_supplement", "request_payment", "propose"]


def test_a_closed_task_is_a_conflict_with_nothing_allowed() -> None:
    with pytest.raises(Conflict) as caught:
        check_action(_task("delivered"), TWO, CHIEF, "deliver", None)
    assert caught.value.allowed == []


def test_a_refusal_needs_a_reason() -> None:
    with pytest.raises(InvalidAction, match="reason"):
        check_action(_task("receiving"), TWO, ASSIGNEE, "refuse", "  ")


def test_the_shipped_roster_routes_wards_to_units() -> None:
    roster = load_roster(DEFAULT_ROSTER)
    assert roster.unit_for_ward("00004") == "CAP-BADINH"
    assert roster.unit_for_ward("99999") == roster.default_unit
    assert {o.role for o in roster.assignable("CAP-BADINH")} == {"officer"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default_unit: X\nunits: []\nofficers: []\n", "default_unit"),
        (
            "default_unit: A\nunits: [{id: A, name: a, wards: ['1']}, {id: B, name: b, wards: ['1']}]\n"
            "officers: []\n",
            "ward 1",
        ),
        (
            "default_unit: A\nunits: [{id: A, name: a}]\n"
            "officers: [{id: o, name: o, role: officer, unit: Z}]\n",
            "unknown unit",
        ),
        ("default_unit: [", "invalid roster"),
    ],
)
def test_a_bad_roster_is_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "roster.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_roster(path)


def test_an_overdue_task_escalated_to_a_supervisor_of_another_unit_is_theirs_to_act_on() -> None:
    province_supervisor = Officer(id="gs", name="G", role="supervisor", unit="PROVINCE")
    with pytest.raises(Forbidden):
        check_action(_task("checking"), TWO, province_supervisor, "stop", "quá hạn")
    escalated = _task("checking", escalated_to="gs")
    assert check_action(escalated, TWO, province_supervisor, "stop", "quá hạn").to == "stopped"
    with pytest.raises(Forbidden):  # escalation lets the supervisor act, not anyone else
        check_action(escalated, TWO, FOREIGN_CHIEF, "stop", "quá hạn")
