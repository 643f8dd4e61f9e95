"""Static files under immutable names: `/static/<name>.<hash>.<ext>`, cached for a year by
browsers and proxies; a new content is a new name, so nothing stale is ever served."""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

HERE = Path(__file__).resolve().parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"


class Assets:
    def __init__(self, folder: Path = HERE) -> None:
        self.urls: dict[str, str] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.name.endswith(".txt"):
                continue
            name = path.relative_to(folder).as_posix()
            body = path.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:12]
            stem, dot, suffix = name.rpartition(".")
            hashed = f"{stem}.{digest}.{suffix}" if dot else f"{name}.{digest}"
            media = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if media.startswith("text/") or media.endswith("javascript"):
                media += "; charset=utf-8"
            self.urls[name] = f"/static/{hashed}"
            self.files[hashed] = (body, media)

    def url(self, name: str) -> str:
        """The immutable URL of static file `name` (a missing file fails the page render)."""
        return self.urls[name]

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        @router.get("/static/{path:path}")
        async def static(path: str) -> Response:
            found = self.files.get(path)
            if found is None:
                raise HTTPException(404)
            body, media = found
            return Response(body, media_type=media, headers={"Cache-Control": IMMUTABLE})

        return router
