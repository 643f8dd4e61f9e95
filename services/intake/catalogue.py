"""The procedure catalogue (danh mục thủ tục hành chính): data files, one per procedure.

Each `procedures/*.yaml` declares a procedure's codes and names, its legal deadline and fee,
the unit that receives it, the channels and documents it accepts, and its form: fields of the
types in `fields.py`, plus cross-field rules. An operator adds or corrects a procedure by editing
these files (and raising `version`); the service builds a pydantic model for each form at start
and refuses a file that does not hold together, naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.intake.fields import FieldSpec, build_model
from services.intake.messages import entry

PROCEDURES_DIR = Path(__file__).parent / "procedures"


class Deadline(BaseModel):
    """Thời hạn giải quyết."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    working_days: float = Field(ge=0, description="0: accepted at once")
    note_vi: str = ""
    note_en: str = ""
    unconfirmed: bool = False


class Fee(BaseModel):
    """Lệ phí, in VND."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    online: int | None = Field(default=None, ge=0)
    desk: int | None = Field(default=None, ge=0)
    by_field: str | None = Field(default=None, description="A form field the fee depends on")
    amounts: dict[str, int] = Field(default_factory=dict)
    unconfirmed: bool = False

    def amount(self, channel: int, form: dict[str, Any]) -> int | None:
        """The fee for a submission on `channel` (1 desk, 2 online, 3 post)."""
        if self.by_field:
            value = lookup(form, self.by_field)
            if value is not None and str(value) in self.amounts:
                return self.amounts[str(value)]
        return self.desk if channel == 1 and self.desk is not None else self.online


class DocumentSpec(BaseModel):
    """A document (giấy tờ) the dossier carries as an attachment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(pattern=r"^[a-z0-9_]+$")
    name_vi: str
    name_en: str
    required: bool = False
    media_types: list[str] = Field(
        default_factory=lambda: ["application/pdf", "image/jpeg", "image/png"]
    )
    max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)


class Rule(BaseModel):
    """A check across fields: `date_order` (earlier before later, within max_days)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal["date_order"]
    earlier: str
    later: str
    allow_equal: bool = False
    max_days: int | None = None


class Procedure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=r"^[a-z0-9.\-]+$", description="National code, or ours if none")
    national_code: str | None = None
    version: int = Field(ge=1)
    name_vi: str
    name_en: str
    legal_basis: list[str] = Field(default_factory=list)
    receiving_unit: Literal["ward", "province"]
    routing_ward: str | None = Field(
        default=None, description="Form field whose ward's police receive the dossier"
    )
    channels: list[Literal[1, 2, 3]]
    applicant_kinds: list[Literal[1, 2, 3, 4]] = Field(default=[1])
    saturday_morning: bool = False
    deadline: Deadline
    fee: Fee
    documents: list[DocumentSpec] = Field(default_factory=list)
    form: dict[str, FieldSpec]
    rules: list[Rule] = Field(default_factory=list)
    example: dict[str, Any]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if "applicant" not in self.form or self.form["applicant"].type != "applicant":
            raise ValueError("the form needs an `applicant` field of type applicant")
        paths = set(field_paths(self.form))
        for name, path in [
            ("routing_ward", self.routing_ward),
            ("fee.by_field", self.fee.by_field),
        ]:
            if path is not None and path not in paths:
                raise ValueError(f"{name} names {path!r}, which is not a field of the form")
        if self.receiving_unit == "ward" and self.routing_ward is None:
            raise ValueError("a procedure received by ward police needs routing_ward")
        for rule in self.rules:
            for path in (rule.earlier, rule.later):
                if path not in paths:
                    raise ValueError(f"rule {rule.rule} names {path!r}, not a field of the form")
        types = [d.type for d in self.documents]
        if len(types) != len(set(types)):
            raise ValueError("a document type is listed twice")
        return self

    @cached_property
    def model(self) -> type[BaseModel]:
        """The pydantic model of this procedure's form (its JSON Schema is what portals see)."""
        return build_model(
            "Form_" + self.code.replace(".", "_").replace("-", "_"),
            self.form,
            examples=[self.example],
            title=f"{self.name_en} ({self.code})",
        )

    def summary(self) -> dict[str, Any]:
        return self.model_dump(exclude={"form", "rules", "example"})


def field_paths(fields: dict[str, FieldSpec], prefix: str = "") -> list[str]:
    paths = []
    for name, spec in fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        if spec.type == "group" and spec.fields:
            paths += field_paths(spec.fields, f"{path}.")
        if spec.type == "applicant":
            paths += [
                f"{path}.{f}"
                for f in ("full_name", "date_of_birth", "sex", "personal_id", "phone", "email")
            ]
    return paths


def lookup(form: dict[str, Any], path: str) -> Any:
    value: Any = form
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class FormError(ValueError):
    """A form that breaks its procedure's rules; `errors` are problem+json field entries."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def check_rules(procedure: Procedure, form: dict[str, Any]) -> list[dict[str, str]]:
    """Cross-field errors of a form that passed its field checks."""
    errors = []
    for rule in procedure.rules:
        earlier, later = lookup(form, rule.earlier), lookup(form, rule.later)
        if not isinstance(earlier, date) or not isinstance(later, date):
            continue  # an optional end left out: nothing to compare
        if later < earlier or (later == earlier and not rule.allow_equal):
            errors.append(entry(rule.later, "date_order"))
        elif rule.max_days is not None and later - earlier > timedelta(days=rule.max_days):
            errors.append(entry(rule.later, "date_span"))
    return errors


class Procedures(Protocol):
    """What reads the catalogue needs (the Catalogue, or a test's fake)."""

    def get(self, code: str) -> Procedure | None: ...

    def __iter__(self) -> Iterator[Procedure]: ...


class Catalogue:
    """Every procedure, by code."""

    def __init__(self, procedures: list[Procedure]) -> None:
        self.procedures = {p.code: p for p in procedures}

    def get(self, code: str) -> Procedure | None:
        return self.procedures.get(code)

    def __iter__(self) -> Iterator[Procedure]:
        return iter(sorted(self.procedures.values(), key=lambda p: p.code))


def load_catalogue(directory: Path = PROCEDURES_DIR) -> Catalogue:
    """Read and check every procedure file; an error names the file and what is wrong."""
    procedures = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            procedure = Procedure.model_validate(yaml.safe_load(path.read_text("utf-8")))
            example = procedure.model.model_validate(procedure.example)  # builds the model too
            broken = check_rules(procedure, example.model_dump())
            if broken:
                raise ValueError(f"the example breaks the form's rules: {broken}")
        except (OSError, yaml.YAMLError, ValueError, ValidationError) as exc:
            raise ValueError(f"invalid procedure file {path.name}: {exc}") from exc
        procedures.append(procedure)
    codes = [p.code for p in procedures]
    if len(codes) != len(set(codes)):
        raise ValueError(f"two procedure files share a code in {directory}")
    if not procedures:
        raise ValueError(f"no procedure files in {directory}")
    return Catalogue(procedures)
