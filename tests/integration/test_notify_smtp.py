"""Notify's e-mail channel against a real aiosmtpd server on loopback that requires AUTH."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from services.notify import channels
from services.notify.channels import SmtpChannel
from services.notify.messages import Message, SendError
from services.notify.settings import NotifySettings
from tests.e2e.harness import Mailbox
from tools.devstack import free_port

pytestmark = [
    pytest.mark.integration,
    # The plain-text AUTH server is deliberate: the STARTTLS test covers the secure setup.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"motcua",
        b"mat-khau",
    )
    return AuthResult(success=ok, handled=False)


def _signed_in(port: int) -> NotifySettings:
    """Settings for the test server on `port`, with the login it accepts."""
    return NotifySettings(
        smtp_port=port, smtp_username="motcua", smtp_password=SecretStr("mat-khau")
    )


def _server(box: Mailbox, **options: Any) -> Controller:
    box.port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=_authenticator,
        auth_required=True,
        **options,
    )
    controller.start()
    return controller


@contextlib.contextmanager
def _channel_to(box: Mailbox, **options: Any) -> Iterator[SmtpChannel]:
    """A kept-sessions channel to a new AUTH server for `box`, both stopped on exit."""
    controller = _server(box, auth_require_tls=False)
    channel = SmtpChannel(_signed_in(box.port), **options)
    try:
        yield channel
    finally:
        channel.close()
        controller.stop()


@pytest.fixture
def guarded() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = _server(box, auth_require_tls=False)
    yield box
    controller.stop()


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (its own CA), with its key beside it."""
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem"),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return tmp_path / "cert.pem"


async def test_starttls_then_auth(certificate: Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, certificate.parent / "key.pem")
    box = Mailbox()
    controller = _server(box, tls_context=context, require_starttls=True)
    try:
        settings = NotifySettings(
            smtp_port=box.port,
            smtp_starttls=True,
            smtp_ca_file=certificate,
            smtp_username="motcua",
            smtp_password=SecretStr("mat-khau"),
        )
        await SmtpChannel(settings).send(MESSAGE)
        [mail] = await box.wait(1)
        assert mail["Subject"] == MESSAGE.subject
        # Without STARTTLS this server takes nothing.
        with pytest.raises(SendError):
            await SmtpChannel(settings.model_copy(update={"smtp_starttls": False})).send(MESSAGE)
        assert len(box.messages) == 1
    finally:
        controller.stop()


MESSAGE = Message(
    "email",
    "lan.nguyen@example.vn",
    "0123456789abcdef0123456789abcdef",
    subject="Hồ sơ G01.99-260609-0001 đã được phê duyệt",
    text="Kính gửi Nguyễn Thị Lan,\n\nHồ sơ đã được phê duyệt.\n",
    html="<p>Kính gửi Nguyễn Thị Lan,</p>",
)


async def test_an_email_is_sent_with_auth_as_text_and_html(guarded: Mailbox) -> None:
    settings = _signed_in(guarded.port)
    message_id = await SmtpChannel(settings).send(MESSAGE)
    [mail] = await guarded.wait(1)
    assert message_id == f"<{MESSAGE.tracking_id}@motcua.local>" == mail["Message-ID"]
    assert mail["Subject"] == MESSAGE.subject
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and "Nguyễn Thị Lan" in plain.get_content()
    assert html is not None and html.get_content().strip() == MESSAGE.html


async def test_a_wrong_password_is_retried_after_the_longest_wait(guarded: Mailbox) -> None:
    settings = NotifySettings(
        smtp_port=guarded.port, smtp_username="motcua", smtp_password=SecretStr("sai")
    )
    with pytest.raises(SendError) as err:
        await SmtpChannel(settings).send(MESSAGE)
    # A misconfiguration an operator fixes: what is sent meanwhile must not be lost.
    assert not err.value.permanent and err.value.slow and "535" in str(err.value)
    assert guarded.messages == []


async def test_without_auth_the_server_refuses_and_nothing_is_sent(guarded: Mailbox) -> None:
    with pytest.raises(SendError) as err:
        await SmtpChannel(NotifySettings(smtp_port=guarded.port)).send(MESSAGE)
    assert not err.value.permanent and err.value.slow and "530" in str(err.value)
    assert guarded.messages == []


class RudeMailbox(Mailbox):
    """Takes the message, then answers QUIT with 421 instead of 221."""

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return "421 closing down"


async def test_a_bad_answer_to_quit_does_not_undo_a_delivered_email() -> None:
    box = RudeMailbox()
    box.port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        provider_id = await SmtpChannel(NotifySettings(smtp_port=box.port)).send(MESSAGE)
    finally:
        controller.stop()
    assert provider_id.endswith("@motcua.local>")
    assert len(box.messages) == 1


class CountingMailbox(Mailbox):
    """Counts the sessions opened to it (one EHLO each)."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.sessions += 1
        session.host_name = hostname  # what aiosmtpd's own EHLO does, once a hook takes over
        return responses


async def test_a_session_is_kept_for_the_next_messages_and_one_closed_meanwhile_is_replaced() -> (
    None
):
    """Three e-mails, one session (one connection, EHLO and AUTH). The server then restarts,
    closing the kept session: the next e-mail finds out at its first command and goes at
    once through a new session, delivered once."""
    box = CountingMailbox()
    controller = _server(box, auth_require_tls=False)
    settings = _signed_in(box.port)
    channel = SmtpChannel(settings)
    try:
        for _ in range(3):
            await channel.send(MESSAGE)
        assert (len(box.messages), box.sessions, channel.opened) == (3, 1, 1)
        controller.stop()  # closes the kept session's connection
        controller = _server(box, auth_require_tls=False)
        settings.smtp_port = box.port
        await channel.send(MESSAGE)
        assert (len(box.messages), box.sessions, channel.opened) == (4, 2, 2)
    finally:
        channel.close()
        controller.stop()


async def test_a_session_idle_too_long_is_not_used_again_and_one_that_failed_is_closed(
    guarded: Mailbox,
) -> None:
    settings = _signed_in(guarded.port)
    channel = SmtpChannel(settings, idle=0.0)
    kept = SmtpChannel(settings)
    try:
        await channel.send(MESSAGE)
        await channel.send(MESSAGE)
        assert channel.opened == 2 and len(guarded.messages) == 2  # each found the other too old
        await kept.send(MESSAGE)
        assert (kept.opened, len(kept.sessions)) == (1, 1)
        guarded.refuse = "550 no such mailbox"
        with pytest.raises(SendError) as err:
            await kept.send(MESSAGE)  # through the kept session, which is then closed
        assert err.value.permanent and kept.sessions == [] and kept.opened == 1
        guarded.refuse = None
        await kept.send(MESSAGE)
        assert kept.opened == 2 and len(kept.sessions) == 1
    finally:
        channel.close()
        kept.close()
    assert kept.sessions == []


class ClosingMailbox(CountingMailbox):
    """Answers MAIL with 421 (closing) while `closing` is set, then takes messages again."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.closing:
            self.closing = False
            return "421 too many messages in this session, closing"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"


class HangingUpMailbox(CountingMailbox):
    """Takes the message, then drops the connection instead of answering its end (as a
    connection lost at that moment looks to the client: was it accepted?)."""

    def __init__(self) -> None:
        super().__init__()
        self.hanging = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await super().handle_DATA(server, session, envelope)
        if self.hanging:
            server.transport.close()
        return "250 OK"


async def test_a_421_before_the_message_is_taken_sends_it_at_once_through_a_new_session() -> None:
    box = ClosingMailbox()
    with _channel_to(box) as channel:
        await channel.send(MESSAGE)
        box.closing = True
        await channel.send(MESSAGE)
        assert (len(box.messages), box.sessions, channel.opened) == (2, 2, 2)
        assert len(channel.sessions) == 1


async def test_a_connection_lost_after_the_message_is_a_failed_try_never_a_second_send() -> None:
    """The server may have taken the message before the connection went: sending it again at
    once would be a second e-mail nobody records. It is a transient failure instead (its retry
    carries the same Message-ID), and the session is not kept."""
    box = HangingUpMailbox()
    with _channel_to(box) as channel:
        await channel.send(MESSAGE)
        box.hanging = True
        with pytest.raises(SendError) as err:
            await channel.send(MESSAGE)  # through the kept session
        assert not err.value.permanent and channel.sessions == []
        assert (len(box.messages), channel.opened) == (2, 1)  # sent once, not again at once
        with pytest.raises(SendError):
            await channel.send(MESSAGE)  # through a new session
        assert (len(box.messages), channel.opened, channel.sessions) == (3, 2, [])


async def test_sends_at_once_use_sessions_of_their_own_and_at_most_kept_are_kept(
    guarded: Mailbox,
) -> None:
    settings = _signed_in(guarded.port)
    channel = SmtpChannel(settings, kept=2)
    try:
        await asyncio.gather(*(channel.send(MESSAGE) for _ in range(4)))
        assert len(guarded.messages) == 4 and channel.opened == 4 and len(channel.sessions) == 2
        await asyncio.gather(*(channel.send(MESSAGE) for _ in range(2)))
        assert len(guarded.messages) == 6 and channel.opened == 4  # the two kept, reused
    finally:
        channel.close()


async def test_expired_sessions_are_closed_and_none_is_kept_once_the_channel_is_closed(
    guarded: Mailbox,
) -> None:
    settings = _signed_in(guarded.port)
    channel = SmtpChannel(settings, idle=0.3)
    await channel.send(MESSAGE)
    assert channel.expire() == 0 and len(channel.sessions) == 1
    await asyncio.sleep(0.4)
    assert channel.expire() == 1 and channel.sessions == []
    await channel.send(MESSAGE)
    channel.close()
    await channel.send(MESSAGE)  # still sent once the service is stopping, but not kept
    assert (len(guarded.messages), channel.opened, channel.sessions) == (3, 3, [])


class SilentMailbox(CountingMailbox):
    """Answers NOOP only after `delay` seconds while `silent` (a path that went quiet)."""

    def __init__(self) -> None:
        super().__init__()
        self.silent = False
        self.delay = 1.0

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
        if self.silent:
            await asyncio.sleep(self.delay)
        return "250 OK"


async def test_a_kept_session_silent_at_its_probe_drops_every_kept_one_and_a_new_one_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One probe waits at most PROBE_SECONDS; a silent answer means the path is dead, so the
    other kept sessions are not probed one by one (each would wait as long)."""
    monkeypatch.setattr(channels, "PROBE_SECONDS", 0.2)
    box = SilentMailbox()
    with _channel_to(box) as channel:
        await asyncio.gather(*(channel.send(MESSAGE) for _ in range(3)))
        assert (channel.opened, len(channel.sessions)) == (3, 3)
        box.silent = True
        began = time.monotonic()
        await channel.send(MESSAGE)
        assert time.monotonic() - began < 0.2 + 0.9  # one probe, not three
        assert (len(box.messages), channel.opened, len(channel.sessions)) == (4, 4, 1)
