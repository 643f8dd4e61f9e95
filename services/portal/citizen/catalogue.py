"""The procedure catalogue (danh mục thủ tục) and one procedure's page: what it needs, its
legal time and its fee, with the way to file it online."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.portal.citizen import common

router = APIRouter(include_in_schema=False)


def fee_text(amount: Any, t: Any) -> str:
    """ "7.000 đồng", "Không mất phí", or "" when the catalogue does not say."""
    if amount is None:
        return ""
    if amount == 0:
        return str(t("citizen.free"))
    return str(t("citizen.fee_amount", amount=f"{int(amount):,}".replace(",", ".")))


def deadline_text(deadline: dict[str, Any], t: Any) -> str:
    days = deadline.get("working_days") or 0
    if not days:
        return str(t("citizen.at_once"))
    shown = f"{days:g}".replace(".", ",")
    return str(t("citizen.working_days", days=shown))


@router.get("/procedures")
async def procedures(request: Request) -> Response:
    """Every procedure of the catalogue, those filed online first."""
    listed: list[dict[str, Any]] = (await common.intake(request, "GET", "/v1/procedures")).body
    ordered = sorted(listed, key=lambda p: not common.online(p))
    return common.pages_of(request).render(
        request,
        "citizen/procedures.html",
        procedures=ordered,
        online=common.online,
        fee_text=fee_text,
        deadline_text=deadline_text,
    )


@router.get("/procedures/{code}")
async def procedure(request: Request, code: str) -> Response:
    """What the procedure needs, how long it takes, what it costs."""
    found = await common.procedure_of(request, code)
    return common.pages_of(request).render(
        request,
        "citizen/procedure.html",
        procedure=found,
        online=common.online(found),
        fee_text=fee_text,
        deadline_text=deadline_text,
    )
