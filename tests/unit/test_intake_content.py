"""content.py: a file's type is decided by its bytes, and must match the type claimed."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from services.intake.content import ContentRefused, real_type, sniff

# A minimal but complete PDF 1.4: one empty page, its cross-reference table and trailer.
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    b"xref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n0000000052 00000 n \n"
    b"0000000101 00000 n \ntrailer<</Size 4/Root 1 0 R>>\nstartxref\n166\n%%EOF\n"
)


def image(image_format: str, size: tuple[int, int] = (120, 80)) -> bytes:
    out = io.BytesIO()
    picture = Image.new("RGB", size, (200, 30, 30))
    for x in range(0, size[0], 7):  # some detail, so the JPEG has more than one block's worth
        picture.putpixel((x, x % size[1]), (0, 0, 0))
    picture.save(out, image_format)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (PDF, "application/pdf"),
        (image("JPEG"), "image/jpeg"),
        (image("PNG"), "image/png"),
        (image("WEBP"), "image/webp"),
    ],
)
def test_a_real_file_of_the_claimed_type_is_accepted(data: bytes, media_type: str) -> None:
    assert sniff(data) == media_type
    assert real_type(data, media_type) == media_type


def test_a_png_sent_as_pdf_is_refused_naming_both_types() -> None:
    with pytest.raises(ContentRefused) as refused:
        real_type(image("PNG"), "application/pdf")
    assert refused.value.status == 415 and refused.value.code == "content_mismatch"
    assert (
        refused.value.detail_vi == "Tệp gửi lên không đúng loại đã khai (là PNG, không phải PDF)."
    )
    assert refused.value.extra == {"declared": "application/pdf", "detected": "image/png"}


def test_an_html_page_named_jpg_is_refused_as_no_accepted_type() -> None:
    html = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
    assert sniff(html) is None
    with pytest.raises(ContentRefused) as refused:
        real_type(html, "image/jpeg")
    assert refused.value.status == 415 and refused.value.code == "content_mismatch"
    assert "không phải JPEG" in refused.value.detail_vi
    assert refused.value.extra["detected"] is None


@pytest.mark.parametrize("keep", [0.5, 0.9, -2])
def test_a_truncated_jpeg_is_refused_as_damaged(keep: float) -> None:
    whole = image("JPEG")
    cut = whole[: int(len(whole) * keep)] if keep > 0 else whole[: int(keep)]
    assert sniff(cut) == "image/jpeg"  # it starts as a JPEG...
    with pytest.raises(ContentRefused) as refused:
        real_type(cut, "image/jpeg")
    assert refused.value.status == 422 and refused.value.code == "file_damaged"  # ...not whole
    assert refused.value.detail_vi.startswith("Tệp JPEG bị hỏng hoặc chưa gửi hết")


def test_a_png_missing_its_last_chunk_and_a_pdf_without_its_end_are_damaged() -> None:
    for data, media_type in ((image("PNG")[:-5], "image/png"), (PDF[:-7], "application/pdf")):
        with pytest.raises(ContentRefused) as refused:
            real_type(data, media_type)
        assert refused.value.code == "file_damaged", media_type


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(ContentRefused) as refused:
        real_type(image("PNG", (400, 300)), "image/png", max_pixels=100_000)
    assert refused.value.status == 422 and refused.value.code == "image_too_large"
    assert refused.value.extra["width"] == 400


@pytest.mark.parametrize(
    ("data", "claimed"),
    [(b"GIF89a\x01\x00\x01\x00", "image/gif"), (b"PK\x03\x04", "application/zip"), (PDF, "")],
)
def test_any_other_type_is_refused(data: bytes, claimed: str) -> None:
    with pytest.raises(ContentRefused):
        real_type(data, claimed)
