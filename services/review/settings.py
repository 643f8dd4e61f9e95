"""Review's settings (env prefix MOTCUA_REVIEW_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

DEFAULT_ROSTER = Path(__file__).resolve().parents[2] / "deploy" / "roster.yaml"


class ReviewSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_REVIEW_", extra="ignore")

    service_name: str = "review"
    port: int = Field(default=8002, description="HTTP port.")
    roster_file: Path = Field(
        default=DEFAULT_ROSTER,
        description="Officer roster (YAML) that seeds units and officers the database lacks.",
    )
    directory_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a replica reuses its snapshot of units and officers.",
    )
    workflows_dir: Path = Field(
        default=Path(__file__).resolve().parent / "workflows",
        description="Folder of the workflow definitions (YAML, versioned).",
    )
    timer_interval_seconds: float = Field(
        default=15.0, gt=0, description="How often SLA timers (reminders, overdue) are checked."
    )
    clock_offset_seconds: float = Field(
        default=0.0,
        description="Shift the service's clock (training and test environments only).",
    )
    token_ttl_minutes: int = Field(
        default=480, ge=1, description="Lifetime of a token printed by `token`."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8002", description="Base URL used as the events' source."
    )
