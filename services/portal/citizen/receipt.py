"""The receipt (giấy tiếp nhận) after filing: the dossier code, the promised date in words, the
access secret (mã tra cứu) that intake gives only once, and a QR code (inline SVG, no image to
download) of the status page's link with that secret, to come back with the phone's camera."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlencode

import segno
from cryptography.fernet import Fernet, InvalidToken
from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from services.portal.citizen import common

router = APIRouter(include_in_schema=False)

_SESSION = "citizen_receipts"
KEPT = 5
"""Receipts a browser keeps the secret of (the latest ones), so a reload still shows it."""
KEPT_FOR_SECONDS = 15 * 60
"""How long: a shared computer (a kiosk at the ward, a café) keeps no receipt for the next
person; the citizen who filed has the page, its QR code and the secret written down by then."""


def _cipher(request: Request) -> Fernet:
    cipher: Fernet = request.app.state.session_cipher
    return cipher


def remember(request: Request, code: str, secret: str) -> None:
    """Keep the secret intake gave for `code` in this browser's session for a few minutes,
    encrypted, for its receipt page (a redirect never carries it in the address)."""
    kept = {k: v for k, v in _kept(request).items() if k != code}
    kept[code] = [_cipher(request).encrypt(secret.encode()).decode(), time.time()]
    request.session[_SESSION] = dict(list(kept.items())[-KEPT:])


def _kept(request: Request) -> dict[str, list[Any]]:
    """The receipts still kept (younger than KEPT_FOR_SECONDS), oldest first."""
    raw = request.session.get(_SESSION) or {}
    if not isinstance(raw, dict):
        return {}
    now = time.time()
    fresh = {
        code: value
        for code, value in raw.items()
        if isinstance(value, list) and len(value) == 2 and now - float(value[1]) < KEPT_FOR_SECONDS
    }
    if len(fresh) != len(raw):
        request.session[_SESSION] = fresh
    return fresh


def filed_here(request: Request) -> list[str]:
    """The codes of the dossiers this browser filed in the last minutes, newest first (the
    offline outbox may have sent one after its page was closed)."""
    return list(reversed(list(_kept(request))))


def remembered(request: Request, code: str) -> str:
    value = _kept(request).get(code)
    if value is None:
        return ""
    try:
        return _cipher(request).decrypt(str(value[0]).encode()).decode()
    except InvalidToken:
        return ""


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
