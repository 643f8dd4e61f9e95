"""The portal's settings (env prefix MOTCUA_PORTAL_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

DEV_SESSION_SECRET = "motcua-portal-dev-session-secret-change-me"
DEFAULT_ROSTER = Path(__file__).resolve().parents[2] / "deploy" / "roster.yaml"


class PortalSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_PORTAL_", extra="ignore")

    service_name: str = "portal"
    port: int = Field(default=8000, description="HTTP port.")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The portal's address as browsers reach it; `https://` makes the session "
        "cookie Secure.",
    )
    intake_url: str = Field(default="http://127.0.0.1:8001", description="Intake's API.")
    review_url: str = Field(default="http://127.0.0.1:8002", description="Review's API.")
    notify_url: str = Field(default="http://127.0.0.1:8003", description="Notify's API.")
    audit_url: str = Field(default="http://127.0.0.1:8004", description="Audit's API.")
    http_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Timeout of one call to another service's API."
    )
    session_secret: SecretStr = Field(
        default=SecretStr(DEV_SESSION_SECRET),
        description="Key that signs the session cookie; set your own in production.",
    )
    session_max_age_seconds: int = Field(
        default=10 * 3600, gt=0, description="An officer stays signed in this long at most."
    )
    default_language: Literal["vi", "en"] = Field(
        default="vi", description="Language of the pages unless the user picks the other."
    )
    development_signin: bool = Field(
        default=False,
        description="Offer the development sign-in (pick an officer of the roster, no password). "
        "Never in production: `make run` turns it on.",
    )
    roster_file: Path = Field(
        default=DEFAULT_ROSTER, description="Officers the development sign-in lists."
    )
    oidc_discovery_url: str = Field(
        default="",
        description="The province's OpenID Connect provider "
        "(`https://…/.well-known/openid-configuration`); empty: no OIDC sign-in.",
    )
    oidc_client_id: str = Field(default="motcua-portal", description="The portal's client id.")
    oidc_client_secret: SecretStr = Field(
        default=SecretStr(""), description="The portal's client secret (empty: a public client)."
    )
    oidc_scopes: str = Field(default="openid profile", description="Scopes asked at sign-in.")
    oidc_resource: str = Field(
        default="urn:motcua",
        description="Resource (audience) of the access token the services accept "
        "(RFC 8707 `resource`; empty: not sent).",
    )

    @model_validator(mode="after")
    def _development_stays_local(self) -> PortalSettings:
        # The development sign-in lets anyone pick any officer, admins included: never where
        # the portal is served over TLS (a real deployment) or beside a real provider.
        if self.development_signin and (self.secure_cookies or self.oidc_discovery_url):
            raise ValueError(
                "MOTCUA_PORTAL_DEVELOPMENT_SIGNIN must be off when the portal is served over "
                "https or signs officers in through an OpenID Connect provider"
            )
        return self

    @property
    def development_session_secret(self) -> bool:
        return self.session_secret.get_secret_value() == DEV_SESSION_SECRET

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")
