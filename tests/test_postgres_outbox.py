"""The outbox's own tests (tests/test_outbox.py) again, on a real PostgreSQL server: claims,
leases, retries and receipts behave the same whichever database the instances share."""

from __future__ import annotations

import pytest

import tests.test_outbox as outbox_tests
from tests.postgres import PostgresServer, route_opens_to_server

_ABOUT_THE_SQLITE_FILE = {
    "test_a_database_of_the_first_schema_is_upgraded_in_place",  # a SQLite file of schema 1
    "test_the_outbox_command_sends_what_is_due_and_shows_retries",  # the CLI on a file path
}
globals().update({name: getattr(outbox_tests, name) for name in ("clock", "outbox")})  # their fixtures
for _name in dir(outbox_tests):
    if _name.startswith("test_") and _name not in _ABOUT_THE_SQLITE_FILE:
        globals()[f"{_name}_on_postgres"] = getattr(outbox_tests, _name)


@pytest.fixture(autouse=True)
def _databases_on_the_server(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    route_opens_to_server(outbox_tests, postgres_server, monkeypatch)
