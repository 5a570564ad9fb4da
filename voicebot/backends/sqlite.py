"""The embedded backends: bank, outbox, agent desk and call log in one SQLite file.

They make the line work on a fresh machine (``voicebot/data/demo_bank.yaml`` seeds demo
customers) and are what the tests run against. Secrets are kept the way a real bank would:
PINs, temporary passwords and codes only as salted scrypt hashes; an outgoing message's
clear text only until it has been handed over.

One file is shared by every process that opens it (a running line and the CLI), so the
database runs in WAL mode with a busy timeout, and every read-modify-write happens inside
one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import enum
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..config import Codes, Lockout, Security, normalise_number
from ..errors import BackendError
from ..masking import Secret, reveal
from .base import (
    BlockedOperation,
    Channel,
    CodePurpose,
    Contacts,
    Credentials,
    Document,
    DocumentType,
    IssuedCode,
    OutgoingMessage,
    TransferTicket,
    Verification,
    VerifyResult,
)

Clock = Callable[[], datetime]

SCHEMA_VERSION = 2  # 2: the outbox keeps what its sender needs to retry
BUSY_TIMEOUT_MS = 5000
_COST_REFRESH_SECONDS = 60.0  # how long the cost of the bank's cards is taken as known

# Letters and digits a caller can read off an SMS and type without doubt: no 0/O/o, 1/l/I.
PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL            -- random, made on first use (e.g. to key the hashes below)
);
CREATE TABLE IF NOT EXISTS verification_failures (
    scope TEXT NOT NULL,           -- 'caller' or 'document'
    subject TEXT NOT NULL,         -- a keyed hash of the caller ID or the document, not the value
    failed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verification_failures_by_subject ON verification_failures (scope, subject, failed_at);
CREATE TABLE IF NOT EXISTS customers (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    document_type   TEXT NOT NULL CHECK (document_type IN ('dni', 'nie')),
    document_number TEXT NOT NULL UNIQUE,
    language        TEXT NOT NULL,
    email           TEXT,
    mobile          TEXT
);
CREATE TABLE IF NOT EXISTS phones (
    customer_id TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    number      TEXT NOT NULL,
    PRIMARY KEY (customer_id, number)
);
CREATE INDEX IF NOT EXISTS phones_by_number ON phones(number);
CREATE TABLE IF NOT EXISTS cards (
    customer_id     TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    last4           TEXT NOT NULL,
    pin_hash        TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_at       TEXT,
    PRIMARY KEY (customer_id, last4)
);
CREATE TABLE IF NOT EXISTS online_users (
    customer_id        TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    channel            TEXT NOT NULL CHECK (channel IN ('ebanking', 'phone')),
    username           TEXT NOT NULL UNIQUE,
    temp_password_hash TEXT,
    temp_expires_at    TEXT,
    must_change        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, channel)
);
CREATE TABLE IF NOT EXISTS signatures (
    customer_id TEXT PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE,
    blocked     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS operations (
    customer_id TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    reference   TEXT NOT NULL,
    description TEXT NOT NULL,
    amount      TEXT NOT NULL,
    blocked     INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (customer_id, reference)
);
CREATE TABLE IF NOT EXISTS codes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id   TEXT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    purpose       TEXT NOT NULL,
    reference     TEXT NOT NULL,
    code_hash     TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    used_at       TEXT,
    superseded_at TEXT,
    failed_tries  INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS codes_by_binding ON codes(customer_id, purpose, reference);
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    channel      TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
    recipient    TEXT NOT NULL,
    subject      TEXT NOT NULL DEFAULT '',
    language     TEXT NOT NULL,
    body_masked  TEXT NOT NULL,
    body_clear   TEXT,             -- only until sent or given up
    status       TEXT NOT NULL,    -- queued, sending, delivered, failed
    created_at   TEXT NOT NULL,
    delivered_at TEXT
);
CREATE TABLE IF NOT EXISTS handoffs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    target     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    context    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id        TEXT NOT NULL UNIQUE,
    started_at     TEXT,
    ended_at       TEXT,
    duration_s     REAL,
    caller_id      TEXT,
    dialed         TEXT,
    entry_point    TEXT,
    language       TEXT,
    outcome        TEXT,
    outcome_reason TEXT,
    record         TEXT NOT NULL
);
"""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------- database


class Database:
    """The line's database, shared by threads (one connection behind a lock) and processes.

    This class is the embedded SQLite file (WAL, so several processes on one machine share
    it); :class:`voicebot.backends.postgres.PostgresDatabase` is a PostgreSQL server, for
    several machines. Both give the backends the same thing: :meth:`transaction`, yielding a
    connection whose ``execute`` takes SQLite's SQL with ``?`` placeholders, and write
    transactions that run one at a time across every process, so a read-then-update (a
    PIN counter, a code, an outbox claim) never interleaves with another's.
    """

    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, path: Path | str, connection: Any) -> None:
        self.path = path  # where, for messages (a server's address has its password masked)
        self._connection = connection
        # One connection and a lock, rather than one per thread: calls run few, short
        # statements, and a per-thread connection would outlive the threads of ended calls.
        self._lock = threading.RLock()
        self._depth = 0  # transactions this (lock-holding) thread has open, outer one first
        self._outer_writes = False  # the outermost open transaction was begun to write
        self._locked_at: int | None = None  # the level (0: outermost) whose start took the writers' lock
        self._closed = False

    # Whether atomic() may wait for its first write to take the writers' lock (see atomic).
    defers_writers_lock = False
    # Whether a read transaction is one snapshot that a nested write could not see past.
    snapshot_reads = False
    # Whether a BackendError keeps the driver's exception as its cause (SQLite's texts name
    # columns, never values; PostgreSQL's DETAIL quotes the row).
    errors_keep_cause = True

    @contextmanager
    def transaction(self, write: bool = True, lock_later: bool = False) -> Iterator[sqlite3.Connection]:
        """This process's connection inside one transaction, committed on success.

        ``write`` takes the write lock at the start, so a read-then-update cannot interleave
        with another process's update; with ``lock_later`` (:meth:`atomic`), at the start of
        the first write transaction nested in it.
        """
        with self._lock:
            if self._closed:
                raise BackendError(f"{self.path}: the database is closed")
            if self._depth:
                # Inside a transaction this thread already opened (a backend step made atomic,
                # :meth:`atomic`): join it as a savepoint. A failure here undoes only this part
                # (the caller may recover from it); the outer transaction keeps or drops the rest.
                if write and not self._outer_writes and self.snapshot_reads:
                    # Its reads would see the outer read's snapshot, not the latest commits: a
                    # count made under the lock could be stale. No backend does this; keep it so.
                    raise BackendError(f"{self.path}: a write transaction inside a read transaction")
                conn = self._connection
                level = self._depth
                savepoint = f"nested_{level}"
                self._depth += 1
                try:
                    conn.execute(f"SAVEPOINT {savepoint}")
                    if write and self._locked_at is None:
                        self._lock_writers(conn)
                        self._locked_at = level
                    yield conn
                    conn.execute(f"RELEASE {savepoint}")
                except BaseException as exc:
                    self._quietly(conn, f"ROLLBACK TO {savepoint}", f"RELEASE {savepoint}")
                    if self._locked_at is not None and self._locked_at >= level:
                        self._locked_at = None  # a lock taken in a savepoint goes with its rollback
                    if isinstance(exc, self.errors):
                        raise self._backend_error(exc) from (exc if self.errors_keep_cause else None)
                    raise
                finally:
                    self._depth -= 1
                return
            conn = self._connect()
            try:
                locks_now = write and not lock_later
                self._begin(conn, write, lock=locks_now)
                self._depth, self._outer_writes, self._locked_at = 1, write, (0 if locks_now else None)
                try:
                    yield conn
                finally:
                    self._depth, self._outer_writes, self._locked_at = 0, False, None
                conn.execute("COMMIT")
            except BaseException as exc:
                if self._in_transaction(conn):
                    self._quietly(conn, "ROLLBACK")
                if isinstance(exc, self.errors):
                    # Busy past the timeout, disk full, a broken constraint, the server gone.
                    raise self._backend_error(exc) from (exc if self.errors_keep_cause else None)
                raise

    def _backend_error(self, exc: BaseException) -> BackendError:
        return BackendError(f"{self.path}: database error: {self._describe(exc)}")

    def _quietly(self, conn: Any, *statements: str) -> None:
        """Undo after a failure; if the connection died meanwhile, the server undoes it."""
        if self._broken():
            return
        try:
            for statement in statements:
                conn.execute(statement)
        except self.errors:
            pass

    def atomic(self) -> "contextlib.AbstractContextManager[sqlite3.Connection]":
        """One write transaction that every backend on this database joins until it ends:
        a bank change and the messages that tell the customer are kept together or not at all.

        On a server, the writers' lock is taken by the first backend write inside it, not at
        the start: a step hashes its new password or code (scrypt, tens of ms) before its
        first write, and must not hold every instance's writes back meanwhile. (A SQLite file
        takes its lock at the start: upgrading a read to a write there fails, not waits, when
        another process wrote in between.)"""
        return self.transaction(write=True, lock_later=self.defers_writers_lock)

    # -- what differs between database engines

    def _connect(self) -> Any:
        """The connection for a new outermost transaction (a server's may be opened again)."""
        return self._connection

    def _begin(self, conn: Any, write: bool, lock: bool) -> None:
        conn.execute("BEGIN IMMEDIATE" if lock else "BEGIN")

    def _lock_writers(self, conn: Any) -> None:
        """Inside a transaction begun for reading, a nested write. SQLite takes its write lock
        by itself at the first write."""

    def _in_transaction(self, conn: Any) -> bool:
        return bool(conn.in_transaction)

    def _broken(self) -> bool:
        return False

    def _describe(self, exc: BaseException) -> str:
        return str(exc)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._connection.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_server_url(target: str | Path) -> bool:
    """Whether the ``database`` setting names a PostgreSQL server rather than a SQLite file."""
    return isinstance(target, str) and target.lower().startswith(("postgresql://", "postgres://"))


def open_database(path: str | Path) -> Database:
    """Open (creating if needed) the voicebot database: a SQLite file at ``path``, or the
    PostgreSQL server a ``postgresql://`` URL names."""
    if is_server_url(path):
        from .postgres import open_postgres

        return open_postgres(str(path))
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise BackendError(f"{path}: cannot open the database: {exc}") from None
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        # Overwritten clear text (an outbox body, an old hash) is zeroed, not left in free pages.
        conn.execute("PRAGMA secure_delete = ON")
        _create_schema(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise BackendError(f"{path}: not a usable voicebot database: {exc}") from None
    except BackendError:
        conn.close()
        raise
    return Database(path, conn)


# Added in schema 2, to new files and old ones alike (a file from version 1 is upgraded in place).
_OUTBOX_SENDING_COLUMNS = {
    "idempotency_key": "TEXT",  # random, the same on every attempt: the provider drops a repeat
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "next_attempt_at": "TEXT",
    "lease_until": "TEXT",  # a sender has it until then
    "claim": "TEXT",  # which sender's hold: a sender whose lease ran out cannot mark it any more
    "last_error": "TEXT",
    "provider_id": "TEXT",
    "receipt": "TEXT",  # the provider's delivery receipt, when it sends one (DELIVRD, UNDELIV, …)
    "receipt_at": "TEXT",
}


def _add_columns(conn: sqlite3.Connection, table: str, columns: Mapping[str, str]) -> None:
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns.items():
        if name not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _create_schema(conn: sqlite3.Connection, path: Path) -> None:
    # Under the write lock, so two processes opening a new file do not race.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise BackendError(
                f"{path}: schema version {version} is newer than this voicebot understands ({SCHEMA_VERSION})"
            )
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        _add_columns(conn, "outbox", _OUTBOX_SENDING_COLUMNS)
        # A message a version-1 line left queued (killed mid-send) gets what the sender needs.
        for (row_id,) in conn.execute("SELECT id FROM outbox WHERE idempotency_key IS NULL").fetchall():
            conn.execute("UPDATE outbox SET idempotency_key = ?, next_attempt_at = created_at WHERE id = ?",
                         (secrets.token_urlsafe(16), row_id))
        conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS outbox_by_idempotency_key ON outbox (idempotency_key)")
        conn.execute("CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --------------------------------------------------------------------------- hashing

_SCRYPT_R = 8
_SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
# Bounds on what a stored hash may ask for, so a bad seed cannot make a check eat the machine.
_MAX_SCRYPT_N = 2**20
_MAX_SCRYPT_COST = 2**23  # n*r*p: 2**20 at r=8 (the seed loader's bound too); ~1 GiB of memory at most


def hash_secret(clear: str, scrypt_n: int, r: int = _SCRYPT_R, p: int = _SCRYPT_P) -> str:
    """A self-describing salted hash: ``scrypt$n$r$p$salt$hash`` (salt and hash in base64)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(clear, salt, scrypt_n, r, p)
    return "$".join(["scrypt", str(scrypt_n), str(r), str(p), _b64(salt), _b64(digest)])


def check_secret(clear: str, stored: str) -> bool:
    """Whether ``clear`` hashes to ``stored``, compared in constant time."""
    n, r, p, salt, expected = parse_hash(stored)
    return hmac.compare_digest(_scrypt(clear, salt, n, r, p, len(expected)), expected)


def parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """The parameters of a stored hash; ``ValueError`` if it is not one this module writes."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a hash of the form scrypt$n$r$p$salt$hash")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise ValueError("scrypt hash has non-numeric parameters or bad base64") from None
    if not (2 <= n <= _MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError(f"scrypt parameters out of range (n a power of two up to {_MAX_SCRYPT_N}, r<=32, p<=16)")
    if n * r * p > _MAX_SCRYPT_COST:
        # Every check of this hash runs scrypt with these: it must not take gigabytes or minutes.
        raise ValueError(f"scrypt cost too high (n*r*p at most {_MAX_SCRYPT_COST}): a check would stall the line")
    if not (8 <= len(salt) <= 64 and 16 <= len(digest) <= 64):
        raise ValueError("scrypt hash has a salt or digest of an odd length (8-64 and 16-64 bytes)")
    return n, r, p, salt, digest


def _scrypt(clear: str, salt: bytes, n: int, r: int, p: int, length: int = _HASH_BYTES) -> bytes:
    # OpenSSL's default memory cap (32 MiB) is below what large n needs: allow ~2x the need.
    maxmem = max(32 * 1024 * 1024, 256 * n * r * p)
    return hashlib.scrypt(clear.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- helpers


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _now(clock: Clock) -> datetime:
    moment = clock()
    if moment.tzinfo is None:
        raise TypeError("the clock must return an aware datetime (UTC)")
    # Whole seconds: what is stored is what is returned, and compared, exactly.
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def _is_digits(text: str, length: int) -> bool:
    return len(text) == length and text.isascii() and text.isdigit()


def _random_digits(length: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))


def _random_password(length: int) -> str:
    while True:
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        # Banks' password rules usually want both letters and digits.
        if any(c.isdigit() for c in password) and any(c.isalpha() for c in password):
            return password


def find_secret(value: Any, path: str = "") -> str | None:
    """The path of the first :class:`Secret` inside ``value`` (mappings, sequences, dataclasses)."""
    if isinstance(value, Secret):
        return path or "<root>"
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = find_secret(key, f"{path}.<key>") or find_secret(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            found = find_secret(item, f"{path}[{index}]")
            if found:
                return found
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            found = find_secret(getattr(value, item.name), f"{path}.{item.name}" if path else item.name)
            if found:
                return found
    return None


def to_json(value: Any, what: str) -> str:
    """``value`` as JSON; ``ValueError`` if it holds a Secret or something JSON cannot hold."""
    where = find_secret(value)
    if where is not None:
        raise ValueError(f"{what} must not contain secrets (a Secret at {where})")
    try:
        return json.dumps(value, default=_jsonable, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: getattr(value, item.name) for item in dataclasses.fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# --------------------------------------------------------------------------- bank


class SqliteBank:
    """:class:`~voicebot.backends.base.BankingBackend` over the ``customers`` and related tables."""

    def __init__(
        self,
        db: Database,
        codes: Codes | None = None,
        lockout: Lockout | None = None,
        security: Security | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.db = db
        self.codes = codes or Codes()
        self.lockout = lockout or Lockout()
        self.security = security or Security()
        self._clock = clock
        # Checked against when there is no code to check, so every path costs one scrypt.
        self._dummy_hash = hash_secret(secrets.token_hex(8), self.security.scrypt_n)
        # The same for a card, at the cost of the bank's cards (see _card_dummy).
        self._typical_cost: tuple[tuple[int, int, int], float] | None = None
        self._dummies = {(self.security.scrypt_n, _SCRYPT_R, _SCRYPT_P): self._dummy_hash}
        self._subject_key = self._database_key("verification_subjects")

    def _database_key(self, name: str) -> bytes:
        """A random key kept in the database (the same for every process that opens it)."""
        with self.db.transaction() as conn:
            # base64, not hex: a hex string is mostly digits, and would now and then hold a
            # run that looks like a PIN to anyone scanning the file for secrets.
            conn.execute("INSERT OR IGNORE INTO keys (name, value) VALUES (?, ?)", (name, secrets.token_urlsafe(32)))
            return str(conn.execute("SELECT value FROM keys WHERE name = ?", (name,)).fetchone()[0]).encode()

    def hash_secret(self, clear: str) -> str:
        """A hash for ``clear`` with this bank's cost (used by the seed loader)."""
        return hash_secret(clear, self.security.scrypt_n)

    # -- identity

    def verify_card(self, document: Document, card_last4: Secret, pin: Secret,
                    caller_id: str | None = None) -> Verification:
        """One check, built so that every failing path looks alike from outside: one scrypt at
        the cost of a real card, one write transaction, and the same answers in the same order.

        A card that does not exist (unknown document, or no such card) counts its wrong tries
        as a real one does and "locks" at the same count, under a keyed hash of document and
        digits: otherwise three guesses would tell a real card (it locks) from a made-up one.
        """
        last4, clear_pin = reveal(card_last4), reveal(pin)
        subjects = self._rate_subjects(document, caller_id)
        phantom = self._subject("card", f"{document.type}:{document.number}:{last4}")
        with self.db.transaction(write=False) as conn:
            paused = self._paused(conn, subjects)
            card = None
            if _is_digits(last4, 4):
                card = conn.execute(
                    "SELECT cards.customer_id, cards.pin_hash FROM cards"
                    " JOIN customers ON customers.id = cards.customer_id"
                    " WHERE customers.document_type = ? AND customers.document_number = ? AND cards.last4 = ?",
                    (str(document.type), document.number, last4),
                ).fetchone()
            dummy = self._card_dummy(conn)
        if paused:
            self._check_stored(clear_pin, dummy)  # the same time as a real check
            return Verification(VerifyResult.PAUSED)
        # The hash is computed outside any transaction so a slow scrypt never holds the write lock.
        pin_ok = self._check_stored(clear_pin, card["pin_hash"] if card is not None else dummy) and card is not None
        rehashed = None
        if pin_ok and card is not None and self._outdated(card["pin_hash"]):
            rehashed = self.hash_secret(clear_pin)  # the configured cost, from now on (success path only)
        now = _timestamp(_now(self._clock))
        with self.db.transaction() as conn:
            if card is None:
                # Counted again under the write lock: another call (another instance) may have
                # tried this made-up card since the read above.
                phantom_tries = conn.execute(
                    "SELECT COUNT(*) FROM verification_failures WHERE scope = 'card' AND subject = ?", (phantom,)
                ).fetchone()[0]
                locked = phantom_tries >= self.lockout.max_pin_attempts
                if not locked:
                    conn.execute("INSERT INTO verification_failures (scope, subject, failed_at) VALUES ('card', ?, ?)",
                                 (phantom, now))
                    locked = phantom_tries + 1 >= self.lockout.max_pin_attempts
                verification = Verification(VerifyResult.LOCKED if locked else VerifyResult.MISMATCH)
            else:
                verification = self._count_card(conn, card, last4, pin_ok, rehashed, now)
            if verification.result in (VerifyResult.MISMATCH, VerifyResult.LOCKED):
                conn.executemany("INSERT INTO verification_failures (scope, subject, failed_at) VALUES (?, ?, ?)",
                                 [(scope, subject, now) for scope, subject, _, _ in subjects])
        return verification

    def _count_card(self, conn: sqlite3.Connection, card: sqlite3.Row, last4: str, pin_ok: bool,
                    rehashed: str | None, now: str) -> Verification:
        key = (card["customer_id"], last4)
        if pin_ok:
            # "AND locked_at IS NULL": a lock set by a concurrent call since the read wins.
            reset = conn.execute(
                "UPDATE cards SET failed_attempts = 0, pin_hash = COALESCE(?, pin_hash)"
                " WHERE customer_id = ? AND last4 = ? AND locked_at IS NULL",
                (rehashed, *key),
            )
            if reset.rowcount == 1:
                return Verification(VerifyResult.OK, card["customer_id"])
            return Verification(VerifyResult.LOCKED)
        counted = conn.execute(
            "UPDATE cards SET failed_attempts = failed_attempts + 1,"
            " locked_at = CASE WHEN failed_attempts + 1 >= ? THEN ? END"
            " WHERE customer_id = ? AND last4 = ? AND locked_at IS NULL",
            (self.lockout.max_pin_attempts, now, *key),
        )
        if counted.rowcount == 0:
            return Verification(VerifyResult.LOCKED)
        locked_at = conn.execute("SELECT locked_at FROM cards WHERE customer_id = ? AND last4 = ?", key).fetchone()[0]
        return Verification(VerifyResult.LOCKED if locked_at else VerifyResult.MISMATCH)

    def _subject(self, scope: str, value: str) -> str:
        return base64.urlsafe_b64encode(
            hmac.new(self._subject_key, f"{scope}:{value}".encode(), hashlib.sha256).digest()).decode()

    def _rate_subjects(self, document: Document, caller_id: str | None) -> list[tuple[str, str, int, int]]:
        """(scope, subject, limit, window minutes) of one check. Subjects are keyed hashes:
        the table must not become a list of who called about which document."""
        subjects = [("document", f"{document.type}:{document.number}", self.lockout.failures_per_document,
                     self.lockout.document_window_minutes)]
        number = normalise_number(caller_id or "")
        if number:
            subjects.append(("caller", number, self.lockout.failures_per_caller, self.lockout.caller_window_minutes))
        return [(scope, self._subject(scope, value), limit, window) for scope, value, limit, window in subjects]

    def _paused(self, conn: sqlite3.Connection, subjects: list[tuple[str, str, int, int]]) -> bool:
        now = _now(self._clock)
        for scope, subject, limit, window in subjects:
            since = _timestamp(now - timedelta(minutes=window))
            count = conn.execute(
                "SELECT COUNT(*) FROM verification_failures WHERE scope = ? AND subject = ? AND failed_at > ?",
                (scope, subject, since)).fetchone()[0]
            if count >= limit:
                return True
        return False

    def _card_dummy(self, conn: sqlite3.Connection) -> str:
        """A hash to check when there is no card to check, at the cost real cards are checked at
        (the commonest among them: a seed may bring hashes made at another cost than
        ``security.scrypt_n``), so a made-up card takes as long as a real one."""
        now = time.monotonic()
        if self._typical_cost is None or now - self._typical_cost[1] > _COST_REFRESH_SECONDS:
            costs: Counter[tuple[int, int, int]] = Counter()
            for (stored,) in conn.execute("SELECT pin_hash FROM cards LIMIT 200"):
                try:
                    costs[parse_hash(stored)[:3]] += 1
                except ValueError:
                    continue
            cost = costs.most_common(1)[0][0] if costs else (self.security.scrypt_n, _SCRYPT_R, _SCRYPT_P)
            self._typical_cost = (cost, now)
        cost = self._typical_cost[0]
        if cost not in self._dummies:
            self._dummies[cost] = hash_secret(secrets.token_hex(8), *cost)
        return self._dummies[cost]

    def _outdated(self, stored: str) -> bool:
        try:
            return parse_hash(stored)[:3] != (self.security.scrypt_n, _SCRYPT_R, _SCRYPT_P)
        except ValueError:
            return False

    def contacts(self, customer_id: str) -> Contacts:
        with self.db.transaction(write=False) as conn:
            return self._contacts(conn, customer_id)

    def customer_by_phone(self, phone: str) -> str | None:
        number = normalise_number(phone)
        if not number:
            return None
        with self.db.transaction(write=False) as conn:
            rows = conn.execute("SELECT DISTINCT customer_id FROM phones WHERE number = ?", (number,)).fetchall()
        # A number shared by two customers (a family landline) identifies neither of them.
        return rows[0]["customer_id"] if len(rows) == 1 else None

    # -- credentials

    def recover_user(self, customer_id: str, channel: Channel) -> Credentials:
        channel = Channel(channel)
        password = _random_password(self.codes.temporary_password_length)
        password_hash = self.hash_secret(password)
        expires_at = _now(self._clock) + timedelta(minutes=self.codes.temporary_password_minutes)
        with self.db.transaction() as conn:
            self._require_customer(conn, customer_id)
            user = conn.execute(
                "SELECT username FROM online_users WHERE customer_id = ? AND channel = ?",
                (customer_id, str(channel)),
            ).fetchone()
            if user is None:
                raise BackendError(f"customer {customer_id} has no {channel.value} user to recover")
            conn.execute(
                "UPDATE online_users SET temp_password_hash = ?, temp_expires_at = ?, must_change = 1"
                " WHERE customer_id = ? AND channel = ?",
                (password_hash, _timestamp(expires_at), customer_id, str(channel)),
            )
        return Credentials(user["username"], Secret(password), expires_at, must_change=True)

    def confirm_password_change(self, customer_id: str) -> Contacts:
        with self.db.transaction() as conn:
            contacts = self._contacts(conn, customer_id)
            conn.execute(
                "UPDATE online_users SET must_change = 0, temp_password_hash = NULL, temp_expires_at = NULL"
                " WHERE customer_id = ?",
                (customer_id,),
            )
        return contacts

    def unlock_signature(self, customer_id: str) -> None:
        with self.db.transaction() as conn:
            self._require_customer(conn, customer_id)
            conn.execute(
                "INSERT INTO signatures (customer_id, blocked) VALUES (?, 0)"
                " ON CONFLICT (customer_id) DO UPDATE SET blocked = 0",
                (customer_id,),
            )

    # -- operations and codes

    def blocked_operation(self, customer_id: str, reference: str) -> BlockedOperation | None:
        with self.db.transaction(write=False) as conn:
            self._require_customer(conn, customer_id)
            return self._blocked_operation(conn, customer_id, reference)

    def issue_code(self, customer_id: str, purpose: CodePurpose, reference: str) -> IssuedCode:
        purpose = CodePurpose(purpose)
        if purpose is CodePurpose.OPERATION_UNLOCK:
            length, minutes = self.codes.unlock_code_length, self.codes.unlock_code_minutes
        else:
            length, minutes = self.codes.sms_key_length, self.codes.sms_key_minutes
        code = _random_digits(length)
        code_hash = self.hash_secret(code)
        now = _now(self._clock)
        expires_at = now + timedelta(minutes=minutes)
        with self.db.transaction() as conn:
            self._require_customer(conn, customer_id)
            if self._blocked_operation(conn, customer_id, reference) is None:
                raise BackendError(f"customer {customer_id} has no blocked operation with that reference")
            # Only the newest code of a binding is valid: a caller who asks twice gets one live code.
            conn.execute(
                "UPDATE codes SET superseded_at = ?"
                " WHERE customer_id = ? AND purpose = ? AND reference = ? AND used_at IS NULL AND superseded_at IS NULL",
                (_timestamp(now), customer_id, str(purpose), reference),
            )
            conn.execute(
                "INSERT INTO codes (customer_id, purpose, reference, code_hash, expires_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (customer_id, str(purpose), reference, code_hash, _timestamp(expires_at), _timestamp(now)),
            )
        return IssuedCode(purpose, reference, Secret(code), expires_at)

    def redeem_code(self, customer_id: str, purpose: CodePurpose, reference: str, code: Secret) -> bool:
        purpose = CodePurpose(purpose)
        with self.db.transaction(write=False) as conn:
            live = conn.execute(
                "SELECT id, code_hash, expires_at FROM codes"
                " WHERE customer_id = ? AND purpose = ? AND reference = ? AND used_at IS NULL AND superseded_at IS NULL"
                " ORDER BY id DESC LIMIT 1",
                (customer_id, str(purpose), reference),
            ).fetchone()
        if live is None:
            self._check_stored(reveal(code), self._dummy_hash)
            return False
        matches = self._check_stored(reveal(code), live["code_hash"])
        now = _now(self._clock)
        if now >= _parse_timestamp(live["expires_at"]):
            return False
        with self.db.transaction() as conn:
            if matches:
                # Conditional on still being unused, so two concurrent redemptions cannot both win.
                used = conn.execute(
                    "UPDATE codes SET used_at = ? WHERE id = ? AND used_at IS NULL AND superseded_at IS NULL",
                    (_timestamp(now), live["id"]),
                )
                return used.rowcount == 1
            # A short numeric code must not be guessable by trying them all: burn it after a few misses.
            conn.execute(
                "UPDATE codes SET failed_tries = failed_tries + 1,"
                " superseded_at = CASE WHEN failed_tries + 1 >= ? THEN ? ELSE superseded_at END"
                " WHERE id = ?",
                (self.lockout.max_pin_attempts, _timestamp(now), live["id"]),
            )
        return False

    # -- administration (CLI)

    def list_customers(self) -> list[dict[str, Any]]:
        """Every customer as plain data for an operator: no PINs, hashes or card digits."""
        with self.db.transaction(write=False) as conn:
            customers = conn.execute("SELECT * FROM customers ORDER BY id").fetchall()
            return [self._describe(conn, row) for row in customers]

    def has_customers(self) -> bool:
        with self.db.transaction(write=False) as conn:
            return conn.execute("SELECT 1 FROM customers LIMIT 1").fetchone() is not None

    def find_customer(self, id_or_document: str) -> str | None:
        """The id of the customer with this id or document number (letter optional)."""
        text = id_or_document.strip()
        numbers = {text.upper()}
        for kind in DocumentType:
            try:
                numbers.add(Document.parse(kind, text).number)
            except ValueError:
                pass
        with self.db.transaction(write=False) as conn:
            row = conn.execute("SELECT id FROM customers WHERE id = ?", (text,)).fetchone()
            if row is None:
                marks = ",".join("?" * len(numbers))
                row = conn.execute(
                    f"SELECT id FROM customers WHERE document_number IN ({marks})", tuple(numbers)
                ).fetchone()
        return row["id"] if row else None

    def unlock_card(self, customer_id: str, last4: str) -> None:
        """An operator's reset of a card locked by wrong PINs."""
        with self.db.transaction() as conn:
            done = conn.execute(
                "UPDATE cards SET failed_attempts = 0, locked_at = NULL WHERE customer_id = ? AND last4 = ?",
                (customer_id, reveal(last4)),
            )
            if done.rowcount == 0:
                raise BackendError(f"customer {customer_id} has no card with those last digits")

    # -- internals

    def _check_stored(self, clear: str, stored: str) -> bool:
        try:
            return check_secret(clear, stored)
        except ValueError as exc:
            raise BackendError(f"a stored hash is corrupt: {exc}") from None

    @staticmethod
    def _require_customer(conn: sqlite3.Connection, customer_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()
        if row is None:
            raise BackendError(f"unknown customer {customer_id!r}")
        return row

    def _contacts(self, conn: sqlite3.Connection, customer_id: str) -> Contacts:
        row = self._require_customer(conn, customer_id)
        return Contacts(row["id"], row["name"], row["email"], row["mobile"], row["language"])

    @staticmethod
    def _blocked_operation(conn: sqlite3.Connection, customer_id: str, reference: str) -> BlockedOperation | None:
        row = conn.execute(
            "SELECT reference, description, amount FROM operations"
            " WHERE customer_id = ? AND reference = ? AND blocked = 1",
            (customer_id, reference),
        ).fetchone()
        return BlockedOperation(row["reference"], row["description"], row["amount"]) if row else None

    @staticmethod
    def _describe(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
        customer_id = row["id"]
        phones = [
            r["number"]
            for r in conn.execute("SELECT number FROM phones WHERE customer_id = ? ORDER BY number", (customer_id,))
        ]
        cards = conn.execute(
            "SELECT COUNT(*) AS total, COUNT(locked_at) AS locked FROM cards WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        users = {
            r["channel"]: {"username": r["username"], "must_change": bool(r["must_change"])}
            for r in conn.execute(
                "SELECT channel, username, must_change FROM online_users WHERE customer_id = ? ORDER BY channel",
                (customer_id,),
            )
        }
        signature = conn.execute("SELECT blocked FROM signatures WHERE customer_id = ?", (customer_id,)).fetchone()
        operations = [
            r["reference"]
            for r in conn.execute(
                "SELECT reference FROM operations WHERE customer_id = ? AND blocked = 1 ORDER BY reference",
                (customer_id,),
            )
        ]
        return {
            "id": customer_id,
            "name": row["name"],
            "document_type": row["document_type"],
            "document_number": row["document_number"],
            "language": row["language"],
            "email": row["email"],
            "mobile": row["mobile"],
            "phones": phones,
            "cards": cards["total"],
            "cards_locked": cards["locked"],
            "users": users,
            "signature_blocked": bool(signature and signature["blocked"]),
            "blocked_operations": operations,
        }


# --------------------------------------------------------------------------- outbox


@dataclasses.dataclass(frozen=True)
class QueuedMessage:
    """One message claimed for sending: what a transport hands to the provider."""

    id: str  # "outbox-7"
    channel: str  # "sms" or "email"
    recipient: str
    subject: str
    language: str
    body: Secret  # the clear text, with its secrets: never logged
    idempotency_key: str  # the same on every attempt, so a provider can drop a repeat
    attempt: int  # 1 for the first
    claim: str = ""  # this sender's hold on it: marking it needs the hold still to be this one


class SqliteOutbox:
    """The outbox: every SMS and e-mail is written here first, then sent by a sender.

    ``send_sms``/``send_email`` only queue, inside the transaction of the step that caused the
    message (:meth:`Database.atomic`): a recovery and its messages are kept together or not at
    all. :class:`voicebot.outbox.OutboxSender` claims due messages (a lease, so two senders
    never send one message at once), hands them to a transport with an idempotency key, and
    marks them sent, retried later with backoff, or failed for good. A message's clear text
    stays only until it is sent or given up; the masked body stays as the record.
    """

    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self._clock = clock

    def send_sms(self, message: OutgoingMessage) -> str:
        return self._queue("sms", message)

    def send_email(self, message: OutgoingMessage) -> str:
        return self._queue("email", message)

    def list_messages(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest messages first, masked bodies only."""
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT id, channel, recipient, subject, language, body_masked, status, created_at, delivered_at,"
                " attempts, next_attempt_at, last_error, provider_id, receipt, receipt_at"
                " FROM outbox ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {
                "id": f"outbox-{r['id']}",
                "channel": r["channel"],
                "recipient": r["recipient"],
                "subject": r["subject"],
                "language": r["language"],
                "body": r["body_masked"],
                "status": r["status"],
                "created_at": r["created_at"],
                "delivered_at": r["delivered_at"],
                "attempts": r["attempts"],
                "next_attempt_at": r["next_attempt_at"] if r["status"] in ("queued", "sending") else None,
                "last_error": r["last_error"],
                "provider_id": r["provider_id"],
                "receipt": r["receipt"],
                "receipt_at": r["receipt_at"],
            }
            for r in rows
        ]

    def _queue(self, channel: str, message: OutgoingMessage) -> str:
        if not message.to.strip():
            raise BackendError(f"cannot send an {channel} message: no recipient")
        try:
            clear, masked = message.render(), message.masked()
        except (KeyError, IndexError, ValueError) as exc:
            raise BackendError(f"{channel} template does not fit its parameters: {exc!r}") from None
        now = _timestamp(_now(self._clock))
        with self.db.transaction() as conn:
            row_id = conn.execute(
                "INSERT INTO outbox (channel, recipient, subject, language, body_masked, body_clear, status,"
                " created_at, idempotency_key, attempts, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, 0, ?) RETURNING id",
                (channel, message.to, message.subject, message.language, masked, clear, now,
                 secrets.token_urlsafe(16), now),
            ).fetchone()[0]
        return f"outbox-{row_id}"

    # -- the sender's side (voicebot.outbox.OutboxSender)

    def claim_due(self, lease_seconds: float, limit: int = 20) -> list[QueuedMessage]:
        """Reserve up to ``limit`` messages that are due, for ``lease_seconds``; oldest first.

        Due: queued with its retry time passed, or reserved by a sender whose lease ran out
        (it died mid-send). Claiming counts an attempt. (A sender claims one at a time, so
        its lease covers one hand-over, not a batch's.)
        """
        now = _now(self._clock)
        stamp, until = _timestamp(now), _timestamp(now + timedelta(seconds=lease_seconds))
        claim = secrets.token_urlsafe(12)
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM outbox WHERE body_clear IS NOT NULL AND ("
                " (status = 'queued' AND next_attempt_at <= ?) OR (status = 'sending' AND lease_until <= ?))"
                " ORDER BY id LIMIT ?",
                (stamp, stamp, limit),
            ).fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE outbox SET status = 'sending', lease_until = ?, claim = ?, attempts = attempts + 1"
                    " WHERE id = ?",
                    (until, claim, row["id"]),
                )
        return [
            QueuedMessage(f"outbox-{row['id']}", row["channel"], row["recipient"], row["subject"], row["language"],
                          Secret(row["body_clear"]), row["idempotency_key"], row["attempts"] + 1, claim)
            for row in rows
        ]

    def mark_sent(self, message: QueuedMessage, provider_id: str) -> bool:
        """The provider took it: keep its id, forget the clear text. Recorded even when this
        sender's hold ran out meanwhile (the provider took it; another sender's attempt carries
        the same key); returns whether the hold was still this sender's."""
        with self.db.transaction() as conn:
            held = conn.execute("SELECT claim = ? FROM outbox WHERE id = ?",
                                (message.claim, _row_id(message))).fetchone()
            conn.execute(
                "UPDATE outbox SET status = 'delivered', delivered_at = ?, provider_id = ?, body_clear = NULL,"
                " lease_until = NULL, claim = NULL, last_error = NULL WHERE id = ? AND status IN ('sending', 'queued')",
                (_timestamp(_now(self._clock)), provider_id[:200], _row_id(message)),
            )
        return bool(held and held[0])

    def mark_retry(self, message: QueuedMessage, error: str, retry_in: float, give_up_minutes: int) -> str:
        """Not sent this time: due again in ``retry_in`` seconds, or failed if it is too old. The new
        status; "taken" if this sender's hold ran out and another sender has the message now."""
        now = _now(self._clock)
        with self.db.transaction() as conn:
            row = conn.execute("SELECT created_at FROM outbox WHERE id = ?", (_row_id(message),)).fetchone()
            if row is None:
                return "gone"
            too_old = now >= _parse_timestamp(row["created_at"]) + timedelta(minutes=give_up_minutes)
            if too_old:
                # Given up: the clear text goes, so a secret does not wait in the file forever.
                # (Only under this sender's own hold: a stale sender never undoes another's work.)
                failed = conn.execute(
                    "UPDATE outbox SET status = 'failed', body_clear = NULL, lease_until = NULL, claim = NULL,"
                    " last_error = ? WHERE id = ? AND status = 'sending' AND claim = ?",
                    (error[:500], _row_id(message), message.claim),
                )
                return "failed" if failed.rowcount else "taken"
            queued = conn.execute(
                "UPDATE outbox SET status = 'queued', next_attempt_at = ?, lease_until = NULL, claim = NULL,"
                " last_error = ? WHERE id = ? AND status = 'sending' AND claim = ?",
                (_timestamp(now + timedelta(seconds=retry_in)), error[:500], _row_id(message), message.claim),
            )
        return "queued" if queued.rowcount else "taken"

    def record_receipt(self, provider_id: str, state: str) -> bool:
        """A delivery receipt for the message the provider knows as ``provider_id`` (or, for a
        long SMS sent in parts, as one of the space-separated ids it gave); False if none is."""
        if not provider_id or " " in provider_id:
            return False
        with self.db.transaction() as conn:
            done = conn.execute(
                "UPDATE outbox SET receipt = ?, receipt_at = ?"
                " WHERE provider_id = ? OR instr(' ' || provider_id || ' ', ' ' || ? || ' ') > 0",
                (state[:40], _timestamp(_now(self._clock)), provider_id[:200], provider_id[:200]),
            )
        return done.rowcount > 0

    def next_due_in(self) -> float | None:
        """Seconds until the next message is due (0 if one is), None if nothing waits."""
        with self.db.transaction(write=False) as conn:
            row = conn.execute(
                "SELECT MIN(CASE status WHEN 'queued' THEN next_attempt_at ELSE lease_until END) FROM outbox"
                " WHERE body_clear IS NOT NULL AND status IN ('queued', 'sending')"
            ).fetchone()
        if row[0] is None:
            return None
        return max(0.0, (_parse_timestamp(row[0]) - _now(self._clock)).total_seconds())

    def pending(self) -> int:
        """Messages not yet handed to a provider (queued, or being sent)."""
        with self.db.transaction(write=False) as conn:
            return int(conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'sending')").fetchone()[0])


def _row_id(message: QueuedMessage) -> int:
    return int(message.id.removeprefix("outbox-"))


# --------------------------------------------------------------------------- agents and calls


class SqliteAgentDesk:
    """:class:`~voicebot.backends.base.AgentDesk` that records each hand-off for the agents to read."""

    def __init__(self, db: Database, target: str, clock: Clock = utc_now) -> None:
        self.db = db
        self.target = target
        self._clock = clock

    def hand_off(self, reason: str, context: Mapping[str, Any]) -> TransferTicket:
        payload = to_json(dict(context), "a hand-off context")
        with self.db.transaction() as conn:
            row_id = conn.execute(
                "INSERT INTO handoffs (target, reason, context, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                (self.target, reason, payload, _timestamp(_now(self._clock))),
            ).fetchone()[0]
        return TransferTicket(self.target, f"handoff-{row_id}")

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.db.transaction(write=False) as conn:
            rows = conn.execute("SELECT * FROM handoffs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [
            {
                "ticket_id": f"handoff-{r['id']}",
                "target": r["target"],
                "reason": r["reason"],
                "context": json.loads(r["context"]),
                "created_at": r["created_at"],
            }
            for r in rows
        ]


class SqliteCallLog:
    """:class:`~voicebot.backends.base.CallLog`: one row per call, the whole record kept as JSON."""

    COLUMNS = (
        "call_id",
        "started_at",
        "ended_at",
        "duration_s",
        "caller_id",
        "dialed",
        "entry_point",
        "language",
        "outcome",
        "outcome_reason",
    )

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, record: Mapping[str, Any]) -> None:
        payload = to_json(dict(record), "a call record")
        plain = json.loads(payload)
        if not plain.get("call_id"):
            raise ValueError("a call record needs a call_id")
        values = [plain.get(name) for name in self.COLUMNS]
        # Scalars only in the columns; anything richer is in the JSON copy.
        values = [v if v is None or isinstance(v, (str, int, float)) else json.dumps(v) for v in values]
        names = ", ".join(self.COLUMNS)
        updates = ", ".join(f"{name} = excluded.{name}" for name in self.COLUMNS[1:])
        with self.db.transaction() as conn:
            # Saving the same call again (a retry) replaces its record rather than duplicating it.
            conn.execute(
                f"INSERT INTO calls ({names}, record) VALUES ({', '.join('?' * (len(self.COLUMNS) + 1))})"
                f" ON CONFLICT (call_id) DO UPDATE SET {updates}, record = excluded.record",
                (*values, payload),
            )

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.db.transaction(write=False) as conn:
            rows = conn.execute("SELECT record FROM calls ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [json.loads(r["record"]) for r in rows]

    def mark_interrupted(self, host: str, alive: Callable[[int], bool]) -> int:
        """Calls left in progress by a process of this host that is gone (killed, crashed):
        recorded as ``interrupted``. A live process's calls, and other hosts', are left alone.
        Returns how many were marked."""
        marked = 0
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT call_id, record FROM calls WHERE outcome = 'in_progress'").fetchall()
            for row in rows:
                record = json.loads(row["record"])
                owner = record.get("process") or {}
                if owner.get("host") != host or not isinstance(owner.get("pid"), int) or alive(owner["pid"]):
                    continue
                record["outcome"] = "interrupted"
                record["outcome_reason"] = "the line's process stopped during the call"
                conn.execute("UPDATE calls SET outcome = ?, outcome_reason = ?, record = ? WHERE call_id = ?",
                             (record["outcome"], record["outcome_reason"], json.dumps(record), row["call_id"]))
                marked += 1
        return marked
