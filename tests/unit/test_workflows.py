"""The default workflows, walked through every path; definitions refused with the line named."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.review.workflow import (
    ROLES,
    DefinitionError,
    NotAllowed,
    Registry,
    Workflow,
    load,
    load_all,
)
from shared.contracts import EVENT_TYPES
from tests.factories import CATALOGUE, review_task

REGISTRY = load_all()
WORKFLOWS = sorted({w.name: w for w in REGISTRY.latest.values()}.values(), key=lambda w: w.name)


def test_every_procedure_of_the_catalogue_has_a_workflow() -> None:
    assert set(REGISTRY.latest) == set(CATALOGUE.procedures)


def _role_for(workflow: Workflow, state: str, action: str) -> str:
    return next(a.roles[0] for a in workflow.actions_from(state) if a.name == action)


def walk(workflow: Workflow, actions: list[str]) -> tuple[str, list[str | None], list[int]]:
    """Take `actions` from the initial state; return the end state, emitted events, codes."""
    state, events, codes = workflow.definition.initial, [], []
    for name in actions:
        step = workflow.step(state, name, _role_for(workflow, state, name), reason="lý do")
        state = step.to
        events.append(step.emits)
        codes.append(step.status_code)
    return state, events, codes


TWO = REGISTRY.for_new("1.004222")
ONE = REGISTRY.for_new("1.004194")
NOTE = REGISTRY.for_new("2.001159")


@pytest.mark.parametrize(
    ("workflow", "actions", "end", "events", "codes"),
    [
        (
            TWO,
            ["receive", "propose", "approve", "deliver"],
            "delivered",
            ["dossier.received", "dossier.checked", "dossier.approved", "dossier.result_delivered"],
            [4, 4, 9, 10],
        ),
        (
            TWO,
            [
                "receive",
                "request_supplement",
                "supplemented",
                "request_supplement",
                "supplemented",
                "propose",
                "send_back",
                "propose",
                "reject",
                "deliver",
            ],
            "delivered",
            [
                "dossier.received",
                "dossier.supplement_requested",
                None,
                "dossier.supplement_requested",
                None,
                "dossier.checked",
                None,
                "dossier.checked",
                "dossier.rejected",
                "dossier.result_delivered",
            ],
            [4, 5, 4, 5, 4, 4, 4, 4, 9, 10],
        ),
        (
            TWO,
            ["receive", "request_payment", "confirm_payment", "propose", "approve"],
            "decided",
            [
                "dossier.received",
                "dossier.payment_requested",
                "dossier.paid",
                "dossier.checked",
                "dossier.approved",
            ],
            [4, 6, 4, 4, 9],
        ),
        (TWO, ["refuse"], "refused", ["dossier.refused"], [3]),
        (
            TWO,
            ["receive", "request_supplement", "stop"],
            "stopped",
            ["dossier.received", "dossier.supplement_requested", "dossier.stopped"],
            [4, 5, 8],
        ),
        (
            TWO,
            ["receive", "propose", "withdraw"],
            "withdrawn",
            ["dossier.received", "dossier.checked", None],
            [4, 4, 7],
        ),
        (
            ONE,
            ["receive", "approve", "deliver"],
            "delivered",
            ["dossier.received", "dossier.approved", "dossier.result_delivered"],
            [4, 9, 10],
        ),
        (
            ONE,
            ["request_supplement", "supplemented", "reject"],
            "decided",
            ["dossier.supplement_requested", None, "dossier.rejected"],
            [5, 4, 9],
        ),
        (ONE, ["withdraw"], "withdrawn", [None], [7]),
        (NOTE, ["record"], "recorded", ["dossier.received"], [10]),
        (NOTE, ["refuse"], "refused", ["dossier.refused"], [3]),
    ],
)
def test_a_path_emits_exactly_the_expected_events(
    workflow: Workflow, actions: list[str], end: str, events: list[str | None], codes: list[int]
) -> None:
    assert walk(workflow, actions) == (end, events, codes)


def all_paths(workflow: Workflow, max_visits: int = 2) -> list[list[str]]:
    """Every path from the initial state to a terminal one, each state visited at most
    `max_visits` times (so every loop, e.g. a supplement asked twice, is walked too)."""
    paths: list[list[str]] = []

    def go(state: str, path: list[str], visits: dict[str, int]) -> None:
        if workflow.state(state).terminal:
            paths.append(path)
            return
        for action in workflow.actions_from(state):
            if visits.get(action.to, 0) < max_visits:
                go(
                    action.to,
                    [*path, action.name],
                    {**visits, action.to: visits.get(action.to, 0) + 1},
                )

    go(workflow.definition.initial, [], {workflow.definition.initial: 1})
    return paths


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_every_path_of_every_workflow(workflow: Workflow) -> None:
    paths = all_paths(workflow)
    assert paths
    taken = set()
    for path in paths:
        state, events, codes = walk(workflow, path)
        assert workflow.state(state).terminal
        assert all(e is None or e in EVENT_TYPES for e in events)
        assert all(1 <= c <= 10 for c in codes)
        for name, event in zip(path, events, strict=True):
            action = next(a for a in workflow.definition.actions if a.name == name)
            assert event == action.emits  # each step emits its action's event, nothing else
        taken.update(path)
    # Every action of the definition lies on some path to an end.
    assert taken == {a.name for a in workflow.definition.actions}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_nothing_leaves_a_terminal_state_and_every_other_state_has_a_move(
    workflow: Workflow,
) -> None:
    for name, state in workflow.definition.states.items():
        if state.terminal:
            assert workflow.actions_from(name) == []
        else:
            assert workflow.actions_from(name), name
    assert {r for a in workflow.definition.actions for r in a.roles} <= ROLES


def test_an_action_not_allowed_now_names_those_that_are() -> None:
    with pytest.raises(NotAllowed) as caught:
        TWO.step("checking", "approve", "officer")
    assert caught.value.allowed == ["request_supplement", "request_payment", "propose"]
    with pytest.raises(NotAllowed, match="reason"):
        TWO.step("receiving", "refuse", "officer", reason=" ")
    with pytest.raises(NotAllowed):
        TWO.step("approving", "approve", "officer")  # the chief decides, not the officer


def test_incoming_events_take_their_actions() -> None:
    assert TWO.triggered_by("dossier.withdrawn", "approving").name == "withdraw"  # type: ignore[union-attr]
    assert TWO.triggered_by("dossier.supplemented", "supplement").name == "supplemented"  # type: ignore[union-attr]
    assert TWO.triggered_by("dossier.withdrawn", "decided") is None  # too late


VALID = (Path(__file__).parents[2] / "services/review/workflows/one-level.v1.yaml").read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (
                "  refused:    {status_code: 3, terminal: true, clock: stopped, waits_for: nobody}",
                "  refused:    {status_code: 3, terminal: true, clock: stopped, waits_for: nobody}\n"
                "  limbo:      {status_code: 4}",
            ),
            r"one\.yaml:\d+: state 'limbo' is unreachable from 'receiving'",
        ),
        (
            (
                "roles: [officer, chief], emits: dossier.approved}",
                "roles: [officer, janitor], emits: dossier.approved}",
            ),
            r"one\.yaml:\d+: action 'approve' names unknown role 'janitor'",
        ),
        (("terminal: true", "terminal: false"), r"one\.yaml:\d+: no terminal state"),
        (
            ("emits: dossier.received}", "emits: dossier.teleported}"),
            r"one\.yaml:\d+: action 'receive' names unknown event 'dossier.teleported'",
        ),
        (
            (
                "to: checking, roles: [officer, chief], emits: dossier.received",
                "to: nowhere, roles: [officer, chief], emits: dossier.received",
            ),
            r"one\.yaml:\d+: action 'receive' names unknown state 'nowhere'",
        ),
    ],
)
def test_a_broken_definition_is_refused_naming_file_line_and_what(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    assert change[0] in VALID
    path = tmp_path / "one.yaml"
    path.write_text(VALID.replace(change[0], change[1]))
    with pytest.raises(DefinitionError, match=message):
        load(path)


def test_the_line_named_is_the_line_of_the_fault(tmp_path: Path) -> None:
    text = VALID.replace(
        "roles: [officer, chief], emits: dossier.approved}",
        "roles: [officer, janitor], emits: dossier.approved}",
    )
    path = tmp_path / "one.yaml"
    path.write_text(text)
    with pytest.raises(DefinitionError) as caught:
        load(path)
    line = int(str(caught.value).split(":")[1])
    assert "janitor" in text.splitlines()[line - 1]


def test_a_dossier_keeps_its_version_after_a_newer_one_is_deployed(tmp_path: Path) -> None:
    (tmp_path / "one-level.v1.yaml").write_text(VALID)
    newer = VALID.replace("version: 1", "version: 2").replace(
        "sla: {working_days: 2}", "sla: {working_days: 1}"
    )
    (tmp_path / "one-level.v2.yaml").write_text(newer)
    registry: Registry = load_all(tmp_path)
    assert registry.for_new("1.004194").version == 2
    running = registry.get("one-level", 1)
    assert running.version == 1
    sla = running.state("checking").sla
    assert sla is not None and sla.working_days == 2


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_every_event_a_workflow_emits_can_be_built_and_read_back(workflow: Workflow) -> None:
    from datetime import UTC, datetime

    from services.review.steps import step_event
    from shared.contracts import decode

    for action in workflow.definition.actions:
        for state in action.from_states:
            task = review_task(
                dossier_code="D-1",
                procedure_code="1.004222",
                state=state,
                workflow=workflow.name,
            )
            step = workflow.step(state, action.name, action.roles[0], reason="lý do")
            event = step_event(
                task,
                step,
                actor="o",
                at=datetime.now(UTC),
                reason="lý do",
                source="urn:t",
                workflow_version=workflow.version,
            )
            if action.emits is None:
                assert event is None
                continue
            assert event is not None and event.type == action.emits
            assert decode(event.to_json()) == event
            assert event.correlationid == "c" and event.subject == "D-1"
