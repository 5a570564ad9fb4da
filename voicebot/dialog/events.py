"""What happened on the call: past-tense facts fed to the engine."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

from ..masking import Secret


class Key(enum.StrEnum):
    """A telephone keypad key (DTMF), as every front reports it."""

    ZERO = "0"
    ONE = "1"
    TWO = "2"
    THREE = "3"
    FOUR = "4"
    FIVE = "5"
    SIX = "6"
    SEVEN = "7"
    EIGHT = "8"
    NINE = "9"
    STAR = "*"
    POUND = "#"
    A = "A"
    B = "B"
    C = "C"
    D = "D"


@dataclass(frozen=True)
class CallStarted:
    caller_id: str | None = None
    dialed: str | None = None
    language: str | None = None  # known in advance (a per-language number, a console flag)


@dataclass(frozen=True)
class DigitPressed:
    key: Key

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", Key(self.key))


@dataclass(frozen=True)
class SpeechRecognized:
    text: str
    confidence: float = 1.0

    def __repr__(self) -> str:
        # What a caller says may be a PIN: the text stays out of reprs and tracebacks.
        return f"SpeechRecognized(text=<{len(self.text)} chars>, confidence={self.confidence:.2f})"


@dataclass(frozen=True)
class PromptFinished:
    play_id: int


@dataclass(frozen=True)
class TimerExpired:
    timer_id: str


@dataclass(frozen=True)
class ActionCompleted:
    action_id: str
    result: str  # one of the action node's results, or "error"
    data: Mapping[str, str | Secret] = field(default_factory=dict)
    detail: str = ""  # why, for the call record when result is "error" (no secrets)


@dataclass(frozen=True)
class TransferFailed:
    reason: str = ""


@dataclass(frozen=True)
class CallerHungUp:
    pass


Event = Union[
    CallStarted, DigitPressed, SpeechRecognized, PromptFinished, TimerExpired,
    ActionCompleted, TransferFailed, CallerHungUp,
]
