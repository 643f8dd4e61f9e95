"""The one-stop slips as PDF, read back with pdftotext and pypdf as a citizen's reader would."""

from __future__ import annotations

import io
import re
import subprocess
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from pypdf.generic import IndirectObject
from weasyprint.urls import FatalURLFetchingError  # type: ignore[import-untyped]

from services.portal.printing import (
    ApologySlip,
    Channel,
    ControlSlip,
    DocumentForm,
    Issuer,
    ReceiptSlip,
    SlipDocument,
    SlipStep,
    SupplementSlip,
    apology_pdf,
    control_pdf,
    receipt_html,
    receipt_pdf,
    supplement_pdf,
)
from services.portal.printing.render import _pdf

CODE = "H01.27-261201-0042"
RECEIVED = datetime(2026, 12, 1, 2, 5, tzinfo=UTC)  # 09:05 in Hà Nội
PROMISED = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)  # 16:00 in Hà Nội
ISSUER = Issuer(name="Công an phường Hàng Bạc", parent="Công an thành phố Hà Nội", place="Hà Nội")


def receipt_slip(**changes: Any) -> ReceiptSlip:
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "number": "125/TNHS",
        "code": CODE,
        "applicant_name": "Nguyễn Thị Hương",
        "applicant_address": "Số 12 phố Hàng Bạc, Phường Hàng Bạc, Hà Nội",
        "applicant_phone": "0912345678",
        "procedure_name": "Đăng ký thường trú",
        "documents": (
            SlipDocument(name="Tờ khai thay đổi thông tin cư trú (CT01)"),
            SlipDocument(
                name="Giấy tờ chứng minh chỗ ở hợp pháp",
                form=DocumentForm.CERTIFIED_COPY,
                copies=2,
            ),
        ),
        "processing_days": 7,
        "received_at": RECEIVED,
        "promised_at": PROMISED,
        "fee": 20000,
        "officer_name": "Trần Văn Bình",
        "channel": Channel.DESK,
        "status_url": f"https://motcua.example.vn/tra-cuu/{CODE}",
        "hotline": "024 3825 1234",
    }
    return ReceiptSlip(**(fields | changes))


def control_slip(**changes: Any) -> ControlSlip:
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "code": CODE,
        "applicant_name": "Nguyễn Thị Hương",
        "procedure_name": "Đăng ký thường trú",
        "handling_unit": "Công an phường Hàng Bạc",
        "received_at": RECEIVED,
        "promised_at": PROMISED,
        "printed_at": datetime(2026, 12, 9, 10, 0, tzinfo=UTC),
        "steps": (
            SlipStep(
                handed_by="Trần Văn Bình",
                handed_by_unit="Bộ phận tiếp nhận và trả kết quả",
                received_by="Lê Thị Mai",
                received_by_unit="Tổ đăng ký cư trú",
                at=RECEIVED,
                due_at=RECEIVED + timedelta(days=1),
                result="Đã tiếp nhận",
            ),
            SlipStep(
                handed_by="Lê Thị Mai",
                received_by="Phạm Quốc Hùng",
                at=datetime(2026, 12, 3, 3, 0, tzinfo=UTC),
                due_at=datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
                result="Trình phê duyệt",
            ),
            SlipStep(
                handed_by="Phạm Quốc Hùng",
                received_by="Đỗ Minh Khoa",
                at=datetime(2026, 12, 9, 9, 0, tzinfo=UTC),
                due_at=datetime(2026, 12, 8, 9, 0, tzinfo=UTC),
                note="Chờ xác minh",
            ),
        ),
    }
    return ControlSlip(**(fields | changes))


def apology_slip(**changes: Any) -> ApologySlip:
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "number": "07/XL",
        "code": CODE,
        "applicant_name": "Nguyễn Thị Hương",
        "procedure_name": "đăng ký thường trú",
        "received_at": RECEIVED,
        "original_promised_at": PROMISED,
        "new_promised_at": datetime(2026, 12, 15, 9, 0, tzinfo=UTC),
        "reason": "Cần xác minh chỗ ở hợp pháp với cơ quan quản lý nhà ở",
        "signer_name": "Phạm Quốc Hùng",
        "signer_title": "Trưởng Công an phường",
        "issued_at": datetime(2026, 12, 10, 10, 0, tzinfo=UTC),
    }
    return ApologySlip(**(fields | changes))


def supplement_slip(**changes: Any) -> SupplementSlip:
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "code": CODE,
        "applicant_name": "Nguyễn Thị Hương",
        "procedure_name": "Đăng ký thường trú",
        "received_at": RECEIVED,
        "requested": ("Bản sao hợp đồng thuê nhà có công chứng", "Ý kiến đồng ý của chủ hộ"),
        "reason": "Giấy tờ chứng minh chỗ ở chưa hợp lệ",
        "officer_name": "Trần Văn Bình",
        "contact_phone": "024 3825 1234",
        "issued_at": datetime(2026, 12, 2, 3, 0, tzinfo=UTC),
    }
    return SupplementSlip(**(fields | changes))


def words(text: str) -> str:
    """Text with every run of whitespace (line breaks, no-break spaces) as one space."""
    return " ".join(text.split())


def pdftotext(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "slip.pdf"
    path.write_bytes(pdf)
    run = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True
    )
    return words(run.stdout.decode("utf-8"))


def pypdf_text(pdf: bytes) -> str:
    return words(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages))


def resolved(value: Any) -> Any:
    return value.get_object() if isinstance(value, IndirectObject) else value


def fonts(pdf: bytes) -> list[Any]:
    found: list[Any] = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        page_fonts = resolved(resolved(page["/Resources"]).get("/Font", {}))
        found.extend(resolved(font) for font in page_fonts.values())
    return found


@pytest.fixture(scope="module")
def receipt() -> bytes:
    return receipt_pdf(receipt_slip())


def test_the_receipt_carries_code_dates_names_and_documents(receipt: bytes, tmp_path: Path) -> None:
    for text in (pdftotext(receipt, tmp_path), pypdf_text(receipt)):
        assert "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ" in text
        assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in text
        assert "Độc lập - Tự do - Hạnh phúc" in text
        assert "CÔNG AN PHƯỜNG HÀNG BẠC" in text
        assert "Hà Nội, ngày 01 tháng 12 năm 2026" in text
        assert "Số: 125/TNHS" in text
        assert f"Mã hồ sơ: {CODE}" in text
        assert "4. Thời gian nhận hồ sơ: 09 giờ 05 phút, ngày 01/12/2026" in text
        assert "5. Thời gian trả kết quả giải quyết hồ sơ: 16 giờ 00 phút, ngày 10/12/2026" in text
        assert "Ông/Bà: Nguyễn Thị Hương" in text
        assert "Địa chỉ: Số 12 phố Hàng Bạc, Phường Hàng Bạc, Hà Nội" in text
        assert "Nội dung yêu cầu giải quyết: Đăng ký thường trú" in text
        assert "Tờ khai thay đổi thông tin cư trú (CT01) Bản chính 01" in text
        assert "Giấy tờ chứng minh chỗ ở hợp pháp Bản sao có chứng thực 02" in text
        assert "Trần Văn Bình" in text
        assert "Trực tiếp tại Bộ phận tiếp nhận và trả kết quả" in text
        assert "Lệ phí: 20.000 đồng" in text
        assert "024 3825 1234" in text


def test_the_receipt_is_one_tagged_a4_page_in_vietnamese_and_a5_on_request(receipt: bytes) -> None:
    reader = PdfReader(io.BytesIO(receipt))
    assert reader.metadata is not None
    assert reader.metadata.title == f"Giấy tiếp nhận hồ sơ và hẹn trả kết quả – {CODE}"
    catalog = resolved(reader.trailer["/Root"])
    assert catalog["/Lang"] == "vi"
    assert "/StructTreeRoot" in catalog  # tagged, for screen readers
    a4 = PdfReader(io.BytesIO(receipt)).pages
    assert len(a4) == 1
    assert (round(float(a4[0].mediabox.width)), round(float(a4[0].mediabox.height))) == (595, 842)
    a5 = PdfReader(io.BytesIO(receipt_pdf(receipt_slip(), paper="A5"))).pages
    assert len(a5) == 1
    assert (round(float(a5[0].mediabox.width)), round(float(a5[0].mediabox.height))) == (420, 595)


def test_every_font_is_an_embedded_noto_serif_and_nothing_fell_back(receipt: bytes) -> None:
    pdfs = [
        receipt,
        control_pdf(control_slip()),
        apology_pdf(apology_slip()),
        supplement_pdf(supplement_slip()),
    ]
    for pdf in pdfs:
        found = fonts(pdf)
        assert found
        for font in found:
            name = str(font["/BaseFont"])
            assert re.fullmatch(r"/[A-Z]{6}\+Noto-Serif(-Bold)?(-Italic)?", name), name
            assert font["/Subtype"] == "/Type0", name  # no Type 3 bitmap fallback
            descriptor = resolved(resolved(font["/DescendantFonts"][0])["/FontDescriptor"])
            assert "/FontFile2" in descriptor, f"{name} is not embedded"


def test_barcode_and_qr_are_vectors_not_images(receipt: bytes) -> None:
    def images(resources: Any) -> int:
        count = 0
        for xobject in resolved(resolved(resources).get("/XObject", {})).values():
            xobject = resolved(xobject)
            if xobject.get("/Subtype") == "/Image":
                count += 1
            elif "/Resources" in xobject:
                count += images(xobject["/Resources"])
        return count

    page = PdfReader(io.BytesIO(receipt)).pages[0]
    assert images(page["/Resources"]) == 0
    html = receipt_html(receipt_slip())
    assert '<svg class="barcode"' in html
    assert 'class="qrcode"' in html
    assert "<img" not in html


def test_decomposed_input_prints_composed(tmp_path: Path) -> None:
    nfd = {
        "applicant_name": unicodedata.normalize("NFD", "Nguyễn Thị Hương"),
        "applicant_address": unicodedata.normalize("NFD", "Phường Hàng Bạc, Hà Nội"),
        "officer_name": unicodedata.normalize("NFD", "Trần Văn Bình"),
    }
    assert nfd["applicant_name"] != "Nguyễn Thị Hương"
    slip = receipt_slip(**nfd)
    assert slip.applicant_name == "Nguyễn Thị Hương"
    html = receipt_html(slip)
    assert nfd["applicant_name"] not in html
    assert "Nguyễn Thị Hương" in html
    pdf = receipt_pdf(slip)
    for text in (pdftotext(pdf, tmp_path), pypdf_text(pdf)):
        assert unicodedata.is_normalized("NFC", text)
        assert "Nguyễn Thị Hương" in text
        assert "Phường Hàng Bạc, Hà Nội" in text
        assert "Trần Văn Bình" in text


def test_markup_in_input_prints_as_text(tmp_path: Path) -> None:
    pdf = receipt_pdf(receipt_slip(applicant_name="<b>Lê</b> & Ngô"))
    assert "<b>Lê</b> & Ngô" in pdftotext(pdf, tmp_path)


def test_a_receipt_just_after_midnight_vietnam_is_dated_the_next_day(tmp_path: Path) -> None:
    slip = receipt_slip(
        received_at=datetime(2026, 12, 31, 17, 30, tzinfo=UTC),
        promised_at=datetime(2027, 1, 8, 10, 0, tzinfo=UTC),
    )
    text = pdftotext(receipt_pdf(slip), tmp_path)
    assert "Hà Nội, ngày 01 tháng 01 năm 2027" in text
    assert "Thời gian nhận hồ sơ: 00 giờ 30 phút, ngày 01/01/2027" in text
    assert "17 giờ 00 phút, ngày 08/01/2027" in text


def test_a_receipt_without_documents_says_so(tmp_path: Path) -> None:
    text = pdftotext(receipt_pdf(receipt_slip(documents=(), channel=2)), tmp_path)
    assert "Không có giấy tờ kèm theo" in text
    assert "Hình thức nộp hồ sơ: Trực tuyến" in text


def test_the_control_slip_tables_each_hand_over_with_its_timeliness(tmp_path: Path) -> None:
    pdf = control_pdf(control_slip(blank_rows=2))
    for text in (pdftotext(pdf, tmp_path), pypdf_text(pdf)):
        assert "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ" in text
        assert f"Mã hồ sơ: {CODE}" in text
        assert "Kèm theo hồ sơ của: Nguyễn Thị Hương" in text
        assert "Cơ quan (bộ phận) giải quyết hồ sơ: Công an phường Hàng Bạc" in text
        assert text.index("Trần Văn Bình") < text.index("Lê Thị Mai") < text.index("Đỗ Minh Khoa")
        assert "ngày 02/12/2026 Trước hạn Đã tiếp nhận" in text
        assert "ngày 03/12/2026 Đúng hạn Trình phê duyệt" in text
        assert "ngày 08/12/2026 Quá hạn" in text
        assert "Chờ xác minh" in text
        assert "16 giờ 00 phút, ngày 09/12/2026" in text
        assert "In lúc 17 giờ 00 phút, ngày 09/12/2026" in text
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1


def test_the_apology_slip_gives_the_reason_and_both_dates(tmp_path: Path) -> None:
    pdf = apology_pdf(apology_slip())
    for text in (pdftotext(pdf, tmp_path), pypdf_text(pdf)):
        assert "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ" in text
        assert "Kính gửi: Nguyễn Thị Hương" in text
        assert f"mã hồ sơ: {CODE}" in text
        assert "Hà Nội, ngày 10 tháng 12 năm 2026" in text
        assert "Giấy tiếp nhận hồ sơ và hẹn trả kết quả là: 16 giờ 00 phút, ngày 10/12/2026" in text
        assert "Lý do: Cần xác minh chỗ ở hợp pháp với cơ quan quản lý nhà ở." in text
        assert "trả kết quả giải quyết hồ sơ vào: 16 giờ 00 phút, ngày 15/12/2026" in text
        assert "Công an phường Hàng Bạc xin lỗi" in text
        assert "TRƯỞNG CÔNG AN PHƯỜNG" in text
        assert "Phạm Quốc Hùng" in text


def test_the_supplement_request_lists_what_to_bring_and_whom_to_ask(tmp_path: Path) -> None:
    pdf = supplement_pdf(supplement_slip())
    for text in (pdftotext(pdf, tmp_path), pypdf_text(pdf)):
        assert "PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ" in text
        assert "Hồ sơ của: Nguyễn Thị Hương" in text
        assert f"Mã hồ sơ: {CODE}" in text
        assert "Vào lúc 09 giờ 05 phút, ngày 01/12/2026, Công an phường Hàng Bạc" in text
        assert "1. Bản sao hợp đồng thuê nhà có công chứng." in text
        assert "2. Ý kiến đồng ý của chủ hộ." in text
        assert "Lý do: Giấy tờ chứng minh chỗ ở chưa hợp lệ." in text
        assert "liên hệ với Trần Văn Bình, số điện thoại 024 3825 1234" in text
        assert "Hà Nội, ngày 02 tháng 12 năm 2026" in text


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/logo.png", "file:///etc/hostname"])
def test_a_slip_fetches_nothing(url: str) -> None:
    with pytest.raises(FatalURLFetchingError, match="fetch nothing"):
        _pdf(f'<html lang="vi"><img src="{url}" alt="">')


def test_a_long_list_of_documents_flows_onto_a_second_page_whole(tmp_path: Path) -> None:
    documents = tuple(
        SlipDocument(name=f"Giấy tờ số {n:02d} của hộ gia đình") for n in range(1, 41)
    )
    pdf = receipt_pdf(receipt_slip(documents=documents))
    assert len(PdfReader(io.BytesIO(pdf)).pages) >= 2
    text = pdftotext(pdf, tmp_path)
    for n in range(1, 41):
        assert f"{n} Giấy tờ số {n:02d} của hộ gia đình Bản chính 01" in text
    assert text.count("Tên giấy tờ") == 2  # the table's head repeats on the next page
    assert "Trần Văn Bình" in text
