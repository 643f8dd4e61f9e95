"""Runs the four services as separate OS processes for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar

import httpx
from aiosmtpd.controller import Controller

from tools.devstack import (
    BROKER_SERVICES,
    ROOT,
    RabbitMQ,
    broker_user,
    free_port,
    service_amqp_url,
)

SERVICES = ("intake", "review", "notify", "audit")


class Mailbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.received: list[bytes] = []  # as they came; parsed when a test reads `messages`
        self._parsed: list[EmailMessage] = []
        self.port = 0
        self.refuse: str | None = None  # an SMTP reply to give every recipient instead of 250

    @property
    def messages(self) -> list[EmailMessage]:
        """Every message received so far, parsed (the benchmark, which reads none, so spends
        no CPU on parsing them: it was a tenth of its client's under load)."""
        for content in self.received[len(self._parsed) :]:
            parsed = message_from_bytes(content, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            self._parsed.append(parsed)
        return list(self._parsed)  # a copy: `clear` is how to forget them

    def clear(self) -> None:
        """Forget the messages received so far."""
        self.received.clear()
        self._parsed.clear()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(bytes(envelope.content))
        return "250 OK"

    async def wait(self, count: int = 1, timeout: float = 30) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            await asyncio.sleep(0.1)
        raise AssertionError(f"{count} e-mail(s) not received in {timeout}s")


def start_smtp() -> tuple[Controller, Mailbox]:
    mailbox = Mailbox()
    mailbox.port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    return controller, mailbox


def own_broker_login(service: str, env: dict[str, str]) -> dict[str, str]:
    """`service`'s own broker user (deploy/rabbitmq/definitions.json) on the vhost of
    `env`'s MOTCUA_AMQP_URL, granted there; nothing when that URL is not the test broker's
    (a test that starts its own node) or the portal (no broker)."""
    passwords = json.loads(os.environ.get("MOTCUA_TEST_BROKER_PASSWORDS") or "{}")
    url, test_url = env.get("MOTCUA_AMQP_URL", ""), os.environ.get("MOTCUA_TEST_AMQP_URL", "")
    user = broker_user(service)
    parts, test = urllib.parse.urlsplit(url), urllib.parse.urlsplit(test_url)
    same_broker = (parts.hostname, parts.port) == (test.hostname, test.port)
    if service not in BROKER_SERVICES or user not in passwords or not url or not same_broker:
        return {}
    vhost = urllib.parse.unquote(parts.path.removeprefix("/")) or "/"
    api = urllib.parse.urlsplit(os.environ["MOTCUA_TEST_RABBITMQ_API"])
    broker = RabbitMQ("external", Path("/nonexistent"), test.port or 5672, api.port or 15672)
    broker.grant_service(service, vhost)
    return {"MOTCUA_AMQP_URL": service_amqp_url(url, user, passwords[user])}


@dataclass
class Services:
    """The four services, each a process, sharing one test's vhost and database prefix."""

    env: dict[str, str]
    logs: Path
    command_log_dir: ClassVar[Path | None] = None
    """Where every service process started here records its queries (set for the e2e session
    by tests/e2e/conftest.py; tests/e2e/test_index_coverage.py checks them)."""
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, name: str, **extra_env: str) -> None:
        """Start service `name`; `review#2` starts a second replica of review, on its own port."""
        service = name.partition("#")[0]
        port = self.ports.setdefault(name, free_port())
        recording = {"MOTCUA_COMMAND_LOG_DIR": str(self.command_log_dir)}
        env = {
            **os.environ,
            **(recording if self.command_log_dir else {}),
            **self.env,
            **(self._portal_env() if service == "portal" else {}),
            f"MOTCUA_{service.upper()}_PORT": str(port),
            f"MOTCUA_{service.upper()}_PUBLIC_URL": f"http://127.0.0.1:{port}",
            **extra_env,
        }
        env.update(own_broker_login(service, env))
        log = (self.logs / f"{name.replace('#', '-')}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def _portal_env(self) -> dict[str, str]:
        """The portal calls the services started here, like a partner."""
        return {f"MOTCUA_PORTAL_{n.upper()}_URL": self.url(n) for n in SERVICES if n in self.ports}

    def start_all(self) -> None:
        for name in SERVICES:
            self.start(name)
        for name in SERVICES:
            self.wait_ready(name)

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited {proc.returncode}:\n{self.log(name)}")
            try:
                if httpx.get(f"{self.url(name)}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{name} not ready in {timeout}s:\n{self.log(name)}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def log(self, name: str) -> str:
        path = self.logs / f"{name.replace('#', '-')}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


async def eventually(check: Any, timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll `check()` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s (last: {last!r})")
