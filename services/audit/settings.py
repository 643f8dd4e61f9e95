"""Audit's settings (env prefix MOTCUA_AUDIT_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_AUDIT_", extra="ignore")

    service_name: str = "audit"
    port: int = Field(default=8004, description="HTTP port.")
