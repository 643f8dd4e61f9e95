"""Field error messages in Vietnamese and English, by machine-readable code."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

# code → (English, Vietnamese). Codes from pydantic keep pydantic's name.
MESSAGES: dict[str, tuple[str, str]] = {
    "missing": ("This field is required.", "Trường này là bắt buộc."),
    "extra_forbidden": ("This field is not part of the form.", "Trường này không có trong mẫu."),
    "string_too_short": ("Too short.", "Quá ngắn."),
    "string_too_long": ("Too long.", "Quá dài."),
    "string_pattern_mismatch": ("Wrong format.", "Sai định dạng."),
    "string_type": ("Must be text.", "Phải là chuỗi ký tự."),
    "literal_error": ("Not one of the allowed values.", "Không thuộc các giá trị cho phép."),
    "date_parsing": ("Not a date (YYYY-MM-DD).", "Không phải ngày hợp lệ (YYYY-MM-DD)."),
    "date_from_datetime_parsing": (
        "Not a date (YYYY-MM-DD).",
        "Không phải ngày hợp lệ (YYYY-MM-DD).",
    ),
    "date_type": ("Not a date (YYYY-MM-DD).", "Không phải ngày hợp lệ (YYYY-MM-DD)."),
    "int_parsing": ("Not a whole number.", "Không phải số nguyên."),
    "int_type": ("Not a whole number.", "Không phải số nguyên."),
    "greater_than_equal": ("Too small.", "Giá trị quá nhỏ."),
    "less_than_equal": ("Too large.", "Giá trị quá lớn."),
    "bool_parsing": ("Not true or false.", "Không phải đúng/sai."),
    "bool_type": ("Not true or false.", "Không phải đúng/sai."),
    "model_type": ("Must be an object.", "Phải là một đối tượng."),
    "model_attributes_type": ("Must be an object.", "Phải là một đối tượng."),
    "dict_type": ("Must be an object.", "Phải là một đối tượng."),
    "list_type": ("Must be a list.", "Phải là một danh sách."),
    "too_short": ("Too few entries.", "Quá ít mục."),
    "too_long": ("Too many entries.", "Quá nhiều mục."),
    "invalid_email": ("Not a valid e-mail address.", "Địa chỉ thư điện tử không hợp lệ."),
    "invalid_mobile": (
        "Not a Vietnamese mobile number (10 digits starting 03, 05, 07, 08 or 09).",
        "Không phải số di động Việt Nam (10 số, bắt đầu 03, 05, 07, 08 hoặc 09).",
    ),
    "id_prefix": (
        "The first three digits are not a province-of-birth code.",
        "Ba số đầu không phải mã tỉnh nơi đăng ký khai sinh.",
    ),
    "id_century": (
        "The century digit does not agree with the date of birth.",
        "Mã thế kỷ không khớp với ngày sinh.",
    ),
    "id_birth_year": (
        "The birth year digits do not agree with the date of birth.",
        "Năm sinh trong số định danh không khớp với ngày sinh.",
    ),
    "id_sex": (
        "The sex digit does not agree with the sex given.",
        "Mã giới tính trong số định danh không khớp với giới tính.",
    ),
    "birth_out_of_range": (
        "A personal ID cannot encode this date of birth.",
        "Số định danh không thể mã hóa ngày sinh này.",
    ),
    "unknown_ward": (
        "Not a commune/ward code of the 2025 list.",
        "Không phải mã phường/xã trong danh mục năm 2025.",
    ),
    "unknown_province": (
        "Not a province code of the 2025 list.",
        "Không phải mã tỉnh trong danh mục năm 2025.",
    ),
    "future_date": ("Must not be in the future.", "Không được là ngày trong tương lai."),
    "past_date": ("Must not be in the past.", "Không được là ngày trong quá khứ."),
    "date_order": ("Must be after the start date.", "Phải sau ngày bắt đầu."),
    "date_span": ("The period is longer than allowed.", "Khoảng thời gian dài hơn cho phép."),
    "unknown_procedure": (
        "No such procedure in the catalogue.",
        "Không có thủ tục này trong danh mục.",
    ),
    "channel_not_allowed": (
        "This procedure is not accepted on this channel.",
        "Thủ tục này không tiếp nhận qua kênh này.",
    ),
    "applicant_kind_not_allowed": (
        "This procedure is not for this kind of applicant.",
        "Thủ tục này không dành cho loại người nộp này.",
    ),
    "email_required": (
        "Notification by e-mail needs the applicant's e-mail address.",
        "Nhận thông báo qua thư điện tử cần địa chỉ thư điện tử của người nộp.",
    ),
    "body_type": ("The body must be a JSON object.", "Nội dung phải là một đối tượng JSON."),
    "attachment_shape": (
        "Each attachment is {document_type, id}.",
        "Mỗi tệp đính kèm gồm {document_type, id}.",
    ),
    "unknown_document": (
        "This procedure does not take this kind of document.",
        "Thủ tục này không nhận loại giấy tờ này.",
    ),
    "unknown_attachment": ("No uploaded file with this id.", "Không có tệp đã tải lên với mã này."),
    "media_type_not_allowed": (
        "This file type is not accepted for this document.",
        "Loại tệp này không được chấp nhận cho giấy tờ này.",
    ),
    "attachment_too_large": (
        "The file is larger than this document allows.",
        "Tệp lớn hơn mức cho phép của giấy tờ này.",
    ),
    "missing_document": ("A required document is missing.", "Thiếu giấy tờ bắt buộc."),
}


def message(code: str, fallback: str, vietnamese: bool) -> str:
    english, vi = MESSAGES.get(code, (fallback, fallback))
    return vi if vietnamese else english


def entry(field: str, code: str, fallback: str = "Invalid value.") -> dict[str, str]:
    """A field error, its message in both languages (chosen when answering)."""
    english, vi = MESSAGES.get(code, (fallback, fallback))
    return {"field": field, "code": code, "message": english, "message_vi": vi}


def from_validation_error(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """One entry per invalid field, located by dotted path."""
    errors = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        code = str(err.get("type", "invalid"))
        if code == "value_error" and "email" in str(err.get("msg", "")).lower():
            code = "invalid_email"
        errors.append(entry(f"{prefix}{loc}" or "body", code, _plain(err)))
    return errors


def _plain(err: Any) -> str:
    text = str(err.get("msg", "Invalid value."))
    return text.removeprefix("Value error, ")
