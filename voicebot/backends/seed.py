"""Customers for the embedded bank, read from a YAML seed file.

The operator writes the seed by hand (``voicebot/data/demo_bank.yaml`` is the demo one and
documents every field), so a mistake is reported as ``file:line: path: message``, all
mistakes at once. Seeding is an upsert: a customer in the seed replaces that customer's
rows in the database, wrong-PIN counters and issued codes included.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .. import yamlfile
from ..config import normalise_number
from ..errors import ConfigError
from ..masking import Secret
from .base import Channel, Document, DocumentType
from .sqlite import SqliteBank, parse_hash

DEMO_SEED = Path(__file__).resolve().parent.parent / "data" / "demo_bank.yaml"

# The embedded bank is a demo stand-in: every PIN is hashed (tens of ms each) on the way in.
MAX_CUSTOMERS = 10_000

_QUOTE_HINT = 'write it in quotes (e.g. "0123"): unquoted, YAML reads digits as a number and drops leading zeros'


def _text_not_number(value: Any) -> Any:
    # YAML turns 0123 into 83 and +34600000001 into 34600000001: say so instead of "not a string".
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(_QUOTE_HINT)
    return value


def _text(max_length: int, what: str) -> Callable[[Any], str]:
    """Text printed to people (a name, an operation): no control or invisible characters."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{what} must be text")
        if not value.strip():
            raise ValueError(f"{what} is empty")
        if len(value) > max_length:
            raise ValueError(f"{what} is longer than {max_length} characters")
        hidden = yamlfile.hidden_character(value)
        if hidden is not None:
            raise ValueError(
                f"{what} contains the control or invisible character U+{ord(hidden):04X}; write only what is printed"
            )
        return value

    return check


def _digits(length: int, what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        value = _text_not_number(value)
        if not isinstance(value, str):
            raise ValueError(f"{what} must be a string of {length} digits")
        if not (len(value) == length and value.isascii() and value.isdigit()):
            # The value itself is not repeated: it may be a PIN.
            raise ValueError(f"{what} must be exactly {length} digits")
        return value

    return check


def _pin(value: Any) -> Secret:
    return Secret(_digits(4, "a PIN")(value))


Pin = Annotated[Secret, PlainValidator(_pin)]
Last4 = Annotated[str, PlainValidator(_digits(4, "the card's last digits"))]


class _SeedModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedDocument(_SeedModel):
    type: DocumentType
    number: str = Field(description="full number with its control letter, e.g. 12345678Z or X1234567L")

    @field_validator("number", mode="before")
    @classmethod
    def _not_number(cls, value: Any) -> Any:
        value = _text_not_number(value)
        # str.isdigit() takes "١٢٣٤٥٦٧٨" (Arabic-Indic) and int() reads it: the check would
        # pass, and a caller keying 12345678 would never match the stored number.
        if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9 -]{1,20}", value):
            raise ValueError("a document number is 8 digits and letters A-Z, e.g. 12345678Z or X1234567L")
        return value

    @field_validator("number")
    @classmethod
    def _valid(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("type")
        if kind is None:  # the type is wrong too, and reported on its own
            return value
        return Document.parse(kind, value).number

    def document(self) -> Document:
        return Document(self.type, self.number)


class SeedCard(_SeedModel):
    last4: Last4
    pin: Pin | None = Field(None, description="the demo PIN in clear; hashed on the way in")
    pin_hash: str | None = Field(None, description="an already hashed PIN: scrypt$n$r$p$salt$hash")

    @field_validator("pin_hash")
    @classmethod
    def _well_formed(cls, value: str | None) -> str | None:
        if value is not None:
            parse_hash(value)  # its bounds keep a check from taking gigabytes or minutes
        return value

    @model_validator(mode="after")
    def _one_pin(self) -> "SeedCard":
        if (self.pin is None) == (self.pin_hash is None):
            raise ValueError("give exactly one of pin or pin_hash")
        return self


_USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


class SeedUsers(_SeedModel):
    """The customer's online-banking users, one per channel."""

    ebanking: str | None = None
    phone: str | None = None

    @field_validator("ebanking", "phone")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        # fullmatch: `$` in match() also allows a newline at the end.
        if value is not None and not (isinstance(value, str) and _USERNAME.fullmatch(value)):
            raise ValueError("a username is 1-64 letters, digits or . _ @ -")
        return value

    def by_channel(self) -> dict[Channel, str]:
        users = {Channel.EBANKING: self.ebanking, Channel.PHONE: self.phone}
        return {channel: name for channel, name in users.items() if name is not None}


class SeedOperation(_SeedModel):
    reference: str = Field(description="digits only, as e-banking shows it")
    description: Annotated[str, PlainValidator(_text(200, "a description"))]
    amount: Annotated[str, PlainValidator(_text(40, "an amount"))] = Field(
        description='as the bank shows it, e.g. "250.00 EUR"'
    )

    @field_validator("reference", mode="before")
    @classmethod
    def _not_number(cls, value: Any) -> Any:
        return _text_not_number(value)

    @field_validator("reference")
    @classmethod
    def _digits_only(cls, value: str) -> str:
        if not (1 <= len(value) <= 20 and value.isascii() and value.isdigit()):
            raise ValueError("an operation reference is 1-20 digits (the caller keys it in)")
        return value


def _phone(value: Any) -> str:
    value = _text_not_number(value)
    if not isinstance(value, str):
        raise ValueError("a phone number must be a string")
    if not re.fullmatch(r"\+?[0-9 \-().]+", value) or not 9 <= len(normalise_number(value)) <= 15:
        raise ValueError('a phone number is 9-15 digits, optionally with + and the country code, e.g. "+34600000001"')
    return value.strip()


Phone = Annotated[str, PlainValidator(_phone)]


# No spaces, quotes, brackets, commas or semicolons: an address goes into mail headers.
_EMAIL_PART = r'[^@\s<>()\[\],;:"\\]+'
_EMAIL = re.compile(rf"{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}")


def _email(value: Any) -> str:
    value = _text(254, "an e-mail address")(value)
    if not _EMAIL.fullmatch(value):
        raise ValueError("not an e-mail address")
    return value


class SeedCustomer(_SeedModel):
    # Printable ASCII: the id is typed at `voicebot bank unlock-card` and printed in records.
    id: str = Field(pattern=r"^[!-~]{1,32}$", description="the bank's customer id, e.g. C001")
    name: Annotated[str, PlainValidator(_text(200, "a name"))]
    document: SeedDocument
    language: Literal["es", "en"]
    email: Annotated[str, PlainValidator(_email)] | None = None
    mobile: Phone | None = None
    phones: list[Phone] = Field(default_factory=list, max_length=20, description="registered numbers (caller ID)")
    cards: list[SeedCard] = Field(default_factory=list, max_length=20)
    users: SeedUsers = SeedUsers()
    signature_blocked: bool = False
    blocked_operations: list[SeedOperation] = Field(default_factory=list, max_length=100)


class BankSeed(_SeedModel):
    customers: list[SeedCustomer] = Field(max_length=MAX_CUSTOMERS)
    # Where each value came from, for a conflict only the database shows (see seed_bank).
    _located: yamlfile.Located | None = PrivateAttr(None)


def load_seed(path: str | Path) -> BankSeed:
    """Read and check a seed file; ``ConfigError`` lists every problem with its line."""
    located = yamlfile.load(path)
    seed = yamlfile.validate(located, BankSeed, "a seed is a mapping with a 'customers' list")
    problems = _cross_check(seed, located)
    if problems:
        raise ConfigError(yamlfile.capped(problems))
    seed._located = located
    return seed


def _cross_check(seed: BankSeed, located: yamlfile.Located) -> list[str]:
    """What one value cannot show by itself: things that must be unique."""
    problems: list[str] = []
    first_seen: dict[tuple[str, str], tuple[str | int, ...]] = {}

    def unique(kind: str, value: str, path: tuple[str | int, ...], label: str) -> None:
        earlier = first_seen.setdefault((kind, value), path)
        if earlier != path:
            problems.append(f"{located.where(path)}: duplicate {label} (first at line {located.line_of(earlier)})")

    for i, customer in enumerate(seed.customers):
        at = ("customers", i)
        unique("id", customer.id, at + ("id",), f"customer id {customer.id!r}")
        unique("document", customer.document.number, at + ("document", "number"), "document number")
        for channel, username in customer.users.by_channel().items():
            unique("username", username, at + ("users", str(channel)), f"username {username!r}")
        for j, card in enumerate(customer.cards):
            # Last digits are not secret, but the message need not repeat them.
            unique(f"card:{i}", card.last4, at + ("cards", j, "last4"), "card (same last 4) for this customer")
        for j, phone in enumerate(customer.phones):
            unique(f"phone:{i}", normalise_number(phone), at + ("phones", j), f"phone {phone!r} for this customer")
        for j, operation in enumerate(customer.blocked_operations):
            unique(
                f"operation:{i}",
                operation.reference,
                at + ("blocked_operations", j, "reference"),
                f"operation reference {operation.reference!r} for this customer",
            )
    return problems


def seed_bank(bank: SqliteBank, seed: BankSeed) -> int:
    """Write ``seed`` into ``bank`` (replacing those customers); returns how many were written."""
    # Hash first: scrypt is slow and must not run while the write lock is held.
    pin_hashes = {
        (customer.id, card.last4): _pin_hash(bank, card) for customer in seed.customers for card in customer.cards
    }
    # One transaction: a seed refused halfway leaves the database as it was.
    with bank.db.transaction() as conn:
        for index, customer in enumerate(seed.customers):
            taken = _taken(conn, customer)
            if taken is not None:
                path, problem = taken
                where = seed._located.where(("customers", index) + path) if seed._located else f"customer {customer.id}"
                raise ConfigError(f"{where}: {problem}")
            # Cascades to phones, cards, users, signature, operations and codes: a clean slate.
            conn.execute("DELETE FROM customers WHERE id = ?", (customer.id,))
            conn.execute(
                "INSERT INTO customers (id, name, document_type, document_number, language, email, mobile)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    customer.id,
                    customer.name,
                    str(customer.document.type),
                    customer.document.number,
                    customer.language,
                    customer.email,
                    customer.mobile,
                ),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO phones (customer_id, number) VALUES (?, ?)",
                [(customer.id, normalise_number(phone)) for phone in customer.phones],
            )
            conn.executemany(
                "INSERT INTO cards (customer_id, last4, pin_hash) VALUES (?, ?, ?)",
                [(customer.id, card.last4, pin_hashes[customer.id, card.last4]) for card in customer.cards],
            )
            conn.executemany(
                "INSERT INTO online_users (customer_id, channel, username) VALUES (?, ?, ?)",
                [(customer.id, str(channel), name) for channel, name in customer.users.by_channel().items()],
            )
            conn.execute(
                "INSERT INTO signatures (customer_id, blocked) VALUES (?, ?)",
                (customer.id, int(customer.signature_blocked)),
            )
            conn.executemany(
                "INSERT INTO operations (customer_id, reference, description, amount, blocked) VALUES (?, ?, ?, ?, 1)",
                [(customer.id, op.reference, op.description, op.amount) for op in customer.blocked_operations],
            )
    return len(seed.customers)


def _pin_hash(bank: SqliteBank, card: SeedCard) -> str:
    if card.pin_hash is not None:
        return card.pin_hash
    assert card.pin is not None  # SeedCard requires one of the two
    return bank.hash_secret(card.pin.reveal())


def _taken(conn: sqlite3.Connection, customer: SeedCustomer) -> tuple[tuple[str, ...], str] | None:
    """A document or username that already belongs to another customer in the database:
    where it is in the customer's entry, and what is wrong."""
    owner = conn.execute(
        "SELECT id FROM customers WHERE document_number = ? AND id <> ?", (customer.document.number, customer.id)
    ).fetchone()
    if owner is not None:
        return ("document", "number"), (
            f"customer {customer.id}: document {customer.document.document().masked()} "
            f"already belongs to customer {owner['id']} in the database"
        )
    for channel, name in customer.users.by_channel().items():
        owner = conn.execute(
            "SELECT customer_id FROM online_users WHERE username = ? AND customer_id <> ?", (name, customer.id)
        ).fetchone()
        if owner is not None:
            return ("users", str(channel)), (
                f"customer {customer.id}: username {name!r} already belongs to customer"
                f" {owner['customer_id']} in the database"
            )
    return None
