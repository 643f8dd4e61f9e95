"""The dossier code as a Code 128 barcode and the status page as a QR code, both vector SVG."""

from __future__ import annotations

from itertools import groupby

import segno
from barcode.codex import Code128  # type: ignore[import-untyped]
from markupsafe import Markup

QUIET_ZONE = 10
"""Modules of white on each side, as Code 128 asks (at least ten times the narrowest bar)."""


def code128_modules(code: str) -> str:
    """The code's Code 128 modules, '1' dark and '0' light, start to stop (python-barcode)."""
    if not code:
        raise ValueError("an empty code has no barcode")
    built: list[str] = Code128(code).build()
    return built[0]


def code128_svg(code: str, *, height: int = 40) -> Markup:
    """An inline SVG of the code's bars: one rect per bar, widths in modules, no raster."""
    modules = code128_modules(code)
    width = len(modules) + 2 * QUIET_ZONE
    bars: list[str] = []
    x = QUIET_ZONE
    for dark, run in groupby(modules):
        size = len(list(run))
        if dark == "1":
            bars.append(f'<rect x="{x}" y="0" width="{size}" height="{height}"/>')
        x += size
    return Markup(
        f'<svg class="barcode" role="img" aria-label="{Markup.escape(code)}" '
        f'viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'shape-rendering="crispEdges"><g fill="#000">{"".join(bars)}</g></svg>'
    )


def status_qr(url: str) -> segno.QRCode:
    """The QR code (not micro QR) of the citizen's status page, error correction M or better."""
    if not url:
        raise ValueError("an empty address has no QR code")
    return segno.make_qr(url, error="m", boost_error=True)


def qr_svg(qr: segno.QRCode) -> Markup:
    """The QR code as an inline SVG path sized by CSS, with the standard four-module border."""
    svg: str = qr.svg_inline(scale=1, border=4, omitsize=True, svgclass="qrcode", lineclass=None)
    return Markup(svg)
