from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.review.domain import (
    Conflict,
    DomainError,
    Forbidden,
    Task,
    check_decision,
    pick_officer,
)
from services.review.roster import Officer, load_roster
from services.review.settings import DEFAULT_ROSTER


def _task(**changes: object) -> Task:
    base: dict[str, object] = {
        "id": "t1",
        "dossier_code": "D1",
        "procedure_code": "1.004194",
        "unit_id": "U1",
        "officer_id": "o1",
        "state": "assigned",
        "created_at": datetime.now(UTC),
        "correlation_id": "c",
        "dossier": {},
    }
    base.update(changes)
    return Task(**base)  # type: ignore[arg-type]


OFFICER = Officer(id="o1", name="A", role="officer", unit="U1")
COLLEAGUE = Officer(id="o2", name="B", role="officer", unit="U1")
CHIEF = Officer(id="c1", name="C", role="chief", unit="U1")
STRANGER = Officer(id="x1", name="D", role="chief", unit="U2")


def test_the_least_loaded_officer_gets_the_task() -> None:
    assert pick_officer([OFFICER, COLLEAGUE], {"o1": 3, "o2": 1}) == COLLEAGUE
    assert pick_officer([OFFICER, COLLEAGUE], {}) == OFFICER


def test_no_candidate_is_an_error() -> None:
    with pytest.raises(DomainError):
        pick_officer([], {})


def test_assignee_and_chief_may_decide_others_may_not() -> None:
    check_decision(_task(), OFFICER, "approve", None)
    check_decision(_task(), CHIEF, "approve", None)
    with pytest.raises(Forbidden):
        check_decision(_task(), COLLEAGUE, "approve", None)
    with pytest.raises(Forbidden):
        check_decision(_task(), STRANGER, "approve", None)


def test_a_closed_task_cannot_be_decided_again() -> None:
    with pytest.raises(Conflict):
        check_decision(_task(state="approved"), OFFICER, "reject", "late")


def test_a_rejection_needs_a_reason() -> None:
    with pytest.raises(DomainError, match="reason"):
        check_decision(_task(), OFFICER, "reject", "  ")


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
