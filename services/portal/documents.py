"""A dossier's documents, viewed inline: the portal streams intake's officer document endpoint
with the officer's token (which never reaches the browser), from the portal's own origin so the
page's `frame-src 'self'` frames it; intake's Content-Type and nosniff are kept, and the answer
is sandboxed so a document can run nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from services.portal.clients import Apis, reply, unavailable
from services.portal.rendering import Pages
from services.portal.session import Officer

router = APIRouter(include_in_schema=False)
INTAKE_DOCUMENT = "/v1/officer/dossiers/{code}/documents/{attachment_id}"
"""Intake's officer document endpoint (officers of the receiving unit only, SHA-256 checked)."""
KEPT = (
    "content-type",
    "content-length",
    "content-disposition",
    "x-content-type-options",
    "etag",
    "repr-digest",
)
INLINE_IMAGES = ("image/jpeg", "image/png", "image/webp")
# No segment made of dots only: `%2E%2E` would climb intake's path with the officer's token.
Segment = Annotated[
    str,
    Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$"),
]


@router.get("/documents/{code}/{attachment_id}")
async def document(
    request: Request,
    officer: Officer,
    code: Segment,
    attachment_id: Segment,
) -> Response:
    apis: Apis = request.app.state.apis
    pages: Pages = request.app.state.pages
    lang = pages.language(request)
    url = apis.base["intake"] + INTAKE_DOCUMENT.format(code=code, attachment_id=attachment_id)
    sent = {"Authorization": f"Bearer {officer.token}", "Accept-Language": lang}
    try:
        asked = apis.client.build_request("GET", url, headers=sent)
        answer = await apis.client.send(asked, stream=True)
    except httpx.HTTPError as exc:
        raise unavailable("intake", lang) from exc
    if answer.status_code >= 400:
        await answer.aread()
        await answer.aclose()
        reply(answer, "intake", lang)  # raises ApiProblem: the error page, with intake's status
    headers = {k.lower(): v for k, v in answer.headers.items() if k.lower() in KEPT}
    if "content-encoding" in answer.headers:  # httpx decodes it: the length would be wrong
        headers.pop("content-length", None)
    headers.setdefault("x-content-type-options", "nosniff")
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/pdf":
        # Chromium's PDF viewer does not run in a `sandbox` document: a PDF gets a policy that
        # lets nothing load or run but the viewer, framed by the console only.
        headers["content-security-policy"] = (
            "default-src 'none'; object-src 'self'; frame-ancestors 'self'"
        )
        headers.setdefault("content-disposition", "inline")
    elif media in INLINE_IMAGES:
        headers["content-security-policy"] = "sandbox; default-src 'none'"
        headers.setdefault("content-disposition", "inline")
    else:  # anything else is downloaded, never rendered in the console's origin
        headers["content-security-policy"] = "sandbox; default-src 'none'"
        headers["content-disposition"] = "attachment"
    headers["cache-control"] = "private, no-store"
    return StreamingResponse(
        _body(answer),
        status_code=200,
        headers=headers,
        background=BackgroundTask(answer.aclose),
    )


async def _body(answer: httpx.Response) -> AsyncIterator[bytes]:
    async for chunk in answer.aiter_bytes():
        yield chunk
