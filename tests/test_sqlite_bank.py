"""The embedded SQLite backends: bank, outbox, agent desk, call log."""

from __future__ import annotations

import io
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from voicebot.backends import sqlite as sqlite_backend
from voicebot.backends.base import (
    AgentDesk,
    BankingBackend,
    BlockedOperation,
    CallLog,
    Channel,
    CodePurpose,
    Document,
    DocumentType,
    EmailGateway,
    OutgoingMessage,
    SmsGateway,
    TransferTicket,
    VerifyResult,
)
from voicebot.backends.seed import BankSeed, seed_bank
from voicebot.backends.sqlite import (
    PASSWORD_ALPHABET,
    Database,
    SqliteAgentDesk,
    SqliteBank,
    SqliteCallLog,
    SqliteOutbox,
    open_database,
)
from voicebot.config import Codes, Lockout, Outbox, Security
from voicebot.outbox import DemoPhone, OutboxSender
from voicebot.errors import BackendError
from voicebot.masking import Secret

FAST = Security(scrypt_n=2**10)
START = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)

# Values chosen to share no digits run with anything else stored, so a leak check is exact.
ONE = Document(DocumentType.DNI, "00000000T")
TWO = Document(DocumentType.NIE, "Y0000000Z")
CARD, PIN = "8642", "7391"
OTHER_CARD, OTHER_PIN = "2468", "9753"
REFERENCE = "998877"

SEED = {
    "customers": [
        {
            "id": "C1",
            "name": "Test One",
            "document": {"type": "dni", "number": ONE.number},
            "language": "es",
            "email": "one@example.com",
            "mobile": "+34611222333",
            "phones": ["+34611222333", "+34955666777"],
            "cards": [{"last4": CARD, "pin": PIN}, {"last4": OTHER_CARD, "pin": OTHER_PIN}],
            "users": {"ebanking": "one", "phone": "one.tel"},
            "signature_blocked": True,
            "blocked_operations": [{"reference": REFERENCE, "description": "Rent", "amount": "250.00 EUR"}],
        },
        {
            "id": "C2",
            "name": "Test Two",
            "document": {"type": "nie", "number": TWO.number},
            "language": "en",
            "phones": ["+34955666888"],
            "cards": [{"last4": "5151", "pin": "6262"}],
            "users": {"ebanking": "two"},
            "blocked_operations": [{"reference": "776655", "description": "Bizum", "amount": "40.00 EUR"}],
        },
    ]
}


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "voicebot.sqlite3"


@pytest.fixture
def db(db_path: Path):
    database = open_database(db_path)
    yield database
    database.close()


def make_bank(db: Database, clock: FakeClock, **overrides) -> SqliteBank:
    settings = {"codes": Codes(), "lockout": Lockout(), "security": FAST, **overrides}
    return SqliteBank(db, clock=clock, **settings)


@pytest.fixture
def bank(db: Database, clock: FakeClock) -> SqliteBank:
    seeded = make_bank(db, clock)
    seed_bank(seeded, BankSeed.model_validate(SEED))
    return seeded


def verify(bank: SqliteBank, document: Document = ONE, last4: str = CARD, pin: str = PIN):
    return bank.verify_card(document, Secret(last4), Secret(pin))


def dump(db_path: Path) -> str:
    conn = sqlite3.connect(db_path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


# --------------------------------------------------------------------------- database


def test_open_creates_parents_and_schema_idempotently(db_path: Path) -> None:
    open_database(db_path).close()
    with open_database(db_path) as again:
        with again.transaction(write=False) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_backend.SCHEMA_VERSION
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"customers", "phones", "cards", "online_users", "signatures", "operations", "codes"} <= tables
    assert {"outbox", "handoffs", "calls"} <= tables


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    open_database(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(BackendError, match="newer"):
        open_database(db_path)


def test_a_closed_database_raises_backend_error(db: Database, clock: FakeClock) -> None:
    bank = make_bank(db, clock)
    db.close()
    with pytest.raises(BackendError, match="closed"):
        bank.contacts("C1")


def test_backends_satisfy_the_protocols(db: Database, bank: SqliteBank) -> None:
    outbox = SqliteOutbox(db)
    assert isinstance(bank, BankingBackend)
    assert isinstance(outbox, SmsGateway) and isinstance(outbox, EmailGateway)
    assert isinstance(SqliteAgentDesk(db, "sip:agents@bank.invalid"), AgentDesk)
    assert isinstance(SqliteCallLog(db), CallLog)


# --------------------------------------------------------------------------- verification


def test_right_card_and_pin_is_ok_with_the_customer_id(bank: SqliteBank) -> None:
    result = verify(bank)
    assert result.result is VerifyResult.OK
    assert result.customer_id == "C1"
    assert verify(bank, last4=OTHER_CARD, pin=OTHER_PIN).customer_id == "C1"
    assert verify(bank, TWO, "5151", "6262").customer_id == "C2"


@pytest.mark.parametrize(
    "document, last4, pin",
    [
        (ONE, CARD, "0000"),  # wrong PIN
        (ONE, "1357", PIN),  # no such card
        (ONE, "5151", "6262"),  # another customer's card
        (Document(DocumentType.DNI, "12345678Z"), CARD, PIN),  # unknown document
        (Document(DocumentType.NIE, ONE.number), CARD, PIN),  # right number, wrong type
        (ONE, "86", PIN),  # not four digits
    ],
)
def test_every_wrong_factor_is_the_same_mismatch(bank: SqliteBank, document: Document, last4: str, pin: str) -> None:
    result = verify(bank, document, last4, pin)
    assert result.result is VerifyResult.MISMATCH
    assert result.customer_id is None


@pytest.mark.parametrize(
    "document, last4, pin",
    [(ONE, CARD, PIN), (ONE, CARD, "0000"), (ONE, "1357", PIN), (Document(DocumentType.DNI, "12345678Z"), CARD, PIN)],
)
def test_every_path_computes_exactly_one_hash(
    bank: SqliteBank, monkeypatch: pytest.MonkeyPatch, document: Document, last4: str, pin: str
) -> None:
    # Equal work on every path is what keeps the timing from telling which factor was wrong.
    calls = []
    real = sqlite_backend.check_secret
    monkeypatch.setattr(sqlite_backend, "check_secret", lambda clear, stored: calls.append(1) or real(clear, stored))
    verify(bank, document, last4, pin)
    assert len(calls) == 1


def test_wrong_pins_count_across_reopening_and_lock_at_the_limit(db_path: Path, bank: SqliteBank, clock: FakeClock) -> None:
    assert verify(bank, pin="0000").result is VerifyResult.MISMATCH
    assert verify(bank, pin="0001").result is VerifyResult.MISMATCH
    bank.db.close()

    with open_database(db_path) as reopened:
        bank = make_bank(reopened, clock, lockout=Lockout(max_pin_attempts=3))
        assert verify(bank, pin="0002").result is VerifyResult.LOCKED
        # The right PIN does not open a locked card, and the other card is unaffected.
        assert verify(bank).result is VerifyResult.LOCKED
        assert verify(bank, last4=OTHER_CARD, pin=OTHER_PIN).result is VerifyResult.OK
        with reopened.transaction(write=False) as conn:
            card = conn.execute("SELECT failed_attempts, locked_at FROM cards WHERE last4 = ?", (CARD,)).fetchone()
        assert card["failed_attempts"] == 3
        assert card["locked_at"] == START.isoformat()
        assert bank.list_customers()[0]["cards_locked"] == 1


def test_a_right_pin_resets_the_counter(bank: SqliteBank) -> None:
    verify(bank, pin="0000")
    verify(bank, pin="0000")
    assert verify(bank).result is VerifyResult.OK
    assert verify(bank, pin="0000").result is VerifyResult.MISMATCH
    assert verify(bank, pin="0000").result is VerifyResult.MISMATCH


def test_the_limit_comes_from_the_configuration(db: Database, clock: FakeClock, bank: SqliteBank) -> None:
    strict = make_bank(db, clock, lockout=Lockout(max_pin_attempts=1))
    assert verify(strict, pin="0000").result is VerifyResult.LOCKED


def test_an_operator_can_unlock_a_card(bank: SqliteBank) -> None:
    for _ in range(3):
        verify(bank, pin="0000")
    assert verify(bank).result is VerifyResult.LOCKED
    bank.unlock_card("C1", CARD)
    assert verify(bank).result is VerifyResult.OK
    with pytest.raises(BackendError):
        bank.unlock_card("C1", "1357")


def test_concurrent_wrong_pins_are_all_counted(db: Database, clock: FakeClock, bank: SqliteBank) -> None:
    bank = make_bank(db, clock, lockout=Lockout(max_pin_attempts=8, failures_per_document=100))
    results = []
    threads = [threading.Thread(target=lambda: results.append(verify(bank, pin="0000").result)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted([VerifyResult.MISMATCH] * 7 + [VerifyResult.LOCKED])


def test_guessing_across_cards_and_callers_pauses_the_document(db_path: Path, db: Database, clock: FakeClock) -> None:
    # A guesser spreads wrong PINs over the customer's two cards (under each card's lock)
    # and over many caller IDs: the document's own count pauses it, across a restart.
    bank = make_bank(db, clock, lockout=Lockout(max_pin_attempts=3, failures_per_document=4,
                                                document_window_minutes=60, failures_per_caller=100))
    seed_bank(bank, BankSeed.model_validate(SEED))
    for attempt, card in enumerate([CARD, OTHER_CARD, CARD, OTHER_CARD]):
        result = bank.verify_card(ONE, Secret(card), Secret("0000"), caller_id=f"+3460000000{attempt}")
        assert result.result is VerifyResult.MISMATCH
    db.close()
    with open_database(db_path) as reopened:
        again = make_bank(reopened, clock, lockout=Lockout(max_pin_attempts=3, failures_per_document=4,
                                                           document_window_minutes=60, failures_per_caller=100))
        paused = again.verify_card(ONE, Secret(CARD), Secret(PIN), caller_id="+34699999999")
        assert paused.result is VerifyResult.PAUSED and paused.customer_id is None  # even the right PIN
        assert again.verify_card(TWO, Secret("5151"), Secret("6262")).result is VerifyResult.OK  # others are not
        clock.advance(minutes=61)
        assert again.verify_card(ONE, Secret(CARD), Secret(PIN)).result is VerifyResult.OK  # the window passed


def test_one_caller_guessing_many_documents_is_paused(db: Database, clock: FakeClock) -> None:
    bank = make_bank(db, clock, lockout=Lockout(failures_per_caller=3, caller_window_minutes=30,
                                                failures_per_document=100))
    seed_bank(bank, BankSeed.model_validate(SEED))
    documents = [Document.parse("dni", f"{n:08d}") for n in (11111111, 22222222, 33333333)]
    for document in documents:
        assert bank.verify_card(document, Secret("1234"), Secret("1234"), caller_id="+34 600 000 001").result \
            is VerifyResult.MISMATCH
    # The same number however written; a right answer does not get through either.
    assert bank.verify_card(ONE, Secret(CARD), Secret(PIN), caller_id="0034600000001").result is VerifyResult.PAUSED
    assert bank.verify_card(ONE, Secret(CARD), Secret(PIN), caller_id="+34600000002").result is VerifyResult.OK
    assert bank.verify_card(ONE, Secret(CARD), Secret(PIN)).result is VerifyResult.OK  # no caller ID: the document's count
    clock.advance(minutes=31)
    assert bank.verify_card(ONE, Secret(CARD), Secret(PIN), caller_id="+34600000001").result is VerifyResult.OK


def test_the_failure_table_holds_no_caller_id_or_document(db_path: Path, db: Database, clock: FakeClock) -> None:
    bank = make_bank(db, clock)
    seed_bank(bank, BankSeed.model_validate(SEED))
    bank.verify_card(ONE, Secret(CARD), Secret("0000"), caller_id="+34611222333")
    rows = db_rows(db, "SELECT * FROM verification_failures")
    assert len(rows) == 2
    text = repr(rows)
    assert "611222333" not in text and ONE.number not in text and "one" not in text.lower()


def db_rows(db: Database, query: str) -> list[tuple]:
    with db.transaction(write=False) as conn:
        return [tuple(row) for row in conn.execute(query)]


# --------------------------------------------------------------------------- customers


def test_contacts_and_unknown_customer(bank: SqliteBank) -> None:
    contacts = bank.contacts("C1")
    assert (contacts.name, contacts.email, contacts.mobile, contacts.language) == (
        "Test One",
        "one@example.com",
        "+34611222333",
        "es",
    )
    assert bank.contacts("C2").email is None and bank.contacts("C2").mobile is None
    with pytest.raises(BackendError, match="unknown customer"):
        bank.contacts("C999")


@pytest.mark.parametrize("caller", ["+34611222333", "611222333", "0034 611 222 333", "955-666-777"])
def test_customer_by_phone_normalises_the_caller_id(bank: SqliteBank, caller: str) -> None:
    assert bank.customer_by_phone(caller) == "C1"


def test_customer_by_phone_unknown_or_shared_is_none(db: Database, bank: SqliteBank) -> None:
    assert bank.customer_by_phone("+34600999999") is None
    assert bank.customer_by_phone("") is None
    with db.transaction() as conn:
        conn.execute("INSERT INTO phones (customer_id, number) VALUES ('C2', '611222333')")
    assert bank.customer_by_phone("611222333") is None


def test_find_customer_by_id_or_document(bank: SqliteBank) -> None:
    assert bank.find_customer("C2") == "C2"
    assert bank.find_customer("00000000T") == "C1"
    assert bank.find_customer("00000000") == "C1"  # the letter is computed
    assert bank.find_customer("y0000000z") == "C2"
    assert bank.find_customer("12345678Z") is None


def test_unlock_signature(bank: SqliteBank) -> None:
    assert bank.list_customers()[0]["signature_blocked"] is True
    bank.unlock_signature("C1")
    bank.unlock_signature("C2")  # already unblocked: no error
    assert [c["signature_blocked"] for c in bank.list_customers()] == [False, False]
    with pytest.raises(BackendError):
        bank.unlock_signature("C999")


def test_blocked_operation(bank: SqliteBank) -> None:
    assert bank.blocked_operation("C1", REFERENCE) == BlockedOperation(REFERENCE, "Rent", "250.00 EUR")
    assert bank.blocked_operation("C1", "776655") is None  # another customer's
    assert bank.blocked_operation("C1", "111") is None
    with pytest.raises(BackendError):
        bank.blocked_operation("C999", REFERENCE)


# --------------------------------------------------------------------------- credentials


def test_recover_user_issues_a_hashed_expiring_must_change_password(
    db: Database, bank: SqliteBank, clock: FakeClock
) -> None:
    credentials = bank.recover_user("C1", Channel.PHONE)
    password = credentials.temporary_password.reveal()
    assert credentials.username == "one.tel"
    assert credentials.must_change is True
    assert len(password) == Codes().temporary_password_length
    assert set(password) <= set(PASSWORD_ALPHABET) and not set(password) & set("0Oo1lI")
    assert credentials.expires_at == START + timedelta(minutes=Codes().temporary_password_minutes)
    with db.transaction(write=False) as conn:
        row = conn.execute("SELECT * FROM online_users WHERE username = 'one.tel'").fetchone()
    assert row["must_change"] == 1
    assert row["temp_expires_at"] == credentials.expires_at.isoformat()
    assert row["temp_password_hash"].startswith("scrypt$")
    assert sqlite_backend.check_secret(password, row["temp_password_hash"])
    assert bank.list_customers()[0]["users"]["phone"]["must_change"] is True
    assert bank.list_customers()[0]["users"]["ebanking"]["must_change"] is False


def test_passwords_are_random_and_configurable(db: Database, clock: FakeClock, bank: SqliteBank) -> None:
    long = make_bank(db, clock, codes=Codes(temporary_password_length=12, temporary_password_minutes=60))
    first = long.recover_user("C1", Channel.EBANKING)
    second = long.recover_user("C1", Channel.EBANKING)
    assert len(first.temporary_password) == 12
    assert first.temporary_password != second.temporary_password
    assert first.expires_at == START + timedelta(minutes=60)


def test_recover_user_without_that_channel_is_a_backend_error(bank: SqliteBank) -> None:
    with pytest.raises(BackendError, match="no phone user") as raised:
        bank.recover_user("C2", Channel.PHONE)
    assert "C2" in str(raised.value)
    with pytest.raises(BackendError):
        bank.recover_user("C999", Channel.EBANKING)


def test_confirm_password_change_clears_the_temporary_password(db: Database, bank: SqliteBank) -> None:
    bank.recover_user("C1", Channel.EBANKING)
    bank.recover_user("C1", Channel.PHONE)
    contacts = bank.confirm_password_change("C1")
    assert contacts.customer_id == "C1" and contacts.mobile == "+34611222333"
    with db.transaction(write=False) as conn:
        rows = conn.execute("SELECT * FROM online_users WHERE customer_id = 'C1'").fetchall()
    assert [(r["must_change"], r["temp_password_hash"]) for r in rows] == [(0, None), (0, None)]
    with pytest.raises(BackendError):
        bank.confirm_password_change("C999")


# --------------------------------------------------------------------------- codes

UNLOCK = CodePurpose.OPERATION_UNLOCK
SMS_KEY = CodePurpose.SMS_SIGNATURE_KEY


def test_codes_are_random_digits_of_the_configured_length(db: Database, clock: FakeClock, bank: SqliteBank) -> None:
    bank = make_bank(db, clock, codes=Codes(unlock_code_length=8, sms_key_length=5))
    unlock = bank.issue_code("C1", UNLOCK, REFERENCE)
    key = bank.issue_code("C1", SMS_KEY, REFERENCE)
    assert (unlock.purpose, unlock.reference) == (UNLOCK, REFERENCE)
    assert len(unlock.code) == 8 and unlock.code.reveal().isdigit()
    assert len(key.code) == 5 and key.code.reveal().isdigit()
    assert unlock.expires_at == START + timedelta(minutes=Codes().unlock_code_minutes)
    assert key.expires_at == START + timedelta(minutes=Codes().sms_key_minutes)
    many = {bank.issue_code("C1", UNLOCK, REFERENCE).code.reveal() for _ in range(20)}
    assert len(many) > 15


def test_a_code_redeems_once(bank: SqliteBank) -> None:
    issued = bank.issue_code("C1", UNLOCK, REFERENCE)
    assert bank.redeem_code("C1", UNLOCK, REFERENCE, issued.code) is True
    assert bank.redeem_code("C1", UNLOCK, REFERENCE, issued.code) is False


def test_a_code_expires(bank: SqliteBank, clock: FakeClock) -> None:
    issued = bank.issue_code("C1", UNLOCK, REFERENCE)
    clock.advance(minutes=Codes().unlock_code_minutes, seconds=-1)
    live = bank.issue_code("C1", SMS_KEY, REFERENCE)
    clock.advance(seconds=1)
    assert bank.redeem_code("C1", UNLOCK, REFERENCE, issued.code) is False
    assert bank.redeem_code("C1", SMS_KEY, REFERENCE, live.code) is True


def test_a_code_is_bound_to_customer_purpose_and_reference(db: Database, bank: SqliteBank) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO operations VALUES ('C1', '554433', 'Other', '1.00 EUR', 1)")
    issued = bank.issue_code("C1", UNLOCK, REFERENCE)
    assert bank.redeem_code("C2", UNLOCK, REFERENCE, issued.code) is False
    assert bank.redeem_code("C1", SMS_KEY, REFERENCE, issued.code) is False
    assert bank.redeem_code("C1", UNLOCK, "554433", issued.code) is False
    assert bank.redeem_code("C1", UNLOCK, REFERENCE, issued.code) is True


def test_a_new_code_invalidates_the_earlier_one(bank: SqliteBank) -> None:
    first = bank.issue_code("C1", UNLOCK, REFERENCE)
    second = bank.issue_code("C1", UNLOCK, REFERENCE)
    if first.code == second.code:  # one chance in a million: nothing to tell apart
        pytest.skip("the two random codes happen to be equal")
    assert bank.redeem_code("C1", UNLOCK, REFERENCE, first.code) is False
    assert bank.redeem_code("C1", UNLOCK, REFERENCE, second.code) is True


def test_a_code_is_burnt_after_too_many_wrong_tries(bank: SqliteBank) -> None:
    issued = bank.issue_code("C1", UNLOCK, REFERENCE)
    wrong = Secret("x" * len(issued.code))
    for _ in range(Lockout().max_pin_attempts):
        assert bank.redeem_code("C1", UNLOCK, REFERENCE, wrong) is False
    assert bank.redeem_code("C1", UNLOCK, REFERENCE, issued.code) is False


def test_codes_only_for_the_customers_blocked_operations(db: Database, bank: SqliteBank) -> None:
    with pytest.raises(BackendError, match="no blocked operation"):
        bank.issue_code("C1", UNLOCK, "776655")  # C2's operation
    with pytest.raises(BackendError):
        bank.issue_code("C999", UNLOCK, REFERENCE)
    with db.transaction() as conn:
        conn.execute("UPDATE operations SET blocked = 0 WHERE reference = ?", (REFERENCE,))
    with pytest.raises(BackendError):
        bank.issue_code("C1", SMS_KEY, REFERENCE)


# --------------------------------------------------------------------------- secrets at rest


def test_no_clear_secret_is_ever_stored(db: Database, db_path: Path, bank: SqliteBank) -> None:
    outbox = SqliteOutbox(db)
    verify(bank)
    verify(bank, last4=OTHER_CARD, pin="0000")
    password = bank.recover_user("C1", Channel.EBANKING).temporary_password
    unlock = bank.issue_code("C1", UNLOCK, REFERENCE).code
    key = bank.issue_code("C1", SMS_KEY, REFERENCE).code
    outbox.send_sms(OutgoingMessage("+34611222333", "Password {password}", {"password": password}))
    outbox.send_email(OutgoingMessage("one@example.com", "Code {code}", {"code": unlock}, subject="Code"))
    bank.redeem_code("C1", UNLOCK, REFERENCE, unlock)
    assert OutboxSender(outbox, DemoPhone(io.StringIO())).send_due().sent == 2

    stored = dump(db_path)
    assert "scrypt$" in stored
    for clear in (PIN, OTHER_PIN, "6262", password.reveal(), unlock.reveal(), key.reveal()):
        assert clear not in stored


def test_the_default_cost_is_used_for_new_hashes(db: Database, clock: FakeClock) -> None:
    bank = SqliteBank(db, Codes(), Lockout(), Security(), clock=clock)
    seed_bank(bank, BankSeed.model_validate(SEED))
    with db.transaction(write=False) as conn:
        pin_hash = conn.execute("SELECT pin_hash FROM cards WHERE last4 = ?", (CARD,)).fetchone()[0]
    assert pin_hash.startswith(f"scrypt${2**14}$8$1$")
    assert verify(bank).result is VerifyResult.OK


def test_hashes_are_salted_and_self_describing() -> None:
    first, second = sqlite_backend.hash_secret(PIN, 2**10), sqlite_backend.hash_secret(PIN, 2**10)
    assert first != second
    assert sqlite_backend.check_secret(PIN, first) and sqlite_backend.check_secret(PIN, second)
    assert not sqlite_backend.check_secret("7392", first)
    for broken in ("plain", "scrypt$1024$8$1$!!$!!", "scrypt$1000$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA=="):
        with pytest.raises(ValueError):
            sqlite_backend.check_secret(PIN, broken)


# --------------------------------------------------------------------------- outbox


def test_outbox_delivers_masks_and_forgets_the_clear_text(db: Database, clock: FakeClock) -> None:
    echo = io.StringIO()
    outbox = SqliteOutbox(db, clock=clock)
    sms = OutgoingMessage("+34611222333", "Your code is {code}", {"code": Secret("482916")}, language="en")
    mail = OutgoingMessage("one@example.com", "Your user is {user}", {"user": "one"}, subject="User")

    assert outbox.send_sms(sms) == "outbox-1"
    assert outbox.send_email(mail) == "outbox-2"
    assert echo.getvalue() == "" and outbox.pending() == 2  # queued: nothing is sent by queueing
    assert OutboxSender(outbox, DemoPhone(echo)).send_due().sent == 2

    assert echo.getvalue().splitlines() == [
        "[SMS to +34611222333] Your code is 482916",
        "[E-mail to one@example.com] User: Your user is one",
    ]
    messages = outbox.list_messages()
    assert [m["id"] for m in messages] == ["outbox-2", "outbox-1"]
    assert messages[1]["body"] == "Your code is ****"
    assert messages[1]["channel"] == "sms" and messages[1]["language"] == "en"
    assert {m["status"] for m in messages} == {"delivered"}
    assert {m["attempts"] for m in messages} == {1}
    assert messages[1]["delivered_at"] == START.isoformat()
    assert messages[1]["provider_id"].startswith("demo-")
    assert outbox.list_messages(limit=1)[0]["id"] == "outbox-2"
    with db.transaction(write=False) as conn:
        assert conn.execute("SELECT COUNT(*) FROM outbox WHERE body_clear IS NOT NULL").fetchone()[0] == 0


def test_outbox_without_echo_and_without_recipient(db: Database) -> None:
    outbox = SqliteOutbox(db)
    assert outbox.send_sms(OutgoingMessage("+34611222333", "hi")).startswith("outbox-")
    assert OutboxSender(outbox, DemoPhone(None)).send_due().sent == 1
    with pytest.raises(BackendError, match="no recipient"):
        outbox.send_sms(OutgoingMessage("", "hi"))


def test_a_failed_delivery_waits_for_a_retry_and_a_given_up_one_forgets_the_clear_text(
        db: Database, clock: FakeClock) -> None:
    echo = io.StringIO()
    echo.close()
    outbox = SqliteOutbox(db, clock=clock)
    sender = OutboxSender(outbox, DemoPhone(echo), Outbox(give_up_minutes=30))
    outbox.send_sms(OutgoingMessage("+34611222333", "Code {code}", {"code": Secret("482916")}))
    assert sender.send_due().retrying == 1
    [message] = outbox.list_messages()
    assert message["status"] == "queued" and message["attempts"] == 1
    assert "cannot print" in message["last_error"] and message["next_attempt_at"] > START.isoformat()
    clock.advance(minutes=31)
    assert sender.send_due().failed == 1
    assert outbox.list_messages()[0]["status"] == "failed"
    with db.transaction(write=False) as conn:
        assert conn.execute("SELECT body_clear FROM outbox").fetchone()[0] is None


# --------------------------------------------------------------------------- agents and calls


def test_agent_desk_records_the_hand_off(db: Database) -> None:
    desk = SqliteAgentDesk(db, "sip:agents@bank.invalid")
    ticket = desk.hand_off("cif_or_passport", {"call_id": "call-1", "language": "es", "steps": ["main"]})
    assert ticket == TransferTicket("sip:agents@bank.invalid", "handoff-1")
    assert desk.recent()[0]["context"] == {"call_id": "call-1", "language": "es", "steps": ["main"]}
    assert desk.recent()[0]["reason"] == "cif_or_passport"


def test_agent_desk_refuses_secrets(db: Database) -> None:
    desk = SqliteAgentDesk(db, "sip:agents@bank.invalid")
    with pytest.raises(ValueError, match="secrets"):
        desk.hand_off("locked", {"entered": [{"pin": Secret(PIN)}]})
    assert desk.recent() == []


def call_record(call_id: str, **extra) -> dict:
    return {
        "call_id": call_id,
        "started_at": "2026-03-01T09:00:00+00:00",
        "ended_at": "2026-03-01T09:02:30+00:00",
        "duration_s": 150.0,
        "caller_id": "+34611222333",
        "dialed": "950183313",
        "entry_point": "unlock_line",
        "language": "es",
        "outcome": "completed",
        "outcome_reason": "user_recovered",
        "events": [{"t": 0.5, "kind": "digit", "value": "*"}],
        **extra,
    }


def test_call_log_round_trip_newest_first(db: Database) -> None:
    log = SqliteCallLog(db)
    log.save(call_record("call-1"))
    log.save(call_record("call-2", started_at=START, outcome=VerifyResult.LOCKED))
    recent = log.recent()
    assert [r["call_id"] for r in recent] == ["call-2", "call-1"]
    assert recent[1] == call_record("call-1")
    assert recent[0]["started_at"] == START.isoformat() and recent[0]["outcome"] == "locked"
    assert log.recent(limit=1) == [recent[0]]
    with db.transaction(write=False) as conn:
        row = conn.execute("SELECT duration_s, outcome_reason FROM calls WHERE call_id = 'call-1'").fetchone()
    assert tuple(row) == (150.0, "user_recovered")


def test_call_log_saving_a_call_again_replaces_it(db: Database) -> None:
    log = SqliteCallLog(db)
    log.save(call_record("call-1"))
    log.save(call_record("call-1", outcome="transferred"))
    assert [r["outcome"] for r in log.recent()] == ["transferred"]


def test_call_log_refuses_secrets_and_records_without_id(db: Database) -> None:
    log = SqliteCallLog(db)
    with pytest.raises(ValueError, match=r"secrets \(a Secret at events\[0\]\.value\)"):
        log.save(call_record("call-1", events=[{"value": Secret(PIN)}]))
    with pytest.raises(ValueError, match="call_id"):
        log.save({"outcome": "completed"})
    with pytest.raises(ValueError, match="JSON"):
        log.save(call_record("call-1", extra=object()))
    assert log.recent() == []


def test_only_calls_of_a_dead_process_of_this_host_are_marked_interrupted(db: Database) -> None:
    log = SqliteCallLog(db)
    for call_id, host, pid in [("dead", "here", 11), ("alive", "here", 12), ("elsewhere", "there", 11)]:
        log.save({"call_id": call_id, "outcome": "in_progress", "process": {"host": host, "pid": pid}})
    log.save({"call_id": "done", "outcome": "signature_unlocked"})
    assert log.mark_interrupted("here", alive=lambda pid: pid == 12) == 1
    outcomes = {r["call_id"]: r["outcome"] for r in log.recent(10)}
    assert outcomes == {"dead": "interrupted", "alive": "in_progress", "elsewhere": "in_progress",
                        "done": "signature_unlocked"}
    assert log.mark_interrupted("here", alive=lambda pid: False) == 1  # once the live one is gone too


# --------------------------------------------------------------------------- made-up cards, hash costs


def test_a_made_up_card_locks_after_as_many_tries_as_a_real_one(bank: SqliteBank) -> None:
    unknown = Document.parse("dni", "11223344")
    made_up = [verify(bank, unknown, "4444", pin).result for pin in ("1111", "2222", "3333", PIN)]
    real = [verify(bank, ONE, CARD, pin).result for pin in ("1111", "2222", "3333", PIN)]
    assert made_up == real == [VerifyResult.MISMATCH, VerifyResult.MISMATCH, VerifyResult.LOCKED, VerifyResult.LOCKED]
    assert verify(bank, unknown, "4445", "1111").result is VerifyResult.MISMATCH  # another card: its own count


def test_a_right_pin_moves_its_hash_to_the_configured_cost(db: Database, clock: FakeClock) -> None:
    seed_bank(make_bank(db, clock), BankSeed.model_validate(SEED))  # hashed at FAST's cost
    stronger = make_bank(db, clock, security=Security(scrypt_n=FAST.scrypt_n * 2))

    def cost() -> str:
        with db.transaction(write=False) as conn:
            return str(conn.execute("SELECT pin_hash FROM cards WHERE last4 = ?", (CARD,)).fetchone()[0]).split("$")[1]

    assert verify(stronger, pin="0000").result is VerifyResult.MISMATCH and cost() == str(FAST.scrypt_n)
    assert verify(stronger).result is VerifyResult.OK and cost() == str(FAST.scrypt_n * 2)
    assert verify(stronger).result is VerifyResult.OK  # and the new hash checks
