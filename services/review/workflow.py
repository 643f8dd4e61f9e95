"""Workflows as data: each procedure's states, actions, roles, SLAs and events, versioned.

A definition (`workflows/<name>.yaml`) is checked on load: every state reachable from the
initial one, at least one terminal state and none with a way out, every action's states, roles
and events known, every portal status code 1–10. An error names the file and the line. A dossier
keeps the version it started with; a newer file is a new version beside the old one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.contracts import EVENT_TYPES
from shared.roles import ACTORS

WORKFLOWS_DIR = Path(__file__).parent / "workflows"
ROLES = ACTORS
LINE = "__line__"


class DefinitionError(ValueError):
    """A workflow file that does not hold together; the message names file, line and what."""


class Sla(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    working_days: float | None = Field(default=None, gt=0)
    working_hours: float | None = Field(default=None, gt=0)

    @property
    def hours(self) -> float:
        return (self.working_days or 0) * 8 + (self.working_hours or 0)


class State(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status_code: int = Field(ge=1, le=10, description="National portal status (DOMAIN.md)")
    terminal: bool = False
    clock: Literal["running", "paused", "stopped"] = "running"
    sla: Sla | None = None
    waits_for: Literal["officer", "chief", "citizen", "nobody"] = "officer"
    line: int = 0


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    from_states: list[str] = Field(alias="from")
    to: str
    roles: list[str]
    emits: str | None = None
    reason: Literal["required", "optional", "none"] = "optional"
    trigger: str | None = Field(
        default=None, description="An event that takes this action by itself (e.g. withdrawal)."
    )
    line: int = 0


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    procedures: list[str] = Field(min_length=1)
    version: int = Field(ge=1)
    initial: str
    states: dict[str, State]
    actions: list[Action]


@dataclass(frozen=True)
class Step:
    """What taking an action does: the state it leads to and the event it emits."""

    action: Action
    to: str
    status_code: int
    emits: str | None


class NotAllowed(Exception):
    """The action cannot be taken now (by this role); `allowed` lists what can."""

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class Workflow:
    """A loaded, checked definition."""

    def __init__(self, definition: Definition, source: str) -> None:
        self.definition = definition
        self.source = source
        self.name = definition.name
        self.version = definition.version

    def state(self, name: str) -> State:
        return self.definition.states[name]

    def actions_from(self, state: str, role: str | None = None) -> list[Action]:
        """Actions possible in `state` (for `role`, if given), in file order."""
        return [
            a
            for a in self.definition.actions
            if (state in a.from_states or "*" in a.from_states)
            and not self.state(state).terminal
            and (role is None or role in a.roles)
        ]

    def step(self, state: str, action: str, role: str, reason: str | None = None) -> Step:
        """Take `action` in `state` as `role`, or raise NotAllowed naming what is allowed."""
        allowed = [a.name for a in self.actions_from(state, role)]
        chosen = next((a for a in self.actions_from(state, role) if a.name == action), None)
        if chosen is None:
            raise NotAllowed(f"{action!r} is not allowed in state {state!r} for {role}", allowed)
        if chosen.reason == "required" and not (reason and reason.strip()):
            raise NotAllowed(f"{action!r} needs a reason", allowed)
        target = self.state(chosen.to)
        return Step(chosen, chosen.to, target.status_code, chosen.emits)

    def triggered_by(self, event_type: str, state: str) -> Action | None:
        """The action an incoming event takes in `state`, if any."""
        return next((a for a in self.actions_from(state) if a.trigger == event_type), None)


class _LineLoader(yaml.SafeLoader):
    """Records the line of every mapping, so errors can name it."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_with_line,
)


def _strip_lines(raw: Any) -> tuple[Any, dict[str, int]]:
    """Remove line markers; return the data and the lines of states and actions."""
    lines: dict[str, int] = {}
    if isinstance(raw, dict):
        for name, state in (raw.get("states") or {}).items():
            if isinstance(state, dict):
                lines[f"state:{name}"] = state.pop(LINE, 0)
                state["line"] = lines[f"state:{name}"]
        for action in raw.get("actions") or []:
            if isinstance(action, dict):
                action["line"] = action.pop(LINE, 0)
        raw.pop(LINE, None)
        for value in raw.values():
            _drop(value)
    return raw, lines


def _drop(value: Any) -> None:
    if isinstance(value, dict):
        value.pop(LINE, None)
        for v in value.values():
            _drop(v)
    elif isinstance(value, list):
        for v in value:
            _drop(v)


def check(definition: Definition, source: str) -> Workflow:
    """Refuse a definition that cannot run, naming the line of what is wrong."""

    def fail(line: int, message: str) -> DefinitionError:
        return DefinitionError(f"{source}:{line}: {message}")

    states = definition.states
    if definition.initial not in states:
        raise fail(1, f"initial state {definition.initial!r} is not defined")
    for action in definition.actions:
        for name in [*action.from_states, action.to]:
            if name != "*" and name not in states:
                raise fail(action.line, f"action {action.name!r} names unknown state {name!r}")
        unknown = sorted(set(action.roles) - ROLES)
        if unknown:
            raise fail(action.line, f"action {action.name!r} names unknown role {unknown[0]!r}")
        for event in filter(None, (action.emits, action.trigger)):
            if event not in EVENT_TYPES:
                raise fail(action.line, f"action {action.name!r} names unknown event {event!r}")
    terminals = [name for name, s in states.items() if s.terminal]
    if not terminals:
        raise fail(1, "no terminal state: a dossier could never finish")
    for action in definition.actions:
        for name in action.from_states:
            if name != "*" and states[name].terminal:
                raise fail(action.line, f"terminal state {name!r} has a way out ({action.name!r})")
    reached, queue = {definition.initial}, deque([definition.initial])
    while queue:
        current = queue.popleft()
        for action in definition.actions:
            if (
                (current in action.from_states or "*" in action.from_states)
                and not states[current].terminal
                and action.to not in reached
            ):
                reached.add(action.to)
                queue.append(action.to)
    for name, state in states.items():
        if name not in reached:
            raise fail(state.line, f"state {name!r} is unreachable from {definition.initial!r}")
    return Workflow(definition, source)


def load(path: Path) -> Workflow:
    """Read and check one definition file."""
    try:
        raw = yaml.load(path.read_text("utf-8"), Loader=_LineLoader)
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path.name}: not YAML: {exc}") from exc
    raw, _ = _strip_lines(raw)
    try:
        definition = Definition.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DefinitionError(f"{path.name}: {where}: {first['msg']}") from exc
    return check(definition, path.name)


REMIND_AT_SHARE = 0.8  # remind when this share of a step's SLA is used


class Registry:
    """Every version of every workflow; which one a procedure starts on."""

    def __init__(self, workflows: list[Workflow]) -> None:
        self.by_version = {(w.name, w.version): w for w in workflows}
        self.latest: dict[str, Workflow] = {}
        for w in sorted(workflows, key=lambda w: w.version):
            for procedure in w.definition.procedures:
                self.latest[procedure] = w

    def for_new(self, procedure: str) -> Workflow:
        """The workflow a newly submitted dossier of `procedure` starts on (the newest)."""
        try:
            return self.latest[procedure]
        except KeyError:
            raise KeyError(f"no workflow for procedure {procedure}") from None

    def get(self, name: str, version: int) -> Workflow:
        """The exact version a running dossier keeps, even after a newer one is deployed."""
        return self.by_version[(name, version)]


def load_all(directory: Path = WORKFLOWS_DIR) -> Registry:
    workflows = [load(path) for path in sorted(directory.glob("*.yaml"))]
    if not workflows:
        raise DefinitionError(f"no workflow definitions in {directory}")
    return Registry(workflows)
