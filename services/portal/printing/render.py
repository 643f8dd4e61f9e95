"""Slips to PDF: Jinja2 HTML from the package's templates, laid out by WeasyPrint.

Pure functions of their input: no network, no file but the package's own templates; the fonts
are Debian's fonts-noto found by family name through fontconfig. The font configuration and the
compiled stylesheets are built once per process and reused by every render."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from weasyprint import CSS, HTML  # type: ignore[import-untyped]
from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]
from weasyprint.urls import FatalURLFetchingError  # type: ignore[import-untyped]

from services.portal.printing.codes import code128_svg, qr_svg, status_qr
from services.portal.printing.models import ApologySlip, ControlSlip, ReceiptSlip, SupplementSlip
from services.portal.printing.timefmt import format_vn_date, format_vn_time

Paper = Literal["A4", "A5"]

TEMPLATES = Path(__file__).parent / "templates"


def _vnd(amount: int) -> str:
    return f"{amount:,} đồng".replace(",", ".")


def _sentence(text: str) -> str:
    return text if text[-1] in ".!?…" else f"{text}."


def _time_html(moment: Any, *, lines: bool = False) -> Markup:
    """The Vietnamese time with no-break spaces inside each half, on one line or two.

    No-break spaces rather than `white-space: nowrap`, which makes WeasyPrint 70 break a
    paragraph after its first word at some widths."""
    halves = format_vn_time(moment).replace(" ", "\u00a0").split(",\u00a0")
    return Markup(("," + ("<br>" if lines else " ")).join(halves))


@cache
def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        vn_time=format_vn_time,
        vn_date=format_vn_date,
        vn_time_html=_time_html,
        vnd=_vnd,
        sentence=_sentence,
        unbroken=lambda text: text.replace(" ", "\u00a0"),
    )
    return env


def _refuse(url: str, *args: object, **kwargs: object) -> None:
    raise FatalURLFetchingError(f"slips fetch nothing, not even {url[:80]}")


@dataclass(frozen=True)
class _Engine:
    fonts: FontConfiguration
    base: CSS
    paper: dict[Paper, tuple[CSS, ...]]


@cache
def _engine() -> _Engine:
    fonts = FontConfiguration()

    def sheet(name: str) -> CSS:
        return CSS(filename=str(TEMPLATES / name), font_config=fonts, url_fetcher=_refuse)

    base = sheet("slips.css")
    return _Engine(fonts, base, {"A4": (), "A5": (sheet("a5.css"),)})


_rendering = threading.Lock()
"""WeasyPrint's shared font configuration is not documented as thread-safe: one render at a time."""


def _pdf(html: str, paper: Paper = "A4") -> bytes:
    engine = _engine()
    document = HTML(string=html, url_fetcher=_refuse, media_type="print")
    with _rendering:
        pdf: bytes = document.write_pdf(
            stylesheets=[engine.base, *engine.paper[paper]],
            font_config=engine.fonts,
            pdf_tags=True,  # a tagged PDF, so that a screen reader reads the slip in order
        )
    return pdf


def _html(template: str, slip: object, *, dated: datetime, **values: object) -> str:
    values.setdefault("number", None)
    values.setdefault("show_department", False)
    return _templates().get_template(template).render(slip=slip, dated=dated, **values)


def receipt_html(slip: ReceiptSlip) -> str:
    """The receipt and appointment slip as HTML, barcode and QR code inline as SVG."""
    return _html(
        "receipt.html",
        slip,
        number=slip.number,
        dated=slip.received_at,
        show_department=True,
        barcode=code128_svg(slip.code),
        qrcode=qr_svg(status_qr(slip.status_url)),
    )


def control_html(slip: ControlSlip) -> str:
    """The control slip as HTML: the dossier's hand-overs as a table."""
    return _html("control.html", slip, dated=slip.printed_at, barcode=code128_svg(slip.code))


def apology_html(slip: ApologySlip) -> str:
    """The apology slip as HTML: the reason, the promised date missed and the new one."""
    return _html("apology.html", slip, number=slip.number, dated=slip.issued_at)


def supplement_html(slip: SupplementSlip) -> str:
    """The supplement request as HTML: each item the citizen must add, and whom to ask."""
    return _html("supplement.html", slip, number=slip.number, dated=slip.issued_at)


def receipt_pdf(slip: ReceiptSlip, *, paper: Paper = "A4") -> bytes:
    """Giấy tiếp nhận hồ sơ và hẹn trả kết quả (Mẫu số 01) as PDF bytes, A4 or A5."""
    return _pdf(receipt_html(slip), paper)


def control_pdf(slip: ControlSlip) -> bytes:
    """Phiếu kiểm soát quá trình giải quyết hồ sơ (Mẫu số 05) as A4 PDF bytes."""
    return _pdf(control_html(slip))


def apology_pdf(slip: ApologySlip) -> bytes:
    """Phiếu xin lỗi và hẹn lại ngày trả kết quả (Mẫu số 04) as A4 PDF bytes."""
    return _pdf(apology_html(slip))


def supplement_pdf(slip: SupplementSlip) -> bytes:
    """Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ (Mẫu số 02) as A4 PDF bytes."""
    return _pdf(supplement_html(slip))


_WARM_UP = '<html lang="vi"><p>Cộng hòa <b>xã hội</b> <i>chủ nghĩa</i> <b><i>Việt Nam</i></b>'


def warm_up() -> None:
    """Load fonts and stylesheets now (in the app's lifespan, say) rather than on first print."""
    _templates()
    _pdf(_WARM_UP)
