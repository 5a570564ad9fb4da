"""The typed model of the menu file (``voicebot/data/menu.yaml``).

A menu is a set of named nodes and the entry points into them. Node types:

``menu``      a prompt and options chosen by one key or by saying them;
``digits``    an entry of N keys (or spoken digits) stored in a slot, optionally validated;
``action``    a backend step the host runs; its result picks the next node;
``message``   a prompt, then the next node;
``transfer``  a prompt, then the call goes to an agent (with a reason);
``end``       a prompt, then the call ends (with an outcome).

``next`` is a node name, or a list of routes ``{when: {slot: value}, go: node}`` tried in
order (the last usually without ``when``), so shared steps (document type, card and PIN)
can serve several flows.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

Texts = dict[str, str]  # language -> text
Phrases = dict[str, list[str]]  # language -> phrases a caller may say


_OTHER_LANGUAGE = re.compile(r"<([a-z]{2,3})>(.*?)</\1>", re.S)


def language_spans(template: str, language: str) -> list[tuple[str, str]]:
    """A prompt template cut where it changes language: ``"Para castellano, pulse 1.
    <en>For English, press 2.</en>"`` read in ``es`` is ``[("es", "Para castellano, pulse
    1. "), ("en", "For English, press 2.")]``, so each part is spoken in its own voice."""
    spans: list[tuple[str, str]] = []
    at = 0
    for match in _OTHER_LANGUAGE.finditer(template):
        if match.start() > at:
            spans.append((language, template[at:match.start()]))
        spans.append((match.group(1), match.group(2)))
        at = match.end()
    if at < len(template):
        spans.append((language, template[at:]))
    return spans


class UniversalCommand(enum.StrEnum):
    REPEAT = "repeat"
    HELP = "help"
    BACK = "back"
    AGENT = "agent"
    GOODBYE = "goodbye"
    SLOWER = "slower"  # speak more slowly for the rest of the call
    MORE_TIME = "more_time"  # the caller needs a moment (to find the card, a pen)


class Mask(enum.StrEnum):
    """How an entry appears in call records: not at all, partly, or in clear."""

    FULL = "full"  # PIN, card digits, codes: '****'
    PARTIAL = "partial"  # a document number: '*****678Z'
    NONE = "none"  # a menu choice, an operation reference


class Outcome(enum.StrEnum):
    CREDENTIALS_SENT = "credentials_sent"
    SIGNATURE_UNLOCKED = "signature_unlocked"
    SMS_KEY_SPOKEN = "sms_key_spoken"
    OPERATION_CODE_SENT = "operation_code_sent"
    TRANSFERRED = "transferred"
    CALLER_HUNG_UP = "caller_hung_up"
    FAILED = "failed"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Route(_Model):
    when: dict[str, str] = Field(default_factory=dict)
    go: str


Next = Union[str, list[Route]]


def _slot_values(value: dict[str, object]) -> dict[str, str]:
    # YAML reads `true` and `1` as bool/int; slot values are compared as text.
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


class _Prompted(_Model):
    prompt: Texts
    barge_in: bool = Field(True, description="whether speech may interrupt the prompt (keys always may)")


class Option(_Model):
    key: str = Field(pattern=r"^[0-9]$")
    say: Phrases = Field(default_factory=dict)
    intent: str | None = Field(None, description="the NLU intent (nlu_data/) that picks this option when no phrase does")
    set: dict[str, str] = Field(default_factory=dict)
    next: Next

    _coerce = field_validator("set", mode="before")(classmethod(lambda cls, v: _slot_values(v or {})))


class MenuNode(_Prompted):
    type: Literal["menu"]
    reprompt: Texts = Field(default_factory=dict)
    help: Texts = Field(default_factory=dict)
    options: list[Option] = Field(min_length=1)
    any_language: bool = Field(False, description="options may be said in any language (the language choice)")
    timeout: float | None = Field(None, gt=0, le=600)


class DigitsNode(_Prompted):
    type: Literal["digits"]
    slot: str
    min: int = Field(ge=1, le=64)
    max: int = Field(ge=1, le=64)
    mask: Mask = Mask.NONE
    validate_as: Literal["dni", "nie", "document"] | None = None
    reprompt: Texts = Field(default_factory=dict)
    help: Texts = Field(default_factory=dict)
    invalid: Texts = Field(default_factory=dict, description="said when the entry fails validation")
    timeout: float | None = Field(None, gt=0, le=600)
    next: Next


class ActionResultRoute(_Model):
    set: dict[str, str] = Field(default_factory=dict)
    next: Next

    _coerce = field_validator("set", mode="before")(classmethod(lambda cls, v: _slot_values(v or {})))


class ActionNode(_Model):
    type: Literal["action"]
    action: str
    args: list[str] = Field(default_factory=list)
    results: dict[str, ActionResultRoute]
    prompt: Texts = Field(default_factory=dict, description="optional 'one moment' said while it runs")


class MessageNode(_Prompted):
    type: Literal["message"]
    next: Next
    counter: str | None = Field(None, description="count visits; past the limit go to `exceeded`")
    exceeded: str | None = None


class TransferNode(_Prompted):
    type: Literal["transfer"]
    reason: str


class EndNode(_Prompted):
    type: Literal["end"]
    outcome: Outcome
    barge_in: bool = False
    repeatable: bool = Field(False, description="listen once more for 'repeat' before hanging up (a key to note down)")


Node = Annotated[
    Union[MenuNode, DigitsNode, ActionNode, MessageNode, TransferNode, EndNode],
    Field(discriminator="type"),
]


class UniversalSpec(_Model):
    key: str | None = Field(None, pattern=r"^[0-9*#]$")


class Menu(_Model):
    version: Literal[1]
    languages: list[Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]] = Field(min_length=1)
    entry_points: dict[str, str] = Field(min_length=1)
    universal: dict[UniversalCommand, UniversalSpec] = Field(default_factory=dict)
    counters: dict[str, Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=dict, description="default limits of node counters"
    )
    texts: dict[str, Texts] = Field(default_factory=dict, description="shared prompts (no-match, goodbye…)")
    nodes: dict[str, Node]

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def universal_key(self, command: UniversalCommand) -> str | None:
        spec = self.universal.get(command)
        return spec.key if spec else None

    def command_for_key(self, key: str) -> UniversalCommand | None:
        for command, spec in self.universal.items():
            if spec.key == key:
                return command
        return None
