"""The e-mail channel: SMTP with optional STARTTLS and AUTH."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from services.notify.domain import Email, SendError
from services.notify.settings import NotifySettings


class SmtpSender:
    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings

    async def send(self, email: Email, *, message_id: str | None = None) -> str:
        """Send `email`; return its Message-ID. Raises SendError (transient or permanent)."""
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Message-ID"] = message_id or make_msgid(domain="motcua.local")
        message.set_content(email.text, charset="utf-8")
        await asyncio.to_thread(self._send, message)
        return str(message["Message-ID"])

    def _send(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds) as smtp:
                if s.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise SendError(
                f"recipient refused: {exc.recipients}", permanent=min(codes) >= 500
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise SendError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=exc.smtp_code >= 500
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"SMTP server unreachable: {exc}", permanent=False) from exc
