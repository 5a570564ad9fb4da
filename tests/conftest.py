"""Shared fixtures: a line over a real SQLite file in a temporary folder, a scripted caller, and a
real PostgreSQL server for the tests of the shared database."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.postgres import PostgresServer, skip_unless_postgres, start_postgres
from voicebot.app import Line
from voicebot.config import Config
from voicebot.transports.console import ConsoleCall

UNLOCK_LINE = "950183313"
SUPPORT_LINE = "901511000"


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    data: dict[str, Any] = {
        "database": str(tmp_path / "voicebot.sqlite3"),
        "logging": {"file": str(tmp_path / "voicebot.log"), "level": "DEBUG"},
        "security": {"scrypt_n": 2**10},  # the real cost is tested in test_sqlite_bank
    }
    data.update(overrides)
    return Config.model_validate(data)


@dataclass
class CallResult:
    record: dict[str, Any]
    transcript: str

    @property
    def outcome(self) -> str:
        return self.record["outcome"]

    @property
    def reason(self) -> str | None:
        return self.record["outcome_reason"]

    def prompts(self) -> list[str]:
        return [line.split("›", 1)[1].strip() for line in self.transcript.splitlines() if line.strip().startswith("IVR ›")]


class Caller:
    """Places console calls with a script: one list item per line the caller types."""

    def __init__(self, line: Line) -> None:
        self.line = line

    def call(
        self,
        script: list[str],
        caller_id: str | None = "+34600000001",
        dialed: str = UNLOCK_LINE,
        lang: str | None = None,
    ) -> CallResult:
        out = io.StringIO()
        self.line.phone.stream = out  # the demo phone and mailbox print into the transcript
        stdin = io.StringIO("".join(f"{item}\n" for item in script))
        record = ConsoleCall(self.line, caller_id=caller_id, dialed=dialed, language=lang,
                             stdin=stdin, out=out, interactive=False).run()
        return CallResult(record, out.getvalue())


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def line(config: Config) -> Iterator[Line]:
    from voicebot.logs import configure_logging

    configure_logging(config)
    line = Line.open(config, echo=io.StringIO())
    line.ensure_demo_bank()
    yield line
    line.close()


@pytest.fixture
def caller(line: Line) -> Caller:
    return Caller(line)


# A real PostgreSQL server (tests/postgres.py): one per run, a database per test.

@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    skip_unless_postgres()
    # Not pytest's tmp_path: its folders are 0700 under root, out of reach of the postgres user.
    folder = Path(tempfile.mkdtemp(prefix="voicebot-pg-"))
    os.chmod(folder, 0o755)
    server = start_postgres(folder / "cluster")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database()
