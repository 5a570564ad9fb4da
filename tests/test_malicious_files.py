"""Malicious data files (issue 8): the seed, the menu and the configuration an operator loads.

Every hostile file must end in a ``ConfigError`` that names the file (and the line, where
there is one) and what is wrong, quickly and without a traceback, or be stored exactly as
written through parameterised SQL. Seeding is all-or-nothing. Real files in ``tmp_path``,
real SQLite, no mocks.

The menu format names no other file: prompts are text in the menu itself (the audio is
rendered from that text into the prompt cache, under names the cache makes), so no
reference can point outside the menu's folder. What is tested instead: a key that would
name a file (``include:``, ``prompt_file:``…) is refused, and no field of the model is a
path.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import typing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from pydantic import BaseModel

from voicebot import yamlfile
from voicebot.actions import UnlockActions
from voicebot.backends.base import Document, DocumentType
from voicebot.backends.seed import MAX_CUSTOMERS, load_seed, seed_bank
from voicebot.backends.sqlite import SqliteBank, hash_secret, open_database
from voicebot.cli import main
from voicebot.config import DEFAULT_MENU, Security, load_config
from voicebot.documents import DNI_LETTERS
from voicebot.errors import ConfigError
from voicebot.masking import Secret
from voicebot.menu import Menu, load_menu
from voicebot.menu.loader import REQUIRED_TEXTS

FAST = Security(scrypt_n=2**10)
ACTION = "verify_card"


def dni(number: int) -> str:
    return f"{number:08d}{DNI_LETTERS[number % 23]}"


def line_of(text: str, needle: str) -> int:
    return text.count("\n", 0, text.index(needle)) + 1


def refused(load: Callable[[Path], Any], path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(path)
    return raised.value.problems


def one_problem(load: Callable[[Path], Any], path: Path) -> str:
    found = refused(load, path)
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------- files


SEED = """\
customers:
  - id: C1
    name: Test One
    document: {type: dni, number: "00000000T"}
    language: es
    email: one@example.com
    phones: ["+34600000011"]
    cards:
      - {last4: "8642", pin: "7391"}
    users: {ebanking: tone}
  - id: C2
    name: Test Two
    document: {type: nie, number: "X1234567L"}
    language: en
    users: {ebanking: ttwo}
"""


def seed_customer(number: int, **fields: Any) -> dict[str, Any]:
    customer = {"id": f"C{number}", "name": f"Customer {number}", "document": {"type": "dni", "number": dni(number)},
                "language": "es"}
    customer.update(fields)
    return customer


def seed_text(*customers: dict[str, Any]) -> str:
    return yaml.safe_dump({"customers": list(customers)}, sort_keys=False, allow_unicode=True, width=10**6,
                          default_flow_style=None)


def minimal_menu(**nodes: Any) -> dict[str, Any]:
    """A complete menu in one language: main -> (1) an action -> end, (2) end."""
    menu: dict[str, Any] = {
        "version": 1,
        "languages": ["es"],
        "entry_points": {"line": "main"},
        "universal": {"repeat": {"key": "*"}},
        "texts": {key: {"es": f"Texto {key}."} for key in REQUIRED_TEXTS},
        "nodes": {
            "main": {"type": "menu", "prompt": {"es": "Pulse 1 o 2."},
                     "options": [{"key": "1", "next": "check"}, {"key": "2", "next": "bye"}]},
            "check": {"type": "action", "action": ACTION, "results": {"ok": {"next": "bye"}, "mismatch": {"next": "main"}}},
            "bye": {"type": "end", "outcome": "failed", "prompt": {"es": "Adiós."}},
        },
    }
    menu["nodes"].update(nodes)
    return menu


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10**6)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load_menu_checked(path: Path) -> Menu:
    return load_menu(path, known_actions=UnlockActions.NAMES)


def load_config_file(path: Path) -> Any:
    return load_config(path, environ={})


LOADERS = {"seed": load_seed, "menu": load_menu_checked, "config": load_config_file}


@pytest.fixture
def bank(tmp_path: Path):
    db = open_database(tmp_path / "bank.sqlite3")
    yield SqliteBank(db, security=FAST, clock=lambda: datetime(2026, 3, 1, tzinfo=timezone.utc))
    db.close()


def database_dump(bank: SqliteBank) -> list[str]:
    with bank.db.transaction(write=False) as conn:
        return list(conn.iterdump())


def test_the_files_used_below_are_valid(tmp_path: Path) -> None:
    assert [c.id for c in load_seed(write(tmp_path / "seed.yaml", SEED)).customers] == ["C1", "C2"]
    assert set(load_menu_checked(write(tmp_path / "menu.yaml", dump(minimal_menu()))).nodes) == {"main", "check", "bye"}


# --------------------------------------------------------------------------- YAML itself, in all three files

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
customers: *i
"""


@pytest.mark.parametrize("kind", LOADERS)
def test_an_alias_bomb_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    # 9**9 = 387 million strings once expanded: counted on the node graph, never built.
    path = write(tmp_path / f"{kind}.yaml", BILLION_LAUGHS)
    started = time.perf_counter()
    problem = one_problem(LOADERS[kind], path)
    assert time.perf_counter() - started < 1.0
    assert problem.startswith(f"{path}:") and "expands to more than 500,000 values" in problem


@pytest.mark.parametrize("kind", LOADERS)
def test_an_alias_that_contains_itself_is_refused(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path / f"{kind}.yaml", "version: 1\nnodes: &loop\n  again: *loop\n")
    assert one_problem(LOADERS[kind], path) == f"{path}:2: an alias refers to a value that contains it (a loop)"


@pytest.mark.parametrize("kind", LOADERS)
def test_deep_nesting_is_refused_without_a_stack_overflow(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path / f"{kind}.yaml", "customers: " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert one_problem(LOADERS[kind], path) == f"{path}:1: nested more than 50 levels deep"
    path = write(tmp_path / f"{kind}.yaml", "".join("  " * depth + f"k{depth}:\n" for depth in range(60)))
    assert one_problem(LOADERS[kind], path) == f"{path}:50: nested more than 50 levels deep"


@pytest.mark.parametrize("kind", LOADERS)
@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.mkdir [{pwned}]",
    "!!python/object/new:pathlib.PosixPath [{pwned}]",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!binary aGVsbG8=",
    "!!set {{a: null}}",
    "!custom x",
])
def test_tags_beyond_plain_data_are_refused_and_run_nothing(tmp_path: Path, kind: str, tag: str) -> None:
    pwned = tmp_path / "pwned"
    path = write(tmp_path / f"{kind}.yaml", f"version: 1\ndatabase: {tag.format(pwned=str(pwned))}\n")
    problem = one_problem(LOADERS[kind], path)
    assert problem.startswith(f"{path}:2: the tag !") and "is not allowed" in problem
    assert not pwned.exists()


@pytest.mark.parametrize("kind", LOADERS)
def test_a_duplicate_key_is_refused_not_silently_overridden(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path / f"{kind}.yaml", "version: 1\ndatabase: a.sqlite3\nlanguages: [es]\ndatabase: b.sqlite3\n")
    assert one_problem(LOADERS[kind], path) == f"{path}:4: duplicate key 'database' (first at line 2)"


def test_duplicate_keys_are_found_at_any_depth_and_merges_may_override(tmp_path: Path) -> None:
    text = SEED.replace('      - {last4: "8642", pin: "7391"}', '      - {last4: "8642", pin: "7391", pin: "0000"}')
    path = write(tmp_path / "seed.yaml", text)
    assert one_problem(load_seed, path) == f"{path}:9: duplicate key 'pin' (first at line 9)"
    # `<<` merges exist to be overridden: not a duplicate. Anchors stay usable.
    merged = "base: &base {listen: '127.0.0.1:5060', tcp: true}\nother: {<<: *base, listen: '0.0.0.0:5060'}\n"
    assert yamlfile.loads(merged).data["other"] == {"listen": "0.0.0.0:5060", "tcp": True}
    config = write(tmp_path / "config.yaml", "database: x.sqlite3\nsip: &sip {listen: '127.0.0.1:5070'}\n")
    assert load_config_file(config).sip.listen == "127.0.0.1:5070"


@pytest.mark.parametrize("kind", LOADERS)
def test_bytes_that_are_not_utf8_name_their_line(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path / f"{kind}.yaml", b"version: 1\nlanguages: [es]\ndatabase: caf\xe9.sqlite3\n")
    assert one_problem(LOADERS[kind], path) == f"{path}:3: not UTF-8 text (byte 0xe9); save the file as UTF-8"


@pytest.mark.parametrize("kind", LOADERS)
def test_a_raw_control_character_names_its_line(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path / f"{kind}.yaml", "version: 1\n\ndatabase: a\x00b\n")
    assert one_problem(LOADERS[kind], path) == f"{path}:3: not valid YAML: the character U+0000 cannot appear in it"


@pytest.mark.parametrize("kind", LOADERS)
def test_a_folder_a_fifo_a_device_and_a_symlink_loop_are_refused(tmp_path: Path, kind: str) -> None:
    load = LOADERS[kind]
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    assert one_problem(load, folder) == f"{folder}: is a folder, not a file"
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # reading it would wait for a writer for ever
    assert one_problem(load, fifo) == f"{fifo}: not a regular file"
    assert one_problem(load, Path("/dev/zero")) == "/dev/zero: not a regular file"  # endless
    loop_a, loop_b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    assert one_problem(load, loop_a) == f"{loop_a}: cannot read: Too many levels of symbolic links"
    assert one_problem(load, tmp_path / "absent.yaml") == f"{tmp_path / 'absent.yaml'}: file not found"


@pytest.mark.parametrize("kind", LOADERS)
def test_a_huge_file_is_refused_by_its_size_before_it_is_read(tmp_path: Path, kind: str) -> None:
    # A million customers' worth of file: sparse, so the test writes nothing big.
    path = tmp_path / f"{kind}.yaml"
    with path.open("wb") as file:
        file.write(b"customers:\n")
        file.truncate(300 * 2**20)
    started = time.perf_counter()
    assert one_problem(LOADERS[kind], path) == f"{path}: too big (314,572,800 bytes; the limit is 8,388,608)"
    assert time.perf_counter() - started < 0.5


def test_an_empty_file(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.yaml", "")
    assert one_problem(load_seed, empty) == f"{empty}: customers: required key is missing"
    assert {p.split(": ", 1)[1] for p in refused(load_menu_checked, empty)} == {
        "version: required key is missing", "languages: required key is missing",
        "entry_points: required key is missing", "nodes: required key is missing"}
    assert load_config_file(empty).database == Path("var/voicebot.sqlite3")  # every key is optional


def test_a_utf8_bom_is_read_as_text(tmp_path: Path) -> None:
    path = write(tmp_path / "seed.yaml", "\ufeff" + SEED)
    assert [c.id for c in load_seed(path).customers] == ["C1", "C2"]


# --------------------------------------------------------------------------- the seed: sizes


def test_a_50_mb_name_is_refused_by_the_file_size(tmp_path: Path) -> None:
    path = write(tmp_path / "seed.yaml", SEED.replace("Test One", "A" * 50 * 2**20))
    started = time.perf_counter()
    assert one_problem(load_seed, path).startswith(f"{path}: too big (52,429,")
    assert time.perf_counter() - started < 1.0


def test_long_texts_within_the_file_limit_are_refused_by_field(tmp_path: Path) -> None:
    text = seed_text(seed_customer(1, name="N" * 10_000, email="a" * 300 + "@example.com",
                                   blocked_operations=[{"reference": "1", "description": "d" * 5000, "amount": "1" * 100}]))
    path = write(tmp_path / "seed.yaml", text)
    found = refused(load_seed, path)
    assert [p.split(": ", 2)[1:] for p in found] == [
        ["customers[0].name", "Value error, a name is longer than 200 characters"],
        ["customers[0].email", "Value error, an e-mail address is longer than 254 characters"],
        ["customers[0].blocked_operations[0].description", "Value error, a description is longer than 200 characters"],
        ["customers[0].blocked_operations[0].amount", "Value error, an amount is longer than 40 characters"],
    ]


def test_more_customers_than_the_limit_are_refused(tmp_path: Path) -> None:
    # Ten thousand and one aliases of one customer: small on disk, each one validated.
    text = "one: &one {id: C1, name: x, document: {type: dni, number: '00000000T'}, language: es}\n" \
           "customers: [" + ", ".join(["*one"] * (MAX_CUSTOMERS + 1)) + "]\n"
    text = text.replace("one: &one", "customers_template: &one")
    path = write(tmp_path / "seed.yaml", text)
    found = refused(load_seed, path)
    assert f"{path}:2: customers: List should have at most 10000 items after validation, not 10001" in found


def test_a_million_customers_by_aliases_are_refused_by_the_expanded_size(tmp_path: Path) -> None:
    text = ("c: &c {id: C1, name: x, document: {type: dni, number: '00000000T'}, language: es}\n"
            "k: &k [" + ", ".join(["*c"] * 1000) + "]\n"
            "customers: [" + ", ".join(["*k"] * 1000) + "]\n")
    path = write(tmp_path / "seed.yaml", text)
    started = time.perf_counter()
    assert one_problem(load_seed, path) == f"{path}:3: expands to more than 500,000 values (aliases repeating aliases?)"
    assert time.perf_counter() - started < 1.0


def test_a_file_of_too_many_problems_is_told_in_a_screenful(tmp_path: Path) -> None:
    path = write(tmp_path / "seed.yaml", seed_text(*[seed_customer(n, language="fr") for n in range(1, 201)]))
    found = refused(load_seed, path)
    assert len(found) == 51 and found[-1] == "... and 150 more problems"
    assert found[0] == f"{path}:5: customers[0].language: Input should be 'es' or 'en'"


# --------------------------------------------------------------------------- the seed: wrong types


@pytest.mark.parametrize("old, new, where, message", [
    ("name: Test One", "name: 12345", "customers[0].name", "Value error, a name must be text"),
    ("name: Test One", "name: null", "customers[0].name", "Value error, a name must be text"),
    ("name: Test One", "name: [Test, One]", "customers[0].name", "Value error, a name must be text"),
    ("name: Test One", "name: '   '", "customers[0].name", "Value error, a name is empty"),
    ("id: C1", "id: 1", "customers[0].id", "Input should be a valid string"),
    ("id: C1", "id: C 1", "customers[0].id", "String should match pattern '^[!-~]{1,32}$'"),
    ('document: {type: dni, number: "00000000T"}', 'document: "00000000T"', "customers[0].document",
     "Input should be a valid dictionary or instance of SeedDocument"),
    ('document: {type: dni, number: "00000000T"}', "document: {type: dni, number: 0}",
     "customers[0].document.number", "Value error, write it in quotes"),
    ("language: es", "language: [es]", "customers[0].language", "Input should be 'es' or 'en'"),
    ("email: one@example.com", "email: {user: one}", "customers[0].email", "Value error, an e-mail address must be text"),
    ('phones: ["+34600000011"]', 'phones: "+34600000011"', "customers[0].phones", "Input should be a valid list"),
    ('phones: ["+34600000011"]', "phones: [34600000011]", "customers[0].phones[0]", "Value error, write it in quotes"),
    ('      - {last4: "8642", pin: "7391"}', '      {last4: "8642", pin: "7391"}', "customers[0].cards",
     "Input should be a valid list"),
    ("users: {ebanking: tone}", "users: [tone]", "customers[0].users",
     "Input should be a valid dictionary or instance of SeedUsers"),
    ("users: {ebanking: tone}", "users: {ebanking: 42}", "customers[0].users.ebanking",
     "Input should be a valid string"),
    ("language: es\n", "language: es\n    signature_blocked: maybe\n", "customers[0].signature_blocked",
     "Input should be a valid boolean, unable to interpret input"),
])
def test_wrong_types_are_named_with_file_line_and_path(tmp_path: Path, old: str, new: str, where: str,
                                                       message: str) -> None:
    assert old in SEED
    text = SEED.replace(old, new, 1)
    path = write(tmp_path / "seed.yaml", text)
    problem = one_problem(load_seed, path)
    line = line_of(text, new.strip().splitlines()[-1] if "signature" in new else new.strip().splitlines()[0])
    if where.endswith(".cards"):  # a mapping where a list goes: the key's line
        line = line_of(text, "cards:")
    assert problem.startswith(f"{path}:{line}: {where}: {message}"), problem


def test_a_seed_that_is_a_list_or_a_scalar(tmp_path: Path) -> None:
    for text in ("- id: C1\n", "just text\n", "42\n"):
        path = write(tmp_path / "seed.yaml", text)
        assert one_problem(load_seed, path) == f"{path}: a seed is a mapping with a 'customers' list"
    path = write(tmp_path / "seed.yaml", "customers:\n  C1: {id: C1}\n")
    assert one_problem(load_seed, path) == f"{path}:1: customers: Input should be a valid list"


# --------------------------------------------------------------------------- the seed: PINs and documents


@pytest.mark.parametrize("pin, hint", [
    ("0567", "write it in quotes"),  # YAML 1.1: the octal number 375
    ("1234", "write it in quotes"),
    ("0x1234", "write it in quotes"),
    ("12_34", "write it in quotes"),
    ('"123"', "a PIN must be exactly 4 digits"),
    ('"12345"', "a PIN must be exactly 4 digits"),
    ('"12a4"', "a PIN must be exactly 4 digits"),
    ('"١٢٣٤"', "a PIN must be exactly 4 digits"),  # Arabic-Indic digits: isdigit() says yes
    ('"1234\\n"', "a PIN must be exactly 4 digits"),
    ("12.34", "a PIN must be a string of 4 digits"),
    ("true", "a PIN must be a string of 4 digits"),
])
def test_a_pin_that_is_not_four_digits_in_quotes(tmp_path: Path, pin: str, hint: str) -> None:
    text = SEED.replace('pin: "7391"', f"pin: {pin}")
    path = write(tmp_path / "seed.yaml", text)
    problem = one_problem(load_seed, path)
    assert problem.startswith(f"{path}:9: customers[0].cards[0].pin: Value error, {hint}")
    assert pin.strip('"') not in problem.split(": ", 2)[2]  # a PIN, even a wrong one, is not echoed


def test_a_null_pin_is_a_missing_pin(tmp_path: Path) -> None:
    path = write(tmp_path / "seed.yaml", SEED.replace('pin: "7391"', "pin: null"))
    assert "give exactly one of pin or pin_hash" in one_problem(load_seed, path)


def test_a_pin_hash_that_would_stall_every_check_is_refused(tmp_path: Path) -> None:
    salt, digest = "c2FsdHNhbHRzYWx0", "ZGlnZXN0ZGlnZXN0ZGlnZXN0ZGlnZXN0"
    for hashed, why in ((f"scrypt$1048576$32$16${salt}${digest}", "scrypt cost too high"),
                        (f"scrypt$16384$8$1${salt}${'QUFB' * 3000}", "scrypt hash has a salt or digest of an odd length")):
        path = write(tmp_path / "seed.yaml", SEED.replace('pin: "7391"', f'pin_hash: "{hashed}"'))
        problem = one_problem(load_seed, path)
        assert problem.startswith(f"{path}:9: customers[0].cards[0].pin_hash: Value error, {why}")
    ordinary = hash_secret("7391", 2**14)
    assert load_seed(write(tmp_path / "seed.yaml", SEED.replace('pin: "7391"', f'pin_hash: "{ordinary}"')))


@pytest.mark.parametrize("kind, number, message", [
    ("dni", "00000000A", "the control letter does not match the number"),
    ("dni", "12345678A", "the control letter does not match the number"),
    ("nie", "X1234567A", "the control letter does not match the number"),
    ("nie", "W1234567L", "a NIE is X, Y or Z"),
    ("dni", "1234567Z", "a DNI is 8 digits"),
    ("dni", "123456789Z", "a DNI is 8 digits"),
    ("dni", "١٢٣٤٥٦٧٨Z", "a document number is 8 digits and letters A-Z"),  # int() reads them
    ("dni", "１２３４５６７８Z", "a document number is 8 digits and letters A-Z"),  # fullwidth
    ("dni", "12345678Z' OR '1'='1", "a document number is 8 digits and letters A-Z"),
    ("dni", "12345678\u200bZ", "a document number is 8 digits and letters A-Z"),
    ("cif", "B12345678", "Input should be 'dni' or 'nie'"),
])
def test_a_wrong_document_is_refused(tmp_path: Path, kind: str, number: str, message: str) -> None:
    text = seed_text(seed_customer(1, document={"type": kind, "number": number}))
    path = write(tmp_path / "seed.yaml", text)
    problem = one_problem(load_seed, path)
    assert problem.startswith(f"{path}:4: customers[0].document.") and message in problem


def test_one_document_written_two_ways_is_still_a_duplicate(tmp_path: Path) -> None:
    text = seed_text(seed_customer(1, document={"type": "dni", "number": "12345678Z"}),
                     seed_customer(2, document={"type": "dni", "number": "12345678-z"}))
    path = write(tmp_path / "seed.yaml", text)
    assert one_problem(load_seed, path) == (
        f"{path}:8: customers[1].document.number: duplicate document number (first at line 4)")


def test_duplicate_cards_phones_users_and_ids(tmp_path: Path) -> None:
    text = seed_text(
        seed_customer(1, phones=["+34 600 000 011", "600000011"], cards=[
            {"last4": "1111", "pin": "1234"}, {"last4": "1111", "pin": "4321"}], users={"ebanking": "same"}),
        seed_customer(2, users={"phone": "same"}),
        {**seed_customer(3), "id": "C1"},
    )
    path = write(tmp_path / "seed.yaml", text)
    found = refused(load_seed, path)
    assert [p.split(": ", 2)[1:] for p in found] == [
        ["customers[0].cards[1].last4",
         f"duplicate card (same last 4) for this customer (first at line {line_of(text, 'last4')})"],
        ["customers[0].phones[1]", f"duplicate phone '600000011' for this customer (first at line {line_of(text, 'phones')})"],
        ["customers[1].users.phone", f"duplicate username 'same' (first at line {line_of(text, 'users')})"],
        ["customers[2].id", "duplicate customer id 'C1' (first at line 2)"],
    ]
    assert all(p.startswith(f"{path}:") for p in found)


# --------------------------------------------------------------------------- the seed: hostile text


@pytest.mark.parametrize("field", ["name", "email", "description", "amount"])
@pytest.mark.parametrize("char", [
    "\x1b",  # ESC: `voicebot bank show` would send the rest to the terminal as a command
    "\x00", "\r", "\n", "\x7f", "\x85",
    "\u202e", "\u2066", "\u200f", "\u061c",  # bidi overrides and marks
    "\u200b", "\u2060", "\ufeff", "\u00ad",  # zero-width space, word joiner, BOM, soft hyphen
    "\u2028", "\u2029",  # line and paragraph separators
    "\ud800",  # a lone surrogate: SQLite cannot even store it
])
def test_control_and_invisible_characters_are_refused(tmp_path: Path, field: str, char: str) -> None:
    value = {"name": f"Ana{char}López", "email": f"ana{char}@example.com",
             "description": f"Transfer{char}", "amount": f"10{char} EUR"}[field]
    customer = seed_customer(1, email="ana@example.com",
                             blocked_operations=[{"reference": "1", "description": "x", "amount": "1 EUR"}])
    if field in ("name", "email"):
        customer[field] = "PLACEHOLDER"
    else:
        customer["blocked_operations"][0][field] = "PLACEHOLDER"
    # Written as a YAML escape ("\u202e"), as an attacker would: the file itself is printable.
    text = seed_text(customer).replace("PLACEHOLDER", json.dumps(value))
    path = write(tmp_path / "seed.yaml", text)
    problem = one_problem(load_seed, path)
    assert problem.startswith(f"{path}:{line_of(text, json.dumps(value))}: ")
    assert field in problem.split(": ")[1]
    assert f"U+{ord(char):04X}" in problem, problem


@pytest.mark.parametrize("email", [
    "ana@example.com\r\nBcc: all@example.com",
    "ana@example.com, evil@example.net",
    "Ana <ana@example.com>",
    "ana@example.com;evil@example.net",
    '"ana"@example.com',
    "ana@@example.com",
    "nobody",
])
def test_an_email_that_could_add_recipients_is_refused(tmp_path: Path, email: str) -> None:
    text = seed_text(seed_customer(1, email="PLACEHOLDER")).replace("PLACEHOLDER", json.dumps(email))
    path = write(tmp_path / "seed.yaml", text)
    assert one_problem(load_seed, path).startswith(f"{path}:{line_of(text, 'email')}: customers[0].email: Value error, ")


@pytest.mark.parametrize("phone", ["+34６００000001", "+34 600' OR 1=1", "+34600000001\n", "٦٠٠٠٠٠٠٠١"])
def test_a_phone_not_in_ascii_digits_is_refused(tmp_path: Path, phone: str) -> None:
    text = seed_text(seed_customer(1, phones=[phone]))
    path = write(tmp_path / "seed.yaml", text)
    assert one_problem(load_seed, path).startswith(
        f"{path}:{line_of(text, 'phones')}: customers[0].phones[0]: Value error, a phone number is")


@pytest.mark.parametrize("username", ["agarcia\n", "a garcia", "agarcia'--", "ágarcia", "a" * 65])
def test_a_username_outside_its_alphabet_is_refused(tmp_path: Path, username: str) -> None:
    text = seed_text(seed_customer(1, users={"ebanking": username}))
    path = write(tmp_path / "seed.yaml", text)
    problem = one_problem(load_seed, path)
    assert problem.startswith(f"{path}:{line_of(text, 'users')}: customers[0].users.ebanking: Value error, a username")


HOSTILE_BUT_PRINTABLE = {
    "id": "C1';DROP-TABLE",
    "name": "Robert'); DROP TABLE customers;-- \"Bobby\" 50% _x_ \\ 👩‍👩‍👧 🏴󠁧󠁢󠁳󠁣󠁴󠁿 عربي",
    "email": "o'brien+tag%x@example.com",
    "description": "'; DELETE FROM operations; -- ❤️",
    "amount": "1' OR '1'='1 EUR",
}


def test_sql_metacharacters_and_emoji_are_stored_exactly_and_harm_nothing(tmp_path: Path, bank: SqliteBank) -> None:
    hostile = HOSTILE_BUT_PRINTABLE
    customer = seed_customer(1, cards=[{"last4": "1111", "pin": "1234"}], phones=["+34600000009"],
                             users={"ebanking": "o'brien"[:1] + "brien"},
                             blocked_operations=[{"reference": "77", "description": hostile["description"],
                                                  "amount": hostile["amount"]}])
    customer.update(id=hostile["id"], name=hostile["name"], email=hostile["email"])
    path = write(tmp_path / "seed.yaml", seed_text(customer, seed_customer(2)))
    assert seed_bank(bank, load_seed(path)) == 2

    listed = {c["id"]: c for c in bank.list_customers()}
    assert set(listed) == {hostile["id"], "C2"}
    stored = listed[hostile["id"]]
    assert (stored["name"], stored["email"]) == (hostile["name"], hostile["email"])
    assert bank.blocked_operation(hostile["id"], "77").description == hostile["description"]
    assert bank.blocked_operation(hostile["id"], "77").amount == hostile["amount"]
    assert bank.customer_by_phone("+34600000009") == hostile["id"]
    verified = bank.verify_card(Document(DocumentType.DNI, dni(1)), Secret("1111"), Secret("1234"))
    assert verified.customer_id == hostile["id"]
    with bank.db.transaction(write=False) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"customers", "operations", "cards", "phones", "online_users"} <= tables
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 2
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --------------------------------------------------------------------------- the seed: all or nothing


def test_a_seed_refused_halfway_leaves_the_database_exactly_as_it_was(tmp_path: Path, bank: SqliteBank) -> None:
    seed_bank(bank, load_seed(write(tmp_path / "first.yaml", SEED)))
    bank.verify_card(Document(DocumentType.DNI, "00000000T"), Secret("8642"), Secret("0000"))  # a counter to keep
    before = database_dump(bank)

    # C3 is new and fine, C1 is rewritten (its rows deleted, cascading), then C9 claims
    # C2's document: the database alone shows the conflict, after two customers are written.
    text = seed_text(
        seed_customer(3, cards=[{"last4": "3333", "pin": "3333"}]),
        {**seed_customer(4), "id": "C1", "name": "Renamed", "document": {"type": "dni", "number": "00000000T"}},
        {**seed_customer(9), "document": {"type": "nie", "number": "X1234567L"}},
    )
    path = write(tmp_path / "second.yaml", text)
    with pytest.raises(ConfigError) as raised:
        seed_bank(bank, load_seed(path))
    assert raised.value.problems == [
        f"{path}:{line_of(text, 'X1234567L')}: customers[2].document.number: customer C9: document "
        f"{Document(DocumentType.NIE, 'X1234567L').masked()} already belongs to customer C2 in the database"]
    assert database_dump(bank) == before

    # The same with a username taken in the database.
    text = seed_text(seed_customer(3), {**seed_customer(5), "users": {"ebanking": "ttwo"}})
    path = write(tmp_path / "third.yaml", text)
    with pytest.raises(ConfigError, match=rf"^{path}:{line_of(text, 'ttwo')}: customers\[1\]\.users\.ebanking: "
                                          "customer C5: username 'ttwo' already belongs to customer C2"):
        seed_bank(bank, load_seed(path))
    assert database_dump(bank) == before


def test_the_seed_command_reports_a_hostile_file_without_a_traceback(tmp_path: Path, capsys) -> None:
    config = write(tmp_path / "config.yaml", f"database: {tmp_path / 'cli.sqlite3'}\n"
                                             f"logging: {{file: {tmp_path / 'log.txt'}}}\n"
                                             "security: {scrypt_n: 1024}\n")
    good = write(tmp_path / "good.yaml", SEED)
    assert main(["--config", str(config), "bank", "seed", str(good)]) == 0
    before = cli_dump(tmp_path / "cli.sqlite3")

    bomb = write(tmp_path / "bomb.yaml", BILLION_LAUGHS)
    tagged = write(tmp_path / "tagged.yaml", f"customers: !!python/object/apply:os.mkdir [{tmp_path / 'pwned'}]\n")
    for path, expected in ((bomb, f"{bomb}:"), (tagged, f"{tagged}:1: the tag"), (tmp_path, f"{tmp_path}: is a folder")):
        capsys.readouterr()
        assert main(["--config", str(config), "bank", "seed", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("configuration error:\n") and expected in err and "Traceback" not in err
    assert not (tmp_path / "pwned").exists()
    assert cli_dump(tmp_path / "cli.sqlite3") == before


def cli_dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


# --------------------------------------------------------------------------- the menu


def menu_file(tmp_path: Path, data: Any) -> tuple[Path, str]:
    text = dump(data)
    return write(tmp_path / "menu.yaml", text), text


def test_the_menu_model_has_no_field_that_names_a_file() -> None:
    seen: set[type] = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            for kind in _types_in(info.annotation):
                assert not (isinstance(kind, type) and issubclass(kind, os.PathLike)), f"{model.__name__}.{name}"
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    walk(kind)

    walk(Menu)
    assert len(seen) > 5  # every node type was walked


def _types_in(annotation: Any) -> list[Any]:
    found = [annotation]
    for arg in typing.get_args(annotation):
        found += _types_in(arg)
    return found


@pytest.mark.parametrize("where, key, value", [
    ((), "include", "../../etc/passwd"),
    ((), "nlu_data", "/etc"),
    (("nodes", "main"), "prompt_file", "../../etc/passwd"),
    (("nodes", "main"), "audio", "/etc/shadow"),
    (("nodes", "bye"), "prompt_audio", "link_outside.wav"),
    (("nodes", "main", "options", 0), "grammar", "../grammar.txt"),
])
def test_a_key_that_would_name_a_file_is_refused(tmp_path: Path, where: tuple, key: str, value: str) -> None:
    data = minimal_menu()
    target: Any = data
    for part in where:
        target = target[part]
    target[key] = value
    path, text = menu_file(tmp_path, data)
    dotted = yamlfile.dotted_path(where + (key,))
    assert one_problem(load_menu_checked, path) == f"{path}:{line_of(text, key + ':')}: {dotted}: unknown key (misspelt?)"


def test_a_menu_reached_through_a_symlink_elsewhere_is_the_operators_choice(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "menu.yaml").write_text(DEFAULT_MENU.read_text(encoding="utf-8"), encoding="utf-8")
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "menu.yaml").symlink_to(elsewhere / "menu.yaml")
    config = write(folder / "config.yaml", "menu: menu.yaml\ndatabase: ../../../srv/anywhere.sqlite3\n")
    loaded = load_config_file(config)
    assert loaded.database == Path("../../../srv/anywhere.sqlite3")
    assert "main" in load_menu_checked(folder / "menu.yaml").nodes


@pytest.mark.parametrize("template, problem", [
    ("Hola {__class__}", "{__class__}: a field is a slot's name"),
    ("Hola {slot.__dict__}", "{slot.__dict__}: a field is a slot's name"),
    ("Hola {document_number.__class__.__mro__}", "a field is a slot's name"),
    ("Hola {0}", "{0}: a field is a slot's name"),
    ("Hola {}", "{}: a field is a slot's name"),
    ("Hola {slots[pin]}", "{slots[pin]}: a field is a slot's name"),
    ("Hola {pin!r}", "{pin!r}: no conversions"),
    ("Hola {pin:>1000000000}", "unknown format ':>1000000000' (only ':digits')"),
    ("Hola {pin:{pin}}", "unknown format ':{pin}' (only ':digits')"),
    ("Hola {pin", "expected '}' before end of string"),
    ("Hola }", "Single '}' encountered in format string"),
])
@pytest.mark.parametrize("place", ["prompt", "reprompt", "text"])
def test_template_injection_in_any_text_is_refused(tmp_path: Path, template: str, problem: str, place: str) -> None:
    data = minimal_menu()
    if place == "text":
        data["texts"]["no_match"]["es"] = template
        path_text = "texts.no_match.es"
    else:
        data["nodes"]["main"][place] = {"es": template}
        path_text = f"nodes.main.{place}.es"
    path, text = menu_file(tmp_path, data)
    found = one_problem(load_menu_checked, path)
    assert found.startswith(f"{path}:{line_of(text, template)}: {path_text}: ") and problem in found, found


def test_plain_fields_and_escaped_braces_are_fine(tmp_path: Path) -> None:
    data = minimal_menu()
    data["nodes"]["main"]["prompt"]["es"] = "Pulse 1 {{o}} 2. Llame al {agent_phone:digits}, {document_number}."
    menu = load_menu_checked(menu_file(tmp_path, data)[0])
    assert "{agent_phone:digits}" in menu.nodes["main"].prompt["es"]


@pytest.mark.parametrize("char", ["\x1b", "\x00", "\u202e", "\u200b", "\u2028", "\ud800"])
def test_control_and_invisible_characters_in_prompts_are_refused(tmp_path: Path, char: str) -> None:
    data = minimal_menu()
    data["nodes"]["bye"]["prompt"]["es"] = f"Adiós{char}."
    path, text = menu_file(tmp_path, data)
    assert one_problem(load_menu_checked, path) == (
        f"{path}:{line_of(text, 'Adi')}: nodes.bye.prompt.es: the control or invisible character "
        f"U+{ord(char):04X} (write only what is said)")


def test_a_huge_prompt_is_refused(tmp_path: Path) -> None:
    data = minimal_menu()
    data["nodes"]["main"]["prompt"]["es"] = "Pulse 1. " * 100_000
    path, text = menu_file(tmp_path, data)
    assert one_problem(load_menu_checked, path) == (
        f"{path}:{line_of(text, 'Pulse 1. Pulse')}: nodes.main.prompt.es: a text of 900,000 characters (at most 1,000)")


LOOPS = {
    "two messages": {
        "check": {"type": "action", "action": ACTION, "results": {"ok": {"next": "ping"}}},
        "ping": {"type": "message", "prompt": {"es": "Ping."}, "next": "pong"},
        "pong": {"type": "message", "prompt": {"es": "Pong."}, "next": "ping"},
    },
    "an action retried for ever": {
        "check": {"type": "action", "action": ACTION, "results": {"ok": {"next": "bye"}, "mismatch": {"next": "again"}}},
        "again": {"type": "message", "prompt": {"es": "Otra vez."}, "next": [{"when": {"x": "1"}, "go": "bye"},
                                                                              {"go": "check"}]},
    },
    "exceeded into itself": {  # the engine enters `exceeded` at once: unbounded recursion
        "check": {"type": "action", "action": ACTION, "results": {"ok": {"next": "spin"}}},
        "spin": {"type": "message", "prompt": {"es": "Vuelta."}, "counter": "c", "exceeded": "spin", "next": "bye"},
    },
}


@pytest.mark.parametrize("name", LOOPS)
def test_a_loop_that_never_waits_for_the_caller_is_refused(tmp_path: Path, name: str) -> None:
    data = minimal_menu(**LOOPS[name])
    data["counters"] = {"c": 2}
    path, _ = menu_file(tmp_path, data)
    problem = one_problem(load_menu_checked, path)
    assert problem.startswith(f"{path}:") and "never waits for the caller" in problem, problem
    assert " -> " in problem


def test_loops_through_the_caller_or_a_counter_are_fine(tmp_path: Path) -> None:
    # The shipped menu retries a wrong PIN through a counted message back to an entry.
    assert load_menu_checked(DEFAULT_MENU)
    data = minimal_menu(
        check={"type": "action", "action": ACTION, "results": {"ok": {"next": "bye"}, "mismatch": {"next": "retry"}}},
        retry={"type": "message", "prompt": {"es": "Otra vez."}, "counter": "c", "exceeded": "bye", "next": "check"},
    )
    data["counters"] = {"c": 3}
    assert set(load_menu_checked(menu_file(tmp_path, data)[0]).nodes) == {"main", "check", "retry", "bye"}


def test_unknown_and_unreachable_nodes_and_unknown_actions(tmp_path: Path) -> None:
    data = minimal_menu(orphan={"type": "end", "outcome": "failed", "prompt": {"es": "Nadie llega."}})
    data["nodes"]["main"]["options"][1]["next"] = "../../etc/passwd"
    data["nodes"]["check"]["action"] = "__init__"
    path, text = menu_file(tmp_path, data)
    found = refused(load_menu_checked, path)
    assert found == [
        f"{path}:{line_of(text, '../../etc')}: nodes.main.options[1].next: unknown node '../../etc/passwd'",
        f"{path}:{line_of(text, '__init__')}: nodes.check.action: unknown action '__init__' "
        f"(known: {sorted(UnlockActions.NAMES)})",
        f"{path}:{line_of(text, 'orphan:')}: nodes.orphan: node 'orphan' cannot be reached from any entry point",
    ]


@pytest.mark.parametrize("edit, where, message", [
    (lambda d: d["nodes"].update({"bad\x1bname": d["nodes"].pop("bye")}), "nodes", "a node's name is 1-64"),
    (lambda d: d["entry_points"].update({"line two": "main"}), "entry_points.line two", "an entry point's name"),
    (lambda d: d.update(languages=["../es"]), "languages[0]", "String should match pattern"),
    (lambda d: d.update(counters={"c": -1}), "counters.c", "Input should be greater than or equal to 1"),
    (lambda d: d["nodes"]["main"].update(timeout=float("inf")), "nodes.main.timeout", "less than or equal to 600"),
    (lambda d: d["nodes"].update(n={"type": "digits", "prompt": {"es": "x"}, "slot": "s", "min": 1,
                                    "max": 10**9, "next": "bye"}), "nodes.n.max", "less than or equal to 64"),
    (lambda d: d["nodes"]["main"].update(type="shell"), "nodes.main", "does not match any of the expected tags"),
])
def test_hostile_values_in_the_menu(tmp_path: Path, edit: Callable[[dict], Any], where: str, message: str) -> None:
    data = minimal_menu()
    edit(data)
    path, _ = menu_file(tmp_path, data)
    found = refused(load_menu_checked, path)
    assert any(p.startswith(f"{path}:") and f": {where}" in p and message in p for p in found), found


def test_the_config_check_command_reports_a_hostile_menu_without_a_traceback(tmp_path: Path, capsys) -> None:
    data = minimal_menu()
    data["nodes"]["main"]["prompt"]["es"] = "{slot.__dict__}"
    menu, text = menu_file(tmp_path, data)
    config = write(tmp_path / "config.yaml", f"menu: {menu}\ndatabase: {tmp_path / 'x.sqlite3'}\n")
    assert main(["config", "check", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == ("configuration error:\n"
                   f"  {menu}:{line_of(text, '{slot')}: nodes.main.prompt.es: {{slot.__dict__}}: a field is a slot's "
                   "name (letters, digits, _), e.g. {document_number}\n")


# --------------------------------------------------------------------------- the configuration


def test_config_bad_yaml_and_wrong_types_name_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "database: x\n  menu: y\n")
    assert one_problem(load_config_file, path) == f"{path}:2: not valid YAML: mapping values are not allowed here"
    text = ("database: [1, 2]\n"
            "menu: {file: menu.yaml}\n"
            "timeouts: 5\n"
            "sip:\n"
            "  max_calls: lots\n"
            "languages: null\n"
            "lockout: {max_pin_attempts: 1000000}\n")
    path = write(tmp_path / "config.yaml", text)
    assert sorted(p.split(": ", 2)[0] + " " + p.split(": ", 2)[1] for p in refused(load_config_file, path)) == [
        f"{path}:1 database",
        f"{path}:2 menu",
        f"{path}:3 timeouts",
        f"{path}:5 sip.max_calls",
        f"{path}:6 languages",
        f"{path}:7 lockout.max_pin_attempts",
    ]
    path = write(tmp_path / "config.yaml", "- database\n")
    assert one_problem(load_config_file, path) == f"{path}: the configuration must be a mapping of keys"
