"""Production mode: with `MOTCUA_ENV=production` a service refuses to start while any
development default is left, and names every setting to set at once.

The rules live here, in one place: each service's start calls `refuse_development_defaults`
with its settings before it serves. `development_defaults` is the pure part (tested over
settings objects)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic_settings import BaseSettings

from shared.settings import DEV_JWT_SECRET, ServiceSettings

# Services that consume and publish events (the portal only calls the others' APIs).
BROKER_USERS = frozenset({"intake", "review", "notify", "audit"})
# Services that verify officers' bearer tokens (the portal verifies the provider's ones).
TOKEN_VERIFIERS = frozenset({"intake", "review", "notify", "audit", "portal"})
DEFAULT_ISSUER = "motcua"


@dataclass(frozen=True)
class Offence:
    """A setting left at a development value, and what to do about it."""

    setting: str  # the environment variable
    reason: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.reason}"


def env_name(settings: BaseSettings, field: str) -> str:
    """The environment variable of `field` in `settings`' class."""
    prefix = str(type(settings).model_config.get("env_prefix", ""))
    return (prefix + field).upper()


def development_defaults(settings: ServiceSettings) -> list[Offence]:
    """Every development default `settings` still holds (empty: fit for production)."""
    shared = settings.shared
    service = settings.service_name
    found: list[Offence] = []

    def offend(owner: BaseSettings, field: str, reason: str) -> None:
        found.append(_offence(owner, field, reason))

    if service in TOKEN_VERIFIERS:
        if shared.jwt_algorithm == "HS256":
            if shared.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                offend(shared, "jwt_secret", "the HS256 token secret is the public default")
        else:
            if not shared.jwt_jwks_url:
                offend(shared, "jwt_jwks_url", "RS256 tokens need the provider's JWKS URL")
            if shared.jwt_issuer == DEFAULT_ISSUER:
                offend(shared, "jwt_issuer", "set the identity provider's issuer (OIDC `iss`)")
    if service in BROKER_USERS and _guest_login(shared.amqp_url):
        offend(shared, "amqp_url", "the broker login is guest/guest; give the service its own user")
    found.extend(_service_defaults(settings))
    return found


def _offence(owner: BaseSettings, field: str, reason: str) -> Offence:
    return Offence(env_name(owner, field), reason)


def _service_defaults(settings: ServiceSettings) -> list[Offence]:
    # Each service's own defaults, read by field name (the settings classes live in services/).
    values = settings.model_dump()
    service = settings.service_name
    found: list[Offence] = []

    def offend(owner: BaseSettings, field: str, reason: str) -> None:
        found.append(_offence(owner, field, reason))

    if service == "audit":
        if _at_default(settings, "hmac_key"):
            offend(settings, "hmac_key", "audit's HMAC key is the public default")
        if not _secret(settings, "signing_key"):
            offend(settings, "signing_key", "seals would be signed with a throwaway key")
        if not str(values.get("trusted_public_keys", "")).strip():
            offend(settings, "trusted_public_keys", "verification would accept any key's seal")
    elif service == "portal":
        if values.get("development_signin"):
            offend(settings, "development_signin", "anyone could sign in as any officer")
        if _at_default(settings, "session_secret"):
            offend(settings, "session_secret", "the session cookie key is the public default")
        if not values.get("oidc_discovery_url"):
            offend(settings, "oidc_discovery_url", "officers need the OpenID Connect provider")
    elif service == "notify":
        for field, what in (
            ("allow_private_endpoints", "loopback or private"),
            ("allow_loopback_endpoints", "loopback"),
        ):
            if values.get(field):
                offend(settings, field, f"partner endpoints on {what} addresses are allowed")
    return found


def _secret(settings: ServiceSettings, field: str) -> str:
    value = getattr(settings, field, "")
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


def _at_default(settings: ServiceSettings, field: str) -> bool:
    """True when `field` still holds its class default (the public development value)."""
    info = type(settings).model_fields.get(field)
    if info is None:
        return False
    default = info.get_default(call_default_factory=True)
    if hasattr(default, "get_secret_value"):
        default = default.get_secret_value()
    return _secret(settings, field) == str(default)


def _guest_login(url: str) -> bool:
    parts = urlsplit(url)
    return (parts.username or "guest") == "guest"


def refuse_development_defaults(settings: ServiceSettings) -> None:
    """In production mode, exit (status 78, EX_CONFIG) naming every development default left;
    otherwise nothing."""
    if settings.shared.env != "production":
        return
    found = development_defaults(settings)
    if not found:
        return
    lines = "\n".join(f"  - {offence}" for offence in found)
    print(
        f"motcua-{settings.service_name}: MOTCUA_ENV=production but {len(found)} development "
        f"default(s) left; set:\n{lines}",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(78)
