"""The simulated caller: who calls (personas from the demo bank) and what they key or say.

A *persona* is a customer of the bank seed (``voicebot/data/demo_bank.yaml`` by default)
with what they can give at a digit step: their document, cards and PINs, blocked
operations, and the number they call from. Two callers are added to them: a *stranger*
(a number and a document the bank does not know) and a *repeat caller* (the first customer
after as many failed checks in earlier calls as the lockout allows), so that every result
of an action can come up without a hand-written script per flow.

A *step* is one turn of the caller once the line listens: keys, a phrase, or silence. The
keys-only caller never speaks and the voice-only caller never keys; both wait for the end
of each prompt (a first-time caller listens to the options), then take
:data:`REACTION_SECONDS` to answer.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..backends.seed import BankSeed
from ..config import Config, normalise_number
from ..documents import NIE_PREFIX_DIGIT
from ..masking import reveal
from ..menu.model import DigitsNode
from ..nlu.interpreter import LETTER_NAMES, MULTIWORD_LETTERS
from ..nlu.numbers import LANGUAGE_WORDS

REACTION_SECONDS = 0.5  # a caller takes this long to start answering once a prompt ends
KEY_ON_SECONDS = 0.1  # a key held this long...
KEY_OFF_SECONDS = 0.2  # ...and this long between two keys: about three keys a second
STRANGER_NUMBER = "+34699999999"
STRANGER_DOCUMENT = "11223344"  # a DNI (keyed without its letter) the demo bank does not have


class Mode(enum.StrEnum):
    KEYS = "keys"
    VOICE = "voice"


class StepKind(enum.StrEnum):
    KEYS = "keys"
    SAY = "say"
    SILENCE = "silence"


@dataclass(frozen=True)
class Step:
    """One turn of the caller. ``why`` says what the explorer meant by it (for the report)."""

    kind: StepKind
    text: str = ""
    why: str = ""
    secret: bool = False  # a PIN, card digits: never shown in the report

    def shown(self) -> str:
        if self.kind is StepKind.SILENCE:
            return "(silence)"
        text = "****" if self.secret else self.text
        return f"keys {text}" if self.kind is StepKind.KEYS else f"says \u201c{text}\u201d"


@dataclass(frozen=True)
class Card:
    last4: str
    pin: str | None  # None: the seed gives only its hash


@dataclass(frozen=True)
class Persona:
    id: str
    label: str
    caller_id: str
    document_type: str | None = None  # dni | nie
    document_number: str | None = None  # full, with its control letter
    cards: tuple[Card, ...] = ()
    operations: tuple[str, ...] = ()
    earlier_failures: int = 0  # failed identity checks in earlier calls (same caller ID and document)


def personas(seed: BankSeed, config: Config) -> list[Persona]:
    """The bank's customers, then a stranger and a repeat caller."""
    found: list[Persona] = []
    registered: set[str] = set()
    for customer in seed.customers:
        number = customer.mobile or (customer.phones[0] if customer.phones else None)
        registered.update(normalise_number(phone) for phone in [*customer.phones, customer.mobile] if phone)
        found.append(Persona(
            id=customer.id,
            label=f"{customer.id} ({customer.document.type} {customer.document.number})",
            caller_id=number or STRANGER_NUMBER,
            document_type=str(customer.document.type),
            document_number=customer.document.number,
            cards=tuple(Card(reveal(card.last4), reveal(card.pin) if card.pin is not None else None)
                        for card in customer.cards),
            operations=tuple(op.reference for op in customer.blocked_operations),
        ))
    stranger_number = STRANGER_NUMBER
    while normalise_number(stranger_number) in registered:  # a seed that registers it after all
        stranger_number = "+3469" + str(int(stranger_number[5:]) - 1)
    found.append(Persona(id="stranger", label=f"stranger (calls from {stranger_number})", caller_id=stranger_number,
                         document_type="dni", document_number=None))
    first = next((p for p in found if p.cards), None)
    if first is not None:
        failures = min(config.lockout.failures_per_caller, config.lockout.failures_per_document)
        found.append(Persona(
            id=f"{first.id}-repeat", label=f"{first.id} after {failures} failed checks in earlier calls",
            caller_id=first.caller_id, document_type=first.document_type, document_number=first.document_number,
            cards=first.cards, operations=first.operations, earlier_failures=failures,
        ))
    return found


# ---------------------------------------------------------------------- what a digit step needs


class SlotKind(enum.StrEnum):
    DOCUMENT = "document"
    CARD = "card"
    PIN = "pin"
    REFERENCE = "reference"
    OTHER = "other"


def slot_kind(node: DigitsNode) -> SlotKind:
    """What a digit step asks for, from its validation and its slot's name."""
    name = node.slot.lower()
    if node.validate_as or "document" in name:
        return SlotKind.DOCUMENT
    if "pin" in name:
        return SlotKind.PIN
    if "card" in name or "last4" in name:
        return SlotKind.CARD
    if "reference" in name or "operation" in name:
        return SlotKind.REFERENCE
    return SlotKind.OTHER


def keyed_document(kind: str, number: str) -> str:
    """A document as the caller keys it: a DNI's 8 digits, a NIE's letter as its key and 7 digits."""
    if kind == "nie" and number[:1] in NIE_PREFIX_DIGIT:
        return NIE_PREFIX_DIGIT[number[0]] + number[1:8]
    return number[:8]


@dataclass(frozen=True)
class Value:
    """A value for a digit step: ``digits`` as keyed (a NIE's letter as its key), ``said`` as
    spelled for a voice (a NIE's letter as a letter), ``right`` whether the bank should accept it."""

    digits: str
    said: str
    right: bool
    label: str
    card: str | None = None  # the card this value names (for the PIN that follows)


def values_for(node: DigitsNode, persona: Persona, card: str | None, visit: int) -> list[Value]:
    """The values the caller tries at a digit step: the right one(s) first, then a wrong one.

    ``visit`` counts earlier visits of the step in the call: a wrong card is another made-up
    card each time (three wrong cards end in an agent, one card three times locks it).
    """
    kind = slot_kind(node)
    found: list[Value] = []
    if kind is SlotKind.DOCUMENT:
        wanted = node.validate_as if node.validate_as in ("dni", "nie") else None
        if persona.document_number and persona.document_type and wanted in (None, persona.document_type):
            keyed = keyed_document(persona.document_type, persona.document_number)
            found.append(Value(keyed, persona.document_number[:8], True, f"{persona.id}'s document"))
        if wanted in (None, "dni"):
            found.append(Value(STRANGER_DOCUMENT, STRANGER_DOCUMENT, False, "a document the bank does not have"))
        elif wanted == "nie":
            found.append(Value("0" + STRANGER_DOCUMENT[1:], "X" + STRANGER_DOCUMENT[1:],
                               False, "a NIE the bank does not have"))
    elif kind is SlotKind.CARD:
        for c in persona.cards:
            found.append(Value(c.last4, c.last4, True, f"{persona.id}'s card", card=c.last4))
        wrong = f"{9990 + visit % 10}"
        found.append(Value(wrong, wrong, False, "a card the customer does not have", card=wrong))
    elif kind is SlotKind.PIN:
        chosen = next((c for c in persona.cards if c.last4 == card), None)
        if chosen is not None and chosen.pin:
            found.append(Value(chosen.pin, chosen.pin, True, "the card's PIN"))
            wrong = "".join(str((int(ch) + 1) % 10) for ch in chosen.pin)
        else:
            wrong = "0000"
        found.append(Value(wrong, wrong, False, "a wrong PIN"))
    elif kind is SlotKind.REFERENCE:
        for reference in persona.operations:
            found.append(Value(reference, reference, True, f"{persona.id}'s blocked operation"))
        wrong = str(visit + 1) * max(node.min, 4)
        found.append(Value(wrong, wrong, False, "a reference the bank does not have"))
    else:
        filler = "1" * node.min
        found.append(Value(filler, filler, True, f"{node.min} digits"))
    return [v for v in found if node.min <= len(v.digits) <= node.max]


def keys_for(node: DigitsNode, value: Value) -> str:
    """The keys of an entry: ``#`` ends one shorter than the longest the step takes."""
    return value.digits + ("#" if len(value.digits) < node.max else "")


def digit_words(language: str) -> dict[str, str]:
    """Digit -> the word a caller says for it ("5" -> "cinco")."""
    words: dict[str, str] = {}
    for word, digit in LANGUAGE_WORDS[language].digit_words.items():
        words.setdefault(digit, word)  # the first listed is the plain one ("uno", not "un")
    return words


def letter_words(language: str) -> dict[str, str]:
    """Letter -> how a caller names it when spelling a document ("X" -> "equis")."""
    names: dict[str, str] = {}
    for phrase, letter in MULTIWORD_LETTERS.get(language, {}).items():
        names.setdefault(letter.upper(), phrase)
    for name, letter in LETTER_NAMES.get(language, {}).items():
        if len(name) > 1 and len(name) > len(names.get(letter, "")) and letter not in names:
            names[letter] = name
    return names


def spoken(text: str, language: str) -> str:
    """Digits and letters as a caller says them, one by one: "X12" -> "equis uno dos"."""
    digits, letters = digit_words(language), letter_words(language)
    words = []
    for ch in text.upper():
        if ch in digits:
            words.append(digits[ch])
        elif ch in letters:
            words.append(letters[ch])
        elif ch.isalpha():
            words.append(ch.lower())
    return " ".join(words)


def word_count(text: str) -> int:
    return sum(1 for word in text.split() if any(ch.isalnum() for ch in word))


def iter_unique(items: Sequence[str]) -> Iterator[str]:
    seen: set[str] = set()
    for item in items:
        if item and item not in seen:
            seen.add(item)
            yield item
