"""A line process killed with SIGKILL at random points during calls (issue 8).

``tests/killed_line_worker.py`` places console calls through the real line (user recoveries
and operation unlock codes, one seeded customer after another) and is killed again and
again at a random moment; a new process takes over each time. After every kill the
database must be consistent: every recovery is whole (a new password with its e-mail and
its SMS queued) or not started, every code has its SMS, and the calls the killed process
was in are recorded as interrupted. At the end every message has reached the provider once
per idempotency key. ``VOICEBOT_KILLS`` sets the number of kills (default 12) and
``VOICEBOT_KILL_SEED`` the random seed (printed on failure)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from voicebot.app import Line
from voicebot.backends.seed import load_seed, seed_bank
from voicebot.config import Config
from voicebot.documents import DNI_LETTERS

WORKER = Path(__file__).with_name("killed_line_worker.py")
CUSTOMERS = 400  # enough that a worker is still calling at each of the kills (a call takes ~10 ms)
KILLS = int(os.environ.get("VOICEBOT_KILLS", "12"))


def seed_file(path: Path) -> Path:
    customers = []
    for n in range(CUSTOMERS):
        number = 30_000_000 + 7919 * n
        customers.append({
            "id": f"K{n:03d}",
            "name": f"Cliente {n}",
            "document": {"type": "dni", "number": f"{number:08d}{DNI_LETTERS[number % 23]}"},
            "language": "es",
            "email": f"cliente{n}@example.com",
            "mobile": f"+3461{n:07d}",
            "phones": [f"+3461{n:07d}"],
            "cards": [{"last4": "4567", "pin": "1234"}],
            "users": {"ebanking": f"cliente{n}", "phone": f"cliente{n}.tel"},
            "signature_blocked": False,
            "blocked_operations": [{"reference": f"7{n:08d}", "description": "Transferencia", "amount": "10.00 EUR"}],
        })
    path.write_text(yaml.safe_dump({"customers": customers}, allow_unicode=True), encoding="utf-8")
    return path


def check_consistent(database: Path) -> dict[str, int]:
    """Every recovery whole or absent, every code with its SMS; returns counts for the report."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        counts = Counter[str]()
        for customer in conn.execute("SELECT id, email, mobile FROM customers WHERE id LIKE 'K%'"):
            recovered = conn.execute(
                "SELECT temp_password_hash IS NOT NULL FROM online_users WHERE customer_id = ? AND channel = 'ebanking'",
                (customer["id"],)).fetchone()[0]
            emails = conn.execute("SELECT COUNT(*) FROM outbox WHERE channel = 'email' AND recipient = ?",
                                  (customer["email"],)).fetchone()[0]
            password_sms = conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE channel = 'sms' AND recipient = ? AND body_masked LIKE '%contraseña temporal%'",
                (customer["mobile"],)).fetchone()[0]
            codes = conn.execute("SELECT COUNT(*) FROM codes WHERE customer_id = ?", (customer["id"],)).fetchone()[0]
            code_sms = conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE channel = 'sms' AND recipient = ? AND body_masked LIKE 'Código de desbloqueo%'",
                (customer["mobile"],)).fetchone()[0]
            assert (emails, password_sms) == ((1, 1) if recovered else (0, 0)), \
                f"{customer['id']}: recovered={recovered} with {emails} e-mail(s) and {password_sms} password SMS"
            assert codes == code_sms <= 1, f"{customer['id']}: {codes} code(s), {code_sms} code SMS"
            counts["recovered"] += recovered
            counts["codes"] += codes
        for row in conn.execute("SELECT outcome, COUNT(*) FROM calls GROUP BY outcome"):
            counts[f"calls {row[0]}"] = row[1]
        return dict(counts)
    finally:
        conn.close()


def start_worker(database: Path, journal: Path) -> subprocess.Popen[str]:
    worker = subprocess.Popen([sys.executable, str(WORKER), str(database), str(journal)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    line = worker.stdout.readline()
    assert line.strip() == "ready", f"the worker did not start: {line!r} {worker.stderr.read() if worker.stderr else ''}"
    return worker


def test_a_line_killed_at_random_points_leaves_every_recovery_whole_or_not_started(tmp_path: Path) -> None:
    seed = int(os.environ.get("VOICEBOT_KILL_SEED", str(time.time_ns() % 100_000)))
    rng = random.Random(seed)
    database, journal = tmp_path / "voicebot.sqlite3", tmp_path / "provider.journal"
    line = Line.open(Config.model_validate({"database": str(database), "logging": {"file": None},
                                            "security": {"scrypt_n": 2**10}}))
    seed_bank(line.bank, load_seed(seed_file(tmp_path / "seed.yaml")))
    line.close()

    progress = []
    for kill in range(KILLS):
        worker = start_worker(database, journal)
        time.sleep(rng.uniform(0.05, 0.6))
        if worker.poll() is not None:
            # It finished every customer before its kill; anything else is a failure.
            out = worker.stdout.read() if worker.stdout else ""
            assert worker.returncode == 0 and "done" in out, \
                f"seed {seed}: the worker stopped by itself: {out!r} {worker.stderr.read() if worker.stderr else ''}"
            break
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        progress.append(check_consistent(database))
    worker = start_worker(database, journal)
    assert worker.stdout is not None and worker.stderr is not None
    # Read through the text streams (start_worker's readline may have buffered past "ready").
    out, err = worker.stdout.read(), worker.stderr.read()
    worker.wait(timeout=300)
    assert worker.returncode == 0 and out.strip() == "done", f"seed {seed}: {out!r} {err[-2000:]!r}"

    final = check_consistent(database)
    assert final["recovered"] == final["codes"] == CUSTOMERS, f"seed {seed}: {final}"
    assert final.get("calls in_progress", 0) == 0
    killed_mid_call = sum(1 for before, after in zip([{}, *progress], progress)
                          if after.get("calls interrupted", 0) > before.get("calls interrupted", 0))
    assert progress, f"seed {seed}: no worker was killed (each finished first)"
    # A kill lands in a call nearly always (calls are back to back); each such call says so.
    assert final.get("calls interrupted", 0) >= killed_mid_call

    conn = sqlite3.connect(database)
    rows = conn.execute("SELECT idempotency_key, status, attempts FROM outbox").fetchall()
    conn.close()
    assert {status for _, status, _ in rows} == {"delivered"}
    taken = Counter(line.split()[0] for line in journal.read_text().splitlines())
    assert set(taken) == {key for key, _, _ in rows}  # every message reached the provider, nothing else did
    attempts = {key: tries for key, _, tries in rows}
    for key, times in taken.items():
        # A key handed over twice: its sender was killed between hand-over and marking, and
        # the retry carried the same key (the provider drops it). Never otherwise.
        assert times == 1 or attempts[key] >= times, f"seed {seed}: {key} taken {times}x in {attempts[key]} attempt(s)"
    print(f"seed {seed}: {len(progress)} kills, {len(rows)} messages, "
          f"{sum(t - 1 for t in taken.values())} repeated hand-overs, {final}")
