from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Isolation
from tests.e2e.harness import Mailbox, Services, start_smtp


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
