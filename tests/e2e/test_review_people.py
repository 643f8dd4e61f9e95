"""End to end: the officer directory, who holds a task, apologies, and identity-provider tokens."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from shared import auth
from shared.settings import DEV_JWT_SECRET
from tests.amqp import observe
from tests.conftest import Isolation
from tests.e2e.conftest import service_env
from tests.e2e.flows import act, assigned_officer, status, submit, timeline, token
from tests.e2e.harness import Mailbox, Services, eventually
from tools.devstack import free_port

pytestmark = pytest.mark.e2e

ADMIN = "cb-pc06-qt"


def _call(
    services: Services, method: str, path: str, bearer: str, body: Any = None
) -> httpx.Response:
    return httpx.request(
        method,
        f"{services.url('review')}{path}",
        json=body,
        headers={"Authorization": f"Bearer {bearer}"},
    )


def _hs256(officer_id: str, role: str, unit: str) -> str:
    return auth.issue(
        auth.OfficerClaims(officer_id, role, unit),
        secret=DEV_JWT_SECRET,
        issuer="motcua",
        ttl=timedelta(hours=1),
    )


async def test_admins_manage_the_directory_and_assignment_follows_it(
    services: Services,
) -> None:
    admin, ward_officer = token(ADMIN), token("cb-badinh-01")
    officers = _call(services, "GET", "/v1/admin/officers", admin).json()
    assert {"cb-badinh-01", "cb-pc06-gs", ADMIN} <= {o["id"] for o in officers}  # seeded
    assert _call(services, "GET", "/v1/admin/officers", ward_officer).status_code == 403

    newcomer = {"name": "Nguyễn Thị Lan", "role": "officer", "unit": "CAP-BADINH"}
    refused = [
        ("PUT", "/v1/admin/officers/cb-badinh-03", ward_officer, newcomer, 403),
        ("PUT", "/v1/admin/officers/cb-x", admin, {**newcomer, "unit": "NOWHERE"}, 422),
        ("PUT", "/v1/admin/officers/cb-x", admin, {**newcomer, "role": "king"}, 422),
        ("PUT", "/v1/admin/units/CAP-X", admin, {"name": "X", "wards": ["00004"]}, 422),
        ("PUT", f"/v1/admin/officers/{ADMIN}", admin, {**newcomer, "unit": "PC06-HN"}, 409),
    ]
    for method, path, bearer, body, expected in refused:
        answer = _call(services, method, path, bearer, body)
        assert answer.status_code == expected, (path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert _call(services, "GET", "/v1/admin/officers", admin).json() == officers  # unchanged

    assert _call(services, "PUT", "/v1/admin/officers/cb-badinh-03", admin, newcomer).is_success
    for leaving in ("cb-badinh-01", "cb-badinh-02"):
        current = next(o for o in officers if o["id"] == leaving)
        answer = _call(
            services,
            "PUT",
            f"/v1/admin/officers/{leaving}",
            admin,
            {**{k: current[k] for k in ("name", "role", "unit")}, "active": False},
        )
        assert answer.json()["active"] is False
    code = submit(services)  # a Ba Đình dossier: the only active officer there is the newcomer
    _, officer_id = await assigned_officer(services, code)
    assert officer_id == "cb-badinh-03"
    queue = _call(services, "GET", "/v1/tasks", _hs256("cb-badinh-03", "officer", "CAP-BADINH"))
    assert code in {t["dossier_code"] for t in queue.json()}
    gone = _call(services, "GET", "/v1/tasks", ward_officer)  # a deactivated officer's token
    assert gone.status_code == 401
    changes = _call(services, "GET", "/v1/admin/officers/cb-badinh-01/changes", admin).json()
    assert [(c["by"], c["after"]["active"]) for c in changes] == [(ADMIN, False)]

    services.kill("review")  # the database, not the roster file, is the directory now
    services.start("review")
    services.wait_ready("review")
    after = {o["id"]: o for o in _call(services, "GET", "/v1/admin/officers", admin).json()}
    assert after["cb-badinh-01"]["active"] is False
    assert after["cb-badinh-03"]["name"] == "Nguyễn Thị Lan"


async def test_release_claim_and_reassign_one_winner_each_recorded_with_its_actor(
    services: Services, isolation: Isolation
) -> None:
    code = submit(services)
    task_id, holder = await assigned_officer(services, code)
    colleague = "cb-badinh-02" if holder == "cb-badinh-01" else "cb-badinh-01"
    path = f"/v1/tasks/{task_id}"
    async with observe(isolation.amqp_url) as seen:
        assert _call(services, "POST", f"{path}/release", token(colleague), {}).status_code == 403
        released = _call(services, "POST", f"{path}/release", token(holder), {"reason": "Nghỉ"})
        assert released.status_code == 200
        assert released.json()["officer_id"] is None
        queue = _call(services, "GET", "/v1/tasks", token(colleague)).json()
        assert task_id in {t["id"] for t in queue}  # released tasks show in the unit's queues
        assert act(services, task_id, token(holder), "receive").status_code == 403

        url = f"{services.url('review')}{path}/claim"
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(
                *(
                    client.post(url, headers={"Authorization": f"Bearer {token(who)}"})
                    for who in (colleague, "cb-badinh-tp")
                )
            )
        assert sorted(a.status_code for a in answers) == [200, 409]
        winner = next(a for a in answers if a.status_code == 200).json()["officer_id"]

        chief_try = _call(
            services, "POST", f"{path}/reassign", token("cb-badinh-tp"), {"officer_id": holder}
        )
        assert chief_try.status_code == 403  # reassigning is a supervisor's
        wrong_unit = _call(
            services,
            "POST",
            f"{path}/reassign",
            token("cb-pc06-gs"),
            {"officer_id": "cb-hoankiem-01"},
        )
        assert wrong_unit.status_code == 422
        back = _call(
            services,
            "POST",
            f"{path}/reassign",
            token("cb-pc06-gs"),  # Ba Đình has no supervisor: the province's answers for it
            {"officer_id": holder, "reason": "Trở lại làm việc"},
        )
        assert back.status_code == 200
        assert back.json()["officer_id"] == holder
        await seen.wait_for("dossier.reassigned", count=3)
        await asyncio.sleep(0.5)
    changes = [
        (e["data"]["action"], e["data"]["by"], e["data"]["officer_id"])
        for e in seen.events("dossier.reassigned")
    ]
    assert changes == [
        ("release", holder, None),
        ("claim", winner, winner),
        ("reassign", "cb-pc06-gs", holder),
    ]
    history = _call(services, "GET", path, token(holder)).json()["history"]
    assert [(h["action"], h["decided_by"]) for h in history] == [
        ("release", holder),
        ("claim", winner),
        ("reassign", "cb-pc06-gs"),
    ]
    assert act(services, task_id, token(holder), "receive").status_code == 200


async def test_a_late_dossier_gets_an_apology_with_a_new_promised_date(
    isolation: Isolation, mailbox: Mailbox, tmp_path: Path
) -> None:
    # Review's clock runs 40 days ahead of intake's: every dossier it sees is already late.
    env = {**service_env(isolation, mailbox), "MOTCUA_REVIEW_CLOCK_OFFSET_SECONDS": "3456000"}
    stack = Services(env=env, logs=tmp_path)
    try:
        stack.start_all()
        code = submit(stack)
        task_id, holder = await assigned_officer(stack, code)
        task = _call(stack, "GET", f"/v1/tasks/{task_id}", token(holder)).json()
        promised = datetime.fromisoformat(task["promised_at"])
        new_date = (promised + timedelta(days=60)).isoformat()
        path = f"/v1/tasks/{task_id}/apology"
        body = {"reason": "Cần xác minh thêm thông tin cư trú", "promised_at": new_date}
        early_date = {**body, "promised_at": promised.isoformat()}
        async with observe(isolation.amqp_url) as seen:
            for bearer, payload, expected in [
                (token(holder), body, 403),  # the chief signs the apology
                (token("cb-badinh-tp"), {**body, "reason": ""}, 422),
                (token("cb-badinh-tp"), early_date, 422),
                (token("cb-badinh-tp"), {**body, "promised_at": "2027-01-05T10:00:00"}, 422),
            ]:
                answer = _call(stack, "POST", path, bearer, payload)
                assert answer.status_code == expected, answer.text
            assert seen.events("dossier.apology_issued") == []
            answer = _call(stack, "POST", path, token("cb-badinh-tp"), body)
            assert answer.status_code == 200, answer.text
            assert datetime.fromisoformat(answer.json()["promised_at"]) == datetime.fromisoformat(
                new_date
            )
            [apology] = await seen.wait_for("dossier.apology_issued")
            assert act(stack, task_id, token(holder), "receive").status_code == 200
            [received] = await seen.wait_for("dossier.received")
        data = apology["data"]
        assert data["officer_id"] == "cb-badinh-tp"
        assert data["reason"] == body["reason"]
        assert datetime.fromisoformat(data["previous_promised_at"]) == promised
        assert datetime.fromisoformat(data["promised_at"]) == datetime.fromisoformat(new_date)
        assert datetime.fromisoformat(received["data"]["promised_at"]) == datetime.fromisoformat(
            new_date
        )  # the new date is the one in force from now on
        types = [e["type"] for e in await timeline(stack, code)]
        assert types.count("dossier.apology_issued") == 1

        def citizen_sees_the_new_date() -> dict[str, Any] | None:
            seen_by_citizen = status(stack, code)
            moved = datetime.fromisoformat(
                seen_by_citizen["promised_at"]
            ) == datetime.fromisoformat(new_date)
            return seen_by_citizen if moved and seen_by_citizen["status"] == "received" else None

        view = await eventually(citizen_sees_the_new_date)
        assert "apology_issued" in [h["status"] for h in view["history"]]
    finally:
        stack.stop_all()


class _Jwks:
    """A loopback identity provider's key endpoint; its keys can be rotated."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                body = json.dumps({"keys": owner.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def publish(self, kid: str, key: rsa.RSAPrivateKey) -> None:
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        self.keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})


@pytest.fixture
def jwks() -> Iterator[_Jwks]:
    provider = _Jwks()
    thread = threading.Thread(target=provider.server.serve_forever, daemon=True)
    thread.start()
    yield provider
    provider.server.shutdown()


def _rs256(key: rsa.RSAPrivateKey, kid: str, **claims: Any) -> str:
    now = datetime.now().astimezone()
    payload = {
        "sub": "cb-badinh-tp",
        "role": "chief",
        "unit": "CAP-BADINH",
        "iss": "https://sso.example.gov.vn",
        "aud": "motcua",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        **claims,
    }
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


async def test_rs256_tokens_are_checked_against_the_identity_providers_jwks(
    isolation: Isolation, mailbox: Mailbox, tmp_path: Path, jwks: _Jwks
) -> None:
    signing, rotated, forged = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)
    )
    jwks.publish("k1", signing)
    env = {
        **service_env(isolation, mailbox),
        "MOTCUA_JWT_ALGORITHM": "RS256",
        "MOTCUA_JWT_JWKS_URL": jwks.url,
        "MOTCUA_JWT_ISSUER": "https://sso.example.gov.vn",
        "MOTCUA_JWT_AUDIENCE": "motcua",
        "MOTCUA_JWT_JWKS_REFRESH_SECONDS": "1",
    }
    stack = Services(env=env, logs=tmp_path)
    try:
        stack.start("review")
        stack.wait_ready("review")

        def status(bearer: str) -> int:
            return _call(stack, "GET", "/v1/tasks", bearer).status_code

        assert status(_rs256(signing, "k1")) == 200
        assert status(_rs256(forged, "k1")) == 401  # right key id, wrong key
        assert status(_rs256(signing, "k1", iss="https://evil.example")) == 401
        assert status(_rs256(signing, "k1", aud="someone-else")) == 401
        assert status(_rs256(signing, "k1", exp=datetime.now().astimezone())) == 401
        assert status(_hs256("cb-badinh-tp", "chief", "CAP-BADINH")) == 401  # no shared secret
        assert (
            status(_rs256(signing, "k1", role="supervisor")) == 403
        )  # not what the directory says
        assert status(_rs256(rotated, "k2")) == 401  # not published yet
        jwks.publish("k2", rotated)  # the provider rotates its key
        await asyncio.sleep(1.2)
        assert status(_rs256(rotated, "k2")) == 200  # an unknown key id fetches the keys again
        assert status(_rs256(signing, "k1")) == 200
        fetched = jwks.requests
        for _ in range(5):
            assert status(_rs256(forged, "k9")) == 401
        assert jwks.requests <= fetched + 1  # forged key ids do not hammer the provider
    finally:
        stack.stop_all()
