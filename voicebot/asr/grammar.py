"""A grammar per prompt: the phrases a caller may say at this step, and nothing else.

A small grammar makes Vosk fast (a fifth of the CPU) and accurate, and with the model's
unknown-word token added, speech outside it comes back as unknown instead of being forced
onto the nearest digit. The phrases come from data: the menu's option phrases
(``Listen.phrases``), the words of ``data/speech_words.yaml`` (digits, numbers, letters,
yes/no, fillers) and the universal commands and entity phrases of ``nlu_data/``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import yamlfile
from ..config import PACKAGE_DIR, Speech
from ..dialog.commands import Expect, Listen
from ..errors import ConfigError

DEFAULT_SPEECH_WORDS = PACKAGE_DIR / "data" / "speech_words.yaml"
_KEY_DIGITS = "0123456789"
_NOT_A_WORD = re.compile(r"[^\w' ]+")


class SpeechWords(BaseModel):
    """One language's words beside the menu's phrases."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    digits: tuple[str, ...] = Field(min_length=10)  # 0 to 9 in order, then other words for a digit
    numbers: tuple[str, ...] = ()
    letters: tuple[str, ...] = ()
    affirm: tuple[str, ...] = ()  # yes (a YAML key `yes:` would read as true: hence the names)
    deny: tuple[str, ...] = ()
    fillers: tuple[str, ...] = ()


def load_speech_words(path: str | Path = DEFAULT_SPEECH_WORDS) -> dict[str, SpeechWords]:
    located = yamlfile.load(path)
    if not isinstance(located.data, dict):
        raise ConfigError(f"{path}: expected a mapping of language -> word lists")
    found: dict[str, SpeechWords] = {}
    problems: list[str] = []
    for language, lists in located.data.items():
        try:
            found[str(language)] = SpeechWords.model_validate(lists)
        except ValidationError as exc:
            problems += yamlfile.validation_problems(exc, located, prefix=(language,))
    if problems:
        raise ConfigError(problems)
    return found


def vosk_phrase(text: str) -> str:
    """How Vosk writes a phrase: lower case, words and apostrophes only; accents kept
    (the Spanish model's words carry them: "electrónica")."""
    text = unicodedata.normalize("NFC", text.lower())
    return " ".join(_NOT_A_WORD.sub(" ", text).split())


class GrammarBuilder:
    """Grammars for the line's prompts, per language.

    ``commands``: per language, the phrases of the universal commands and of the entities
    the interpreter knows (flows, channels, document types), so "quiero recuperar mi
    usuario" is heard at a menu and "operador" anywhere.
    """

    def __init__(self, words: Mapping[str, SpeechWords], commands: Mapping[str, Sequence[str]]) -> None:
        self.words = dict(words)
        self.commands = {lang: tuple(phrases) for lang, phrases in commands.items()}

    def for_listen(self, listen: Listen, language: str) -> list[str]:
        words = self.words.get(language)
        if words is None:
            raise ConfigError(f"no speech words for {language!r} (add them to {DEFAULT_SPEECH_WORDS.name})")
        phrases: list[str] = list(self.commands.get(language, ()))
        if listen.expect is Expect.CHOICE:
            phrases += listen.phrases.get(language, ())
            # A choice said as its key: "dos", "la opción dos", "la uno".
            phrases += [words.digits[int(key)] for key in listen.keys if key in _KEY_DIGITS]
            phrases += words.fillers
        elif listen.expect is Expect.DIGITS:
            phrases += words.digits + words.numbers
            if listen.letters:
                phrases += words.letters
        elif listen.expect is Expect.YES_NO:
            # Digits too: a caller may answer a read-back by saying the number again, corrected.
            phrases += words.affirm + words.deny + words.digits + words.numbers
        return _unique(vosk_phrase(p) for p in phrases)

    def every_phrase(self, language: str, menu_phrases: Iterable[str] = ()) -> list[str]:
        """What any prompt's grammar may hold in ``language`` (for the start-up vocabulary check)."""
        words = self.words.get(language)
        lists: list[str] = list(self.commands.get(language, ())) + list(menu_phrases)
        if words is not None:
            lists += [*words.digits, *words.numbers, *words.letters, *words.affirm, *words.deny, *words.fillers]
        return _unique(vosk_phrase(p) for p in lists)


def end_silence(listen: Listen, grammar: Sequence[str] | None, speech: Speech) -> float:
    """How long a silence ends this prompt's answer: short for a choice or digits of a known
    length, longer for a reference of open length or free speech (a caller gathering a
    sentence pauses mid-way)."""
    if grammar is None:
        return speech.end_silence_sentence
    if listen.expect is Expect.DIGITS:
        # A fixed-length entry cut short at a pause is not lost: the engine keeps the digits
        # and waits for the rest. One of open length would be taken as complete.
        if listen.min_digits == listen.max_digits:
            return speech.end_silence_digits
        return speech.end_silence_open_digits
    return speech.end_silence_choice


def _unique(phrases: Iterable[str]) -> list[str]:
    return sorted({p for p in phrases if p})
