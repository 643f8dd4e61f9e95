"""The channels: one small adapter per provider, all behind `Channel.send`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import smtplib
import ssl
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Protocol

import httpx

from services.notify.messages import (
    CREDENTIAL_SMTP_CODES,
    ZALO_TRANSIENT_ERRORS,
    Message,
    SendError,
    http_failure,
    phone_84,
    sms_segments,
)
from services.notify.partners import signature_header
from services.notify.routing import Partner
from services.notify.settings import NotifySettings


class Channel(Protocol):
    async def send(self, message: Message) -> str:
        """Deliver `message`; return the provider's id for it. Raises SendError."""
        ...


# An SMTP session is kept open between messages: opening one costs a connection, the greeting,
# EHLO, STARTTLS (a TLS handshake) and AUTH; a kept one sends MAIL, RCPT and DATA only. Kept
# idle for well under the 5 minutes a server may wait for a quiet client (RFC 5321 4.5.3.2.7).
SMTP_KEPT = 8
SMTP_IDLE_SECONDS = 30.0
PROBE_SECONDS = 2.0  # the longest a kept session's NOOP is waited for


class SmtpChannel:
    """E-mail over SMTP (optional STARTTLS and AUTH), as plain text with an HTML alternative.

    Sessions are kept for the next messages (at most `kept`, each idle at most `idle`
    seconds). A kept session is asked NOOP before a message goes through it: one the server
    closed meanwhile is closed and another taken, or a new one opened. A message is tried again
    at once on a new session only when the server said 421 (closing) before accepting it; a
    connection lost during a message is a failed try, retried later like any transient one
    (the server may have accepted it: a second send at once would be unrecorded). A session
    that failed a message is closed. Expired ones are closed by `expire()`, all by `close()`."""

    def __init__(
        self,
        settings: NotifySettings,
        *,
        kept: int = SMTP_KEPT,
        idle: float = SMTP_IDLE_SECONDS,
    ) -> None:
        self.settings = settings
        self.kept = kept
        self.idle = idle
        self.sessions: list[tuple[float, smtplib.SMTP]] = []
        """Idle sessions, each with the moment it was given back (sends run in threads)."""
        self.opened = 0  # sessions opened so far (a figure for tests and operators)
        self._closed = False  # the service stops: sessions are no longer kept
        self._lock = threading.Lock()

    async def send(self, message: Message) -> str:
        email = EmailMessage()
        email["From"] = self.settings.mail_from
        email["To"] = message.to
        email["Subject"] = message.subject
        # The same Message-ID on every attempt: a resend after a crash is recognisable.
        email["Message-ID"] = f"<{message.tracking_id}@motcua.local>"
        email.set_content(message.text, charset="utf-8")
        if message.html:
            email.add_alternative(message.html, subtype="html", charset="utf-8")
        await asyncio.to_thread(self._send, email)
        return str(email["Message-ID"])

    def close(self) -> None:
        """Say goodbye to every idle session, and keep none from now on (the service stops:
        a send still under way closes its session when it ends)."""
        with self._lock:
            self._closed = True
            sessions, self.sessions = self.sessions, []
        for _, smtp in sessions:
            _goodbye(smtp)

    def expire(self) -> int:
        """Close the sessions idle longer than `idle` (outside the lock: a silent server makes
        no send wait); return how many."""
        now = time.monotonic()
        with self._lock:
            old = [smtp for since, smtp in self.sessions if now - since >= self.idle]
            self.sessions = [(t, smtp) for t, smtp in self.sessions if now - t < self.idle]
        for smtp in old:
            smtp.close()  # no QUIT: a server gone silent would hold us its whole timeout
        return len(old)

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        try:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=s.smtp_ca_file))
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        with self._lock:
            self.opened += 1
        return smtp

    def _kept(self) -> smtplib.SMTP | None:
        """The most recently used idle session young enough that answers NOOP, or None. A
        probe waits at most `PROBE_SECONDS`; one that got no answer at all (the path to the
        server is silent, not closed) drops every kept session, so a send never spends more
        than one probe on a dead path before opening a new session."""
        self.expire()
        while True:
            with self._lock:
                if self._closed or not self.sessions:
                    return None
                _, smtp = self.sessions.pop()
            answer = _answers(smtp)
            if answer is True:
                return smtp
            smtp.close()  # closed by the server while it was kept, or silent
            if answer is None:
                with self._lock:
                    silent, self.sessions = self.sessions, []
                for _, other in silent:
                    other.close()
                return None

    def _give_back(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            if not self._closed and len(self.sessions) < self.kept:
                self.sessions.append((time.monotonic(), smtp))
                return
        smtp.close()  # no QUIT: the message is taken, and the send should end now

    def _send(self, message: EmailMessage) -> None:
        try:
            smtp = self._kept()
            if smtp is not None:
                try:
                    smtp.send_message(message)
                except BaseException as exc:
                    smtp.close()
                    if not _closing_before_accepted(exc):
                        raise
                    smtp = None  # the server is closing this session: once more on a new one
            if smtp is None:
                smtp = self._open()
                try:
                    smtp.send_message(message)
                except BaseException:
                    smtp.close()
                    raise
            self._give_back(smtp)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            replies = "; ".join(f"{code} {text!r}" for code, text in exc.recipients.values())
            raise SendError(f"recipient refused: {replies}", permanent=min(codes) >= 500) from exc
        except smtplib.SMTPResponseException as exc:
            credentials = exc.smtp_code in CREDENTIAL_SMTP_CODES  # our login, not the message
            raise SendError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                permanent=exc.smtp_code >= 500 and not credentials,
                slow=credentials,
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"SMTP server unreachable: {exc}", permanent=False) from exc


def _answers(smtp: smtplib.SMTP) -> bool | None:
    """Whether a kept session still answers NOOP with 250 (True), answers otherwise or was
    closed (False), or gave no answer within `PROBE_SECONDS` (None)."""
    sock = smtp.sock
    try:
        if sock is not None:
            sock.settimeout(min(PROBE_SECONDS, smtp.timeout))
        code, _ = smtp.noop()
    except smtplib.SMTPServerDisconnected as exc:
        return None if isinstance(exc.__context__, TimeoutError) else False
    except TimeoutError:
        return None
    except (smtplib.SMTPException, OSError):
        return False
    if sock is not None:
        sock.settimeout(smtp.timeout)
    return code == 250


def _closing_before_accepted(exc: BaseException) -> bool:
    """A 421 ("service not available, closing transmission channel") to MAIL, to every RCPT, or
    to DATA or its end: the server did not take the message, and a new session may. Anything
    else, a lost connection above all, may have come after the server took it."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code == 421 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError) and (
        exc.smtp_code == 421
    )


def _goodbye(smtp: smtplib.SMTP) -> None:
    """QUIT (waiting at most 2 s for its answer), then close; a server that does not answer it
    changes nothing (not `with smtplib.SMTP(...)`: its exit raises when QUIT is not answered
    221)."""
    with contextlib.suppress(smtplib.SMTPException, OSError):
        if smtp.sock is not None:
            smtp.sock.settimeout(min(2.0, smtp.timeout))
        smtp.quit()
    smtp.close()


# Timeouts, refused or dropped connections, a provider that hung up mid-answer: worth a retry.
TRANSIENT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


async def post_json(
    client: httpx.AsyncClient, url: str, *, content: bytes, headers: dict[str, str]
) -> httpx.Response:
    """POST, turning a transport error or a non-2xx answer into a classified SendError."""
    try:
        response = await client.post(
            url, content=content, headers={"Content-Type": "application/json", **headers}
        )
    except TRANSIENT_ERRORS as exc:
        raise SendError(f"{type(exc).__name__}: {exc}", permanent=False) from exc
    except httpx.HTTPError as exc:  # a bad URL or header: no retry can fix it
        raise SendError(f"{type(exc).__name__}: {exc}", permanent=True) from exc
    failure = http_failure(response.status_code, response.text)
    if failure is not None:
        raise failure
    return response


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class SmsChannel:
    """SMS through an HTTP gateway: ASCII text, at most `sms_max_segments` segments.

    Request: `POST {sms_gateway_url}` with `Authorization: Bearer <key>` and JSON
    `{"to": "84…", "sender": brandname, "text": …, "segments": n, "reference": tracking id}`;
    any 2xx is accepted, with `message_id` as the provider's id when given."""

    def __init__(self, settings: NotifySettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, message: Message) -> str:
        s = self.settings
        segments = sms_segments(message.text, max_segments=s.sms_max_segments)
        body = {
            "to": phone_84(message.to),
            "sender": s.sms_sender,
            "text": "".join(segments),
            "segments": len(segments),
            "reference": message.tracking_id,
        }
        key = s.sms_api_key.get_secret_value()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = await post_json(
            self.client, s.sms_gateway_url, content=json.dumps(body).encode(), headers=headers
        )
        return str(_json(response).get("message_id") or message.tracking_id)


class ZaloChannel:
    """Zalo ZNS: `POST {base}/message/template`, `access_token` header; `error` ≠ 0 fails."""

    def __init__(self, settings: NotifySettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, message: Message) -> str:
        s = self.settings
        if not message.template_id:
            raise SendError("no Zalo template id is configured for this event", permanent=True)
        body = {
            "phone": phone_84(message.to),
            "template_id": message.template_id,
            "template_data": message.template_data,
            "tracking_id": message.tracking_id,
        }
        response = await post_json(
            self.client,
            f"{s.zalo_base_url.rstrip('/')}/message/template",
            content=json.dumps(body, ensure_ascii=False).encode(),
            headers={"access_token": s.zalo_access_token.get_secret_value()},
        )
        answer = _json(response)
        error = answer.get("error")
        if error != 0:
            raise SendError(
                f"Zalo error {error}: {answer.get('message', 'no message')}",
                permanent=error not in ZALO_TRANSIENT_ERRORS,
            )
        data = answer.get("data")
        msg_id = data.get("msg_id") if isinstance(data, dict) else None
        return str(msg_id or message.tracking_id)


class WebhookChannel:
    """Partner webhooks: the CloudEvent as JSON, signed per Standard Webhooks."""

    def __init__(self, partners: list[Partner], client: httpx.AsyncClient) -> None:
        self.partners = {p.id: p for p in partners}
        self.client = client

    async def send(self, message: Message) -> str:
        partner = self.partners.get(message.to)
        if partner is None:
            raise SendError(f"partner {message.to} is no longer configured", permanent=True)
        timestamp = int(time.time())
        message_id = f"msg_{message.tracking_id}"
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                partner.signing_keys().active(datetime.fromtimestamp(timestamp, UTC)),
                message_id,
                timestamp,
                message.body,
            ),
        }
        await post_json(self.client, partner.url, content=message.body, headers=headers)
        return message_id
