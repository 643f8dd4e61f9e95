"""Every service's OpenAPI fuzzed (schemathesis) against real servers, with and without each
role's token: no 5xx, a refused call is problem+json and leaves the service's database as it
was, and no stored identifier of review holds a control character or falls outside the
alphabet. The portal serves HTML without an OpenAPI document (`openapi_url=None`): its forms
are covered by its own tests.

Bounded and derandomised (seeded): `MOTCUA_FUZZ_EXAMPLES` examples per operation and token
(default 4 here, `make fuzz` runs more); intake, the public side, also 150 anonymous examples
per operation, which reach both accepted and refused submissions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from bson import json_util
from hypothesis import HealthCheck, given, settings
from pymongo import MongoClient
from schemathesis.core.result import Ok

from shared import auth
from shared.contracts.identifiers import IDENTIFIER_PATTERN
from shared.settings import SharedSettings
from tests.conftest import Isolation, _infra, isolated
from tests.e2e.harness import Services, start_smtp

pytestmark = pytest.mark.e2e

SERVICES = ("intake", "review", "notify", "audit")
EXAMPLES = int(os.environ.get("MOTCUA_FUZZ_EXAMPLES", "4"))
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Officers of deploy/roster.yaml, one per role, and an inspector (audit's reader).
ROLES: dict[str, tuple[str, str, str]] = {
    "officer": ("cb-badinh-01", "officer", "CAP-BADINH"),
    "chief": ("cb-badinh-tp", "chief", "CAP-BADINH"),
    "supervisor": ("cb-pc06-gs", "supervisor", "PC06-HN"),
    "admin": ("cb-pc06-qt", "admin", "PC06-HN"),
    "inspector": ("inspector-01", "inspector", "inspection"),
}
# What background loops change on their own, not because of a call: left out of the
# snapshot of "nothing changed".
BACKGROUND = {"outbox", "leases", "locks", "heartbeats"}


def _headers(role: str | None) -> dict[str, str]:
    if role is None:
        return {}
    shared = SharedSettings()
    officer_id, staff_role, unit = ROLES[role]
    bearer = auth.issue(
        auth.OfficerClaims(officer_id, staff_role, unit),
        secret=shared.jwt_secret.get_secret_value(),
        issuer=shared.jwt_issuer,
        ttl=timedelta(hours=1),
        audience=shared.jwt_audience,
    )
    return {"Authorization": f"Bearer {bearer}"}


class Stack:
    def __init__(self, services: Services, isolation: Isolation) -> None:
        self.services = services
        self.isolation = isolation
        self.mongo: MongoClient[dict[str, Any]] = MongoClient(isolation.mongodb_url)

    def snapshot(self, service: str) -> dict[str, tuple[int, str]]:
        """Each collection of the service's database: its count and a hash of its documents."""
        db = self.mongo[self.isolation.database(service)]
        out: dict[str, tuple[int, str]] = {}
        for name in sorted(db.list_collection_names()):
            if name in BACKGROUND:
                continue
            docs = sorted(json_util.dumps(d, sort_keys=True) for d in db[name].find({}))
            out[name] = (len(docs), hashlib.sha256("\n".join(docs).encode()).hexdigest())
        return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    controller, mailbox = start_smtp()
    with isolated(_infra()) as isolation:
        env = {
            **isolation.service_env(),
            "MOTCUA_NOTIFY_SMTP_PORT": str(mailbox.port),
            "MOTCUA_INTAKE_RATE_LIMIT_PER_MINUTE": "1000000",
            "MOTCUA_INTAKE_RATE_LIMIT_BURST": "1000000",
        }
        services = Services(env=env, logs=Path(tmp_path_factory.mktemp("fuzz")))
        try:
            for name in SERVICES:
                services.start(name)
            for name in SERVICES:
                services.wait_ready(name)
            running = Stack(services, isolation)
            yield running
            running.mongo.close()
        finally:
            services.stop_all()
            controller.stop()


def _fuzz(
    stack: Stack,
    service: str,
    role: str | None,
    *,
    examples: int = EXAMPLES,
    snapshots: bool = True,
    exact_type: bool = False,
) -> dict[str, list[int]]:
    """Fuzz every operation of `service` with `role`'s token; `snapshots`: a refused mutating
    call must leave the database as it was; `exact_type`: a refusal's content type is exactly
    problem+json (no parameter)."""
    base = stack.services.url(service)
    document = httpx.get(f"{base}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    headers = _headers(role)
    answered: dict[str, list[int]] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"{service}'s OpenAPI document is not usable: {result}"
        operation = result.ok()

        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            mutating = snapshots and case.method.upper() in MUTATING
            before = stack.snapshot(service) if mutating else None
            response = case.call(base_url=base, headers=headers, timeout=30)
            what = f"{service} {role or 'anonymous'}: {case.method} {case.formatted_path}"
            answered.setdefault(f"{case.method} {case.path}", []).append(response.status_code)
            assert response.status_code < 500, (
                f"{what} -> {response.status_code}: {response.text[:500]}"
            )
            if response.status_code >= 400:
                content_type = response.headers.get("content-type", "")
                if isinstance(content_type, list):
                    content_type = content_type[0]
                problem = (
                    content_type == "application/problem+json"
                    if exact_type
                    else content_type.startswith("application/problem+json")
                )
                assert problem, (
                    f"{what} -> {response.status_code} {content_type}: {response.text[:300]}"
                )
                if before is not None:
                    after = stack.snapshot(service)
                    changed = [c for c in set(before) | set(after) if before.get(c) != after.get(c)]
                    assert not changed, f"{what} -> {response.status_code} changed {changed}"

        call()
    return answered


@pytest.mark.parametrize("role", [None, *ROLES])
@pytest.mark.parametrize("service", SERVICES)
def test_no_input_fails_a_service_or_changes_it_when_refused(
    stack: Stack, service: str, role: str | None
) -> None:
    answered = _fuzz(stack, service, role)
    assert answered, f"{service} exposes no operation to fuzz"
    print(service, role, {op: sorted(set(codes)) for op, codes in answered.items()})


def test_no_stored_identifier_holds_a_control_character(stack: Stack) -> None:
    """After the fuzz runs (admin tokens included), review's directory holds only valid ids
    and names without control characters."""
    answered = _fuzz(stack, "review", "admin")
    assert answered["PUT /v1/admin/officers/{officer_id}"], "the fuzz never tried the directory"
    assert answered["PUT /v1/admin/units/{unit_id}"], "the fuzz never tried the directory"
    db = stack.mongo[stack.isolation.database("review")]
    alphabet = re.compile(IDENTIFIER_PATTERN)
    officers = list(db["officers"].find({}))
    units = list(db["units"].find({}))
    assert officers and units
    for doc in officers:
        assert alphabet.fullmatch(doc["_id"]) and alphabet.fullmatch(doc["unit"]), doc
    for doc in units:
        assert alphabet.fullmatch(doc["_id"]), doc
    for doc in officers + units:
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in doc["name"]), doc
    print(json.dumps({"officers": len(officers), "units": len(units)}))


def test_the_directory_refuses_bad_ids_and_an_admin_moving_themself(stack: Stack) -> None:
    base = f"{stack.services.url('review')}/v1/admin"
    admin = _headers("admin")
    before = stack.snapshot("review")
    body = {"name": "Bùi Thanh Tâm", "role": "admin", "unit": "CAP-BADINH"}
    moved = httpx.put(f"{base}/officers/cb-pc06-qt", json=body, headers=admin, timeout=10)
    assert moved.status_code == 409 and moved.json()["code"] == "self_move", moved.text
    for bad_id in ("%C2%AE%F0%9B%BF%A4%02*_%C3%93", "a%20b", "-x"):
        refused = httpx.put(
            f"{base}/officers/{bad_id}",
            json={"name": "X", "role": "officer", "unit": "CAP-BADINH"},
            headers=admin,
            timeout=10,
        )
        assert refused.status_code == 422, refused.text
    control = httpx.put(
        f"{base}/units/CAP-NEW", json={"name": "a\u0002b"}, headers=admin, timeout=10
    )
    assert control.status_code == 422, control.text
    assert control.headers["content-type"].startswith("application/problem+json")
    assert stack.snapshot("review") == before


def test_intake_never_answers_with_a_server_error_over_many_inputs(stack: Stack) -> None:
    """Intake, the public side, deeper: 150 anonymous examples per operation (no snapshots:
    the run above checks a refusal changes nothing), reaching both accepted and refused forms."""
    # Last of the module: the dossiers it files keep the other services busy for a while.
    answered = _fuzz(stack, "intake", None, examples=150, snapshots=False, exact_type=True)
    assert "POST /v1/dossiers" in answered and "GET /v1/procedures/{code}" in answered
    print({op: sorted(set(codes)) for op, codes in answered.items()})
    print({op: len(codes) for op, codes in answered.items()})
    # The run reached both sides of the submission: accepted forms and refused ones.
    assert {201, 422} <= set(answered["POST /v1/dossiers"])
