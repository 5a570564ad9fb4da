"""E-mail over SMTP (issue 11), against a real SMTP server on loopback (aiosmtpd).

The credential e-mail's content, language and headers; STARTTLS with a login; the server
down, then up: retried by the outbox and delivered once; a recipient refused for good; a
whole recovery in the console whose e-mail the server receives."""

from __future__ import annotations

import email
import email.policy
import io
import socket
import subprocess
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from tests.conftest import Caller, make_config
from voicebot.app import Line
from voicebot.backends.base import OutgoingMessage
from voicebot.backends.sqlite import SqliteOutbox, open_database
from voicebot.config import Outbox, Smtp
from voicebot.outbox import DeliveryError, OutboxSender
from voicebot.senders.smtp import SmtpMailer

SENDER = "Banca Electrónica <no-reply@bank.example>"


class Mailbox:
    """aiosmtpd's handler: keeps every message it accepts; refuses addresses at refused.example."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def outbox_at(tmp_path: Path) -> SqliteOutbox:
    return SqliteOutbox(open_database(tmp_path / "voicebot.sqlite3"))


USERNAME_MAIL = OutgoingMessage("ana@bank.example", "Hola, {name}:\n\nSu usuario es: {user}\n\nUn saludo.",
                                {"name": "Ana García", "user": "agarcia"}, subject="Su usuario de Banca Electrónica",
                                language="es")


def test_the_email_arrives_with_its_headers_language_and_both_parts(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    outbox = outbox_at(tmp_path)
    outbox.send_email(USERNAME_MAIL)
    sender = OutboxSender(outbox, SmtpMailer(Smtp(host="127.0.0.1", port=port, security="none", sender=SENDER)))
    assert sender.send_due().sent == 1
    [mail] = box.received
    assert mail["From"] == SENDER and mail["To"] == "ana@bank.example"
    assert mail["Subject"] == "Su usuario de Banca Electrónica" and mail["Content-Language"] == "es"
    [queued] = outbox.list_messages()
    assert queued["provider_id"] == mail["Message-ID"] and mail["Message-ID"].endswith("@bank.example>")
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and "Su usuario es: agarcia" in plain.get_content()
    assert html is not None and '<html lang="es">' in html.get_content() and "García" in html.get_content()


def test_a_server_that_is_down_gets_the_email_later_once(tmp_path: Path) -> None:
    port = free_port()
    outbox = outbox_at(tmp_path)
    outbox.send_email(USERNAME_MAIL)
    sender = OutboxSender(outbox, SmtpMailer(Smtp(host="127.0.0.1", port=port, security="none", timeout=2)),
                          Outbox(retry_first_seconds=1))
    assert sender.send_due().retrying == 1
    [queued] = outbox.list_messages()
    assert queued["status"] == "queued" and "cannot reach the SMTP server" in queued["last_error"]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        time.sleep(1.1)  # the retry falls due
        assert sender.send_due().sent == 1
        assert sender.send_due().sent == 0
        time.sleep(1.1)
        assert sender.send_due().sent == 0  # nothing sent twice
    finally:
        controller.stop()
    assert len(box.received) == 1 and outbox.list_messages()[0]["attempts"] == 2


def test_a_recipient_refused_for_good_fails_at_once(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    outbox = outbox_at(tmp_path)
    outbox.send_email(OutgoingMessage("nobody@refused.example", "hola", subject="x"))
    report = OutboxSender(outbox, SmtpMailer(Smtp(host="127.0.0.1", port=port, security="none"))).send_due()
    assert report.failed == 1 and box.received == []
    assert "refused the recipient ([550])" in outbox.list_messages()[0]["last_error"]


def test_an_sms_is_not_the_mail_servers(tmp_path: Path) -> None:
    outbox = outbox_at(tmp_path)
    outbox.send_sms(OutgoingMessage("+34600000001", "hola"))
    [message] = outbox.claim_due(60)
    with pytest.raises(DeliveryError) as refused:
        SmtpMailer(Smtp()).deliver(message)
    assert refused.value.permanent


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_starttls_and_a_login(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    import ssl

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins: list[str] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"ivr", b"s3cret")
        logins.append(f"{mechanism}:{ok}")
        return AuthResult(success=ok)

    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            authenticator=authenticate, auth_require_tls=True)
    controller.start()
    try:
        outbox = outbox_at(tmp_path)
        outbox.send_email(USERNAME_MAIL)
        outbox.send_email(USERNAME_MAIL)
        good = Smtp(host="127.0.0.1", port=port, security="starttls", username="ivr", password="s3cret",  # type: ignore[arg-type]
                    ca_file=cert)
        assert OutboxSender(outbox, SmtpMailer(good)).send_due().sent == 2
        wrong = good.model_copy(update={"password": SecretStr("guess")})
        outbox.send_email(USERNAME_MAIL)
        assert OutboxSender(outbox, SmtpMailer(wrong)).send_due().retrying == 1
        assert "SMTP login refused" in outbox.list_messages()[0]["last_error"]
        untrusted = good.model_copy(update={"ca_file": None})  # a self-signed certificate is not trusted
        outbox.send_email(USERNAME_MAIL)
        assert OutboxSender(outbox, SmtpMailer(untrusted)).send_due().retrying == 1
        assert "SSLCertVerificationError" in outbox.list_messages()[0]["last_error"]
    finally:
        controller.stop()
    assert len(box.received) == 2
    assert [login.endswith(":True") for login in logins][:3] == [True, True, False]


def test_a_recovery_in_the_console_sends_its_email_over_smtp(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    config = make_config(tmp_path, email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": port,
                                                                        "security": "none", "sender": SENDER}})
    line = Line.open(config, echo=io.StringIO())
    line.ensure_demo_bank()
    result = Caller(line).call(["1", "1", "1", "1", "12345678", "4567", "1234"])
    assert result.outcome == "credentials_sent"
    [mail] = box.received
    assert mail["To"] == "ana.garcia@example.com" and "agarcia" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "[SMS to +34600000001]" in result.transcript  # the SMS still goes to the demo phone
    assert {m["status"] for m in line.outbox.list_messages()} == {"delivered"}


def test_implicit_tls(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    import ssl

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        outbox = outbox_at(tmp_path)
        outbox.send_email(USERNAME_MAIL)
        tls = Smtp(host="127.0.0.1", port=port, security="tls", ca_file=cert)
        assert OutboxSender(outbox, SmtpMailer(tls)).send_due().sent == 1
    finally:
        controller.stop()
    assert len(box.received) == 1


def test_a_failed_quit_after_the_server_took_the_email_does_not_send_it_again(tmp_path: Path) -> None:
    class QuitsBadly(Mailbox):
        async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
            return "421 closing, not nicely"

    box, port = QuitsBadly(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        outbox = outbox_at(tmp_path)
        outbox.send_email(USERNAME_MAIL)
        sender = OutboxSender(outbox, SmtpMailer(Smtp(host="127.0.0.1", port=port, security="none")))
        assert sender.send_due().sent == 1
        with outbox.db.transaction() as conn:
            conn.execute("UPDATE outbox SET next_attempt_at = created_at")
        assert sender.send_due().sent == 0
    finally:
        controller.stop()
    assert len(box.received) == 1 and outbox.list_messages()[0]["status"] == "delivered"
