"""Every call flow of tests/test_flows.py again, the line's database on a real PostgreSQL
server: the same prompts, outcomes, records and messages as on the SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tests.test_flows as flow_tests
from tests.conftest import make_config
from voicebot.config import Config

# Every flow test but the both-languages, both-modes matrix of leaves (test_every_leaf,
# 128 calls): the database does the same work whatever the language or the mode, and the
# suite's time is better spent elsewhere. Its keyed Spanish half runs below.
for _name in dir(flow_tests):
    if _name.startswith("test_") and _name not in ("test_every_leaf", "test_support_line_leaves"):
        globals()[f"{_name}_on_postgres"] = getattr(flow_tests, _name)


@pytest.mark.parametrize("flow", sorted(flow_tests.SCRIPTS))
def test_every_leaf_by_keys_on_postgres(caller: Any, flow: str) -> None:
    flow_tests.test_every_leaf(caller, flow, "es", "keys")


@pytest.fixture
def config(tmp_path: Path, postgres_url: str) -> Config:
    """conftest's configuration, the database on the server (conftest's `line` and `caller` use it)."""
    return make_config(tmp_path, database=postgres_url)
