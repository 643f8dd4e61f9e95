"""The national-portal sync's pure parts: date format, status mapping, payloads, ordering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.notify.national import domain, fields
from services.notify.national.app import bindings
from services.notify.national.settings import DEFAULT_MAPPING
from tests.factories import approved_event, submitted_event


def test_portal_time_is_vietnam_time_without_separators() -> None:
    moment = datetime(2026, 12, 31, 17, 30, 5, tzinfo=UTC)
    assert domain.portal_time(moment) == "20270101003005"
    with pytest.raises(ValueError, match="naive"):
        domain.portal_time(datetime(2026, 1, 1))


def test_the_shipped_mapping_collapses_payment_and_withdrawal(tmp_path: Path) -> None:
    statuses = domain.StatusMap.load(DEFAULT_MAPPING)
    assert statuses.portal(6) == 4 and statuses.portal(7) == 8 and statuses.portal(9) == 9
    edited = tmp_path / "map.yaml"
    edited.write_text("map:\n  9: 10\n")
    assert domain.StatusMap.load(edited).portal(9) == 10
    assert domain.StatusMap.load(edited).portal(4) == 4  # unmapped: unchanged
    edited.write_text("map: [1, 2]\n")
    with pytest.raises(ValueError, match="table"):
        domain.StatusMap.load(edited)


def test_a_submission_adds_and_a_decision_updates_then_records_progress() -> None:
    first = submitted_event("G01.99-261201-0001")
    ops = domain.operations(first)
    assert [op["kind"] for op in ops] == ["add"]
    later = domain.operations(approved_event(first))
    assert [op["kind"] for op in later] == ["update", "progress"]
    assert later[1]["who"] == "cb-01" and later[1]["what"] == "dossier.approved"
    assert later[1]["status"] == 9


def test_bodies_carry_the_portal_fields_dates_and_mapped_codes() -> None:
    first = submitted_event("G01.99-261201-0002")
    first = first.model_copy(update={"data": first.data.model_copy(update={"ward_code": "00004"})})
    dossier = domain.snapshot(first)
    statuses = domain.StatusMap({9: 10})
    add = domain.request(domain.operations(first)[0], dossier, statuses, "add")
    assert add["MaHoSo"] == "G01.99-261201-0002" and add["MaTTHC"] == "1.004194"
    assert add["KenhThucHien"] == "2" and add["TrangThaiHoSo"] == "1"  # strings, as both send
    assert add["LoaiDoiTuong"] == "1" and add["ChuHoSo"] == first.data.applicant.full_name
    assert add["NgayTiepNhan"] == domain.portal_time(first.data.submitted_at)
    assert add["NgayNopHoSo"] == add["NgayTiepNhan"]
    assert add["DonViXuLy"] == "00004"  # the ward whose police receive it
    personal = {"SoGiayToChuHoSo", "SoDienThoai", "Email", "DinhDanhCHS"}
    assert not personal & set(add), "the portal gets no personal ID, phone or e-mail"
    assert len(add["NgayTiepNhan"]) == 14 and add["NgayTiepNhan"].isdigit()
    update, progress = domain.operations(approved_event(first))
    assert domain.request(update, dossier, statuses, "update")["TrangThaiHoSo"] == "10"
    step = domain.request(progress, dossier, statuses, "progress")
    assert step == fields.progress_body(
        code="G01.99-261201-0002",
        who="cb-01",
        when=domain.portal_time(datetime.fromisoformat(progress["at"])),
        what="dossier.approved",
        status=10,
    )


def test_the_add_goes_first_and_nothing_goes_before_the_submission_is_known() -> None:
    update = {"kind": "update", "event_id": "e2", "status": 4}
    add = {"kind": "add", "event_id": "e1", "status": 1}
    assert domain.next_operation([update, add], None) is None
    assert domain.next_operation([update, add], {"code": "x"}) == 1
    assert domain.next_operation([update], {"code": "x"}) == 0
    assert domain.next_operation([], {"code": "x"}) is None


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = [domain.backoff(n, 2, 10) for n in range(1, 6)]
    assert delays == [timedelta(seconds=s) for s in (2, 4, 8, 10, 10)]


def test_the_queue_hears_every_event_that_changes_a_status() -> None:
    heard = bindings()
    assert "dossier.submitted" in heard and "dossier.approved" in heard
    assert "notification.sent" not in heard and "dossier.due_soon" not in heard


def test_the_portal_hears_of_processing_steps_only() -> None:
    """A status asked by SMS or a slip printed is no step of the dossier: not sent."""
    from services.notify.national.app import bindings

    bound = bindings()
    assert {"dossier.submitted", "dossier.received", "dossier.approved"} <= set(bound)
    assert "dossier.status_reported" not in bound and "dossier.slip_printed" not in bound


def test_each_call_is_the_envelope_of_one_item_and_says_which_operation() -> None:
    item = {"MaHoSo": "G01.99-261201-0003"}
    add = fields.envelope("add", "tok", "000.00.01.H26", item)
    assert add == {
        "session": "tok",
        "madonvi": "000.00.01.H26",
        "service": "DongBoHoSoMC",
        "isUpdating": "False",
        "data": [item],
    }
    update = fields.envelope("update", "tok", "u", item)
    progress = fields.envelope("progress", "tok", "u", item)
    assert update["isUpdating"] == "True" and "isUpdating" not in progress
    assert progress["service"] == "CapNhatTienDoHoSoMC"
    assert [fields.kind_of(b) for b in (add, update, progress)] == ["add", "update", "progress"]


def test_an_add_of_a_known_dossier_is_told_by_the_portals_message() -> None:
    assert fields.says_exists({"error_code": "-3", "message": "Hồ sơ G01 đã tồn tại"})
    assert fields.says_exists({"error_code": "0", "message": "Mã hồ sơ ĐÃ TỒN TẠI"})
    assert not fields.says_exists({"error_code": "0", "message": "Thêm mới thành công"})
    assert not fields.says_exists("đã tồn tại")  # not an answer the adapter reads
    assert fields.answer_code({"error_code": 0}) == "0" and "0" in fields.OK_CODES
    assert fields.answer_code(None) == ""


def test_documents_and_fees_take_the_portals_names() -> None:
    body = fields.dossier_body(
        code="C",
        procedure_code="1.004194",
        channel=2,
        applicant_kind=1,
        received_at="20261201080000",
        submitted_at="20261201073000",
        promised_at=None,
        status=2,
        documents=[{"document_type": "ct01", "id": "a1", "sha256": "x", "size": 10}],
        fee=15000,
        applicant_name=None,
        unit=None,
        procedure_name="Đăng ký tạm trú",
    )
    assert body["TaiLieuNop"] == [
        {"TepDinhKemId": "a1", "TenTepDinhKem": "ct01", "MaThanhPhanHoSo": "ct01"}
    ]
    assert body["DanhSachLePhi"] == [
        {
            "TenPhiLePhi": "Lệ phí",
            "MaPhiLePhi": "1",
            "HinhThucThu": "1",
            "Gia": "15000",
            "LoaiPhiLePhi": "1",
        }
    ]
    assert (body["NgayHenTra"], body["ChuHoSo"], body["TenTTHC"]) == ("", "", "Đăng ký tạm trú")
