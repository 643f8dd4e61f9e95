"""The broker definitions commit no password, and devstack renders them per environment."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from tools.devstack import (
    BROKER_DEFINITIONS,
    BROKER_SERVICES,
    broker_definitions,
    password_hash,
    service_amqp_url,
)


def test_the_committed_definitions_hold_no_password() -> None:
    raw = json.loads(BROKER_DEFINITIONS.read_text())
    assert {u["name"] for u in raw["users"]} == {f"motcua-{s}" for s in BROKER_SERVICES}
    assert all(u["password_hash"] == "" and "password" not in u for u in raw["users"])
    assert "portal" not in BROKER_DEFINITIONS.read_text()


def test_each_user_reaches_only_its_own_queues() -> None:
    grants = {p["user"]: p for p in json.loads(BROKER_DEFINITIONS.read_text())["permissions"]}
    for service in BROKER_SERVICES:
        read = grants[f"motcua-{service}"]["read"]
        assert re.fullmatch(read, f"motcua.{service}") and re.fullmatch(read, "motcua.events")
        for kind in ("configure", "write", "read"):  # no right of any kind on another's queues
            pattern = grants[f"motcua-{service}"][kind]
            for other in set(BROKER_SERVICES) - {service}:
                for queue in (f"motcua.{other}", f"motcua.{other}.dead"):
                    assert not re.fullmatch(pattern, queue), (service, kind, queue)
        assert not re.fullmatch(grants[f"motcua-{service}"]["write"], "amq.topic")


def test_the_hash_is_rabbitmqs_salted_sha256() -> None:
    salt = b"\x01\x02\x03\x04"
    raw = base64.b64decode(password_hash("s3cret", salt))
    assert raw == salt + hashlib.sha256(salt + b"s3cret").digest()
    rendered = broker_definitions({"motcua-notify": "s3cret"})
    users = {u["name"]: u for u in rendered["users"]}  # type: ignore[attr-defined]
    assert users["motcua-notify"]["password_hash"] and not users["motcua-audit"]["password_hash"]


def test_a_service_url_keeps_host_vhost_and_tls_options() -> None:
    url = "amqps://guest:guest@rabbit:5671/t-1?cafile=/ca.pem"
    assert service_amqp_url(url, "motcua-audit", "p/w") == (
        "amqps://motcua-audit:p%2Fw@rabbit:5671/t-1?cafile=/ca.pem"
    )
