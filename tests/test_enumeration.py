"""Enumeration (issue 8): what a caller hears cannot tell which identity factor was wrong.

An unknown document, a card the customer does not have and a wrong PIN must reach the
caller as one and the same call: the same prompts in the same order, the same listening
and timers, the same audio at the same call-audio times, the same record and hand-off,
and the same number of scrypt computations. These are behaviour, checked exactly; how long
each path takes on a clock is measured by ``bench/security.py``, never asserted here.

Every call runs on the real line (engine, rasa_sdk actions, the SQLite bank with the demo
customers), each scenario on a bank of its own, so every call meets the same bank. The
unknown document, 12368678, masks like the customer's own 12345678 (``******78Z``: same
last digits, same control letter), so what the caller typed leaves no trace of its own
in the masked record either. (The bank's side, one result and one scrypt per check, is in
``tests/test_sqlite_bank.py``.)
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicebot.app import CallMeta, Line
from voicebot.backends import sqlite as sqlite_backend
from voicebot.call.session import FRAME_SECONDS, CallSession
from voicebot.dialog import PlayPrompt, RunAction
from voicebot.documents import Document, DocumentType
from voicebot.masking import Secret
from voicebot.transports.console import ConsoleCall

from .conftest import UNLOCK_LINE, make_config

RATE = 8000
KNOWN_DNI, UNKNOWN_DNI = "12345678", "12368678"  # C001; no one's, and the same masked: ******78Z
START = {"es": ["1", "1", "1", "1"], "en": ["2", "1", "1", "1"]}  # language, user, e-banking, DNI

# Three failed checks in one call, each scenario failing on one factor only. The wrong PINs
# go to both of C001's cards, so neither reaches its lock (lockout.max_pin_attempts, 3).
ATTEMPTS = {
    "unknown document": [(UNKNOWN_DNI, "4567", "1234"), (UNKNOWN_DNI, "9012", "4321"), (UNKNOWN_DNI, "4567", "1234")],
    "unknown card": [(KNOWN_DNI, "7777", "1234"), (KNOWN_DNI, "7778", "4321"), (KNOWN_DNI, "7777", "1234")],
    "wrong PIN": [(KNOWN_DNI, "4567", "0000"), (KNOWN_DNI, "9012", "0000"), (KNOWN_DNI, "4567", "0001")],
}
# The fields of a call record that are the call's own (an id, wall-clock times), not its path.
OWN_FIELDS = {"call_id", "started_at", "ended_at", "duration_s"}


def test_the_unknown_document_masks_like_the_known_one() -> None:
    # What makes the exact comparisons below possible.
    assert UNKNOWN_DNI not in {"12345678", "87654321", "11111111"}  # the demo bank's DNIs
    known, unknown = (Document.parse(DocumentType.DNI, n).number for n in (KNOWN_DNI, UNKNOWN_DNI))
    assert known != unknown and known[-4:] == unknown[-4:]


# --------------------------------------------------------------------------- the line


@contextmanager
def fresh_line(tmp_path: Path, name: str) -> Iterator[Line]:
    line = Line.open(make_config(tmp_path / re.sub(r"\W", "_", name)), echo=io.StringIO())
    line.ensure_demo_bank()
    try:
        yield line
    finally:
        line.close()


@dataclasses.dataclass
class Scrypt:
    checks: int = 0  # a stored hash (or the dummy) checked
    hashes: int = 0  # a new hash made (a temporary password, a code)


@pytest.fixture
def scrypt(monkeypatch: pytest.MonkeyPatch) -> Scrypt:
    counts = Scrypt()
    check, make = sqlite_backend.check_secret, sqlite_backend.hash_secret

    def counted_check(clear: str, stored: str) -> bool:
        counts.checks += 1
        return check(clear, stored)

    def counted_hash(clear: str, scrypt_n: int, *cost: int) -> str:
        counts.hashes += 1
        return make(clear, scrypt_n, *cost)

    monkeypatch.setattr(sqlite_backend, "check_secret", counted_check)
    monkeypatch.setattr(sqlite_backend, "hash_secret", counted_hash)
    return counts


# --------------------------------------------------------------------------- console calls


class HeardCall(ConsoleCall):
    """A console call that also keeps every command the engine gave, as the caller's side meets it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[Any] = []

    def _execute(self, command: Any) -> None:
        # An action's arguments are the caller's own input (the document in clear): the
        # caller meets only its name and, through what follows, its result.
        self.commands.append(("RunAction", command.name) if isinstance(command, RunAction) else command)
        super()._execute(command)


@dataclasses.dataclass
class Heard:
    commands: list[Any]  # every command of the engine: prompts, listening, timers, actions, transfer
    screen: list[str]  # the console, less the caller's own lines
    record: dict[str, Any]  # the call record, less its own id and times
    handoffs: list[dict[str, Any]]  # what the agent desk was handed
    scrypt: Scrypt


def console_call(line: Line, lines: list[str], scrypt: Scrypt, caller_id: str = "+34600000001") -> Heard:
    before = dataclasses.replace(scrypt)
    out = io.StringIO()
    call = HeardCall(line, caller_id=caller_id, dialed=UNLOCK_LINE, stdin=io.StringIO("".join(f"{x}\n" for x in lines)),
                     out=out, interactive=False)
    record = call.run()
    screen = [text for text in out.getvalue().splitlines() if not text.lstrip().startswith("caller ›")]
    own = {key: value for key, value in record.items() if key not in OWN_FIELDS}
    handoffs = [{k: v for k, v in h.items() if k != "created_at"} for h in line.desk.recent()]
    return Heard(call.commands, screen, own, handoffs,
                 Scrypt(scrypt.checks - before.checks, scrypt.hashes - before.hashes))


def script(lang: str, attempts: list[tuple[str, str, str]]) -> list[str]:
    return START[lang] + [entry for attempt in attempts for entry in attempt]


@pytest.mark.parametrize("lang", ["es", "en"])
def test_every_wrong_factor_is_the_same_call(tmp_path: Path, scrypt: Scrypt, lang: str) -> None:
    heard: dict[str, Heard] = {}
    for name, attempts in ATTEMPTS.items():
        with fresh_line(tmp_path, f"{lang}-{name}") as line:
            heard[name] = console_call(line, script(lang, attempts), scrypt)
    first, *others = heard.values()
    assert first.record["actions"] == [{"action": "verify_card", "result": "mismatch"}] * 3
    assert (first.record["outcome"], first.record["outcome_reason"]) == ("transferred", "verification_failed")
    # The test sees what it means to: prompts, timers and the hand-off are in the stream.
    kinds = {type(c).__name__ for c in first.commands}
    assert {"PlayPrompt", "Listen", "StartTimer", "Transfer"} <= kinds
    assert sum(isinstance(c, PlayPrompt) and c.prompt_id == "verify_mismatch.prompt" for c in first.commands) == 2
    for name, other in zip(list(heard)[1:], others):
        assert other.commands == first.commands, f"{name}: the engine's commands differ from an unknown document's"
        assert other.screen == first.screen, name
        assert other.record == first.record, name
        assert other.handoffs == first.handoffs, name
    # One scrypt per check on every path, and no other.
    assert {name: (h.scrypt.checks, h.scrypt.hashes) for name, h in heard.items()} == \
        {name: (3, 0) for name in ATTEMPTS}


def test_each_answer_to_a_check_costs_the_call_one_scrypt(tmp_path: Path, scrypt: Scrypt) -> None:
    # Through the whole call, for the answers tests/test_sqlite_bank.py does not reach at the
    # bank: a locked card and a paused caller too. (The right PIN adds the temporary
    # password's own hash, after the check.)
    with fresh_line(tmp_path, "locked") as line:
        for pin in ("0000", "0001", "0002"):
            line.bank.verify_card(Document.parse("dni", KNOWN_DNI), Secret("4567"), Secret(pin))
        locked = console_call(line, START["es"] + [KNOWN_DNI, "4567", "1234"], scrypt)
    with fresh_line(tmp_path, "paused") as line:
        guesser = "+34699000111"
        console_call(line, script("es", ATTEMPTS["unknown card"]), scrypt, caller_id=guesser)
        # Other made-up cards (7777 a third time would lock first, as a real card would).
        console_call(line, script("es", [(KNOWN_DNI, card, "1234") for card in ("7779", "7780", "7781")]), scrypt,
                     caller_id=guesser)
        paused = console_call(line, START["es"] + [KNOWN_DNI, "4567", "1234"], scrypt, caller_id=guesser)
    calls = {"locked": locked, "paused": paused}
    for name, attempt in [("unknown document", (UNKNOWN_DNI, "4567", "1234")),
                          ("unknown card", (KNOWN_DNI, "7777", "1234")),
                          ("wrong PIN", (KNOWN_DNI, "4567", "0000")),
                          ("right PIN", (KNOWN_DNI, "4567", "1234"))]:
        with fresh_line(tmp_path, f"one-{name}") as line:
            calls[name] = console_call(line, START["es"] + list(attempt), scrypt)
    assert {name: call.record["outcome_reason"] or call.record["outcome"] for name, call in calls.items()} == {
        "locked": "card_locked", "paused": "verification_paused", "unknown document": "caller_hung_up",
        "unknown card": "caller_hung_up", "wrong PIN": "caller_hung_up", "right PIN": "credentials_sent"}
    assert {name: (c.scrypt.checks, c.scrypt.hashes) for name, c in calls.items()} == {
        "locked": (1, 0), "paused": (1, 0), "unknown document": (1, 0), "unknown card": (1, 0),
        "wrong PIN": (1, 0), "right PIN": (1, 1)}


def test_after_the_cost_is_raised_every_check_still_costs_the_same(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cost"
    with fresh_line(folder, "first start"):
        pass  # the demo PINs hashed at the tests' cost, 2**10
    costs: list[int] = []
    check = sqlite_backend.check_secret

    def costed(clear: str, stored: str) -> bool:
        costs.append(sqlite_backend.parse_hash(stored)[0])
        return check(clear, stored)

    monkeypatch.setattr(sqlite_backend, "check_secret", costed)
    line = Line.open(make_config(folder / "first_start", security={"scrypt_n": 2**11}), echo=io.StringIO())
    try:
        per_path = {}
        for name, attempts in ATTEMPTS.items():
            costs.clear()
            console_call(line, script("es", attempts[:1]), Scrypt())
            per_path[name] = list(costs)
    finally:
        line.close()
    assert per_path["wrong PIN"] == [2**10]  # the card's own hash
    assert per_path["unknown document"] == per_path["unknown card"] == per_path["wrong PIN"]


def test_the_pause_falls_alike_on_a_document_that_exists_and_one_that_does_not(tmp_path: Path, scrypt: Scrypt) -> None:
    # Six failures for one document (from two callers) pause it, whether or not anyone holds
    # it: the third caller, with the right answers or not, hears the same words.
    answers = {}
    # Cards no one holds, a different one each time (one card tried three times locks first).
    cards = {"+34699000001": ("7771", "7772", "7773"), "+34699000002": ("7774", "7775", "7776")}
    for name, dni in [("known", KNOWN_DNI), ("unknown", UNKNOWN_DNI)]:
        with fresh_line(tmp_path, f"pause-{name}") as line:
            for caller_id, tried in cards.items():
                console_call(line, script("es", [(dni, card, "1234") for card in tried]), scrypt, caller_id=caller_id)
            answers[name] = console_call(line, START["es"] + [dni, "4567", "1234"], scrypt, caller_id="+34699000003")
    known, unknown = answers["known"], answers["unknown"]
    assert known.record["outcome_reason"] == "verification_paused"
    assert (known.commands, known.screen, known.record, known.handoffs) == \
        (unknown.commands, unknown.screen, unknown.record, unknown.handoffs)


def test_a_card_locked_by_wrong_pins_sounds_like_a_card_that_does_not_exist(tmp_path: Path, scrypt: Scrypt) -> None:
    heard = {}
    for name, card in [("real card", "4567"), ("no such card", "7777")]:
        with fresh_line(tmp_path, f"lock-{name}") as line:
            heard[name] = console_call(line, script("es", [(KNOWN_DNI, card, pin) for pin in ("0000", "0001", "0002")]),
                                       scrypt)
    real, none = heard["real card"], heard["no such card"]
    assert (real.commands, real.screen, real.handoffs) == (none.commands, none.screen, none.handoffs)


# --------------------------------------------------------------------------- calls on audio


class WordsTimedRenderer:
    """A prompt as a hum lasting as long as its words would take to say (its pitch from its
    text, so two different prompts never sound alike)."""

    def render(self, play: PlayPrompt, sample_rate: int) -> np.ndarray:
        text = play.masked_text()
        seconds = max(0.3, len(text.split()) / 3.0)
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        pitch = 200 + sum(map(ord, text)) % 400
        return (0.05 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def audio_call(line: Line, entries: list[str], caller_id: str = "+34600000001") -> tuple[list[dict], np.ndarray]:
    """A file call keyed like a patient caller: each entry once the prompt before it has ended,
    a key a frame. The transcript (key values out: they are what the caller typed) and the bot's audio."""
    session = CallSession(line, CallMeta("file", caller_id, UNLOCK_LINE), WordsTimedRenderer(), None, RATE,
                          virtual=True)
    silence = np.zeros(session.frame_len, dtype=np.float32)
    heard: list[np.ndarray] = []
    session.start()
    for entry in entries:
        for _ in range(int(30 / FRAME_SECONDS)):
            if not session.playing:
                break
            heard.append(session.step(silence))
        for key in entry:
            session.press(key)
            heard.append(session.step(silence))
    for _ in range(int(60 / FRAME_SECONDS)):
        if session.finished:
            break
        heard.append(session.step(silence))
    assert session.finished, "the call did not end"
    session.finish()
    transcript = [{k: v for k, v in e.as_dict().items() if not (e.kind == "key" and k == "key")}
                  for e in session.transcript]
    return transcript, np.concatenate(heard)


def test_on_audio_every_wrong_factor_sounds_the_same_at_the_same_times(tmp_path: Path) -> None:
    calls = {}
    for name, attempts in ATTEMPTS.items():
        with fresh_line(tmp_path, f"audio-{name}") as line:
            calls[name] = audio_call(line, script("es", attempts))
    (transcript, audio), *others = calls.values()
    assert [e["result"] for e in transcript if e["kind"] == "action_result"] == ["mismatch"] * 3
    assert [e["reason"] for e in transcript if e["kind"] == "transfer"] == ["verification_failed"]
    for name, (other_transcript, other_audio) in zip(list(calls)[1:], others):
        assert other_transcript == transcript, name
        assert np.array_equal(other_audio, audio), f"{name}: the caller hears other audio"
