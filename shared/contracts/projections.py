"""What a partner may see of an event: its wire JSON, without personal data unless the partner
holds the `personal_data` scope.

A field is personal when its model marks it `Field(json_schema_extra={"x-personal": True})`
(shared/contracts/events.py, sms.py): the personal paths of each event type, the projection of
an event and the projection's JSON Schema are all derived from those markers, never from a
hand-kept list. What remains without the scope: the envelope (id, type, time, subject = the
dossier code…), the dossier code, procedure, unit, status code and dates.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from functools import cache
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from shared.contracts.envelope import Event
from shared.contracts.registry import EVENT_TYPES, UndecodableEvent, decode

PERSONAL_DATA = "personal_data"
"""The partner scope that lets personal fields through."""

PERSONAL_MARK = "x-personal"
"""The JSON Schema keyword (from `json_schema_extra`) that marks a personal field."""

Path = tuple[str, ...]


def is_personal(model: type[BaseModel], field: str) -> bool:
    extra = model.model_fields[field].json_schema_extra
    return isinstance(extra, dict) and extra.get(PERSONAL_MARK) is True


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation may hold: `M`, `M | None`, `list[M]`, `dict[str, M]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, list, tuple, set, frozenset, dict):
        for arg in get_args(annotation):
            yield from _models_in(arg)


def model_personal_paths(model: type[BaseModel]) -> frozenset[Path]:
    """The paths (by wire name) of the personal fields of `model`, nested models included."""
    paths: set[Path] = set()
    for name, info in model.model_fields.items():
        key = info.alias or name
        if is_personal(model, name):
            paths.add((key,))
            continue
        for inner in _models_in(info.annotation):
            paths.update((key, *sub) for sub in model_personal_paths(inner))
    return frozenset(paths)


@cache
def personal_paths(event_type: str) -> frozenset[Path]:
    """The personal paths of an event type's wire JSON, e.g. `("data", "applicant", "phone")`."""
    return model_personal_paths(_model(event_type))


def personal_fields(event_type: str) -> frozenset[str]:
    """The personal fields of an event type, dotted: `data.applicant.phone`."""
    return frozenset(".".join(path) for path in personal_paths(event_type))


def _model(event_type: str) -> type[Event]:
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise UndecodableEvent(f"unknown event type: {event_type!r}")
    return model


def _remove(value: Any, path: Path) -> None:
    """Delete `path` from a JSON value in place; a list applies the path to each item."""
    if isinstance(value, list):
        for item in value:
            _remove(item, path)
        return
    if not isinstance(value, dict):
        return
    head, *rest = path
    if not rest:
        value.pop(head, None)
    elif head in value:
        _remove(value[head], tuple(rest))


def project(event: Event | dict[str, Any], scopes: frozenset[str]) -> dict[str, Any]:
    """The wire dict of `event` (what the envelope publishes) that a partner holding `scopes`
    may see. A dict is read through its type's model first, so a field the model does not know
    (a newer producer's) never passes unchecked. Raises UndecodableEvent on an invalid dict."""
    if isinstance(event, dict):
        event = decode(json.dumps(event, default=str))
    return _narrowed(json.loads(event.to_json()), event.type, scopes)


def _narrowed(wire: dict[str, Any], event_type: str, scopes: frozenset[str]) -> dict[str, Any]:
    """`wire` without what `scopes` do not let a partner see (in place)."""
    if PERSONAL_DATA not in scopes:
        for path in personal_paths(event_type):
            _remove(wire, path)
    return wire


def _body(wire: dict[str, Any]) -> bytes:
    return json.dumps(wire, ensure_ascii=False, separators=(",", ":")).encode()


def project_json(event: Event | dict[str, Any], scopes: frozenset[str]) -> bytes:
    """The projection as the body a webhook sends."""
    return _body(project(event, scopes))


def narrow_json(body: bytes, event_type: str, scopes: frozenset[str]) -> bytes:
    """A body `project_json` made, as a partner holding `scopes` now may see it: a scope taken
    away since it was queued takes its fields out of what is sent (the same bytes otherwise)."""
    if PERSONAL_DATA in scopes:
        return body
    return _body(_narrowed(json.loads(body), event_type, scopes))


def strip_personal(schema: Any) -> None:
    """Remove every property marked personal from a JSON Schema, in place (and from
    `required`)."""
    if isinstance(schema, list):
        for item in schema:
            strip_personal(item)
        return
    if not isinstance(schema, dict):
        return
    properties = schema.get("properties")
    if isinstance(properties, dict):
        gone = [k for k, v in properties.items() if isinstance(v, dict) and v.get(PERSONAL_MARK)]
        for key in gone:
            del properties[key]
        if "required" in schema:
            schema["required"] = [k for k in schema["required"] if k not in gone]
            if not schema["required"]:
                del schema["required"]
    for value in schema.values():
        strip_personal(value)


@cache
def _full_schema(event_type: str) -> str:
    return json.dumps(_model(event_type).model_json_schema(mode="serialization"))


def projection_schema(event_type: str, scopes: frozenset[str]) -> dict[str, Any]:
    """The JSON Schema of the projection of `event_type` for a partner holding `scopes`."""
    schema: dict[str, Any] = json.loads(_full_schema(event_type))
    if PERSONAL_DATA not in scopes:
        strip_personal(schema)
        schema["title"] = f"{schema.get('title', event_type)}Projection"
        schema["description"] = (
            f"{schema.get('description', '')}\n\nWithout the `{PERSONAL_DATA}` scope: no "
            "personal field."
        ).strip()
    return schema
