"""The portal's own pages: the home page, and the language switch."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.portal.rendering import Pages

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request) -> Response:
    pages: Pages = request.app.state.pages
    return pages.render(request, "home.html")
