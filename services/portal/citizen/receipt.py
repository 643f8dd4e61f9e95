"""The receipt (giấy tiếp nhận) after filing: the dossier code, the promised date in words, the
access secret (mã tra cứu) that intake gives only once, and a QR code (inline SVG, no image to
download) of the status page's link with that secret, to come back with the phone's camera."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import segno
from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from services.portal.citizen import common

router = APIRouter(include_in_schema=False)

_SESSION = "citizen_receipts"
KEPT = 5
"""Receipts a browser keeps the secret of (the latest ones), so a reload still shows it."""


def remember(request: Request, code: str, secret: str) -> None:
    """Keep the secret intake gave for `code` in this browser's session, for its receipt page
    (a redirect never carries it in the address, so no log or history holds it)."""
    kept = dict(request.session.get(_SESSION) or {})
    kept.pop(code, None)
    kept[code] = secret
    request.session[_SESSION] = dict(list(kept.items())[-KEPT:])


def filed_here(request: Request) -> list[str]:
    """The codes of the dossiers this browser filed lately, newest first (the offline outbox
    may have sent one after its page was closed)."""
    kept = request.session.get(_SESSION) or {}
    return list(reversed(list(kept))) if isinstance(kept, dict) else []


def remembered(request: Request, code: str) -> str:
    kept = request.session.get(_SESSION) or {}
    return str(kept.get(code) or "") if isinstance(kept, dict) else ""


def status_link(public_url: str, code: str, secret: str) -> str:
    """The status page's absolute address with the secret, as the QR code carries it."""
    query = f"?{urlencode({'secret': secret})}" if secret else ""
    return f"{public_url.rstrip('/')}/status/{quote(code, safe='')}{query}"


def qr_svg(link: str, title: str) -> Markup:
    """The link as an inline SVG QR code (error correction M: a crumpled printout still reads)."""
    code = segno.make(link, error="m", micro=False)
    svg = code.svg_inline(scale=4, border=2, title=title, svgclass="qr", omitsize=False)
    return Markup(svg.replace("<svg ", '<svg role="img" ', 1))


@router.get("/receipts/{code}")
async def receipt_page(request: Request, code: str) -> Response:
    """The receipt of a dossier this browser filed (or any, given its secret)."""
    secret = remembered(request, code) or str(request.query_params.get("secret") or "")
    pages = common.pages_of(request)
    t = common.texts(request)
    lang = common.language(request)
    if not secret:
        return pages.render(request, "citizen/receipt_lost.html", status=404, code=code)
    found: dict[str, Any] = (
        await common.intake(
            request,
            "GET",
            f"/v1/dossiers/{quote(code, safe='')}",
            headers={"X-Dossier-Secret": secret},
        )
    ).body
    procedure = await common.procedure_of(request, str(found["procedure_code"]))
    link = status_link(request.app.state.settings.public_url, code, secret)
    return pages.render(
        request,
        "citizen/receipt.html",
        dossier=found,
        procedure_name=common.procedure_name(procedure, lang),
        promised=common.date_words(found.get("promised_at"), lang),
        submitted=common.date_words(found.get("submitted_at"), lang),
        secret=secret,
        link=link,
        qr=qr_svg(link, t("citizen.qr_title", code=code)),
        fee_amount=found.get("fee"),
    )
