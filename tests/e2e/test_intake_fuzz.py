"""An OpenAPI fuzz run (schemathesis) against intake as a process: no input makes it fail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from tests.conftest import _infra, isolated
from tests.e2e.harness import Services

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def intake_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with isolated(_infra()) as isolation:
        env = {
            **isolation.service_env(),
            "MOTCUA_INTAKE_RATE_LIMIT_PER_MINUTE": "1000000",
            "MOTCUA_INTAKE_RATE_LIMIT_BURST": "1000000",
        }
        stack = Services(env=env, logs=Path(tmp_path_factory.mktemp("fuzz")))
        stack.start("intake")
        try:
            stack.wait_ready("intake")
            yield stack.url("intake")
        finally:
            stack.stop_all()


def test_intake_never_answers_with_a_server_error(intake_url: str) -> None:
    document = httpx.get(f"{intake_url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    tried: list[str] = []
    answered: dict[str, list[int]] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document is not usable: {result}"
        operation = result.ok()

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            response = case.call(base_url=intake_url, timeout=30)
            answered.setdefault(f"{case.method} {case.path}", []).append(response.status_code)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:500]}"
            )
            if response.status_code >= 400:
                content_type = response.headers.get("content-type")
                if isinstance(content_type, list):
                    content_type = content_type[0]
                assert content_type == "application/problem+json", response.text[:300]

        call()
        tried.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /v1/dossiers" in tried and "GET /v1/procedures/{code}" in tried
    print({op: sorted(set(codes)) for op, codes in answered.items()})
    print({op: len(codes) for op, codes in answered.items()})
    # The run reached both sides of the submission: accepted forms and refused ones.
    assert {201, 422} <= set(answered["POST /v1/dossiers"])
