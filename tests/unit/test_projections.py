"""A partner without the personal-data scope sees no personal field of any event type."""

from __future__ import annotations

import enum
import json
import types
from datetime import UTC, date, datetime
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from shared.contracts import EVENT_TYPES, DossierSubmitted
from shared.contracts.projections import (
    PERSONAL_DATA,
    personal_fields,
    personal_paths,
    project,
    project_json,
    projection_schema,
)

NO_SCOPE: frozenset[str] = frozenset()
WITH_SCOPE = frozenset({PERSONAL_DATA})


def _value(annotation: Any, path: str) -> Any:
    """A value of `annotation` that is unique to `path` wherever it can be (strings)."""
    origin = get_origin(annotation)
    if origin is Literal:
        return get_args(annotation)[0]
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _value(inner[0], path)
    if origin is list:
        return [_value(get_args(annotation)[0], f"{path}[0]")]
    if origin is dict or annotation is dict:
        return {"answer": f"<{path}.answer>"}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return full_data(annotation, path)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation))
    if annotation is Any:
        return f"<{path}>"
    if annotation is bool:
        return True
    if annotation is int:
        return 7
    if annotation is datetime:
        return datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    if annotation is date:
        return date(1987, 6, 5)
    return f"<{path}>"


def full_data(model: type[BaseModel], path: str = "") -> dict[str, Any]:
    """Every field of `model` set, optional ones included."""
    return {
        name: _value(info.annotation, f"{path}.{name}".lstrip("."))
        for name, info in model.model_fields.items()
    }


def full_example(event_type: str) -> dict[str, Any]:
    """A complete wire dict of `event_type`: every field, optional and nested, has a value."""
    model = EVENT_TYPES[event_type]
    raw = full_data(model)
    raw["type"] = event_type
    wire: dict[str, Any] = json.loads(model.model_validate(raw).to_json())
    return wire


def _at(value: Any, path: tuple[str, ...]) -> list[Any]:
    """The values at `path` (a list is walked item by item)."""
    if isinstance(value, list):
        return [v for item in value for v in _at(item, path)]
    if not path:
        return [value]
    if not isinstance(value, dict) or path[0] not in value:
        return []
    return _at(value[path[0]], path[1:])


def _texts(value: Any) -> list[str]:
    """The distinctive JSON texts of a personal value (strings, dates, nested strings)."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, str) and (value.startswith("<") or value[:4].isdigit()):
        return [value]
    return []


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_without_the_scope_no_personal_value_is_in_the_body(event_type: str) -> None:
    example = full_example(event_type)
    body = project_json(example, NO_SCOPE).decode()
    for path in personal_paths(event_type):
        present = _at(example, path)
        assert present, f"the example lacks {'.'.join(path)}"
        for text in _texts(present):
            assert text not in body, f"{'.'.join(path)} leaked: {text}"
        assert not _at(json.loads(body), path), f"{'.'.join(path)} still in the projection"
    # What remains: the envelope, the dossier code, status code and dates.
    projected = json.loads(body)
    assert projected["subject"] == example["subject"]
    assert projected["time"] == example["time"]
    if not event_type.startswith("partner."):  # an operational event is about no dossier
        assert projected["data"]["dossier_code"] == example["data"]["dossier_code"]
    for key in ("procedure_code", "unit_id", "status_code", "promised_at", "received_at"):
        if key in example["data"]:
            assert projected["data"][key] == example["data"][key]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_with_the_scope_the_body_is_the_whole_event(event_type: str) -> None:
    example = full_example(event_type)
    model = EVENT_TYPES[event_type]
    assert project(example, WITH_SCOPE) == example
    assert project(model.model_validate(example), WITH_SCOPE) == example
    body = project_json(example, WITH_SCOPE).decode()
    for path in personal_paths(event_type):
        for text in _texts(_at(example, path)):
            assert text in body


def test_the_personal_fields_of_a_submission_are_derived_from_the_markers() -> None:
    assert personal_fields("dossier.submitted") == {
        "data.applicant.full_name",
        "data.applicant.personal_id",
        "data.applicant.date_of_birth",
        "data.applicant.sex",
        "data.applicant.phone",
        "data.applicant.email",
        "data.residence.ward_code",
        "data.residence.address",
        "data.form",
    }
    assert personal_fields("sms.status_requested") == {"data.phone"}
    assert personal_fields("dossier.status_reported") == {"data.phone"}
    assert personal_fields("notification.sent") == {"data.recipient"}
    assert personal_fields("dossier.approved") == frozenset()


def test_the_projection_of_a_model_and_of_its_wire_dict_agree() -> None:
    example = full_example("dossier.submitted")
    event = DossierSubmitted.model_validate(example)
    assert project(event, NO_SCOPE) == project(example, NO_SCOPE)
    assert project(example, frozenset({"other"}))["data"]["applicant"] == {}


def test_a_field_unknown_to_the_model_does_not_pass() -> None:
    example = full_example("dossier.submitted")
    example["data"]["applicant"]["home_phone"] = "<leak>"
    assert "<leak>" not in project_json(example, WITH_SCOPE).decode()


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_the_projection_schema_has_no_personal_property(event_type: str) -> None:
    text = json.dumps(projection_schema(event_type, NO_SCOPE))
    assert "x-personal" not in text
    full = json.dumps(projection_schema(event_type, WITH_SCOPE))
    assert ("x-personal" in full) == bool(personal_paths(event_type))


def test_the_submission_projection_schema_drops_the_applicants_identity() -> None:
    schema = projection_schema("dossier.submitted", NO_SCOPE)
    applicant = schema["$defs"]["Applicant"]
    assert applicant["properties"] == {}
    assert "required" not in applicant
    assert "address" not in schema["$defs"]["Residence"]["properties"]
    data = schema["$defs"]["DossierSubmittedData"]["properties"]
    assert {"dossier_code", "procedure_code", "status_code", "promised_at"} <= data.keys()
    assert "form" not in data
