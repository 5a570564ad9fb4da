"""The line's database on a real PostgreSQL server (``database: postgresql://…``).

- The SQL backends' own tests (tests/test_sqlite_bank.py, tests/test_outbox.py) run again
  here with every database they open on the server (those about the SQLite file itself stay
  there).
- Whole calls over the console, the bank on the server.
- Several line instances (separate processes, each its own connection) guessing PINs on one
  card at the same moment never get more tries than the lockout limit.
- A server restart mid-life fails one step cleanly; the next is served on a new connection.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

import tests.test_sqlite_bank as bank_tests
from tests.conftest import make_config
from tests.postgres import PostgresServer, dump_server, guess_wrong_pins, route_opens_to_server
from voicebot.backends.base import VerifyResult
from voicebot.backends.postgres import PostgresDatabase
from voicebot.backends.seed import BankSeed, seed_bank
from voicebot.backends.sqlite import SqliteBank, SqliteCallLog, open_database
from voicebot.config import Lockout, Security, load_config
from voicebot.errors import BackendError, ConfigError
from voicebot.masking import Secret

REPO = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- the backends' tests, on the server

# The fixtures those tests use, and the tests themselves, collected here a second time.
globals().update({name: getattr(bank_tests, name) for name in ("bank", "clock", "db", "db_path")})

_ABOUT_THE_SQLITE_FILE = {
    "test_open_creates_parents_and_schema_idempotently",  # PRAGMA user_version, folders
    "test_a_newer_schema_is_refused",  # see test_a_newer_schema_on_the_server_is_refused
}
for _name in dir(bank_tests):
    if _name.startswith("test_") and _name not in _ABOUT_THE_SQLITE_FILE:
        globals()[f"{_name}_on_postgres"] = getattr(bank_tests, _name)


@pytest.fixture(autouse=True)
def _databases_on_the_server(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    urls = route_opens_to_server(bank_tests, postgres_server, monkeypatch)
    # The leak check reads every row the server holds, where on SQLite it reads the file.
    monkeypatch.setattr(bank_tests, "dump", lambda path: dump_server(urls[str(path)]))


def test_a_newer_schema_on_the_server_is_refused(postgres_url: str) -> None:
    open_database(postgres_url).close()
    with PostgresDatabase(postgres_url) as raw, raw.transaction() as conn:
        conn.execute("UPDATE schema_info SET version = version + 1")
    with pytest.raises(BackendError, match="newer than this voicebot understands"):
        open_database(postgres_url)


# --------------------------------------------------------------------------- configuration


def test_the_database_setting_takes_a_file_or_a_server_url(tmp_path: Path) -> None:
    assert make_config(tmp_path).database == tmp_path / "voicebot.sqlite3"
    url = "postgresql://voicebot:s3cret-pass@db.example:5433/voicebot"
    config = make_config(tmp_path, database=url)
    assert config.database == url
    assert config.database_shown == "postgresql://voicebot:****@db.example:5433/voicebot"
    assert make_config(tmp_path, database="postgresql://db.example/v?sslmode=require&password=s3cret-pass"
                       ).database_shown == "postgresql://db.example/v?sslmode=require&password=****"
    for wrong in ("mysql://db.example/voicebot", "postgresql://db.example/voicebot?sslmode=sometimes&&==",
                  "postgresql://u:s3cret-pass%zz@db.example/x"):
        config_file = tmp_path / "bad.yaml"
        config_file.write_text(f"database: '{wrong}'\n")
        with pytest.raises(ConfigError, match="database") as caught:
            load_config(config_file)
        assert "s3cret-pass" not in str(caught.value)  # libpq's own message would quote the URL


def test_a_write_inside_a_read_transaction_is_refused_on_the_server(postgres_url: str) -> None:
    """Its reads would see the read's snapshot, not the commits the writers' lock waited for."""
    with open_database(postgres_url) as database:
        with pytest.raises(BackendError, match="inside a read transaction"):
            with database.transaction(write=False), database.transaction(write=True) as conn:
                conn.execute("INSERT INTO keys (name, value) VALUES ('never', 'kept')")
        with database.transaction(write=False) as conn:
            assert conn.execute("SELECT COUNT(*) FROM keys WHERE name = 'never'").fetchone()[0] == 0


def test_an_unreachable_server_is_a_clear_error_without_its_password(postgres_server: PostgresServer) -> None:
    closed_port = postgres_server.port + 1 if postgres_server.port < 65535 else 1
    with pytest.raises(BackendError) as caught:
        open_database(f"postgresql://voicebot:hunter22secret@127.0.0.1:{closed_port}/voicebot?connect_timeout=2")
    assert "cannot reach the database" in str(caught.value)
    assert "hunter22secret" not in str(caught.value) and "****" in str(caught.value)


def test_an_error_message_never_quotes_the_rows_values(postgres_url: str) -> None:
    database = open_database(postgres_url)
    seeded = SqliteBank(database, security=Security(scrypt_n=2**10))
    seed_bank(seeded, BankSeed.model_validate(bank_tests.SEED))
    with pytest.raises(BackendError) as caught, database.transaction() as conn:
        conn.execute("INSERT INTO cards (customer_id, last4, pin_hash) VALUES ('C1', ?, 'x')", (bank_tests.CARD,))
    database.close()
    assert "duplicate key" in str(caught.value)
    assert bank_tests.CARD not in str(caught.value)  # PostgreSQL's DETAIL would have quoted it
    # Nor its cause, which a log's traceback would print (PostgreSQL's DETAIL quotes the row).
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_server_restart_fails_one_step_and_the_next_gets_a_new_connection(postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database()
    database = open_database(url)
    seeded = SqliteBank(database, security=Security(scrypt_n=2**10))
    seed_bank(seeded, BankSeed.model_validate(bank_tests.SEED))
    postgres_server.restart()
    try:
        with pytest.raises(BackendError, match="database error"):
            seeded.contacts("C1")
        assert seeded.contacts("C1").name == "Test One"
    finally:
        database.close()


# --------------------------------------------------------------------------- calls


# --------------------------------------------------------------------------- several instances, one card

GUESSERS = 6
MADE_UP_DOCUMENT = "11111111H"  # no customer has it
TRIES_EACH = 5
LIMIT = 3
# The card's limit only: the per-document and per-caller pauses would stop the guessers first.
GUESSERS_LOCKOUT = Lockout(max_pin_attempts=LIMIT, failures_per_document=1000, failures_per_caller=1000)


def test_instances_guessing_one_card_together_never_get_more_tries_than_the_limit(
        postgres_server: PostgresServer) -> None:
    """Line processes, each with its own connection, start wrong PINs on one card at the same
    moment: two real cards, then made-up ones (whose tries are counted apart from any card row,
    the race a missing lock loses first)."""
    url = postgres_server.new_database()
    database = open_database(url)
    seeded = SqliteBank(database, lockout=GUESSERS_LOCKOUT, security=Security(scrypt_n=2**10))
    seed_bank(seeded, BankSeed.model_validate(bank_tests.SEED))
    pins = {bank_tests.CARD: bank_tests.PIN, bank_tests.OTHER_CARD: bank_tests.OTHER_PIN}
    cards = [(bank_tests.ONE.number, bank_tests.CARD), (bank_tests.ONE.number, bank_tests.OTHER_CARD),
             *[(MADE_UP_DOCUMENT, made_up) for made_up in ("1357", "3579", "5791")]]
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(GUESSERS, timeout=60), context.Queue()
    guessers = [context.Process(target=guess_wrong_pins, args=(url, start, results, cards, LIMIT, TRIES_EACH),
                                daemon=True) for _ in range(GUESSERS)]
    for guesser in guessers:
        guesser.start()
    outcomes: dict[str, list[str]] = {}
    try:
        for _ in range(GUESSERS * len(cards)):
            last4, theirs = results.get(timeout=120)
            outcomes.setdefault(last4, []).extend(theirs)
        for guesser in guessers:
            guesser.join(30)
            assert guesser.exitcode == 0
    finally:
        for guesser in guessers:  # one that died leaves the others at the barrier
            if guesser.is_alive():
                guesser.terminate()
    for last4, seen in outcomes.items():
        # Tries 1..LIMIT-1 are mismatches, the LIMIT-th locks, every later one finds it locked.
        assert seen.count("mismatch") == LIMIT - 1, (last4, seen)
        assert seen.count("locked") == GUESSERS * TRIES_EACH - (LIMIT - 1)
    for last4, pin in pins.items():
        with database.transaction(write=False) as conn:
            counted, locked_at = conn.execute(
                "SELECT failed_attempts, locked_at FROM cards WHERE customer_id = 'C1' AND last4 = ?",
                (last4,)).fetchone()
        assert counted == LIMIT and locked_at is not None
        # And the right PIN no longer opens it.
        assert seeded.verify_card(bank_tests.ONE, Secret(last4), Secret(pin)).result is VerifyResult.LOCKED
    database.close()


def test_wrong_pin_calls_through_separate_line_processes_lock_at_the_limit(
        postgres_url: str, tmp_path: Path) -> None:
    """Three `voicebot chat` processes (three instances of the line) call at once about one
    card, each trying three wrong PINs: between them, two mismatches and then the lock."""
    config = tmp_path / "instance.yaml"
    config.write_text(json.dumps({
        "database": postgres_url, "logging": {"file": str(tmp_path / "voicebot.log")},
        "security": {"scrypt_n": 2**10},
        "lockout": {"failures_per_document": 1000, "failures_per_caller": 1000},
    }))
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
    seeded = run([sys.executable, "-m", "voicebot", "--config", str(config), "bank", "seed"],
                 capture_output=True, text=True, timeout=120, cwd=REPO)
    assert seeded.returncode == 0, seeded.stderr
    script = "\n".join(["1", "1", "1", "1", *["12345678", "4567", "0000"] * 3]) + "\n"
    calls = [subprocess.Popen([sys.executable, "-m", "voicebot", "--config", str(config), "chat", "--json",
                               "--caller-id", f"+3460000000{n}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO) for n in range(3)]
    records = []
    for call in calls:
        out, err = call.communicate(script, timeout=180)
        assert call.returncode == 0, err
        records.append(json.loads(out))
    results = [action["result"] for record in records for action in record["actions"]
               if action["action"] == "verify_card"]
    assert results.count("mismatch") == LIMIT - 1, results
    for record in records:  # a call that met the lock was put through to an agent, saying so
        if "locked" in [a["result"] for a in record["actions"]]:
            assert (record["outcome"], record["outcome_reason"]) == ("transferred", "card_locked")
    with open_database(postgres_url) as database, database.transaction(write=False) as conn:
        assert conn.execute("SELECT failed_attempts FROM cards WHERE customer_id = 'C001' AND last4 = '4567'"
                            ).fetchone()[0] == LIMIT
    with open_database(postgres_url) as database:
        assert len(SqliteCallLog(database).recent(10)) == 3


def test_a_step_holds_the_writers_lock_from_its_first_write_not_while_it_hashes(postgres_url: str) -> None:
    """A step (Database.atomic) that is still hashing its new password has written nothing:
    other instances write meanwhile. From its first write to its commit, they wait."""
    import threading

    step, other = open_database(postgres_url), open_database(postgres_url)
    other_log = SqliteCallLog(other)
    with step.atomic():
        other_log.save({"call_id": "written-while-the-step-hashes", "outcome": "in_progress"})  # not blocked
        with step.transaction() as conn:
            conn.execute("INSERT INTO keys (name, value) VALUES ('step', 'written')")
        waited = threading.Event()
        writer = threading.Thread(target=lambda: (other_log.save({"call_id": "after", "outcome": "x"}), waited.set()))
        writer.start()
        assert not waited.wait(0.5)  # the other instance's write waits for the step's commit
    writer.join(10)
    assert waited.is_set()
    assert {r["call_id"] for r in SqliteCallLog(step).recent()} == {"written-while-the-step-hashes", "after"}
    step.close()
    other.close()


def test_a_line_moves_from_its_sqlite_file_to_the_server_whole(tmp_path: Path, postgres_url: str) -> None:
    """`voicebot db copy`: what a running line relies on arrives: locks, rate-limit counts (and
    the key their subjects are hashed with), live codes, the outbox, the call records; and
    the line goes on there (new rows get new ids)."""
    from tests.conftest import Caller
    from voicebot.app import Line

    file_config = make_config(tmp_path)
    line = Line.open(file_config, echo=io.StringIO())
    line.ensure_demo_bank()
    on_file = Caller(line)
    assert on_file.call(["1", "1", "1", "1", "12345678", "4567", "1234"]).outcome == "credentials_sent"
    locked = on_file.call(["1", "1", "1", "1", *["12345678", "9012", "0000"] * 3], caller_id="+34699000001")
    assert locked.reason == "card_locked"
    before = (line.bank.list_customers(), line.outbox.list_messages(), line.call_log.recent(), line.desk.recent())
    line.close()

    copied = subprocess.run([sys.executable, "-m", "voicebot", "db", "copy", str(file_config.database), postgres_url],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert copied.returncode == 0, copied.stderr
    assert "customers" in copied.stdout and "outbox" in copied.stdout

    server_line = Line.open(make_config(tmp_path, database=postgres_url), echo=io.StringIO())
    try:
        assert (server_line.bank.list_customers(), server_line.outbox.list_messages(), server_line.call_log.recent(),
                server_line.desk.recent()) == before
        on_server = Caller(server_line)
        # The lock came along: the right PIN does not open the card on the server either.
        assert on_server.call(["1", "1", "1", "1", "12345678", "9012", "4321"]).reason == "card_locked"
        # So did the caller's failure count (its subject hashed with the same key): three more and paused.
        again = on_server.call(["1", "1", "1", "1", *["12345678", "4567", "0000"] * 3], caller_id="+34699000001")
        assert again.record["actions"][-1]["result"] == "paused", again.record["actions"]
        # (and the document too: 6 failures today. Another customer then.)
        recovered = on_server.call(["1", "1", "2", "2", "01234567", "1111", "2222"], caller_id="+34600000002")
        assert recovered.outcome == "credentials_sent"
        assert len(server_line.outbox.list_messages()) == len(before[1]) + 2  # new ids after the copied ones
    finally:
        server_line.close()

    refused = subprocess.run([sys.executable, "-m", "voicebot", "db", "copy", str(file_config.database), postgres_url],
                             capture_output=True, text=True, timeout=120, cwd=REPO)
    assert refused.returncode != 0 and "already holds" in refused.stderr and "Traceback" not in refused.stderr
