"""Settings of the portal's resumable uploads (env prefix MOTCUA_PORTAL_UPLOAD_)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class UploadSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_PORTAL_UPLOAD_", extra="ignore")

    folder: Path = Field(
        default=Path(tempfile.gettempdir()) / "motcua-portal-uploads",
        description="Where unfinished uploads are kept (one file and one small JSON each); "
        "local to one portal process: route a citizen's requests to the same replica.",
    )
    max_bytes: int = Field(
        default=20 * 1024 * 1024,
        gt=0,
        description="Largest upload accepted (a phone photo before it is resized; other files "
        "must also fit their document's own limit in intake's catalogue).",
    )
    expiry_seconds: int = Field(
        default=24 * 3600,
        gt=0,
        description="An upload not finished (or not yet used) this long after it started is "
        "deleted; asking for it then answers 410.",
    )
    max_side_px: int = Field(
        default=2000, ge=400, description="Longest side of a photo after it is resized."
    )
