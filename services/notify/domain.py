"""Notify's pure rules: what to tell the applicant about a decision, and masking addresses."""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts import DossierApproved, DossierRejected, Event

PROCEDURE_NAMES = {"1.004194": "Đăng ký tạm trú"}


class SendError(Exception):
    """A channel could not deliver; `permanent` says whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str


def mask_email(address: str) -> str:
    """`lan.nguyen@example.vn` → `l***@example.vn`: enough to recognise, not to reuse."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def decision_email(event: Event, *, to: str, full_name: str) -> Email:
    """The Vietnamese e-mail that tells an applicant their dossier was approved or rejected."""
    if not isinstance(event, DossierApproved | DossierRejected):
        raise ValueError(f"no e-mail for {event.type}")
    data = event.data
    procedure = PROCEDURE_NAMES.get(data.procedure_code, f"thủ tục {data.procedure_code}")
    if isinstance(event, DossierApproved):
        subject = f"Hồ sơ {data.dossier_code} đã được phê duyệt"
        outcome = "đã được phê duyệt. Quý vị có thể nhận kết quả theo hướng dẫn của cơ quan."
    else:
        subject = f"Hồ sơ {data.dossier_code} không được chấp thuận"
        outcome = f"không được chấp thuận. Lý do: {data.reason or 'không nêu'}."
    text = (
        f"Kính gửi {full_name},\n\n"
        f"Hồ sơ {procedure} mã số {data.dossier_code} của quý vị {outcome}\n\n"
        "Đây là thư tự động từ hệ thống Một cửa (Motcua); vui lòng không trả lời thư này.\n"
    )
    return Email(to=to, subject=subject, text=text)
