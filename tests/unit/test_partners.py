"""Partner rules: credentials, secret rotation, endpoint URL checks, delivery answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from services.notify.partners import (
    SigningKeys,
    UnsafeEndpoint,
    api_key_matches,
    check_endpoint_url,
    hash_api_key,
    new_api_key,
    new_secret,
    outcome,
    recover_since,
    retry_after,
    should_disable,
    signature_header,
)
from services.notify.routing import Partner
from services.notify.settings import NotifySettings

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
BODY = b'{"type":"dossier.submitted"}'


def _signed_now(keys: SigningKeys, at: datetime) -> dict[str, str]:
    """Headers signed with the secrets active at `at`, stamped with the real time so that
    standardwebhooks' tolerance check passes."""
    ts = int(datetime.now(UTC).timestamp())
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(keys.active(at), "msg_1", ts, BODY),
    }


def _ok(secret: str, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(BODY, headers)
    except WebhookVerificationError:
        return False
    return True


def test_api_key_is_stored_as_a_hash_only() -> None:
    key = new_api_key()
    stored = hash_api_key(key)
    assert key not in stored
    assert api_key_matches(key, stored)
    assert not api_key_matches(key + "x", stored)
    assert new_api_key() != key


def test_a_fresh_secret_verifies_with_standardwebhooks() -> None:
    keys = SigningKeys(current=new_secret())
    headers = _signed_now(keys, NOW)
    assert _ok(keys.current, headers)
    assert not _ok(new_secret(), headers)


def test_rotation_signs_with_both_during_the_overlap_and_only_the_new_after() -> None:
    old = SigningKeys(current=new_secret())
    keys, fresh = old.rotate(NOW, timedelta(hours=24))
    assert keys.current == fresh != old.current
    during = _signed_now(keys, NOW + timedelta(hours=23))
    assert len(during["webhook-signature"].split(" ")) == 2
    assert _ok(fresh, during) and _ok(old.current, during)
    after = _signed_now(keys, NOW + timedelta(hours=24))
    assert len(after["webhook-signature"].split(" ")) == 1
    assert _ok(fresh, after) and not _ok(old.current, after)


def test_a_second_rotation_drops_the_oldest_secret() -> None:
    first = SigningKeys(current=new_secret())
    second, _ = first.rotate(NOW, timedelta(hours=24))
    third, newest = second.rotate(NOW + timedelta(hours=1), timedelta(hours=24))
    assert third.active(NOW + timedelta(hours=2)) == [newest, second.current]
    assert first.current not in third.active(NOW + timedelta(hours=2))


def _dns(table: dict[str, list[str]]) -> Callable[[str], list[str]]:
    def resolve(host: str) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "https://127.0.0.1/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",  # carrier-grade NAT: not global
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://internal.example/hook",  # resolves to 192.168.1.5
        "http://mixed.example/hook",  # one public, one private address
        "http://nowhere.example/hook",
        "ftp://partner.example/hook",
        "http:///nohost",
    ],
)
def test_private_loopback_link_local_and_broken_urls_are_refused(url: str) -> None:
    dns = _dns(
        {
            "internal.example": ["192.168.1.5"],
            "mixed.example": ["203.0.113.7", "10.1.2.3"],
            "partner.example": ["203.0.113.7"],
        }
    )
    with pytest.raises(UnsafeEndpoint):
        check_endpoint_url(url, allow_private=False, resolve=dns)


def test_a_public_host_is_accepted_and_the_settings_lift_the_rule() -> None:
    dns = _dns({"partner.example": ["93.184.216.34", "2606:2800:220:1::"]})
    check_endpoint_url("https://partner.example/hook", allow_private=False, resolve=dns)
    check_endpoint_url("http://10.0.0.1/hook", allow_private=True)
    check_endpoint_url("http://127.0.0.1:9999/hook", allow_private=False, allow_loopback=True)
    with pytest.raises(UnsafeEndpoint, match="private"):
        check_endpoint_url("http://10.0.0.1/hook", allow_private=False, allow_loopback=True)
    assert NotifySettings().allow_private_endpoints is False
    assert NotifySettings().secret_overlap_hours == 24.0


def test_outcomes_retry_after_and_the_five_day_rule() -> None:
    assert [outcome(s) for s in (200, 204, 410, 503, 404, 301)] == [
        "delivered",
        "delivered",
        "gone",
        "failed",
        "failed",
        "failed",
    ]
    cap = timedelta(hours=1)
    assert retry_after("120", NOW, cap=cap) == timedelta(seconds=120)
    assert retry_after("99999", NOW, cap=cap) == cap
    assert retry_after("Tue, 01 Dec 2026 08:05:00 GMT", NOW, cap=cap) == timedelta(minutes=5)
    assert retry_after("soon", NOW, cap=cap) is None
    assert retry_after(None, NOW, cap=cap) is None
    assert not should_disable(None, NOW)
    assert not should_disable(NOW - timedelta(days=4, hours=23), NOW)
    assert should_disable(NOW - timedelta(days=5), NOW)


def test_recovery_goes_back_at_most_fourteen_days() -> None:
    assert recover_since(NOW - timedelta(days=14), NOW) == NOW - timedelta(days=14)
    with pytest.raises(ValueError, match="14 days"):
        recover_since(NOW - timedelta(days=14, seconds=1), NOW)
    with pytest.raises(ValueError, match="future"):
        recover_since(NOW + timedelta(seconds=1), NOW)


def test_a_yaml_partner_with_a_previous_secret_is_signed_with_both_until_its_end() -> None:
    old, fresh = new_secret(), new_secret()
    partner = Partner(
        id="bank",
        url="https://bank.example/hook",
        secret=fresh,
        events=["dossier.submitted"],
        previous_secret=old,
        previous_secret_until=NOW,
    )
    assert partner.signing_keys().active(NOW - timedelta(seconds=1)) == [fresh, old]
    assert partner.signing_keys().active(NOW) == [fresh]
    with pytest.raises(ValueError, match="previous_secret"):
        Partner(
            id="bank",
            url="https://bank.example/hook",
            secret=fresh,
            events=["dossier.submitted"],
            previous_secret="whsec_" + "!" * 30,
        )


def test_a_rotation_end_without_a_time_zone_is_refused_at_start() -> None:
    """A naive `previous_secret_until` would fail every send at the comparison with an aware
    clock: the partners file is refused instead, naming the field."""
    from pydantic import ValidationError

    from services.notify.routing import Partner

    with pytest.raises(ValidationError, match="previous_secret_until"):
        Partner.model_validate(
            {
                "id": "p1",
                "url": "https://partner.example/hook",
                "secret": "whsec_" + "A" * 32,
                "events": ["dossier.approved"],
                "previous_secret": "whsec_" + "B" * 32,
                "previous_secret_until": "2026-12-02T00:00:00",
            }
        )
