"""`GET /v1/asyncapi`: the event catalogue (AsyncAPI 3.0), generated from the event models and
the partner projections; the same document as docs/asyncapi.yaml."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from shared.contracts import asyncapi

router = APIRouter(prefix="/v1", tags=["catalogue"])


@cache
def _document() -> dict[str, Any]:
    return asyncapi.generate()


@router.get(
    "/asyncapi",
    summary="The event catalogue as AsyncAPI 3.0: JSON, or YAML when the client asks for it",
    response_model=None,
)
async def get_asyncapi(request: Request) -> Response:
    document = _document()
    if "yaml" in request.headers.get("accept", ""):
        return Response(asyncapi.dump(document), media_type="application/yaml")
    return JSONResponse(document)
