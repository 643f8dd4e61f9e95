"""Settings shared by every service (env prefix `MOTCUA_`); each service adds its own class."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "motcua-dev-secret-change-me-0123456789"


class SharedSettings(BaseSettings):
    """What all four services need: where the broker and the database are, how to log."""

    model_config = SettingsConfigDict(env_prefix="MOTCUA_", extra="ignore")

    env: Literal["development", "production"] = Field(
        default="development",
        description="`production` refuses to start while any development default is left "
        "(token secret, audit's keys, development sign-in, guest broker login, ...), naming "
        "each setting to set.",
    )
    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description="RabbitMQ URL; the vhost in it isolates one deployment (or one test). "
        "Several nodes of one cluster: their URLs comma-separated, tried in turn (failover). "
        "TLS: `amqps://user:pass@host:5671/vhost?cafile=/ca.pem&certfile=/crt.pem&"
        "keyfile=/key.pem`.",
    )
    mongodb_url: str = Field(
        default="mongodb://127.0.0.1:27017/",
        description="MongoDB (or FerretDB) URL. TLS: `?tls=true&tlsCAFile=/ca.pem` "
        "(and `&tlsCertificateKeyFile=/client.pem` for a client certificate).",
    )
    database_prefix: str = Field(
        default="motcua_", description="Prefix of each service's database name."
    )
    log_level: str = Field(default="INFO", description="Python log level.")
    prefetch: int = Field(default=32, ge=1, description="Unacknowledged messages per consumer.")
    max_attempts: int = Field(
        default=5, ge=1, description="Tries of a failing message before it is dead-lettered."
    )
    retry_delay_seconds: float = Field(
        default=1.0, ge=0, description="Pause before a failed message is handed back for retry."
    )
    outbox_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest pause between two rounds of the outbox relay, which otherwise "
        "runs at start-up and right after a publish failed (a crashed replica's events).",
    )
    command_log_dir: Path | None = Field(
        default=None,
        description="Folder where each process appends every query it sends the database "
        "(`<service>-<pid>.jsonl`), for the index-coverage test; unset: not recorded.",
    )
    calendar_file: Path | None = Field(
        default=Path(__file__).resolve().parents[1] / "deploy" / "calendar.yaml",
        description="Operator's overrides of the holiday calendar (extra days off, make-up days).",
    )
    jwt_secret: SecretStr = Field(
        default=SecretStr(DEV_JWT_SECRET),
        description="HS256 secret that signs officers' tokens; set your own in production.",
    )
    jwt_issuer: str = Field(default="motcua", description="`iss` claim of officers' tokens.")
    jwt_algorithm: Literal["HS256", "RS256"] = Field(
        default="HS256",
        description="HS256: Motcua signs tokens with the secret; RS256: an identity provider "
        "signs them and publishes its keys at `MOTCUA_JWT_JWKS_URL`.",
    )
    jwt_jwks_url: str = Field(default="", description="JWKS URL of the RS256 token issuer.")
    jwt_jwks_refresh_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Least time between two fetches of the JWKS (a token with an unknown key "
        "id fetches it again, for key rotation).",
    )
    jwt_audience: str = Field(
        default="", description="`aud` claim tokens must carry (empty: not checked)."
    )
    trusted_proxies: str = Field(
        default="127.0.0.1",
        description="Addresses whose X-Forwarded-For names the real client (comma-separated).",
    )
    fault_points: str = Field(
        default="",
        description="Comma-separated fault points where the process halts (fault tests only).",
    )


class ServiceSettings(BaseSettings):
    """Base of a service's own settings: where it listens, plus the shared ones."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = Field(default="127.0.0.1", description="HTTP listen address.")
    port: int = Field(default=8000, description="HTTP port.")
    shared: SharedSettings = Field(default_factory=SharedSettings, exclude=True)

    service_name: str = "motcua"

    @property
    def database(self) -> str:
        """This service's own database name."""
        return f"{self.shared.database_prefix}{self.service_name}"


def settings_table(cls: type[BaseSettings]) -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for each field of a settings class."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    rows = []
    for name, info in cls.model_fields.items():
        if name in ("shared", "service_name"):
            continue
        default = info.get_default(call_default_factory=True)
        if hasattr(default, "get_secret_value"):
            default = "(secret)" if default.get_secret_value() else ""
        rows.append(((prefix + name).upper(), str(default), info.description or ""))
    return rows
