"""Seed files: the demo bank, and mistakes reported with their file and line."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from voicebot.backends.base import Channel, Document, DocumentType, VerifyResult
from voicebot.backends.seed import DEMO_SEED, load_seed, seed_bank
from voicebot.backends.sqlite import SqliteBank, hash_secret, open_database
from voicebot.config import Security
from voicebot.errors import ConfigError
from voicebot.masking import Secret

FAST = Security(scrypt_n=2**10)

# Line numbers in the tests below refer to this text.
VALID = """\
customers:
  - id: C1
    name: Test One
    document: {type: dni, number: "00000000T"}
    language: es
    cards:
      - {last4: "8642", pin: "7391"}
  - id: C2
    name: Test Two
    document: {type: nie, number: "X1234567L"}
    language: en
"""

DEMO_PINS = {
    "C001": {"4567": "1234", "9012": "4321"},
    "C002": {"1111": "2222"},
    "C003": {"3333": "3333"},
    "C004": {"4444": "4444"},
    "C005": {"5555": "5555"},
}


@pytest.fixture
def bank(tmp_path: Path):
    db = open_database(tmp_path / "bank.sqlite3")
    yield SqliteBank(db, security=FAST, clock=lambda: datetime(2026, 3, 1, tzinfo=timezone.utc))
    db.close()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "seed.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_seed(path)
    return raised.value.problems


def edited(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new, 1)


# --------------------------------------------------------------------------- the demo


def test_the_demo_seed_loads_and_has_the_agreed_customers() -> None:
    seed = load_seed(DEMO_SEED)
    customers = {c.id: c for c in seed.customers}
    assert list(customers) == ["C001", "C002", "C003", "C004", "C005"]
    ana = customers["C001"]
    assert (ana.name, ana.document.number, ana.language) == ("Ana García López", "12345678Z", "es")
    assert ana.phones == ["+34600000001", "+34950000001"]
    assert ana.users.by_channel() == {Channel.EBANKING: "agarcia", Channel.PHONE: "agarcia.tel"}
    assert ana.blocked_operations[0].reference == "20261129001"
    assert customers["C002"].document.type is DocumentType.NIE and customers["C002"].language == "en"
    assert customers["C003"].email is None and customers["C003"].signature_blocked is False
    assert customers["C004"].mobile is None
    assert customers["C005"].document.number == "Y7654321G"
    for customer in seed.customers:
        assert {c.last4: c.pin.reveal() for c in customer.cards} == DEMO_PINS[customer.id]


def test_the_demo_bank_works_and_lists_no_secrets(bank: SqliteBank) -> None:
    assert seed_bank(bank, load_seed(DEMO_SEED)) == 5
    ana = Document(DocumentType.DNI, "12345678Z")
    assert bank.verify_card(ana, Secret("4567"), Secret("1234")).customer_id == "C001"
    assert bank.verify_card(ana, Secret("9012"), Secret("4321")).customer_id == "C001"
    john = Document(DocumentType.NIE, "X1234567L")
    assert bank.verify_card(john, Secret("1111"), Secret("2222")).customer_id == "C002"
    assert bank.customer_by_phone("+34950000001") == "C001"
    assert bank.blocked_operation("C005", "123456").amount == "89.99 EUR"

    listed = bank.list_customers()
    assert [c["id"] for c in listed] == ["C001", "C002", "C003", "C004", "C005"]
    assert listed[0]["cards"] == 2 and listed[0]["cards_locked"] == 0
    assert listed[0]["users"]["phone"]["username"] == "agarcia.tel"
    secrets = {digits for cards in DEMO_PINS.values() for pair in cards.items() for digits in pair}
    for key, value in _leaves(listed):
        assert not any(word in key for word in ("pin", "last4", "hash")), key
        assert value not in secrets, (key, value)
    assert "scrypt" not in json.dumps(listed)


def _leaves(value, key: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{key}.{k}")
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v, key)
    else:
        yield key, value


def test_reseeding_replaces_customers_and_resets_counters(bank: SqliteBank) -> None:
    seed = load_seed(DEMO_SEED)
    seed_bank(bank, seed)
    pedro = Document(DocumentType.DNI, "11111111H")
    for _ in range(3):
        bank.verify_card(pedro, Secret("4444"), Secret("0000"))
    bank.unlock_signature("C004")
    assert bank.verify_card(pedro, Secret("4444"), Secret("4444")).result is VerifyResult.LOCKED

    seed_bank(bank, seed)
    assert bank.verify_card(pedro, Secret("4444"), Secret("4444")).result is VerifyResult.OK
    assert bank.list_customers()[3]["signature_blocked"] is True
    assert len(bank.list_customers()) == 5


def test_an_already_hashed_pin_is_accepted(tmp_path: Path, bank: SqliteBank) -> None:
    pin_hash = hash_secret("2580", 2**10)
    seed = load_seed(write(tmp_path, edited('pin: "7391"', f'pin_hash: "{pin_hash}"')))
    seed_bank(bank, seed)
    one = Document(DocumentType.DNI, "00000000T")
    assert bank.verify_card(one, Secret("8642"), Secret("2580")).customer_id == "C1"


def test_seeding_refuses_a_document_owned_by_another_customer(tmp_path: Path, bank: SqliteBank) -> None:
    seed_bank(bank, load_seed(write(tmp_path, VALID)))
    moved = load_seed(write(tmp_path, edited("id: C1", "id: C9")))
    with pytest.raises(ConfigError, match="already belongs to customer C1"):
        seed_bank(bank, moved)
    assert [c["id"] for c in bank.list_customers()] == ["C1", "C2"]


# --------------------------------------------------------------------------- mistakes


def test_malformed_yaml(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited("name: Test Two", "name: Test: Two"))
    assert problem == f"{tmp_path / 'seed.yaml'}:9: not valid YAML: mapping values are not allowed here"


def test_unknown_key(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited("    name: Test Two\n", "    name: Test Two\n    nmae: typo\n"))
    assert problem == f"{tmp_path / 'seed.yaml'}:10: customers[1].nmae: unknown key (misspelt?)"


def test_wrong_type(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited("language: es", "language: [es]"))
    assert problem.startswith(f"{tmp_path / 'seed.yaml'}:5: customers[0].language: ")


def test_missing_key(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited("    name: Test Two\n", ""))
    assert problem == f"{tmp_path / 'seed.yaml'}:8: customers[1].name: required key is missing"


def test_bad_dni_letter(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited('"00000000T"', '"00000000A"'))
    assert problem.startswith(f"{tmp_path / 'seed.yaml'}:4: customers[0].document.number: ")
    assert "control letter" in problem


def test_bad_nie(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited('"X1234567L"', '"W1234567L"'))
    assert problem.startswith(f"{tmp_path / 'seed.yaml'}:10: customers[1].document.number: ")


def test_duplicate_customer_id(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited("id: C2", "id: C1"))
    assert problem == f"{tmp_path / 'seed.yaml'}:8: customers[1].id: duplicate customer id 'C1' (first at line 2)"


def test_duplicate_document(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited('{type: nie, number: "X1234567L"}', '{type: dni, number: "00000000T"}'))
    assert problem.startswith(f"{tmp_path / 'seed.yaml'}:10: customers[1].document.number: duplicate document")


@pytest.mark.parametrize("pin", ['"739"', '"73910"', '"73a1"', "7391"])
def test_bad_pin(tmp_path: Path, pin: str) -> None:
    [problem] = problems(tmp_path, edited('pin: "7391"', f"pin: {pin}"))
    assert problem.startswith(f"{tmp_path / 'seed.yaml'}:7: customers[0].cards[0].pin: ")
    message = problem.split(": ", 2)[2]
    assert message.startswith("Value error, ")
    assert pin.strip('"') not in message  # a PIN, even a wrong one, is not echoed


def test_unquoted_digits_get_a_hint(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited('last4: "8642"', "last4: 0642"))
    assert "quotes" in problem and ":7: customers[0].cards[0].last4" in problem


def test_bad_card_digits_and_duplicate_card(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited('last4: "8642"', 'last4: "864"'))
    assert f"{tmp_path / 'seed.yaml'}:7: customers[0].cards[0].last4: " in problem
    twice = edited('      - {last4: "8642", pin: "7391"}\n', '      - {last4: "8642", pin: "7391"}\n' * 2)
    [problem] = problems(tmp_path, twice)
    assert problem.startswith(f"{tmp_path / 'seed.yaml'}:8: customers[0].cards[1].last4: duplicate card")


def test_pin_and_pin_hash(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited('pin: "7391"', 'pin: "7391", pin_hash: "scrypt$1$2"'))
    assert problem.startswith(f"{tmp_path / 'seed.yaml'}:7: customers[0].cards[0].pin_hash: ")
    [problem] = problems(tmp_path, edited(', pin: "7391"', ""))
    assert problem.startswith(f"{tmp_path / 'seed.yaml'}:7: customers[0].cards[0]: ")
    assert "exactly one of pin or pin_hash" in problem


@pytest.mark.parametrize(
    "added, key",
    [
        ('    phones: ["12"]', "phones[0]"),
        ("    phones: [+34611222333]", "phones[0]"),
        ("    mobile: 600-call-me", "mobile"),
        ("    email: nobody", "email"),
        ("    users: {ebanking: two words}", "users.ebanking"),
        ('    blocked_operations: [{reference: "AB12", description: x, amount: "1 EUR"}]', "blocked_operations[0].reference"),
    ],
)
def test_other_bad_values(tmp_path: Path, added: str, key: str) -> None:
    [problem] = problems(tmp_path, VALID + added + "\n")
    assert problem.startswith(f"{tmp_path / 'seed.yaml'}:12: customers[1].{key}: ")


def test_unknown_language(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, edited("language: en", "language: fr"))
    assert problem == f"{tmp_path / 'seed.yaml'}:11: customers[1].language: Input should be 'es' or 'en'"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = edited("language: es", "language: fr").replace('"7391"', '"73"').replace("nie", "cif")
    found = problems(tmp_path, text)
    assert [p.split(": ")[1] for p in found] == [
        "customers[0].language",
        "customers[0].cards[0].pin",
        "customers[1].document.type",
    ]


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "- just\n- a list\n")
    assert "customers" in problem
    [problem] = problems(tmp_path, "")
    assert problem.endswith("customers: required key is missing")
    with pytest.raises(ConfigError, match="file not found"):
        load_seed(tmp_path / "absent.yaml")
