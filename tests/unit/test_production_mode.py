"""Production mode refuses each development default, one test each, and names the setting."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from services.audit.settings import DEV_HMAC_KEY, AuditSettings
from services.intake.settings import IntakeSettings
from services.notify.settings import NotifySettings
from services.portal.settings import DEV_SESSION_SECRET, PortalSettings
from services.review.settings import ReviewSettings
from shared.production import development_defaults, refuse_development_defaults
from shared.settings import DEV_JWT_SECRET, ServiceSettings, SharedSettings

SEED = base64.b64encode(bytes(range(32))).decode()
PRODUCTION: dict[str, Any] = {
    "env": "production",
    "amqp_url": "amqps://motcua-intake:s3cret@rabbit:5671/motcua?cafile=/tls/ca.pem",
    "jwt_secret": "a-province-secret-of-enough-length-0123456789",
}
IDP: dict[str, Any] = {
    "jwt_algorithm": "RS256",
    "jwt_jwks_url": "https://idp.example.vn/jwks",
    "jwt_issuer": "https://idp.example.vn/realms/motcua",
}
AUDIT_READY: dict[str, Any] = {
    "hmac_key": "the-province-audit-hmac-key",
    "signing_key": SEED,
    "trusted_public_keys": "ab" * 32,
}
PORTAL_READY: dict[str, Any] = {
    "session_secret": "the-province-session-secret",
    "oidc_discovery_url": "https://idp.example.vn/.well-known/openid-configuration",
    "public_url": "https://motcua.example.vn",
}


def shared(**overrides: Any) -> SharedSettings:
    return SharedSettings(**{**PRODUCTION, **overrides})


def offending(settings: ServiceSettings) -> set[str]:
    return {offence.setting for offence in development_defaults(settings)}


@pytest.mark.parametrize(
    "settings",
    [
        IntakeSettings(shared=shared()),
        ReviewSettings(shared=shared(**IDP)),
        NotifySettings(shared=shared()),
        AuditSettings(shared=shared(), **AUDIT_READY),
        PortalSettings(shared=shared(**IDP), **PORTAL_READY),
    ],
    ids=lambda s: s.service_name,
)
def test_a_configured_service_starts(settings: ServiceSettings) -> None:
    assert offending(settings) == set()
    refuse_development_defaults(settings)  # returns: nothing left to refuse


def test_the_default_token_secret_is_refused() -> None:
    settings = ReviewSettings(shared=shared(jwt_secret=DEV_JWT_SECRET))
    assert offending(settings) == {"MOTCUA_JWT_SECRET"}


def test_an_unset_token_issuer_is_refused() -> None:
    settings = AuditSettings(shared=shared(**{**IDP, "jwt_issuer": "motcua"}), **AUDIT_READY)
    assert offending(settings) == {"MOTCUA_JWT_ISSUER"}


def test_rs256_without_the_providers_keys_is_refused() -> None:
    settings = IntakeSettings(shared=shared(**{**IDP, "jwt_jwks_url": ""}))
    assert offending(settings) == {"MOTCUA_JWT_JWKS_URL"}


def test_the_default_audit_hmac_key_is_refused() -> None:
    settings = AuditSettings(shared=shared(), **{**AUDIT_READY, "hmac_key": DEV_HMAC_KEY})
    assert offending(settings) == {"MOTCUA_AUDIT_HMAC_KEY"}


def test_a_missing_audit_signing_key_is_refused() -> None:
    settings = AuditSettings(shared=shared(), **{**AUDIT_READY, "signing_key": ""})
    assert offending(settings) == {"MOTCUA_AUDIT_SIGNING_KEY"}


def test_missing_trusted_keys_are_refused() -> None:
    settings = AuditSettings(shared=shared(), **{**AUDIT_READY, "trusted_public_keys": " "})
    assert offending(settings) == {"MOTCUA_AUDIT_TRUSTED_PUBLIC_KEYS"}


def test_the_development_sign_in_is_refused() -> None:
    # The portal's own validator already refuses it beside https or a provider.
    ready = {**PORTAL_READY, "public_url": "http://motcua.local", "oidc_discovery_url": ""}
    settings = PortalSettings(shared=shared(), development_signin=True, **ready)
    assert offending(settings) == {
        "MOTCUA_PORTAL_DEVELOPMENT_SIGNIN",
        "MOTCUA_PORTAL_OIDC_DISCOVERY_URL",
    }


def test_the_default_session_secret_is_refused() -> None:
    ready = {**PORTAL_READY, "session_secret": DEV_SESSION_SECRET}
    settings = PortalSettings(shared=shared(), **ready)
    assert offending(settings) == {"MOTCUA_PORTAL_SESSION_SECRET"}


def test_a_portal_without_an_identity_provider_is_refused() -> None:
    settings = PortalSettings(shared=shared(), **{**PORTAL_READY, "oidc_discovery_url": ""})
    assert offending(settings) == {"MOTCUA_PORTAL_OIDC_DISCOVERY_URL"}


@pytest.mark.parametrize(
    "url",
    ["amqp://guest:guest@127.0.0.1:5672/", "amqp://127.0.0.1:5672/", "amqps://guest:x@h/"],
)
def test_the_guest_broker_login_is_refused(url: str) -> None:
    settings = NotifySettings(shared=shared(amqp_url=url))
    assert offending(settings) == {"MOTCUA_AMQP_URL"}


def test_the_portal_needs_no_broker_login() -> None:
    settings = PortalSettings(
        shared=shared(amqp_url="amqp://guest:guest@127.0.0.1/"), **PORTAL_READY
    )
    assert offending(settings) == set()


def test_private_and_loopback_partner_endpoints_are_refused() -> None:
    private = NotifySettings(shared=shared(), allow_private_endpoints=True)
    assert offending(private) == {"MOTCUA_NOTIFY_ALLOW_PRIVATE_ENDPOINTS"}
    loopback = NotifySettings(shared=shared(), allow_loopback_endpoints=True)
    assert offending(loopback) == {"MOTCUA_NOTIFY_ALLOW_LOOPBACK_ENDPOINTS"}
    assert offending(NotifySettings(shared=shared())) == set()


def test_every_offence_is_named_at_once_and_the_start_stops(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = AuditSettings(
        shared=SharedSettings(
            env="production", amqp_url="amqp://guest:guest@127.0.0.1/", jwt_secret=DEV_JWT_SECRET
        ),
        hmac_key=DEV_HMAC_KEY,
        signing_key="",
        trusted_public_keys="",
    )
    with pytest.raises(SystemExit) as stopped:
        refuse_development_defaults(settings)
    assert stopped.value.code == 78
    err = capsys.readouterr().err
    for name in (
        "MOTCUA_JWT_SECRET",
        "MOTCUA_AMQP_URL",
        "MOTCUA_AUDIT_HMAC_KEY",
        "MOTCUA_AUDIT_SIGNING_KEY",
        "MOTCUA_AUDIT_TRUSTED_PUBLIC_KEYS",
    ):
        assert name in err


def test_development_mode_refuses_nothing() -> None:
    settings = AuditSettings(
        shared=SharedSettings(env="development", jwt_secret=DEV_JWT_SECRET),
        hmac_key=DEV_HMAC_KEY,
        signing_key="",
    )
    assert offending(settings)  # the defaults are there,
    refuse_development_defaults(settings)  # and development starts anyway
