"""Vietnamese time on the slips, timeliness of a step, and the input the slips refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from services.portal.printing import (
    Channel,
    DocumentForm,
    SlipDocument,
    SlipStep,
    Timeliness,
    format_vn_date,
    format_vn_time,
)
from shared.calendar import VIETNAM
from tests.unit.test_portal_printing import (
    PROMISED,
    RECEIVED,
    apology_slip,
    control_slip,
    receipt_slip,
    supplement_slip,
)


@pytest.mark.parametrize(
    ("moment", "printed"),
    [
        (datetime(2026, 12, 31, 17, 30, tzinfo=UTC), "00 giờ 30 phút, ngày 01/01/2027"),
        (datetime(2026, 12, 31, 16, 59, tzinfo=UTC), "23 giờ 59 phút, ngày 31/12/2026"),
        (datetime(2026, 12, 31, 17, 0, tzinfo=UTC), "00 giờ 00 phút, ngày 01/01/2027"),
        (datetime(2028, 2, 28, 17, 5, tzinfo=UTC), "00 giờ 05 phút, ngày 29/02/2028"),
        (
            datetime(2026, 6, 9, 8, 5, tzinfo=timezone(timedelta(hours=9))),
            "06 giờ 05 phút, ngày 09/06/2026",
        ),
        (
            datetime(2026, 6, 9, 1, 2, tzinfo=timezone(timedelta(hours=-5))),
            "13 giờ 02 phút, ngày 09/06/2026",
        ),
    ],
)
def test_times_print_on_vietnams_clock(moment: datetime, printed: str) -> None:
    assert format_vn_time(moment) == printed


def test_the_date_line_is_written_out() -> None:
    assert format_vn_date(datetime(2026, 12, 31, 17, 30, tzinfo=UTC)) == "ngày 01 tháng 01 năm 2027"


def test_a_naive_time_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        format_vn_time(datetime(2026, 12, 1, 9, 0))
    with pytest.raises(ValidationError, match="timezone"):
        receipt_slip(received_at=datetime(2026, 12, 1, 9, 0))
    with pytest.raises(ValidationError, match="timezone"):
        SlipStep(handed_by="A", received_by="B", at=datetime(2026, 12, 1, 9, 0))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"code": ""}, "dossier code '': 1 to 48 printable ASCII"),
        ({"code": "   "}, "dossier code ''"),
        ({"code": "H01 261201"}, "without spaces"),
        ({"code": "Mã-0001"}, "printable ASCII"),
        ({"code": "H" * 49}, "1 to 48"),
        ({"applicant_name": ""}, "applicant_name"),
        ({"applicant_name": "Lê\x00Văn"}, "control characters"),
        ({"procedure_name": " "}, "procedure_name"),
        ({"officer_name": ""}, "officer_name"),
        ({"status_url": "javascript:alert(1)"}, "absolute http"),
        ({"status_url": ""}, "status_url"),
        ({"status_url": "https://a.vn/tra cứu"}, "absolute http"),
        ({"channel": 4}, "channel"),
        ({"promised_at": RECEIVED - timedelta(minutes=1)}, "promised_at is before received_at"),
        ({"documents": ({"name": "Tờ khai", "copies": 0},)}, "copies"),
        ({"documents": ({"name": "Tờ khai", "form": "scan"},)}, "form"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_receipt_input_is_refused_with_the_field_named(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        receipt_slip(**changes)


def test_bad_apology_and_control_input_is_refused() -> None:
    with pytest.raises(ValidationError, match="reason"):
        apology_slip(reason="")
    with pytest.raises(ValidationError, match="new_promised_at must be after"):
        apology_slip(new_promised_at=PROMISED)
    with pytest.raises(ValidationError, match="code"):
        control_slip(code="")
    with pytest.raises(ValidationError, match="blank_rows"):
        control_slip(blank_rows=-1)
    with pytest.raises(ValidationError, match="requested"):
        supplement_slip(requested=())


def test_slips_are_frozen_and_texts_stripped() -> None:
    slip = receipt_slip(applicant_name="  Nguyễn Thị Hương \n", code=" H01-261201-0001 ")
    assert slip.applicant_name == "Nguyễn Thị Hương"
    assert slip.code == "H01-261201-0001"
    with pytest.raises(ValidationError, match="frozen"):
        slip.applicant_name = "Lê Văn Tám"  # type: ignore[misc]
    assert SlipDocument(name="Tờ khai").copies == 1


def vn(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in December 2026 given on Hà Nội's clock, as the UTC instant the APIs send."""
    return datetime(2026, 12, day, hour, minute, tzinfo=VIETNAM).astimezone(UTC)


@pytest.mark.parametrize(
    ("at", "due", "timeliness"),
    [
        (vn(2, 10), vn(2, 10), Timeliness.ON_TIME),
        (vn(2, 10, 1), vn(2, 10), Timeliness.LATE),
        (vn(2, 8), vn(2, 16), Timeliness.ON_TIME),
        (vn(1, 23, 59), vn(2, 8), Timeliness.EARLY),
        # 00:01 in Hà Nội is still 1 December in UTC: the same day as the deadline here.
        (vn(2, 0, 1), vn(2, 8), Timeliness.ON_TIME),
        (vn(2, 8), None, None),
    ],
)
def test_a_steps_timeliness_counts_days_on_vietnams_calendar(
    at: datetime, due: datetime | None, timeliness: Timeliness | None
) -> None:
    step = SlipStep(handed_by="A", received_by="B", at=at, due_at=due)
    assert step.timeliness == timeliness
    if timeliness is not None:
        assert timeliness.label in {"Trước hạn", "Đúng hạn", "Quá hạn"}


def test_every_choice_prints_in_vietnamese() -> None:
    assert Channel(1).label == "Trực tiếp tại Bộ phận tiếp nhận và trả kết quả"
    assert Channel(3).label == "Qua dịch vụ bưu chính công ích"
    assert DocumentForm("electronic").label == "Bản điện tử"
    labels = [member.label for kind in (Channel, DocumentForm, Timeliness) for member in kind]
    assert len(set(labels)) == len(labels) == 10
