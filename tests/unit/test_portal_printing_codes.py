"""The slip's barcode decodes to the dossier code and its QR code draws the status page's URL."""

from __future__ import annotations

import re

import pytest
from barcode.charsets.code128 import CODES  # type: ignore[import-untyped]
from barcode.codex import Code128  # type: ignore[import-untyped]

from services.portal.printing import receipt_html
from services.portal.printing.codes import QUIET_ZONE, code128_svg, qr_svg, status_qr
from tests.unit.test_portal_printing import CODE, receipt_slip

STOP = "1100011101011"


def bars(svg: str) -> str:
    """The modules an SVG barcode draws, '1' dark, '0' light, from its rects' x and width."""
    width = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg)[1])  # type: ignore[index]
    modules = ["0"] * width
    for x, w in re.findall(r'<rect x="(\d+)" y="0" width="(\d+)"', svg):
        modules[int(x) : int(x) + int(w)] = "1" * int(w)
    return "".join(modules)


def decode_code128(modules: str) -> str:
    """Read Code 128 symbols back: code sets A, B and C, the switches and the checksum."""
    modules = modules.strip("0")
    assert modules.endswith(STOP), "no stop pattern"
    body = modules[: -len(STOP)]
    assert len(body) % 11 == 0
    values = [CODES.index(body[i : i + 11]) for i in range(0, len(body), 11)]
    *data, checksum = values
    assert checksum == (data[0] + sum(i * v for i, v in enumerate(data[1:], 1))) % 103
    charset = {103: "A", 104: "B", 105: "C"}[data[0]]
    text = ""
    for value in data[1:]:
        if value in (99, 100, 101) and not (charset == "A" and value == 101):
            charset = {99: "C", 100: "B", 101: "A"}[value]
        elif charset == "C":
            text += f"{value:02d}"
        elif charset == "B" or value < 64:
            text += chr(value + 32)
        else:
            text += chr(value - 64)
    return text


@pytest.mark.parametrize(
    "code",
    [CODE, "G09.20-20260609-0092637", "H01-261201-12345", "ABC", "12345678", "X1"],
)
def test_the_barcode_draws_python_barcodes_encoding_and_decodes_to_the_code(code: str) -> None:
    svg = str(code128_svg(code))
    drawn = bars(svg)
    assert drawn[:QUIET_ZONE] == "0" * QUIET_ZONE
    assert drawn[-QUIET_ZONE:] == "0" * QUIET_ZONE
    assert drawn.strip("0") == Code128(code).build()[0].strip("0")
    assert decode_code128(drawn) == code


def test_the_receipt_inlines_the_barcode_of_its_own_code() -> None:
    html = receipt_html(receipt_slip(code="G09.20-20260609-0092637"))
    svg = re.search(r'<svg class="barcode".*?</svg>', html, re.S)
    assert svg is not None
    assert decode_code128(bars(svg[0])) == "G09.20-20260609-0092637"


def test_an_empty_code_has_no_barcode() -> None:
    with pytest.raises(ValueError, match="empty code"):
        code128_svg("")


def drawn_matrix(svg: str) -> list[list[int]]:
    """The dark modules of segno's SVG path (horizontal runs drawn at y + 0.5), border removed."""
    size = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg)[1])  # type: ignore[index]
    path = re.search(r' d="([^"]+)"', svg)[1]  # type: ignore[index]
    grid = [[0] * size for _ in range(size)]
    x = y = 0.0
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            for column in range(int(x), int(x + float(a))):
                grid[int(y)][column] = 1
            x += float(a)
    return [row[4:-4] for row in grid[4:-4]]


def test_the_qr_code_is_the_status_url_drawn_as_an_inline_svg() -> None:
    url = f"https://motcua.example.vn/tra-cuu/{CODE}?k=Zx9_Qa-7"
    qr = status_qr(url)
    assert not qr.is_micro
    assert qr.mode == "byte"
    assert qr.error in ("M", "Q", "H")
    assert drawn_matrix(str(qr_svg(qr))) == [list(row) for row in qr.matrix]
    assert qr.matrix != status_qr(url.replace("Zx9", "Zx8")).matrix
    html = receipt_html(receipt_slip(status_url=url))
    assert str(qr_svg(qr)) in html
    assert "<?xml" not in html
