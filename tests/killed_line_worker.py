"""A line process for ``tests/test_killed_line.py``, killed (SIGKILL) at random moments.

It places console calls through the real line, one seeded customer after another: a user
recovery (new password, an e-mail and an SMS), then an operation unlock code (a code and
its SMS). Messages go to a provider stand-in that notes each idempotency key it takes in a
journal, synced to disk before it answers (as a real provider keeps what it accepted).
Run: ``python tests/killed_line_worker.py DATABASE JOURNAL``; prints ``ready`` once the
line is open and ``done`` when every customer is served and every message sent.
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicebot.app import Line  # noqa: E402
from voicebot.backends.sqlite import QueuedMessage  # noqa: E402
from voicebot.config import Config  # noqa: E402
from voicebot.transports.console import ConsoleCall  # noqa: E402

UNLOCK_LINE = "950183313"


class JournalProvider:
    def __init__(self, path: Path) -> None:
        self.path = path

    def deliver(self, message: QueuedMessage) -> str:
        with open(self.path, "a", encoding="utf-8") as journal:
            journal.write(f"{message.idempotency_key} {message.channel} {message.recipient}\n")
            journal.flush()
            os.fsync(journal.fileno())
        return f"journal-{message.idempotency_key[:8]}"


def config(database: str) -> Config:
    return Config.model_validate({
        "database": database,
        "logging": {"file": None},
        "security": {"scrypt_n": 2**10},
        "outbox": {"lease_seconds": 1, "retry_first_seconds": 1},
    })


def call(line: Line, script: list[str], caller_id: str) -> None:
    stdin = io.StringIO("".join(f"{item}\n" for item in script))
    ConsoleCall(line, caller_id=caller_id, dialed=UNLOCK_LINE, stdin=stdin, out=io.StringIO(), interactive=False).run()


def main(database: str, journal: str) -> None:
    line = Line.open(config(database), transport=JournalProvider(Path(journal)))
    print("ready", flush=True)
    line.sender.send_due()  # what the killed process before left queued
    with line.db.transaction(write=False) as conn:
        customers = conn.execute(
            "SELECT c.id, c.document_number, c.mobile, u.temp_password_hash IS NOT NULL AS recovered,"
            " (SELECT COUNT(*) FROM codes WHERE customer_id = c.id) AS codes,"
            " (SELECT reference FROM operations WHERE customer_id = c.id) AS reference"
            " FROM customers c JOIN online_users u ON u.customer_id = c.id AND u.channel = 'ebanking'"
            " ORDER BY c.id").fetchall()
    for customer in customers:
        if not customer["recovered"]:
            # Spanish, user recovery, e-banking, DNI: the number, card ending and PIN keyed.
            call(line, ["1", "1", "1", "1", customer["document_number"][:8], "4567", "1234"], customer["mobile"])
        if not customer["codes"]:
            # Spanish, blocked operation (the registered phone is the caller ID), its reference.
            call(line, ["1", "2", customer["reference"] + "#"], customer["mobile"])
    deadline = time.monotonic() + 10
    while line.outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.2)  # a message a killed sender had leased is taken over when its lease ends
        line.sender.send_due()
    print("done" if not line.outbox.pending() else "messages left", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
