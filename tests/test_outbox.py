"""The outbox and its sender (issue 8): a gateway that is down keeps the message queued and
retried with a doubling wait; a retry after a lost reply carries the same idempotency key,
so the provider sends it once; two senders never send one message at once; a dead sender's
message is taken over when its lease runs out; a file of the previous schema is upgraded.

The gateway here is a provider stand-in at the transport boundary (issue 11 brings real
SMTP, SMPP and HTTP gateways on loopback); the outbox is the real SQLite one."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from voicebot.backends.base import OutgoingMessage
from voicebot.backends.sqlite import QueuedMessage, SqliteOutbox, open_database
from voicebot.config import Outbox
from voicebot.masking import Secret
from voicebot.outbox import DeliveryError, DemoPhone, OutboxSender

START = datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc)
CODE_SMS = OutgoingMessage("+34600000001", "Your code is {code}", {"code": Secret("739146")}, language="en")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Provider:
    """An SMS provider as the transport sees it: drops a repeated idempotency key, as the
    real ones do; can be down for the next ``down`` attempts, or lose its reply."""

    def __init__(self, down: int = 0, lose_replies: int = 0, permanent: bool = False) -> None:
        self.down, self.lose_replies, self.permanent = down, lose_replies, permanent
        self.attempts: list[str] = []  # idempotency keys, one per attempt that reached us
        self.sent: dict[str, str] = {}  # key -> body, once per key

    def deliver(self, message: QueuedMessage) -> str:
        if self.down:
            self.down -= 1
            raise DeliveryError("503 from the gateway", permanent=self.permanent)
        self.attempts.append(message.idempotency_key)
        self.sent.setdefault(message.idempotency_key, message.body.reveal())
        if self.lose_replies:
            self.lose_replies -= 1
            raise TimeoutError("the gateway took it, but its reply never came")
        return f"prov-{len(self.sent)}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(tmp_path: Path, clock: Clock) -> SqliteOutbox:
    return SqliteOutbox(open_database(tmp_path / "voicebot.sqlite3"), clock=clock)


def only(outbox: SqliteOutbox) -> dict[str, object]:
    [message] = outbox.list_messages()
    return message


def test_a_gateway_that_is_down_gets_the_message_later_with_a_doubling_wait(outbox: SqliteOutbox, clock: Clock) -> None:
    provider = Provider(down=3)
    sender = OutboxSender(outbox, provider, Outbox(retry_first_seconds=5, retry_max_seconds=15))
    outbox.send_sms(CODE_SMS)
    waits = []
    while outbox.pending():
        report = sender.send_due()
        if report.retrying:
            waits.append(outbox.next_due_in())
            assert sender.send_due() == type(report)()  # not due yet: nothing is tried
            clock.advance(waits[-1] or 0)
    assert waits == [5, 10, 15]  # doubling, capped at retry_max_seconds
    message = only(outbox)
    assert message["status"] == "delivered" and message["attempts"] == 4 and message["provider_id"] == "prov-1"
    assert list(provider.sent.values()) == ["Your code is 739146"]


def test_a_lost_reply_is_retried_with_the_same_key_and_sent_once(outbox: SqliteOutbox, clock: Clock) -> None:
    provider = Provider(lose_replies=2)
    sender = OutboxSender(outbox, provider, Outbox(retry_first_seconds=1))
    outbox.send_sms(CODE_SMS)
    for _ in range(3):
        sender.send_due()
        clock.advance(60)
    assert len(provider.attempts) == 3 and len(set(provider.attempts)) == 1  # one key on every attempt
    assert len(provider.sent) == 1
    assert only(outbox)["status"] == "delivered"


def test_a_permanent_refusal_fails_at_once_and_forgets_the_clear_text(outbox: SqliteOutbox) -> None:
    sender = OutboxSender(outbox, Provider(down=1, permanent=True))
    outbox.send_sms(CODE_SMS)
    assert sender.send_due().failed == 1
    message = only(outbox)
    assert message["status"] == "failed" and "503" in str(message["last_error"])
    with outbox.db.transaction(write=False) as conn:
        assert conn.execute("SELECT body_clear FROM outbox").fetchone()[0] is None


def test_an_error_text_that_quotes_the_message_keeps_no_digits(outbox: SqliteOutbox) -> None:
    class Echoing:
        def deliver(self, message: QueuedMessage) -> str:
            raise DeliveryError(f"rejected body: {message.body.reveal()}")

    outbox.send_sms(CODE_SMS)
    OutboxSender(outbox, Echoing()).send_due()
    assert "739146" not in str(only(outbox)["last_error"]) and "######" in str(only(outbox)["last_error"])


def test_two_senders_never_send_one_message_and_a_dead_ones_is_taken_over(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "voicebot.sqlite3"
    first, second = SqliteOutbox(open_database(path), clock), SqliteOutbox(open_database(path), clock)
    first.send_sms(CODE_SMS)
    claimed = first.claim_due(lease_seconds=30)  # and then this sender dies: never marks it
    assert len(claimed) == 1
    assert second.claim_due(lease_seconds=30) == []  # leased: not sent twice at once
    clock.advance(31)
    provider = Provider()
    assert OutboxSender(second, provider).send_due().sent == 1
    assert provider.attempts == [claimed[0].idempotency_key]  # the same key the dead sender had
    assert not first.mark_sent(claimed[0], "late")  # the dead sender's late mark is refused
    assert only(second)["attempts"] == 2


def test_concurrent_passes_in_one_process_send_each_message_once(outbox: SqliteOutbox) -> None:
    provider = Provider()
    sender = OutboxSender(outbox, provider)
    for n in range(40):
        outbox.send_sms(OutgoingMessage(f"+3460000{n:04d}", "hello"))
    threads = [threading.Thread(target=sender.send_due) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(provider.attempts) == 40 == len(set(provider.attempts))
    assert {m["status"] for m in outbox.list_messages(100)} == {"delivered"}


def test_the_background_sender_sends_when_woken(tmp_path: Path) -> None:
    outbox = SqliteOutbox(open_database(tmp_path / "voicebot.sqlite3"))
    delivered = threading.Event()

    class Signalling(Provider):
        def deliver(self, message: QueuedMessage) -> str:
            provider_id = super().deliver(message)
            delivered.set()
            return provider_id

    sender = OutboxSender(outbox, Signalling())
    sender.start()
    try:
        outbox.send_sms(CODE_SMS)
        sender.wake()
        assert delivered.wait(10)
    finally:
        sender.stop()
    assert sender._thread is None


def test_a_database_of_the_first_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, recipient TEXT NOT NULL,
            subject TEXT NOT NULL DEFAULT '', language TEXT NOT NULL, body_masked TEXT NOT NULL, body_clear TEXT,
            status TEXT NOT NULL, created_at TEXT NOT NULL, delivered_at TEXT);
        INSERT INTO outbox (channel, recipient, language, body_masked, status, created_at, delivered_at)
            VALUES ('sms', '+34600000001', 'es', 'Su código: ****', 'delivered', '2026-01-01T00:00:00+00:00',
                    '2026-01-01T00:00:01+00:00');
        PRAGMA user_version = 1;
    """)
    conn.close()
    outbox = SqliteOutbox(open_database(path))
    assert only(outbox)["body"] == "Su código: ****" and only(outbox)["attempts"] == 0
    outbox.send_sms(CODE_SMS)
    assert OutboxSender(outbox, Provider()).send_due().sent == 1
    with outbox.db.transaction(write=False) as conn2:
        assert conn2.execute("PRAGMA user_version").fetchone()[0] == 2


def test_the_outbox_command_sends_what_is_due_and_shows_retries(tmp_path: Path) -> None:
    path = tmp_path / "voicebot.sqlite3"
    outbox = SqliteOutbox(open_database(path))
    outbox.send_sms(CODE_SMS)
    closed = io.StringIO()
    closed.close()
    # The demo phone was down: one failed attempt, the next one due within a second.
    OutboxSender(outbox, DemoPhone(closed), Outbox(retry_first_seconds=1)).send_due()
    outbox.db.close()
    env = {"VOICEBOT__DATABASE": str(path), "VOICEBOT__LOGGING__FILE": str(tmp_path / "log"), "PATH": "/usr/bin:/bin"}
    listed = subprocess.run([sys.executable, "-m", "voicebot", "outbox"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert "[queued, attempt 1 failed: DeliveryError: the demo phone cannot print: ValueError; next at" in listed.stdout
    time.sleep(2)
    sent = subprocess.run([sys.executable, "-m", "voicebot", "outbox", "--send"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    assert "[SMS to +34600000001] Your code is 739146" in sent.stdout and "Sent 1;" in sent.stdout
    assert "[delivered]" in sent.stdout


def test_queued_messages_go_now_without_the_background_sender_and_through_it_once_started(tmp_path: Path) -> None:
    outbox = SqliteOutbox(open_database(tmp_path / "voicebot.sqlite3"))
    threads: list[str] = []

    class Noting(Provider):
        def deliver(self, message: QueuedMessage) -> str:
            threads.append(threading.current_thread().name)
            return super().deliver(message)

    sender = OutboxSender(outbox, Noting())
    outbox.send_sms(CODE_SMS)
    sender.queued()
    assert threads == [threading.current_thread().name]  # inline: nothing else would send it
    sender.start()
    try:
        outbox.send_sms(CODE_SMS)
        sender.queued()
        deadline = time.monotonic() + 10
        while len(threads) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sender.stop()
    assert threads[1] == "voicebot-outbox"  # the step's thread did not wait for the provider


def test_a_sender_whose_lease_ran_out_cannot_put_back_a_message_another_holds(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "voicebot.sqlite3"
    first, second = SqliteOutbox(open_database(path), clock), SqliteOutbox(open_database(path), clock)
    first.send_sms(CODE_SMS)
    [stale] = first.claim_due(lease_seconds=10)
    clock.advance(11)
    [held] = second.claim_due(lease_seconds=10)
    assert first.mark_retry(stale, "late failure", 5, 1440) == "taken" and only(second)["status"] == "sending"
    assert second.mark_sent(held, "prov-9") and only(second)["status"] == "delivered"
