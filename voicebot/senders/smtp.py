"""E-mail over SMTP: the outbox's e-mails handed to the bank's mail server (standard library ``smtplib``).

Each message goes out as a plain-text part and an HTML part in the customer's language.
Its Message-ID is made from the outbox's idempotency key, so a retry after a lost reply
carries the same Message-ID and mail systems that deduplicate by it keep one copy. A
refusal the server means for good (a 5xx for the recipient or the sender) fails the
message at once; anything else (the server down, a 4xx, a time-out) is retried by the
outbox sender.
"""

from __future__ import annotations

import contextlib
import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from ..backends.sqlite import QueuedMessage
from ..config import Smtp
from ..outbox import DeliveryError


class SmtpMailer:
    """:class:`~voicebot.outbox.MessageTransport` for e-mails, one SMTP session per message.

    (A session per message keeps a half-broken connection from carrying the next one; the
    line sends a few e-mails a minute, not thousands.)
    """

    def __init__(self, settings: Smtp) -> None:
        self.settings = settings
        self.domain = parseaddr(settings.sender)[1].rpartition("@")[2] or "voicebot.invalid"

    def deliver(self, message: QueuedMessage) -> str:
        if message.channel != "email":
            raise DeliveryError(f"{message.id}: the SMTP sender takes e-mails, not {message.channel}", permanent=True)
        mail = self.compose(message)
        smtp: smtplib.SMTP | None = None
        try:
            smtp = self._session()
            refused = smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(f"{message.id}: the server refused the recipient ({codes})",
                                permanent=all(code >= 500 for code in codes)) from None
        except smtplib.SMTPSenderRefused as exc:
            raise DeliveryError(f"{message.id}: the server refused the sender ({exc.smtp_code})",
                                permanent=exc.smtp_code >= 500) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{message.id}: SMTP login refused ({exc.smtp_code}): check email.smtp") from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{message.id}: SMTP error {exc.smtp_code}", permanent=False) from None
        except (smtplib.SMTPException, OSError) as exc:  # down, refused, timed out, TLS failed
            raise DeliveryError(f"{message.id}: cannot reach the SMTP server "
                                f"{self.settings.host}:{self.settings.port} ({type(exc).__name__})") from None
        finally:
            if smtp is not None:
                # After the server took the DATA, a failed QUIT (a 421, a late reply) is no
                # failure of the message: it must not be retried, or the customer gets it twice.
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    smtp.quit()
                smtp.close()
        if refused:  # only some recipients refused: we send to one, so this is that one
            raise DeliveryError(f"{message.id}: the server refused the recipient", permanent=True)
        return str(mail["Message-ID"])

    def compose(self, message: QueuedMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.settings.sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        # The same on every attempt: the idempotency key of the e-mail world.
        mail["Message-ID"] = f"<{message.idempotency_key}@{self.domain}>"
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to a no-reply sender
        body = message.body.reveal()
        mail.set_content(body)
        mail.add_alternative(_as_html(body, message.subject, message.language), subtype="html")
        # After the parts: add_alternative moves the Content-* headers into the first part.
        mail["Content-Language"] = message.language
        return mail

    def _session(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        if s.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.security == "starttls":
                smtp.starttls(context=context)
            if s.username:
                try:
                    smtp.login(s.username, s.password.get_secret_value() if s.password else "")
                except smtplib.SMTPServerDisconnected:  # some servers hang up on a wrong password
                    raise smtplib.SMTPAuthenticationError(535, b"the server hung up at the login") from None
        except BaseException:
            smtp.close()
            raise
        return smtp


def _as_html(body: str, subject: str, language: str) -> str:
    paragraphs = "".join(f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>\n"
                         for part in body.split("\n\n") if part.strip())
    return (f'<!DOCTYPE html>\n<html lang="{html.escape(language)}">\n<head><meta charset="utf-8">'
            f"<title>{html.escape(subject)}</title></head>\n<body>\n{paragraphs}</body>\n</html>\n")
