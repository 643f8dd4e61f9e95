"""The offline outbox's service worker at `/sw.js`, so that its scope is the whole portal: it
imports the outbox's code under its immutable name, and is itself never cached for long (a new
portal's worker replaces the old at the next visit)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.portal.citizen import common

router = APIRouter(include_in_schema=False)

SOURCE = Path(__file__).resolve().parents[1] / "static" / "sw.js"
PLACEHOLDER = "/static/outbox.js"


@cache
def _source() -> str:
    return SOURCE.read_text(encoding="utf-8")


@router.get("/sw.js")
async def service_worker(request: Request) -> Response:
    asset: Any = common.pages_of(request).env.globals["asset"]
    body = _source().replace(PLACEHOLDER, str(asset("outbox.js")))
    return Response(
        body,
        media_type="text/javascript; charset=utf-8",
        headers={"Service-Worker-Allowed": "/", "Cache-Control": "no-cache"},
    )
