"""A Vosk model loaded once per language and shared by every call's recogniser.

Vosk's own objects and JSON stop here: the rest of the project sees ``SpeechModel``
(vocabulary checks, the model's rate, its unknown-word token) and typed results.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import VoicebotError

UNKNOWN_TOKENS = ("[unk]", "<UNK>", "<unk>")  # what models call out-of-vocabulary speech
DEFAULT_MODEL_RATE = 16000
_SAMPLE_FREQUENCY = re.compile(r"^--sample-frequency=(\d+)", re.MULTILINE)
_vosk_quiet = threading.Lock()
_vosk_silenced = False


class SpeechModelError(VoicebotError):
    """A model folder that is missing, incomplete or that Vosk cannot load."""


def _silence_vosk() -> None:
    """Vosk logs every grammar word it lacks and every decoder detail to stderr; the line
    checks its grammars itself (``missing_words``) and reports them once."""
    global _vosk_silenced
    with _vosk_quiet:
        if not _vosk_silenced:
            import vosk

            vosk.SetLogLevel(-2)  # errors only
            _vosk_silenced = True


def looks_like_model(folder: Path) -> bool:
    return (folder / "am" / "final.mdl").is_file() and (folder / "conf" / "model.conf").is_file()


class SpeechModel:
    """One Vosk model. Loading takes about a second and hundreds of MB: do it once."""

    def __init__(self, path: str | Path, language: str) -> None:
        self.path = Path(path)
        self.language = language
        if not self.path.is_dir():
            raise SpeechModelError(f"{self.path}: no such folder (the {language!r} speech model)")
        if not looks_like_model(self.path):
            raise SpeechModelError(f"{self.path}: not a Vosk model folder (am/final.mdl and conf/model.conf are missing)")
        _silence_vosk()
        import vosk

        try:
            self._model = vosk.Model(str(self.path))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise SpeechModelError(f"{self.path}: Vosk could not load this model ({exc})") from None
        self.sample_rate = _model_rate(self.path)
        self.unknown_token = next((t for t in UNKNOWN_TOKENS if self.knows(t)), None)

    def knows(self, word: str) -> bool:
        return int(self._model.vosk_model_find_word(word)) >= 0

    def missing_words(self, phrases: Iterable[str]) -> list[str]:
        """Words of ``phrases`` the model cannot recognise (a grammar would silently drop them)."""
        words = {word for phrase in phrases for word in phrase.split() if word not in UNKNOWN_TOKENS}
        return sorted(word for word in words if not self.knows(word))

    def grammar_json(self, phrases: Sequence[str]) -> str:
        """Vosk's grammar string: the phrases the model knows, and its unknown-word token so
        out-of-grammar speech comes back as unknown instead of forced onto a phrase."""
        usable = [p for p in phrases if p and not self.missing_words([p])]
        if self.unknown_token is not None:
            usable.append(self.unknown_token)
        # ensure_ascii=False: Vosk does not decode \\u escapes (a Korean or accented word
        # would silently fall out of the grammar).
        return json.dumps(usable, ensure_ascii=False)

    def new_recognizer(self, sample_rate: int, grammar: Sequence[str] | None = None, words: bool = True,
                       alternatives: int = 0) -> Any:
        """A ``vosk.KaldiRecognizer`` (typed loosely: vosk ships no type information)."""
        import vosk

        if grammar is None:
            recognizer = vosk.KaldiRecognizer(self._model, float(sample_rate))
        else:
            recognizer = vosk.KaldiRecognizer(self._model, float(sample_rate), self.grammar_json(grammar))
        recognizer.SetWords(words)
        if alternatives:
            recognizer.SetMaxAlternatives(alternatives)
        return recognizer


def _model_rate(path: Path) -> int:
    mfcc = path / "conf" / "mfcc.conf"
    if mfcc.is_file():
        match = _SAMPLE_FREQUENCY.search(mfcc.read_text(errors="replace"))
        if match:
            return int(match[1])
    return DEFAULT_MODEL_RATE


class SpeechModels:
    """The models of the line's languages, each loaded on first use and then shared.

    A language whose model is missing or broken is recorded with the reason: the line runs
    keys-only in that language and says so, it does not stop.
    """

    def __init__(self, paths: dict[str, Path | None], missing_hint: str = "voicebot models download {lang}") -> None:
        self._paths = dict(paths)
        self._hint = missing_hint
        self._models: dict[str, SpeechModel] = {}
        self._problems: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def languages(self) -> list[str]:
        return list(self._paths)

    def get(self, language: str) -> SpeechModel | None:
        with self._lock:
            if language in self._models:
                return self._models[language]
            if language in self._problems:
                return None
            path = self._paths.get(language)
            if path is None:
                self._problems[language] = (f"no speech model for {language!r}: run `{self._hint.format(lang=language)}` "
                                            "(the line works keys-only in this language until then)")
                return None
            loaded = next((m for m in self._models.values() if m.path.resolve() == Path(path).resolve()), None)
            if loaded is not None:
                # One folder named for two languages (a stand-in model in tests): loaded once.
                self._models[language] = copy.copy(loaded)
                self._models[language].language = language
                return self._models[language]
            try:
                model = SpeechModel(path, language)
            except SpeechModelError as exc:
                self._problems[language] = f"{exc}; the line works keys-only in {language!r}"
                return None
            self._models[language] = model
            return model

    def problem(self, language: str) -> str | None:
        """Why ``language`` has no speech (after ``get`` tried), or None."""
        return self._problems.get(language)
