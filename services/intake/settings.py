"""Intake's settings (env prefix MOTCUA_INTAKE_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_INTAKE_", extra="ignore")

    service_name: str = "intake"
    port: int = Field(default=8001, description="HTTP port.")
    agency_code: str = Field(
        default="G01.99",
        description="Agency identifier that starts every dossier code ({agency}-{yyMMdd}-{NNNN}).",
    )
    procedures_dir: Path = Field(
        default=Path(__file__).resolve().parent / "procedures",
        description="Folder of the procedure catalogue's files (one YAML per procedure).",
    )
    max_body_bytes: int = Field(
        default=256 * 1024, gt=0, description="Largest JSON request body accepted (413 beyond)."
    )
    max_attachment_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Largest attachment upload accepted."
    )
    max_attachments: int = Field(
        default=20, ge=1, description="Most attachments one dossier or supplement may carry."
    )
    rate_limit_per_minute: int = Field(
        default=120, ge=1, description="Write requests a minute per client address (429 beyond)."
    )
    rate_limit_burst: int = Field(
        default=40, ge=1, description="Write requests a client may send at once before waiting."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8001", description="Base URL used as the events' source."
    )
