from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Isolation
from tests.e2e.harness import Mailbox, Services, start_smtp

COVERAGE_CHECK = "test_index_coverage.py::test_every_query_of_the_e2e_session_is_served_by_an_index"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The index-coverage check reads what the whole session recorded, so it runs last."""
    last = [item for item in items if item.nodeid.endswith(COVERAGE_CHECK)]
    for item in last:
        items.remove(item)
    items.extend(last)


@pytest.fixture(scope="session", autouse=True)
def command_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every service process of the e2e session records its queries here."""
    folder = tmp_path_factory.mktemp("commands")
    Services.command_log_dir = folder
    yield folder
    Services.command_log_dir = None


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    controller, box = start_smtp()
    yield box
    controller.stop()


def service_env(isolation: Isolation, mailbox: Mailbox) -> dict[str, str]:
    return {
        **isolation.service_env(),
        "MOTCUA_NOTIFY_SMTP_PORT": str(mailbox.port),
        "MOTCUA_RETRY_DELAY_SECONDS": "0.2",
        "MOTCUA_NOTIFY_RETRY_BASE_SECONDS": "0.2",
        "MOTCUA_OUTBOX_INTERVAL_SECONDS": "0.5",
        "MOTCUA_LOG_LEVEL": "INFO",
        # Every test client is 127.0.0.1: the rate limit has its own test.
        "MOTCUA_INTAKE_RATE_LIMIT_PER_MINUTE": "1000000",
        "MOTCUA_INTAKE_RATE_LIMIT_BURST": "1000000",
    }


@pytest.fixture
def services(isolation: Isolation, mailbox: Mailbox, tmp_path: Path) -> Iterator[Services]:
    stack = Services(env=service_env(isolation, mailbox), logs=tmp_path)
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop_all()
