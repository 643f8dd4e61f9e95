"""Field types a procedure's form is built from, with the checks a clerk would make."""

from __future__ import annotations

import functools
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic_core import PydanticCustomError
from vietnam_provinces import Province, Ward

from shared.calendar import VIETNAM

DATA = Path(__file__).parent / "data"
_MOBILE = re.compile(r"^(?:\+?84|0)([35789]\d{8})$")


def today() -> date:
    return datetime.now(VIETNAM).date()


def normalise_mobile(raw: str) -> str:
    """A Vietnamese mobile number (03/05/07/08/09 + 8 digits, or +84 + 9 digits) in +84 form."""
    compact = re.sub(r"[\s.\-()]", "", raw)
    match = _MOBILE.match(compact)
    if not match:
        raise PydanticCustomError(
            "invalid_mobile",
            "not a Vietnamese mobile number (10 digits starting 03, 05, 07, 08, 09)",
        )
    return "+84" + match.group(1)


@functools.cache
def _identity() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DATA / "identity.yaml").read_text("utf-8"))
    return loaded


def check_id_prefix(number: str) -> str:
    """The first three digits must be a province of birth (old or 2025 code) or abroad."""
    ident = _identity()
    prefix = number[:3]
    abroad = ident["abroad_prefixes"]
    if prefix in ident["province_prefixes"] or abroad["from"] <= prefix <= abroad["to"]:
        return number
    raise PydanticCustomError("id_prefix", f"{prefix} is not a province-of-birth code")


def check_personal_id(number: str, date_of_birth: date | None, sex: str | None) -> None:
    """The century/sex digit and the birth year of a 12-digit personal ID must match the person."""
    if date_of_birth is None:
        return
    century = date_of_birth.year // 100 - 19
    if not 0 <= century <= 4:
        raise PydanticCustomError("birth_out_of_range", "a personal ID cannot encode this birth")
    digit = int(number[3])
    if digit // 2 != century:
        raise PydanticCustomError("id_century", "century digit does not agree with the birth date")
    if number[4:6] != f"{date_of_birth.year % 100:02d}":
        raise PydanticCustomError(
            "id_birth_year", "birth year digits do not agree with the birth date"
        )
    if sex is not None and ("female" if digit % 2 else "male") != sex:
        raise PydanticCustomError("id_sex", "sex digit does not agree with the sex")


@functools.cache
def ward_names() -> dict[str, str]:
    """The 3,321 communes and wards of the 2025 list: 5-digit code → name."""
    return {f"{w.code.value:05d}": w.name for w in Ward.iter_all()}


@functools.cache
def province_names() -> dict[str, str]:
    return {f"{p.code.value:02d}": p.name for p in Province.iter_all()}


def check_ward(code: str) -> str:
    if code not in ward_names():
        raise PydanticCustomError("unknown_ward", f"{code} is not a ward code of the 2025 list")
    return code


def check_province(code: str) -> str:
    if code not in province_names():
        raise PydanticCustomError("unknown_province", f"{code} is not a province code of 2025")
    return code


def not_future(value: date) -> date:
    if value > today():
        raise PydanticCustomError("future_date", "must not be in the future")
    return value


def not_past(value: date) -> date:
    if value < today():
        raise PydanticCustomError("past_date", "must not be in the past")
    return value


PersonalId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^\d{12}$"),
    AfterValidator(check_id_prefix),
]
OldId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{9}$")]
Mobile = Annotated[str, AfterValidator(normalise_mobile)]
WardCode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\d{5}$"), AfterValidator(check_ward)
]
ProvinceCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^\d{2}$"),
    AfterValidator(check_province),
]
PastDate = Annotated[date, AfterValidator(not_future)]
FutureDate = Annotated[date, AfterValidator(not_past)]


class Applicant(BaseModel):
    """Người đề nghị / người khai: every procedure has one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, title="Applicant")

    full_name: str = Field(
        min_length=2, max_length=100, description="Họ, chữ đệm và tên / Full name"
    )
    date_of_birth: PastDate = Field(description="Ngày sinh / Date of birth")
    sex: Literal["male", "female"] = Field(description="Giới tính / Sex")
    personal_id: PersonalId = Field(
        description="Số định danh cá nhân (12 chữ số) / Personal ID number (12 digits)"
    )
    phone: Mobile = Field(description="Số điện thoại di động / Mobile number")
    email: EmailStr | None = Field(
        default=None, description="Thư điện tử (nếu có) / E-mail, if any"
    )

    @field_validator("personal_id")
    @classmethod
    def _matches_person(cls, value: str, info: ValidationInfo) -> str:
        check_personal_id(value, info.data.get("date_of_birth"), info.data.get("sex"))
        return value


class FieldSpec(BaseModel):
    """One field of a procedure's form, as a procedure file declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal[
        "text",
        "personal_id",
        "old_id",
        "phone",
        "email",
        "date",
        "past_date",
        "future_date",
        "ward_code",
        "province_code",
        "enum",
        "integer",
        "boolean",
        "applicant",
        "group",
        "list",
    ]
    required: bool = True
    label_vi: str = ""
    label_en: str = ""
    min_length: int | None = None
    max_length: int | None = 300
    values: list[str] | None = None  # enum
    minimum: int | None = None  # integer
    maximum: int | None = None
    fields: dict[str, FieldSpec] | None = None  # group, list
    min_items: int | None = None  # list
    max_items: int | None = 20


SCALARS: dict[str, Any] = {
    "personal_id": PersonalId,
    "old_id": OldId,
    "phone": Mobile,
    "email": EmailStr,
    "date": date,
    "past_date": PastDate,
    "future_date": FutureDate,
    "ward_code": WardCode,
    "province_code": ProvinceCode,
    "boolean": bool,
    "applicant": Applicant,
}


def annotation(name: str, spec: FieldSpec, parent: str = "") -> Any:
    """The pydantic type of a field spec."""
    if spec.type in SCALARS:
        return SCALARS[spec.type]
    if spec.type == "text":
        return Annotated[
            str,
            StringConstraints(
                strip_whitespace=True, min_length=spec.min_length or 1, max_length=spec.max_length
            ),
        ]
    if spec.type == "enum":
        if not spec.values:
            raise ValueError(f"{name}: an enum needs values")
        return Literal[tuple(spec.values)]
    if spec.type == "integer":
        return Annotated[int, Field(ge=spec.minimum, le=spec.maximum, strict=False)]
    if not spec.fields:
        raise ValueError(f"{name}: a {spec.type} needs fields")
    nested = build_model(f"{parent}_{name}" if parent else name, spec.fields)
    if spec.type == "group":
        return nested
    return Annotated[list[nested], Field(min_length=spec.min_items, max_length=spec.max_items)]  # type: ignore[valid-type]


def build_model(
    name: str,
    fields: dict[str, FieldSpec],
    *,
    examples: list[dict[str, Any]] | None = None,
    title: str | None = None,
) -> type[BaseModel]:
    """A frozen-shape pydantic model for a form: unknown fields are refused."""
    definitions: dict[str, Any] = {}
    for field_name, spec in fields.items():
        kind = annotation(field_name, spec, parent=name)
        description = " / ".join(x for x in (spec.label_vi, spec.label_en) if x) or None
        if spec.required:
            definitions[field_name] = (kind, Field(description=description))
        else:
            definitions[field_name] = (kind | None, Field(default=None, description=description))
    config = ConfigDict(extra="forbid", str_strip_whitespace=True, title=title or name)
    if examples:
        config["json_schema_extra"] = {"examples": list(examples)}
    model: type[BaseModel] = create_model(name, __config__=config, **definitions)
    return model
