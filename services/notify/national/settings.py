"""Settings of the national-portal sync (env prefix MOTCUA_NOTIFY_DVCQG_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.notify.national import fields

DEFAULT_MAPPING = Path(__file__).resolve().parents[3] / "deploy" / "dvcqg-status.yaml"


class DvcqgSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_NOTIFY_DVCQG_", extra="ignore")

    enabled: bool = Field(default=False, description="Send dossiers to the national portal.")
    base_url: str = Field(default="", description="The national portal's API base URL.")
    auth_path: str = Field(
        default=fields.LOGIN_PATH,
        description="Path of the portal's login call, under the base URL.",
    )
    integration_path: str = Field(
        default=fields.INTEGRATION_PATH,
        description="Path of the portal's integration call (DongBoHoSoMC, CapNhatTienDoHoSoMC).",
    )
    unit_code: str = Field(
        default="", description="Our unit's code on the national portal (`madonvi` of each call)."
    )
    username: str = Field(default="", description="Login of our unit on the national portal.")
    password: SecretStr = Field(default=SecretStr(""), description="Password of that login.")
    batch_size: int = Field(
        default=20, ge=1, le=500, description="Dossiers sent at once by one sync round."
    )
    retry_base_seconds: float = Field(
        default=30.0, gt=0, description="First retry delay after a failed call; doubles each time."
    )
    retry_max_seconds: float = Field(
        default=3600.0, gt=0, description="Longest delay between two tries of one dossier."
    )
    lease_seconds: float = Field(
        default=120.0, gt=0, description="How long a replica holds a dossier while sending it."
    )
    timeout_seconds: float = Field(default=15.0, gt=0, description="HTTP timeout of one call.")
    status_mapping_file: Path = Field(
        default=DEFAULT_MAPPING,
        description="YAML table of our status codes → the portal's (operators may edit it).",
    )
