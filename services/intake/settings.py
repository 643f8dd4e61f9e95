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
    public_url: str = Field(
        default="http://127.0.0.1:8001", description="Base URL used as the events' source."
    )
