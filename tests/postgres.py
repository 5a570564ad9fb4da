"""A real PostgreSQL server for the tests (Debian ``postgresql``), private to the test run.

    server = start_postgres(tmp_folder)        # initdb + pg_ctl start on a free loopback port
    url = server.new_database("bank_a")        # postgresql://postgres@127.0.0.1:PORT/bank_a
    ...
    server.stop()

The ``postgres_server`` fixture (tests/conftest.py, session scope) starts one for the whole
run; ``postgres_url`` gives each test a database of its own. PostgreSQL refuses to run as root, so under root
(CI) the server runs as Debian's ``postgres`` user. ``fsync`` is off: the tests check
behaviour, not durability across power cuts, and it makes a database a few ms to create.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def postgres_bin() -> Path | None:
    """The newest installed server's bin folder (Debian keeps it out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def skip_unless_postgres() -> Path:
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql)")
    return bin_dir


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    bin_dir: Path
    folder: Path
    port: int
    run_as: list[str]
    _names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "test") -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), *args],
                              capture_output=True, text=True, timeout=60, check=check)

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate", "-w", check=False)

    def restart(self) -> None:
        """Stop (ending every client's connection, as a fail-over does) and start again. "fast",
        not "immediate": with fsync off, a crash could lose what was committed."""
        self.pg_ctl("stop", "-m", "fast", "-w")
        self.start()

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        started = self.pg_ctl("-o", options, "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start",
                              check=False)
        if started.returncode != 0:
            log = (self.folder / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start: {started.stdout}{started.stderr}\n{log}")


def start_postgres(folder: Path) -> PostgresServer:
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server not installed (apt-get install postgresql)")
    folder.mkdir(parents=True, exist_ok=True)
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb and postgres refuse root: the folder goes to Debian's postgres user.
        shutil.chown(folder, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(folder / "data"), "--auth=trust",
                    "--username=postgres", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
                   capture_output=True, text=True, timeout=120, check=True)
    server = PostgresServer(bin_dir, folder, _free_port(), run_as)
    server.start()
    return server


def route_opens_to_server(module: ModuleType, server: PostgresServer,
                          monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Make every database ``module``'s tests open by path a database on ``server``, one per path
    (a test that opens "the same file" twice gets the same database twice): so the SQL
    backends' own tests run again on PostgreSQL."""
    from voicebot.backends.sqlite import open_database

    urls: dict[str, str] = {}

    def open_on_server(path: str | Path) -> Any:
        if str(path).startswith("postgresql://"):
            return open_database(path)
        if str(path) not in urls:
            urls[str(path)] = server.new_database()
        return open_database(urls[str(path)])

    monkeypatch.setattr(module, "open_database", open_on_server)
    return urls


def dump_server(url: str) -> str:
    """Every row of every table of the database at ``url``, as text: what a leak check reads."""
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")]
        return "\n".join(f"{table}: {row!r}" for table in tables
                         for row in conn.execute(f'SELECT * FROM "{table}"'))


def guess_wrong_pins(url: str, start: Any, results: Any, cards: list[tuple[str, str]], limit: int,
                     tries: int) -> None:
    """One line instance (its own process and connection): for each (document, card) in turn,
    ``tries`` wrong PINs from its own caller ID, as fast as it can once every instance is at the
    ``start`` barrier; puts each card's outcomes on ``results``. Here, not in the test module: a
    spawned process imports only this light module."""
    from voicebot.backends.base import Document, DocumentType
    from voicebot.backends.sqlite import SqliteBank, open_database
    from voicebot.config import Lockout, Security
    from voicebot.masking import Secret

    database = open_database(url)
    # The card's limit only: the per-document and per-caller pauses would stop the guessers first.
    lockout = Lockout(max_pin_attempts=limit, failures_per_document=1000, failures_per_caller=1000)
    bank = SqliteBank(database, lockout=lockout, security=Security(scrypt_n=2**10))
    for document, last4 in cards:
        start.wait()
        outcomes = [bank.verify_card(Document(DocumentType.DNI, document), Secret(last4), Secret(f"{9000 + i}"),
                                     caller_id=f"+3460000{os.getpid() % 10000:04d}").result.value
                    for i in range(tries)]
        results.put((last4, outcomes))
    database.close()
