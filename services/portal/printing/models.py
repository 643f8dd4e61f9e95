"""What goes on the one-stop slips (BM-VP01 style, TT 01/2018/TT-VPCP forms 01, 04 and 05).

Every text is stripped and normalised to NFC on the way in, so what prints is what was meant
whatever the keyboard or browser sent; every time must carry a time zone (UTC is expected) and
prints on Vietnam's clock."""

from __future__ import annotations

import re
import unicodedata
from enum import IntEnum, StrEnum
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from services.portal.printing.timefmt import in_vietnam


def _nfc(value: str) -> str:
    text = unicodedata.normalize("NFC", value)
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise ValueError("control characters cannot be printed")
    return text


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_nfc)]
"""A non-empty printed text, NFC, without control characters."""


def _dossier_code(value: str) -> str:
    if not re.fullmatch(r"[!-~]{1,48}", value):
        raise ValueError(
            f"dossier code {value!r}: 1 to 48 printable ASCII characters without spaces,"
            " as Code 128 prints them"
        )
    return value


def _web_address(value: str) -> str:
    if not re.fullmatch(r"https?://[!-~]{1,500}", value):
        raise ValueError(f"status page {value[:80]!r}: an absolute http(s) URL without spaces")
    return value


DossierCode = Annotated[
    str, StringConstraints(strip_whitespace=True), AfterValidator(_dossier_code)
]
"""Mã hồ sơ: printable ASCII without spaces, so that Code 128 carries it as printed."""

WebAddress = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_web_address)]


class _Labelled:
    """The Vietnamese wording a slip prints for an enum member."""

    @property
    def label(self) -> str:
        return LABELS[self]


class Channel(_Labelled, IntEnum):
    """Kênh thực hiện, as the national portal numbers it."""

    DESK = 1
    ONLINE = 2
    POST = 3


class DocumentForm(_Labelled, StrEnum):
    """Hình thức of a document received: original, certified copy, plain copy or electronic."""

    ORIGINAL = "original"
    CERTIFIED_COPY = "certified_copy"
    COPY = "copy"
    ELECTRONIC = "electronic"


class Timeliness(_Labelled, StrEnum):
    """Kết quả of a step on the control slip: before, on or after its deadline."""

    EARLY = "early"
    ON_TIME = "on_time"
    LATE = "late"


LABELS: dict[object, str] = {
    Channel.DESK: "Trực tiếp tại Bộ phận tiếp nhận và trả kết quả",
    Channel.ONLINE: "Trực tuyến",
    Channel.POST: "Qua dịch vụ bưu chính công ích",
    DocumentForm.ORIGINAL: "Bản chính",
    DocumentForm.CERTIFIED_COPY: "Bản sao có chứng thực",
    DocumentForm.COPY: "Bản sao",
    DocumentForm.ELECTRONIC: "Bản điện tử",
    Timeliness.EARLY: "Trước hạn",
    Timeliness.ON_TIME: "Đúng hạn",
    Timeliness.LATE: "Quá hạn",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Issuer(_Frozen):
    """The unit that issues the slip, as the header names it."""

    name: Text = Field(description="Tên cơ quan, e.g. 'Công an phường Hàng Bạc'")
    parent: Text | None = Field(
        default=None, description="Tên cơ quan chủ quản, e.g. 'Công an thành phố Hà Nội'"
    )
    department: Text | None = Field(
        default="Bộ phận tiếp nhận và trả kết quả", description="The desk inside the unit"
    )
    place: Text = Field(description="Địa danh on the date line, e.g. 'Hà Nội'")


class SlipDocument(_Frozen):
    """One document received (thành phần hồ sơ)."""

    name: Text
    form: DocumentForm = DocumentForm.ORIGINAL
    copies: int = Field(default=1, ge=1, le=99)


class SlipStep(_Frozen):
    """One hand-over on the control slip: who gave the dossier to whom, when, by when."""

    handed_by: Text
    handed_by_unit: Text | None = None
    received_by: Text
    received_by_unit: Text | None = None
    at: AwareDatetime
    due_at: AwareDatetime | None = None
    result: Text | None = Field(default=None, description="What the step decided, if anything")
    note: Text | None = None

    @property
    def timeliness(self) -> Timeliness | None:
        """Late after the deadline; early on an earlier day (Vietnam's calendar); else on time."""
        if self.due_at is None:
            return None
        if self.at > self.due_at:
            return Timeliness.LATE
        if in_vietnam(self.at).date() < in_vietnam(self.due_at).date():
            return Timeliness.EARLY
        return Timeliness.ON_TIME


class _DossierSlip(_Frozen):
    """What every slip says of its dossier: who issues it, whose it is, for what, since when."""

    issuer: Issuer
    code: DossierCode
    applicant_name: Text
    procedure_name: Text
    received_at: AwareDatetime


class ReceiptSlip(_DossierSlip):
    """Giấy tiếp nhận hồ sơ và hẹn trả kết quả (Mẫu số 01)."""

    number: Text | None = Field(default=None, description="Số, e.g. '125/TNHS'")
    applicant_address: Text | None = None
    applicant_phone: Text | None = None
    applicant_email: Text | None = None
    documents: tuple[SlipDocument, ...] = ()
    dossier_sets: int = Field(default=1, ge=1, le=99, description="Số lượng hồ sơ (bộ)")
    processing_days: int | None = Field(default=None, ge=0, description="Legal working days")
    promised_at: AwareDatetime
    result_delivery: Text | None = Field(default=None, description="Đăng ký nhận kết quả tại")
    fee: int | None = Field(default=None, ge=0, description="Lệ phí in VND")
    officer_name: Text
    channel: Channel
    status_url: WebAddress = Field(description="The citizen's status page, encoded in the QR")
    hotline: Text | None = None

    @model_validator(mode="after")
    def _promise_follows_receipt(self) -> Self:
        if self.promised_at < self.received_at:
            raise ValueError("promised_at is before received_at")
        return self


class ControlSlip(_DossierSlip):
    """Phiếu kiểm soát quá trình giải quyết hồ sơ (Mẫu số 05)."""

    handling_unit: Text = Field(description="Cơ quan (bộ phận) giải quyết hồ sơ")
    coordinating_units: tuple[Text, ...] = ()
    promised_at: AwareDatetime
    steps: tuple[SlipStep, ...] = ()
    blank_rows: int = Field(default=0, ge=0, le=12, description="Rows left to fill by hand")
    printed_at: AwareDatetime


class ApologySlip(_DossierSlip):
    """Phiếu xin lỗi và hẹn lại ngày trả kết quả (Mẫu số 04)."""

    number: Text | None = None
    original_promised_at: AwareDatetime
    new_promised_at: AwareDatetime
    reason: Text
    signer_name: Text
    signer_title: Text = "Thủ trưởng cơ quan"
    issued_at: AwareDatetime

    @model_validator(mode="after")
    def _new_date_is_later(self) -> Self:
        if self.new_promised_at <= self.original_promised_at:
            raise ValueError("new_promised_at must be after original_promised_at")
        return self


class SupplementSlip(_DossierSlip):
    """Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ (Mẫu số 02): what to bring, and whom to ask."""

    number: Text | None = None
    requested: tuple[Text, ...] = Field(min_length=1, description="Each item to add or correct")
    reason: Text | None = None
    officer_name: Text
    contact_phone: Text | None = None
    issued_at: AwareDatetime
