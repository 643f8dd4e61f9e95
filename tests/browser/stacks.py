"""The services a browser test's pages come from: intake, review, notify and audit and the
portal, each an OS process (tests/e2e/harness.py), on a vhost and databases of their own, with
the SMTP mailbox notify sends the citizen's e-mails to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import Infra, Isolation, isolated
from tests.e2e.conftest import service_env
from tests.e2e.harness import Mailbox, Services, start_smtp

LOG_TAIL = 4000


@dataclass
class Stack:
    services: Services
    mailbox: Mailbox
    isolation: Isolation

    @property
    def portal(self) -> str:
        return self.services.url("portal")

    def url(self, name: str) -> str:
        return self.services.url(name)

    def attach(self, folder: Path) -> list[tuple[str, str]]:
        """Copy every service's log into `folder` (for a failed test); their ends to report."""
        folder.mkdir(parents=True, exist_ok=True)
        shown: list[tuple[str, str]] = []
        for path in sorted(self.services.logs.glob("*.log")):
            text = path.read_text(encoding="utf-8", errors="replace")
            (folder / path.name).write_text(text, encoding="utf-8")
            shown.append((f"log of {path.stem}", text[-LOG_TAIL:]))
        return shown


@contextlib.contextmanager
def running_stack(
    infra: Infra,
    logs: Path,
    extra_env: dict[str, str] | None = None,
    portal_env: dict[str, str] | None = None,
    portal_port: int = 0,
) -> Iterator[Stack]:
    """The four services (with `extra_env`) and the portal (with `portal_env`, on
    `portal_port` if given: an OIDC client's redirect URI names it before it starts)."""
    controller, mailbox = start_smtp()
    try:
        with isolated(infra) as isolation:
            services = Services(
                env={**service_env(isolation, mailbox), **(extra_env or {})}, logs=logs
            )
            if portal_port:
                services.ports["portal"] = portal_port
            try:
                services.start_all()
                services.start("portal", **(portal_env or {}))
                services.wait_ready("portal")
                yield Stack(services, mailbox, isolation)
            finally:
                services.stop_all()
    finally:
        controller.stop()


def plain_stack(infra: Infra, logs: Path) -> contextlib.AbstractContextManager[Stack]:
    """The stack as tests/e2e starts it (HS256 tokens of the shared development secret)."""
    return running_stack(infra, logs)
