"""The portal's own pages: the home page — the citizens' front door (find a procedure, look up a
dossier, the dossiers this browser filed), with the officers' sign-in link."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.portal.citizen import receipt
from services.portal.rendering import Pages

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request) -> Response:
    pages: Pages = request.app.state.pages
    return pages.render(request, "home.html", filed=receipt.filed_here(request))
