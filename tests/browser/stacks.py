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
from tests.oidc import AUDIENCE, RunningProvider, oidc_provider, portal_client, roster_accounts
from tools.devstack import free_port
from tools.oidc import RESOURCE

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
                services.wait_ready("portal", timeout=90)
                yield Stack(services, mailbox, isolation)
            finally:
                services.stop_all()
    finally:
        controller.stop()


PORTAL_SECRET = "browser-tests-portal-secret"


@dataclass
class ConsoleStack(Stack):
    """The stack behind the real OpenID Connect provider (tools/oidc): the services accept
    only its RS256 tokens (through its JWKS), and the portal signs officers in there."""

    provider: RunningProvider

    def attach(self, folder: Path) -> list[tuple[str, str]]:
        shown = super().attach(folder)
        log = self.provider.log()
        (folder / "oidc-provider.log").write_text(log, encoding="utf-8")
        return [*shown, ("log of the OIDC provider", log[-LOG_TAIL:])]


@contextlib.contextmanager
def console_stack(
    infra: Infra, logs: Path, extra_env: dict[str, str] | None = None
) -> Iterator[ConsoleStack]:
    """The provider with the roster's officers (passwords: tests.oidc.password_of) and the
    portal as its confidential client, then the services and the portal configured as the
    README tells an operator to."""
    port = free_port()
    client = portal_client(f"http://127.0.0.1:{port}", secret=PORTAL_SECRET)
    # Generous start-up bounds: seven engineers share two cores.
    with oidc_provider(roster_accounts(), [client], startup_timeout=90) as provider:
        tokens = {
            "MOTCUA_JWT_ALGORITHM": "RS256",
            "MOTCUA_JWT_JWKS_URL": provider.jwks_url,
            "MOTCUA_JWT_ISSUER": provider.issuer,
            "MOTCUA_JWT_AUDIENCE": AUDIENCE,
        }
        portal = {
            "MOTCUA_PORTAL_OIDC_DISCOVERY_URL": provider.discovery_url,
            "MOTCUA_PORTAL_OIDC_CLIENT_ID": client.client_id,
            "MOTCUA_PORTAL_OIDC_CLIENT_SECRET": PORTAL_SECRET,
            "MOTCUA_PORTAL_OIDC_RESOURCE": RESOURCE,
            "MOTCUA_PORTAL_DEVELOPMENT_SIGNIN": "false",
        }
        env = {**tokens, **(extra_env or {})}
        with running_stack(infra, logs, env, portal, port) as stack:
            yield ConsoleStack(stack.services, stack.mailbox, stack.isolation, provider)
