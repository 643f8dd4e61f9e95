"""Notify's settings (env prefix MOTCUA_NOTIFY_)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_NOTIFY_", extra="ignore")

    service_name: str = "notify"
    port: int = Field(default=8003, description="HTTP port.")
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server host.")
    smtp_port: int = Field(default=1025, description="SMTP server port.")
    smtp_starttls: bool = Field(
        default=False, description="Upgrade the SMTP session with STARTTLS."
    )
    smtp_username: str = Field(default="", description="SMTP login (empty: no AUTH).")
    smtp_password: SecretStr = Field(default=SecretStr(""), description="SMTP password.")
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, description="SMTP socket timeout.")
    mail_from: str = Field(
        default="Motcua <no-reply@motcua.local>", description="From: of e-mails to citizens."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8003", description="Base URL used as the events' source."
    )
