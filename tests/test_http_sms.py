"""SMS through a provider's HTTP API (issue 11), against a real HTTP server on loopback.

The provider stand-in is a small JSON API (the standard library's HTTP server in a thread)
that keeps one message per idempotency key, as real providers do, and can be told to fail:
5xx, 429, a slow reply past our time-out, malformed JSON, refusals. The outbox and its
sender are the real ones."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Caller, make_config
from voicebot.app import Line
from voicebot.backends.base import OutgoingMessage
from voicebot.backends.sqlite import SqliteOutbox, open_database
from voicebot.config import HttpSms, Outbox
from voicebot.masking import Secret
from voicebot.outbox import OutboxSender
from voicebot.senders.http_sms import HttpSmsSender

TOKEN = "tok-3f9a"


class Provider(ThreadingHTTPServer):
    """A JSON SMS API: POST /v1/sms {to, text, ref} -> 201 {"data": {"id": ...}}."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ProviderHandler)
        self.requests: list[dict[str, Any]] = []  # every attempt that arrived
        self.sent: dict[str, dict[str, Any]] = {}  # idempotency key -> the message, once
        self.plan: list[str] = []  # what to do with the next attempts: "503", "429", "slow", "junk", "400", "401"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/sms"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the slow case: our client gave up before the reply, as it should


class ProviderHandler(BaseHTTPRequestHandler):
    server: Provider

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        key = self.headers.get("Idempotency-Key", "")
        self.server.requests.append({"body": body, "key": key, "auth": self.headers.get("Authorization")})
        action = self.server.plan.pop(0) if self.server.plan else "ok"
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            action = "401"
        if action in ("ok", "slow", "junk"):
            self.server.sent.setdefault(key, body)  # taken once per key, whatever the attempt
        if action == "slow":
            time.sleep(1.5)  # past the sender's time-out: taken, but the reply is lost
        if action in ("503", "429", "400", "401"):
            self._reply(int(action), b'{"error": "no"}')
        elif action == "junk":
            self._reply(201, b"<html>Created</html>")
        else:
            number = list(self.server.sent).index(key) + 1
            self._reply(201, json.dumps({"data": {"id": f"sms-{number}"}}).encode())

    def _reply(self, status: int, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (the slow case)


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = Provider()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def settings(provider: Provider, **overrides: Any) -> HttpSms:
    return HttpSms.model_validate({
        "url": provider.url, "token": TOKEN, "timeout": 1.0, "id_field": "data.id",
        "body": {"to": "{to}", "text": "{text}", "ref": "{id}", "from": "BANCO"}, **overrides})


def queue_code(tmp_path: Path) -> SqliteOutbox:
    outbox = SqliteOutbox(open_database(tmp_path / "voicebot.sqlite3"))
    outbox.send_sms(OutgoingMessage("+34600000001", "Su código es {code}. No lo comparta {con nadie}.",
                                    {"code": Secret("739146"), "con nadie": "con nadie"}))
    return outbox


def pass_again(sender: OutboxSender, outbox: SqliteOutbox) -> None:
    """Make the message due now and run one pass (the wait between attempts is the outbox's, tested elsewhere)."""
    with outbox.db.transaction() as conn:
        conn.execute("UPDATE outbox SET next_attempt_at = created_at")
    sender.send_due()


def test_an_sms_is_posted_with_its_key_and_token_and_the_providers_id_kept(tmp_path: Path, provider: Provider) -> None:
    outbox = queue_code(tmp_path)
    assert OutboxSender(outbox, HttpSmsSender(settings(provider))).send_due().sent == 1
    [request] = provider.requests
    key = request["key"]
    assert request["body"] == {"to": "+34600000001", "text": "Su código es 739146. No lo comparta con nadie.",
                               "ref": key, "from": "BANCO"}
    assert request["auth"] == f"Bearer {TOKEN}"
    assert outbox.list_messages()[0]["provider_id"] == "sms-1"


@pytest.mark.parametrize("trouble", ["503", "429", "slow"])
def test_a_gateway_in_trouble_gets_the_sms_later_and_sends_it_once(tmp_path: Path, provider: Provider,
                                                                   trouble: str) -> None:
    outbox = queue_code(tmp_path)
    provider.plan = [trouble]
    sender = OutboxSender(outbox, HttpSmsSender(settings(provider)), Outbox(retry_first_seconds=1))
    assert sender.send_due().retrying == 1
    assert outbox.list_messages()[0]["status"] == "queued"
    pass_again(sender, outbox)
    [message] = outbox.list_messages()
    assert message["status"] == "delivered" and message["attempts"] == 2
    assert len(provider.requests) == 2 and len({r["key"] for r in provider.requests}) == 1  # one key, both attempts
    assert len(provider.sent) == 1  # the provider sent it once


def test_a_reply_of_junk_after_a_2xx_is_still_sent_once(tmp_path: Path, provider: Provider) -> None:
    outbox = queue_code(tmp_path)
    provider.plan = ["junk"]
    assert OutboxSender(outbox, HttpSmsSender(settings(provider))).send_due().sent == 1
    assert outbox.list_messages()[0]["provider_id"].startswith("http-201-")
    assert len(provider.requests) == 1


def test_a_refusal_fails_at_once_and_wrong_credentials_wait(tmp_path: Path, provider: Provider) -> None:
    outbox = queue_code(tmp_path)
    provider.plan = ["400"]
    assert OutboxSender(outbox, HttpSmsSender(settings(provider))).send_due().failed == 1
    assert "refused the message (400)" in outbox.list_messages()[0]["last_error"]
    outbox.send_sms(OutgoingMessage("+34600000001", "hola"))
    wrong = HttpSmsSender(settings(provider, token="tok-wrong"))
    assert OutboxSender(outbox, wrong).send_due().retrying == 1
    assert "refused our credentials (401): check sms.http" in outbox.list_messages()[0]["last_error"]


def test_a_gateway_that_is_down_is_retried(tmp_path: Path, provider: Provider) -> None:
    outbox = queue_code(tmp_path)
    down = settings(provider, url="http://127.0.0.1:9/v1/sms")  # the discard port: nobody listens
    assert OutboxSender(outbox, HttpSmsSender(down)).send_due().retrying == 1
    assert "cannot reach the SMS gateway" in outbox.list_messages()[0]["last_error"]


def test_the_error_texts_never_hold_the_message(tmp_path: Path, provider: Provider) -> None:
    outbox = queue_code(tmp_path)
    for plan in (["400"], ["503"], ["slow"]):
        provider.plan = list(plan)
        OutboxSender(outbox, HttpSmsSender(settings(provider))).send_due()
        pass_again(OutboxSender(outbox, HttpSmsSender(settings(provider))), outbox)
    assert all("739146" not in (m["last_error"] or "") for m in outbox.list_messages())


def test_a_recovery_in_the_console_sends_its_sms_through_the_gateway(tmp_path: Path, provider: Provider) -> None:
    config = make_config(tmp_path, sms={"transport": "http", "http": settings(provider).model_dump(mode="json") | {
        "token": TOKEN}})
    line = Line.open(config, echo=io.StringIO())
    line.ensure_demo_bank()
    result = Caller(line).call(["1", "1", "1", "1", "12345678", "4567", "1234"])
    assert result.outcome == "credentials_sent"
    [sms] = provider.sent.values()
    assert sms["to"] == "+34600000001" and sms["text"].startswith("Su contraseña temporal de Banca Electrónica es ")
    assert "[SMS to" not in result.transcript and "[E-mail to ana.garcia@example.com]" in result.transcript
    line.close()
