"""Backend faults mid-flow (issue 8): a bank or gateway that raises, times out or answers
garbage in the middle of a step leaves nothing half-done — no password reset without its
messages, no code without its SMS — and the caller hears an apology and goes to an agent.

The bank and outbox are the real SQLite ones; a fault is injected by a subclass that does
the real work and then fails, or answers with the wrong shape."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.conftest import Caller, make_config
from voicebot.actions import UnlockActions
from voicebot.app import Line
from voicebot.backends.base import Channel, CodePurpose, Contacts, Credentials, IssuedCode, OutgoingMessage
from voicebot.backends.sqlite import SqliteBank, SqliteOutbox
from voicebot.errors import BackendUnavailable
from voicebot.masking import Secret

ANA = "C001"  # demo customer with e-mail, mobile, an e-banking user and a blocked operation
ANA_OPERATION = "20261129001"
RECOVER = {"customer_id": ANA, "channel": "ebanking"}
UNLOCK_CODE = {"customer_id": ANA, "operation_reference": ANA_OPERATION}
SMS_KEY = {"customer_id": ANA, "operation_reference": ANA_OPERATION}


def state(line: Line) -> dict[str, list[tuple[Any, ...]]]:
    """What a step could leave behind: users' passwords, codes, signatures, queued messages."""
    with line.db.transaction(write=False) as conn:
        return {table: [tuple(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
                for table in ("online_users", "codes", "signatures", "outbox")}


class Fault(Exception):
    """Not a BackendError: an adapter's own failure that nobody translated."""


class FaultyBank(SqliteBank):
    """The real bank, with one method made to fail after (or instead of) doing its work."""

    def __init__(self, line: Line, method: str, fault: Callable[[Any], Any]) -> None:
        super().__init__(line.db, line.config.codes, line.config.lockout, line.config.security)
        real = getattr(self, method)
        setattr(self, method, lambda *args, **kwargs: fault(real(*args, **kwargs)))


class FaultyOutbox(SqliteOutbox):
    """The real outbox whose n-th queued message fails (the gateway's queue is down)."""

    def __init__(self, line: Line, fail_at: int) -> None:
        super().__init__(line.db)
        self._left = fail_at

    def _queue(self, channel: str, message: OutgoingMessage) -> str:
        self._left -= 1
        if self._left == 0:
            raise BackendUnavailable(f"the {channel} gateway is down")
        return super()._queue(channel, message)


def raises(exc: Exception) -> Callable[[Any], Any]:
    def fault(result: Any) -> Any:
        raise exc
    return fault


def returns(garbage: Any) -> Callable[[Any], Any]:
    return lambda result: garbage


def actions(line: Line, bank: SqliteBank | None = None, outbox: SqliteOutbox | None = None) -> UnlockActions:
    outbox = outbox or line.outbox
    return UnlockActions(bank or line.bank, outbox, outbox, line.config, messages_queued=line.sender.send_due)


FUTURE = Credentials("agarcia", Secret("Tmp4Pass"), expires_at=__import__("datetime").datetime(2030, 1, 1))

BANK_FAULTS = {
    "raises after the change": raises(BackendUnavailable("the bank timed out")),
    "an untranslated exception": raises(Fault("socket closed")),
    "a reply of None": returns(None),
    "a dict for a reply": returns({"username": "agarcia", "temporary_password": "x"}),
    "credentials without a password": returns(Credentials("agarcia", Secret(""), FUTURE.expires_at)),
    "a password in clear, not a Secret": returns(Credentials("agarcia", "Tmp4Pass", FUTURE.expires_at)),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("fault", BANK_FAULTS.values(), ids=BANK_FAULTS.keys())
def test_a_recovery_the_bank_fails_changes_nothing_and_sends_nothing(line: Line, fault: Callable[[Any], Any]) -> None:
    before = state(line)
    outcome = actions(line, FaultyBank(line, "recover_user", fault)).run("recover_user", RECOVER, "es")
    assert outcome.result == "error"
    assert state(line) == before  # the new password was rolled back with everything else


@pytest.mark.parametrize("fail_at", [1, 2], ids=["e-mail queue down", "SMS queue down after the e-mail"])
def test_a_recovery_whose_message_cannot_be_queued_is_undone(line: Line, fail_at: int) -> None:
    before = state(line)
    outcome = actions(line, outbox=FaultyOutbox(line, fail_at)).run("recover_user", RECOVER, "es")
    assert outcome.result == "error" and "gateway is down" in outcome.detail
    assert state(line) == before


CODE_FAULTS = {
    "raises": raises(BackendUnavailable("the bank timed out")),
    "a reply of None": returns(None),
    "a code that is not digits": returns(IssuedCode(CodePurpose.OPERATION_UNLOCK, ANA_OPERATION, Secret("abc"),
                                                    FUTURE.expires_at)),
    "a code in clear": returns(IssuedCode(CodePurpose.OPERATION_UNLOCK, ANA_OPERATION, "123456",  # type: ignore[arg-type]
                                          FUTURE.expires_at)),
}


@pytest.mark.parametrize("fault", CODE_FAULTS.values(), ids=CODE_FAULTS.keys())
@pytest.mark.parametrize("step, args", [("operation_unlock_code", UNLOCK_CODE), ("sms_signature_key", SMS_KEY)])
def test_a_code_the_bank_fails_to_issue_leaves_no_live_code(line: Line, fault: Callable[[Any], Any],
                                                           step: str, args: dict[str, str]) -> None:
    before = state(line)
    outcome = actions(line, FaultyBank(line, "issue_code", fault)).run(step, args, "es")
    assert outcome.result == "error" and "sms_key" not in outcome.data
    assert state(line) == before


def test_an_unlock_code_whose_sms_cannot_be_queued_is_not_issued(line: Line) -> None:
    before = state(line)
    outcome = actions(line, outbox=FaultyOutbox(line, 1)).run("operation_unlock_code", UNLOCK_CODE, "es")
    assert outcome.result == "error"
    assert state(line) == before  # the code row went with the SMS that could not be queued


@pytest.mark.parametrize("garbage", [None, "C001", Contacts(ANA, "Ana", 42, "+34600000001", "es")],  # type: ignore[arg-type]
                         ids=["None", "a string", "an e-mail that is a number"])
def test_garbage_contacts_are_a_fault_not_data(line: Line, garbage: Any) -> None:
    before = state(line)
    outcome = actions(line, FaultyBank(line, "contacts", returns(garbage))).run("recover_user", RECOVER, "es")
    assert outcome.result == "error" and outcome.detail.startswith(("BackendReplyError", "unusable data"))
    assert state(line) == before


@pytest.mark.parametrize("garbage", [None, "ok", object()], ids=["None", "a string", "an object"])
def test_a_garbage_verification_is_never_taken_for_a_match(line: Line, garbage: Any) -> None:
    args = {"document_type": "dni", "document_number": "12345678", "card_last4": Secret("4567"), "pin": Secret("1234")}
    outcome = actions(line, FaultyBank(line, "verify_card", returns(garbage))).run("verify_card", args, "es")
    assert outcome.result == "error" and "customer_id" not in outcome.data


def test_the_backend_fault_logs_name_the_kind_of_fault_not_its_text(line: Line, tmp_path: Path) -> None:
    secret_in_message = Fault("PIN 1234 refused for card 4567")
    actions(line, FaultyBank(line, "recover_user", raises(secret_in_message))).run("recover_user", RECOVER, "es")
    log = Path(line.config.logging.file).read_text()  # type: ignore[arg-type]
    assert "unexpected Fault" in log and "1234" not in log and "refused" not in log


# ---------------------------------------------------------------------- too slow


class SlowBank(SqliteBank):
    """The real bank, answering ``delay`` seconds late (after doing the work)."""

    def __init__(self, line: Line, delay: float) -> None:
        super().__init__(line.db, line.config.codes, line.config.lockout, line.config.security)
        self.delay = delay

    def recover_user(self, customer_id: str, channel: Channel) -> Credentials:
        credentials = super().recover_user(customer_id, channel)
        time.sleep(self.delay)
        return credentials

    def issue_code(self, customer_id: str, purpose: CodePurpose, reference: str) -> IssuedCode:
        issued = super().issue_code(customer_id, purpose, reference)
        time.sleep(self.delay)
        return issued


@pytest.fixture
def quick_line(tmp_path: Path) -> Line:
    line = Line.open(make_config(tmp_path, timeouts={"action": 0.3}))
    line.ensure_demo_bank()
    return line


@pytest.mark.parametrize("step, args", [("recover_user", RECOVER), ("operation_unlock_code", UNLOCK_CODE)])
def test_a_step_past_its_time_is_undone(quick_line: Line, step: str, args: dict[str, str]) -> None:
    before = state(quick_line)
    outcome = actions(quick_line, SlowBank(quick_line, 0.5)).run(step, args, "es")
    assert outcome.result == "error" and "took longer than 0.3 s" in outcome.detail
    assert state(quick_line) == before


def test_a_step_in_time_is_kept_and_its_messages_sent(quick_line: Line) -> None:
    outcome = actions(quick_line, SlowBank(quick_line, 0.0)).run("recover_user", RECOVER, "es")
    assert outcome.result == "sent"
    assert [m["status"] for m in quick_line.outbox.list_messages()] == ["delivered", "delivered"]


# ---------------------------------------------------------------------- what the caller hears


def test_a_caller_whose_recovery_fails_mid_way_hears_an_apology_and_goes_to_an_agent(line: Line) -> None:
    line.actions = actions(line, outbox=FaultyOutbox(line, 2))  # the SMS with the password cannot be queued
    before = state(line)
    result = Caller(line).call(["1", "1", "1", "1", "12345678", "4567", "1234"])  # Spanish, user, e-banking, DNI
    assert result.outcome == "transferred" and result.reason == "backend_error"
    assert line.menu.texts["backend_error"]["es"] in result.transcript
    assert "[SMS" not in result.transcript and "[E-mail" not in result.transcript
    assert state(line)["online_users"] == before["online_users"] and state(line)["outbox"] == before["outbox"]
    assert result.record["actions"][-1]["result"] == "error"


def test_a_traceback_in_the_log_has_its_digit_runs_scrubbed(line: Line) -> None:
    import logging

    try:
        raise Fault("card 4567 with PIN 1234 refused")
    except Fault:
        logging.getLogger("voicebot.test").exception("an adapter failed")
    log = Path(line.config.logging.file).read_text()  # type: ignore[arg-type]
    assert "an adapter failed" in log and "Fault: card #### with PIN #### refused" in log
    assert "1234" not in log and "4567" not in log


def test_a_step_that_waited_past_its_time_for_a_worker_is_not_run(quick_line: Line) -> None:
    before = state(quick_line)
    outcome = quick_line.actions.run("recover_user", RECOVER, "es", asked_at=time.monotonic() - 1.0)
    assert outcome.result == "error" and "waited too long to start" in outcome.detail
    assert state(quick_line) == before


def test_a_step_whose_messages_cannot_be_handed_over_now_is_still_done(line: Line) -> None:
    def down() -> None:
        raise BackendUnavailable("the database is busy")

    outcome = UnlockActions(line.bank, line.outbox, line.outbox, line.config, messages_queued=down).run(
        "recover_user", RECOVER, "es")
    assert outcome.result == "sent"  # committed: the caller is told so, the sender retries later
    assert [m["status"] for m in line.outbox.list_messages()] == ["queued", "queued"]
