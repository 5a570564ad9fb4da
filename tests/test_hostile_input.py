"""Hostile caller input (issue 8): SQL metacharacters, Unicode tricks, control characters
and very long input where the line expects a choice, a document, a card, a PIN or an
operation reference. Each is a re-prompt, a no-match or an agent: never a crash, never
a changed bank, and nothing typed ends up executed or stored in clear."""

from __future__ import annotations

import sqlite3

import pytest

from .conftest import Caller

HOSTILE = [
    "12345678'; DROP TABLE customers;--",
    "1' OR '1'='1",
    "\" OR 1=1 --",
    "%' UNION SELECT pin_hash FROM cards --",
    "١٢٣٤٥٦٧٨",  # Arabic-Indic digits
    "１２３４５６７８",  # full-width digits
    "12\u200b34\u200b56\u200b78",  # zero-width spaces
    "\u202e87654321",  # right-to-left override
    "12345678\x00Z",
    "🔑🔑🔑🔑",
    "A" * 100_000,
    "9" * 10_000,
    "{document_number}{pin}",  # a template's own syntax
    "../../etc/passwd",
]


def bank_rows(caller: Caller) -> dict[str, int]:
    db = sqlite3.connect(caller.line.config.database)
    try:
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("customers", "cards", "phones", "operations", "codes")}
    finally:
        db.close()


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_at_every_kind_of_step_is_refused_without_harm(caller: Caller, text: str) -> None:
    before = bank_rows(caller)
    steps = {
        "a menu choice": [text],
        "a document number": ["1", "1", "1", text],
        "a card's last 4": ["1", "1", "1", "12345678", text],
        "a PIN": ["1", "1", "1", "12345678", "4567", text],
        "an operation reference": ["1", "2", text],
    }
    for where, script in steps.items():
        result = caller.call(["1", *script], caller_id="+34600000001")
        assert result.outcome in ("transferred", "caller_hung_up"), (where, result.transcript[-2000:])
        assert result.outcome != "credentials_sent"
        assert "Traceback" not in result.transcript, where
    assert bank_rows(caller) == before


def test_sql_text_in_a_caller_id_is_just_an_unknown_number(caller: Caller) -> None:
    before = bank_rows(caller)
    result = caller.call(["1", "2"], caller_id="'; DELETE FROM phones; --")
    assert result.outcome == "transferred"  # operation unlock needs a registered phone: an agent
    assert bank_rows(caller) == before


def test_a_document_in_other_decimal_digits_is_the_same_document() -> None:
    from voicebot.documents import Document

    assert Document.parse("dni", "１２３４５６７８") == Document.parse("dni", "١٢٣٤٥٦٧٨Z") == Document.parse("dni", "12345678")
    assert Document.parse("dni", "12345678").number.isascii()
