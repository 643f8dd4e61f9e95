"""Notify's settings (env prefix MOTCUA_NOTIFY_)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

HERE = Path(__file__).resolve().parent


class NotifySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_NOTIFY_", extra="ignore")

    service_name: str = "notify"
    port: int = Field(default=8003, description="HTTP port.")
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server host.")
    smtp_port: int = Field(default=1025, description="SMTP server port.")
    smtp_starttls: bool = Field(
        default=False, description="Upgrade the SMTP session with STARTTLS."
    )
    smtp_ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the SMTP server's certificate (STARTTLS)."
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
    sms_gateway_url: str = Field(
        default="", description="SMS gateway endpoint (POST JSON); empty: SMS is not sent."
    )
    sms_api_key: SecretStr = Field(
        default=SecretStr(""), description="Bearer key of the SMS gateway."
    )
    sms_sender: str = Field(default="MOTCUA", description="SMS brandname (sender name).")
    sms_max_segments: int = Field(
        default=3, ge=1, le=10, description="Longest SMS, in segments; longer texts are cut."
    )
    sms_inbound_secret: SecretStr = Field(
        default=SecretStr(""),
        description="whsec_ secret the SMS gateway signs inbound SMS with; empty: the "
        "inbound webhook refuses every call.",
    )
    sms_rate_limit_per_minute: int = Field(
        default=20, ge=1, description="Inbound SMS a minute per phone (429 beyond, no reply)."
    )
    zalo_base_url: str = Field(
        default="", description="Zalo ZNS API base URL; empty: Zalo is not used."
    )
    zalo_access_token: SecretStr = Field(default=SecretStr(""), description="Zalo OA access token.")
    http_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of a call to the SMS, Zalo or partner APIs."
    )
    routing_file: Path = Field(
        default=HERE / "routing.yaml",
        description="Which events notify whom, by which channel, with which template.",
    )
    templates_dir: Path = Field(
        default=HERE / "templates", description="Jinja2 templates: <template>/<channel>.<lang>.j2."
    )
    partners_file: Path | None = Field(
        default=None, description="Partners that receive signed webhooks (YAML); none if unset."
    )
    allow_private_endpoints: bool = Field(
        default=False,
        description="Accept partner endpoint URLs that resolve to private, loopback or "
        "link-local addresses (refused by default: every resolved address is checked).",
    )
    allow_loopback_endpoints: bool = Field(
        default=False,
        description="Accept partner endpoint URLs on loopback only (127.0.0.0/8, ::1): for "
        "tests and a receiver on the same host; private and link-local stay refused.",
    )
    clock_offset_seconds: float = Field(
        default=0.0,
        description="Moves notify's clock (training or test environments, as review's): "
        "retries, rotations' overlaps and an endpoint's days of failure are counted on it.",
    )
    partner_tries: int = Field(
        default=8, ge=1, description="Tries of one message to a partner endpoint before it fails."
    )
    partner_retry_base_seconds: float = Field(
        default=5.0, gt=0, description="Wait before a partner message's first retry; doubles."
    )
    partner_retry_max_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Longest wait between two tries of a partner message (also caps Retry-After).",
    )
    partner_order_window_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How long a new partner message waits before it is sent, so that an "
        "earlier event of the same dossier handled at the same moment (another replica, "
        "another consumer slot) goes first.",
    )
    partner_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long one notify replica keeps sending to an endpoint before "
        "another may take it over (renewed while it sends).",
    )
    operators_email: str = Field(
        default="",
        description="Where operators are told that a partner endpoint was disabled (empty: "
        "only the partner's contact is told).",
    )
    secret_overlap_hours: float = Field(
        default=24.0,
        gt=0,
        description="After a partner's secret is rotated, how long the old one still signs "
        "beside the new one.",
    )
    retry_base_seconds: float = Field(
        default=30.0, gt=0, description="Wait before a delivery's first retry; doubles after."
    )
    delivery_tries: int = Field(
        default=5, ge=1, description="Tries of one delivery before notification.failed."
    )
    delivery_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long a started send is left alone before it counts as interrupted.",
    )

    @field_validator("sms_inbound_secret")
    @classmethod
    def _inbound_secret(cls, secret: SecretStr) -> SecretStr:
        value = secret.get_secret_value()
        if value and not re.fullmatch(r"whsec_[A-Za-z0-9+/=]{24,}", value):
            raise ValueError("the inbound SMS secret must be whsec_ and base64 (24+ characters)")
        return secret

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> NotifySettings:
        # A send still running when its lease ends would be taken over and sent twice.
        longest = max(self.http_timeout_seconds, self.smtp_timeout_seconds)
        if self.delivery_lease_seconds <= longest:
            raise ValueError(
                f"delivery_lease_seconds ({self.delivery_lease_seconds}) must exceed the longest "
                f"provider timeout ({longest})"
            )
        # A sender starts its last send before half its lease: that send must end within it.
        if self.partner_lease_seconds <= 2 * self.http_timeout_seconds:
            raise ValueError(
                f"partner_lease_seconds ({self.partner_lease_seconds}) must exceed twice "
                f"http_timeout_seconds ({self.http_timeout_seconds})"
            )
        return self
