"""What the citizens' pages share: intake called anonymously on the citizen's behalf (their
address forwarded, so intake's rate limit counts citizens, not the portal), the procedure, and
dates and statuses said in words."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request

from services.portal.clients import Apis, Reply
from services.portal.rendering import Pages
from shared.calendar import VIETNAM

STATUS_CODES = range(1, 11)
"""The national portal's status codes (1 Mới đăng ký … 10 Đã trả kết quả), each in words."""
ONLINE = 2


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def language(request: Request) -> str:
    return pages_of(request).language(request)


def texts(request: Request) -> Any:
    return pages_of(request).catalogue.translator(language(request))


def forwarded(request: Request, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Headers for intake: the citizen's address (intake trusts the portal as a proxy)."""
    client = request.client.host if request.client else ""
    return {**({"X-Forwarded-For": client} if client else {}), **(extra or {})}


async def intake(
    request: Request, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
) -> Reply:
    """`method path` on intake's public API, anonymously, for this citizen."""
    apis: Apis = request.app.state.apis
    return await apis.call(
        method,
        "intake",
        path,
        token=None,
        lang=language(request),
        headers=forwarded(request, headers),
        **kw,
    )


async def procedure_of(request: Request, code: str) -> dict[str, Any]:
    """Intake's procedure with its form's JSON Schema and its documents (404 if unknown)."""
    found: dict[str, Any] = (await intake(request, "GET", f"/v1/procedures/{code}")).body
    return found


def date_words(value: Any, lang: str = "vi") -> str:
    """An API's ISO 8601 time as the day it falls on in Vietnam: "ngày 05/12/2026" (English:
    "5 December 2026"); empty when there is none."""
    if not isinstance(value, str) or not value:
        return ""
    local = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(VIETNAM)
    return f"ngày {local:%d/%m/%Y}" if lang == "vi" else f"{local.day} {local:%B %Y}"


def procedure_name(procedure: dict[str, Any], lang: str) -> str:
    return str(procedure.get("name_vi") if lang == "vi" else procedure.get("name_en"))


def online(procedure: dict[str, Any]) -> bool:
    """Whether citizens may file it online (channel 2)."""
    return ONLINE in procedure.get("channels", ())
