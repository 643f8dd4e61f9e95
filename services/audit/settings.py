"""Audit's settings (env prefix MOTCUA_AUDIT_)."""

from __future__ import annotations

import logging
from datetime import timedelta

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.audit.signing import load_signing_key, public_hex
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

DEV_HMAC_KEY = "motcua-dev-audit-hmac-key-change-me"


class AuditSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_AUDIT_", extra="ignore")

    service_name: str = "audit"
    port: int = Field(default=8004, description="HTTP port.")
    hmac_key: SecretStr = Field(
        default=SecretStr(DEV_HMAC_KEY),
        description="Key of the HMAC that lets audit look up a personal ID or phone number "
        "it only keeps masked; set your own in production and never change it.",
    )
    signing_key: SecretStr = Field(
        default=SecretStr(""),
        description="Base64 of the 32-byte Ed25519 seed that signs seals; unset: a throwaway "
        "key (with a warning).",
    )
    trusted_public_keys: str = Field(
        default="",
        description="Hex Ed25519 public keys (comma-separated) whose seals verification "
        "accepts, besides the signing key's own; empty: any key (development).",
    )
    chain_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a record waits for out-of-order events before it is chained.",
    )
    settle_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Shortest time between two settling rounds (records are chained when "
        "their grace window has passed, not on a tick).",
    )
    lease_ttl_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long the audit process that settles and seals may go silent before "
        "another takes over; it renews every third of it (the idle floor of audit's "
        "database traffic: about one command per renewal).",
    )
    seal_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often the chained records are sealed (Merkle)."
    )
    batch_size: int = Field(
        default=32,
        ge=1,
        description="Most records written to the database in one insert (at most the "
        "consumer prefetch, or every batch waits its full time).",
    )
    batch_wait_seconds: float = Field(
        default=0.02, ge=0, description="Longest a record waits for others to fill its batch."
    )
    export_page_size: int = Field(
        default=500, ge=1, description="Records read per query while streaming an export."
    )

    def hmac_key_bytes(self) -> bytes:
        """The HMAC key, with a warning when it is the development default: anyone knowing it
        can tell whose masked ID a record holds (the last 4 digits, birth date and sex leave
        few candidates)."""
        value = self.hmac_key.get_secret_value()
        if value == DEV_HMAC_KEY:
            log.warning(
                "MOTCUA_AUDIT_HMAC_KEY is the development default: masked personal IDs can be "
                "recovered from their HMAC; set your own in production"
            )
        return value.encode()

    def unsealed_after(self) -> timedelta:
        """How long a settled link may stay out of every seal before verification names it
        `unsealed`: two sealing periods (and settling rounds) after it was settled."""
        return timedelta(seconds=2 * (self.seal_interval_seconds + self.settle_interval_seconds))

    def trusted_keys(self) -> frozenset[str]:
        """The public keys verification accepts seals from (empty: any)."""
        keys = {k.strip().lower() for k in self.trusted_public_keys.split(",") if k.strip()}
        seed = self.signing_key.get_secret_value()
        if seed:
            keys.add(public_hex(load_signing_key(seed)))
        return frozenset(keys)
