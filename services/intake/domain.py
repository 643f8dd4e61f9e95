"""Intake's pure rules: the submission form, identifier checks, the dossier and its code."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationInfo, field_validator

from shared.contracts import Channel, PortalStatus

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
TEMPORARY_RESIDENCE = "1.004194"
_MOBILE = re.compile(r"^(?:\+?84|0)([35789]\d{8})$")


def normalise_mobile(raw: str) -> str:
    """A Vietnamese mobile number (03/05/07/08/09 + 8 digits, or +84 + 9 digits) in +84 form."""
    compact = re.sub(r"[\s.\-()]", "", raw)
    match = _MOBILE.match(compact)
    if not match:
        raise ValueError("not a Vietnamese mobile number (10 digits starting 03, 05, 07, 08, 09)")
    return "+84" + match.group(1)


def check_personal_id(number: str, date_of_birth: date | None, sex: str | None) -> None:
    """The century/sex digit and the birth year of a 12-digit personal ID must match the person."""
    if date_of_birth is not None:
        century = date_of_birth.year // 100 - 19
        if not 0 <= century <= 4:
            raise ValueError("date of birth outside the years a personal ID can encode")
        digit = int(number[3])
        if digit // 2 != century:
            raise ValueError("century digit does not agree with the date of birth")
        if number[4:6] != f"{date_of_birth.year % 100:02d}":
            raise ValueError("birth year digits do not agree with the date of birth")
        if sex is not None and ("female" if digit % 2 else "male") != sex:
            raise ValueError("sex digit does not agree with the applicant's sex")


class ApplicantForm(BaseModel):
    """The applicant (người đăng ký) as the citizen fills it in."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    full_name: str = Field(min_length=2, max_length=100, examples=["Nguyễn Thị Lan"])
    date_of_birth: date = Field(examples=["1990-05-17"])
    sex: Literal["male", "female"] = Field(examples=["female"])
    personal_id: str = Field(
        pattern=r"^\d{12}$", description="12-digit personal ID (CCCD).", examples=["001190012345"]
    )
    phone: str = Field(description="Mobile number; stored in +84 form.", examples=["0912345678"])
    email: EmailStr = Field(examples=["lan.nguyen@example.vn"])

    @field_validator("date_of_birth")
    @classmethod
    def _born(cls, value: date) -> date:
        if value > datetime.now(VIETNAM).date():
            raise ValueError("date of birth is in the future")
        return value

    @field_validator("personal_id")
    @classmethod
    def _personal_id(cls, value: str, info: ValidationInfo) -> str:
        check_personal_id(value, info.data.get("date_of_birth"), info.data.get("sex"))
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return normalise_mobile(value)


class ResidenceForm(BaseModel):
    """The new place of temporary residence."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    ward_code: str = Field(
        pattern=r"^\d{5}$", description="5-digit commune/ward code.", examples=["00004"]
    )
    address: str = Field(min_length=5, max_length=300, examples=["Số 12 ngõ 34 phố Đội Cấn"])


class TemporaryResidenceRegistration(BaseModel):
    """Đăng ký tạm trú (procedure 1.004194)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "procedure_code": TEMPORARY_RESIDENCE,
                    "applicant": {
                        "full_name": "Nguyễn Thị Lan",
                        "date_of_birth": "1990-05-17",
                        "sex": "female",
                        "personal_id": "001190012345",
                        "phone": "0912345678",
                        "email": "lan.nguyen@example.vn",
                    },
                    "residence": {"ward_code": "00004", "address": "Số 12 ngõ 34 phố Đội Cấn"},
                }
            ]
        },
    )

    procedure_code: Literal["1.004194"] = "1.004194"
    applicant: ApplicantForm
    residence: ResidenceForm


# Intake's own view of a dossier's life, and the portal status code each state shows.
STATUS_CODES: dict[str, PortalStatus] = {
    "submitted": PortalStatus.NEW,
    "assigned": PortalStatus.IN_PROCESS,
    "approved": PortalStatus.DECIDED,
    "rejected": PortalStatus.DECIDED,
}
# The highest rank reached shows, whatever order the events arrive in.
STATUS_RANK = {"submitted": 0, "assigned": 1, "approved": 2, "rejected": 2}


def dossier_code(agency: str, day: date, number: int) -> str:
    """Mã hồ sơ: `{agency}-{yyMMdd}-{NNNN}`, the counter padded to at least four digits."""
    return f"{agency}-{day:%y%m%d}-{number:04d}"


@dataclass(frozen=True)
class Dossier:
    """A submitted dossier as intake keeps it."""

    code: str
    procedure_code: str
    channel: Channel
    submitted_at: datetime
    form: dict[str, Any]
    status: str = "submitted"
    submitted_by: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status_code(self) -> PortalStatus:
        return STATUS_CODES[self.status]
