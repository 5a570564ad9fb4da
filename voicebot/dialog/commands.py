"""What the host must do: imperatives returned by the engine."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

from ..masking import Secret, reveal
from ..menu.model import Outcome


@dataclass(frozen=True)
class Text:
    """A fixed piece of a prompt; ``key`` names it for a synthesis cache (``texts.no_match``).
    ``language``: said in that language's voice, not the prompt's (the language menu's
    "For English, press 2" in a Spanish prompt)."""

    key: str
    text: str
    language: str | None = None


@dataclass(frozen=True)
class SpokenDigits:
    """Digits read out one by one in groups (an SMS key, a phone number)."""

    value: str | Secret
    group: int = 3

    def words(self) -> str:
        digits = [ch for ch in reveal(self.value) if ch.isdigit()]
        groups = ["".join(digits[i:i + self.group]) for i in range(0, len(digits), self.group)]
        return ", ".join(" ".join(group) for group in groups)


Segment = Union[Text, SpokenDigits]


@dataclass(frozen=True)
class PlayPrompt:
    play_id: int
    prompt_id: str  # e.g. "main.prompt", "main.reprompt", "texts.agent"
    language: str
    segments: tuple[Segment, ...]
    barge_in: bool = True  # may speech interrupt it (a key always may)
    rate: float = 1.0  # of the line's speech rate: below 1 once the caller asked for slower speech

    @property
    def text(self) -> str:
        """What the caller hears, secrets included: for the speaker, never for a log."""
        return "".join(s.text if isinstance(s, Text) else s.words() for s in self.segments)

    @property
    def has_secret(self) -> bool:
        return any(isinstance(s, SpokenDigits) and isinstance(s.value, Secret) for s in self.segments)

    def masked_text(self) -> str:
        return "".join(
            s.text if isinstance(s, Text) else (str(s.value) if isinstance(s.value, Secret) else s.words())
            for s in self.segments
        )


@dataclass(frozen=True)
class StopPrompt:
    pass


class Expect(enum.StrEnum):
    CHOICE = "choice"  # one key / one option said
    DIGITS = "digits"  # an entry of min..max keys
    REPEAT_ONLY = "repeat_only"  # after a final message: only "repeat" is useful
    YES_NO = "yes_no"  # confirming what was understood ("I understood 4 5 6 7, is that right?")


@dataclass(frozen=True)
class Listen:
    node: str
    expect: Expect
    languages: tuple[str, ...]
    keys: tuple[str, ...] = ()  # keys that mean something here
    # Per language, the menu's phrases for its options (the recogniser's grammar adds digits and commands).
    phrases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    min_digits: int = 1
    max_digits: int = 1
    secret: bool = False  # input here is a secret: mask it in transcripts and recordings
    letters: bool = False  # letters may be said too (a document number: NIE prefix, control letter)


@dataclass(frozen=True)
class StopListening:
    pass


class TimerKind(enum.StrEnum):
    NO_INPUT = "no_input"
    INTER_DIGIT = "inter_digit"
    ACTION = "action"  # a backend step that has not answered


@dataclass(frozen=True)
class StartTimer:
    timer_id: str
    kind: TimerKind
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    timer_id: str


@dataclass(frozen=True)
class RunAction:
    action_id: str
    name: str
    args: Mapping[str, str | Secret] = field(default_factory=dict)


@dataclass(frozen=True)
class Transfer:
    reason: str
    context: Mapping[str, str] = field(default_factory=dict)  # never holds a secret


@dataclass(frozen=True)
class HangUp:
    outcome: Outcome
    reason: str | None = None


Command = Union[
    PlayPrompt, StopPrompt, Listen, StopListening, StartTimer, CancelTimer, RunAction, Transfer, HangUp,
]
