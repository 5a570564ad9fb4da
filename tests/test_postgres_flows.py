"""Every call flow of tests/test_flows.py again, the line's database on a real PostgreSQL
server: the same prompts, outcomes, records and messages as on the SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.test_flows as flow_tests
from tests.conftest import make_config
from voicebot.config import Config

for _name in dir(flow_tests):
    if _name.startswith("test_"):
        globals()[f"{_name}_on_postgres"] = getattr(flow_tests, _name)


@pytest.fixture
def config(tmp_path: Path, postgres_url: str) -> Config:
    """conftest's configuration, the database on the server (conftest's `line` and `caller` use it)."""
    return make_config(tmp_path, database=postgres_url)
