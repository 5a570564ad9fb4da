"""``voicebot db copy``: the line's database from one place to another, whole.

The way from one machine to several: the SQLite file a line has been running on goes to the
PostgreSQL server its instances will share (or back, or to a new file), with everything a
running line relies on — customers and their cards with their wrong-PIN counts and locks,
the failure counts of the rate limits and the key their subjects are hashed with, live
codes, the outbox with what is still to be sent, hand-offs and call records.

The copy is one transaction on the target under its writers' lock, and refuses a target
that already holds customers or calls: it fills a new database, it does not merge two.
Stop the line (or drain it) first: calls that change the source during the copy would be
missed.
"""

from __future__ import annotations

from typing import Any

from ..errors import BackendError
from .postgres import PostgresDatabase
from .sqlite import Database

# Parents before children (foreign keys); every table of the schema.
TABLES = ("keys", "verification_failures", "customers", "phones", "cards", "online_users", "signatures",
          "operations", "codes", "outbox", "handoffs", "calls")
# Tables whose id the database numbers: the next number must follow the copied ones.
NUMBERED = ("codes", "outbox", "handoffs", "calls")
BATCH = 500


def copy_database(source: Database, target: Database) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; rows copied per table."""
    copied: dict[str, int] = {}
    with source.transaction(write=False) as reading, target.transaction(write=True) as writing:
        for side, conn in ((source, reading), (target, writing)):
            if isinstance(side, PostgresDatabase):
                # A big table is longer than a statement's bound, and one side waits idle in
                # its transaction while the other works: no time-outs for this transaction.
                conn.execute("SET LOCAL statement_timeout = 0")
                conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        for table in TABLES:
            if table != "keys" and writing.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
                raise BackendError(f"{target.path}: already holds {table}; copy into a new, empty database")
        # The key the failure subjects are hashed with is made on first open: the source's replaces it.
        writing.execute("DELETE FROM keys")
        for table in TABLES:
            cursor = reading.execute(f"SELECT * FROM {table}")
            columns = [column[0] for column in cursor.description]
            insert = (f"INSERT INTO {table} ({', '.join(columns)}) "
                      f"VALUES ({', '.join('?' * len(columns))})")
            copied[table] = 0
            while True:
                rows = cursor.fetchmany(BATCH)
                if not rows:
                    break
                writing.executemany(insert, [tuple(row) for row in rows])
                copied[table] += len(rows)
        if isinstance(target, PostgresDatabase):
            for table in NUMBERED:
                # Ids were given explicitly: the identity's next value must come after them.
                writing.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false)"
                    f" FROM {table}")
    return copied


def describe(copied: dict[str, Any]) -> str:
    return ", ".join(f"{count} {table}" for table, count in copied.items() if count)
