"""A :class:`~voicebot.dialog.commands.PlayPrompt` as one array of samples at the line's rate.

The engine hands prompts over already cut into segments (``{agent_phone:digits}`` is a
``SpokenDigits``, the words around it ``Text``). Each ``Text`` is one cached clip; a text
not cached yet (a dynamic fill such as the "8" of "I need 8 digits") is synthesised once
and cached. ``SpokenDigits`` are never synthesised as a whole: they are put together from
ten pre-rendered digit clips per language, with a short pause between digits and a longer
one between groups, so an SMS key starts at once and no secret ever reaches the speech
engine, the disk or a log.

Between pieces the renderer chooses the pause (clips are trimmed of the engine's own):
``sentence_pause`` at a full stop, colon or question mark beside digits and between prompts
joined into one, ``group_pause`` at a comma and between digit groups, ``digit_pause``
between digits and where words meet digits.

``voicebot prompts build`` (:meth:`PromptRenderer.build`) renders every text of the menu
and the digits for the configured rates ahead of time, so no call waits for synthesis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import TYPE_CHECKING

import numpy as np

from ..config import Config, Tts
from ..masking import reveal
from ..menu.model import Menu, language_spans
from .audio import Level, finish_clip, silence
from .cache import ClipKey, PromptCache
from .errors import PromptCacheError
from .synthesizer import Pyttsx3Synthesizer, Synthesizer

if TYPE_CHECKING:
    from ..dialog.commands import PlayPrompt

log = logging.getLogger(__name__)

DIGITS = "0123456789"
SENTENCE_MARKS = ".:;?!"
COMMA_MARKS = ","
# Node fields that hold what the line says (templates: literal parts become clips).
SPOKEN_FIELDS = ("prompt", "reprompt", "help", "invalid")


def speakable(text: str) -> str:
    """The part of a literal the engine is given: no leading stop or comma, single spaces.

    A literal that follows digits starts with their punctuation (". Repito: "); the pause it
    stands for is the renderer's, and the engine says nothing for it anyway.
    """
    text = " ".join(text.split())
    return text.lstrip(SENTENCE_MARKS + COMMA_MARKS + " ")


def _has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def literals(template: str, language: str) -> Iterator[tuple[str, str]]:
    """The fixed parts of a prompt template with the language each is said in, as the
    engine cuts them (``{x:digits}`` splits; ``<en>…</en>`` is said in English)."""
    for part_language, part in language_spans(template, language):
        for literal, _field, _spec, _conv in Formatter().parse(part):
            if literal:
                yield part_language, literal


def menu_texts(menu: Menu, languages: Iterable[str]) -> list[tuple[str, str]]:
    """Every (language, speakable text) the menu can say, once each, in file order."""
    seen: dict[tuple[str, str], None] = {}
    groups: list[dict[str, str]] = list(menu.texts.values())
    for node in menu.nodes.values():
        for name in SPOKEN_FIELDS:
            texts = getattr(node, name, None)
            if texts:
                groups.append(texts)
    for language in languages:
        for texts in groups:
            template = texts.get(language) or next(iter(texts.values()))
            for said_in, literal in literals(template, language):
                text = speakable(literal)
                if _has_words(text):
                    seen.setdefault((said_in, text), None)
    return list(seen)


@dataclass(frozen=True)
class BuildReport:
    clips: int  # clips the menu and the digits need at the rates asked
    rendered: int  # written this time
    cached: int  # already there
    synthesized: int  # engine runs (one per text, whatever the number of rates)
    seconds: float
    folder: Path

    def summary(self) -> str:
        return (f"{self.clips} prompt clips in {self.folder}: {self.rendered} rendered, {self.cached} already "
                f"cached ({self.seconds:.2f} s)")


class PromptRenderer:
    """Prompts as audio at any rate, from cached clips (``render(play, sample_rate)``).

    Thread-safe: calls may render at once (the engine is serialised, the cache locked).
    """

    def __init__(self, synthesizer: Synthesizer, cache: PromptCache, settings: Tts | None = None) -> None:
        self.synthesizer = synthesizer
        self.cache = cache
        self.settings = settings or Tts()
        self.level = Level(self.settings.level_dbfs, self.settings.peak_dbfs)
        self._cache_write_failed = False

    @classmethod
    def from_config(cls, config: Config) -> PromptRenderer:
        tts = config.tts
        return cls(Pyttsx3Synthesizer(tts.voices), PromptCache(tts.cache_dir, int(tts.memory_mb * 2**20)), tts)

    # ------------------------------------------------------------------ clips

    def key(self, text: str, language: str, sample_rate: int, wpm: int | None = None) -> ClipKey:
        return ClipKey(text, self.synthesizer.voice(language), wpm or self.wpm(language), sample_rate,
                       self.level.tag())

    def text_clip(self, text: str, language: str, sample_rate: int, rate: float = 1.0) -> np.ndarray:
        """``text`` said in ``language`` at ``sample_rate``: from the cache, else synthesised and cached.
        ``rate``: of the configured speech rate (a caller who asked for slower speech)."""
        text = speakable(text)
        if not _has_words(text):
            return silence(0, sample_rate)
        return self._clip(self.key(text, language, sample_rate, self.wpm(language, rate=rate)), language)

    def digit_clip(self, digit: str, language: str, sample_rate: int, rate: float = 1.0) -> np.ndarray:
        if digit not in DIGITS or len(digit) != 1:
            raise ValueError("a digit clip is one of 0-9")
        return self._clip(self.key(digit, language, sample_rate, self.wpm(language, digits=True, rate=rate)), language)

    def wpm(self, language: str, digits: bool = False, rate: float = 1.0) -> int:
        """The rate to ask the synthesizer for: the configured one, evened out for the language's
        voice (``tts.language_pace``), slowed for a caller who asked (``rate`` below 1)."""
        base = self.settings.digits_rate_wpm if digits else self.settings.rate_wpm
        return _scaled(round(base * self.settings.language_pace.get(language, 1.0)), rate)

    def _clip(self, key: ClipKey, language: str) -> np.ndarray:
        clip = self.cache.get(key)
        if clip is not None:
            return clip
        raw, raw_rate = self.synthesizer.synthesize(key.text, language, key.wpm)
        samples = finish_clip(raw, raw_rate, key.sample_rate, self.level)
        try:
            return self.cache.put(key, samples, memory_only=self._cache_write_failed)
        except PromptCacheError as exc:
            # The call goes on (the clip stays in memory); the operator hears about it once.
            self._cache_write_failed = True
            log.warning("%s (clips rendered during calls are kept in memory only)", exc)
            return self.cache.put(key, samples, memory_only=True)

    # ------------------------------------------------------------------ prompts

    def render(self, play: PlayPrompt, sample_rate: int) -> np.ndarray:
        """The whole prompt, float32 at ``sample_rate``, full scale 1.0; no silence before or after."""
        # Imported here: the dialog package loads the NLU (scikit-learn, ~1 s), which
        # `voicebot prompts build` on a full cache (every `make run`) does not need.
        from ..dialog.commands import SpokenDigits, Text

        s = self.settings
        rate = min(1.0, max(play.rate, MIN_RATE))
        pieces: list[np.ndarray] = []
        pause = 0.0  # owed before the next sound (stretched as the speech slows)

        def sound(clip: np.ndarray) -> None:
            nonlocal pause
            if len(clip) == 0:
                return
            if pieces:
                pieces.append(silence(pause / rate, sample_rate))
            pieces.append(clip)
            pause = 0.0

        for segment in play.segments:
            if isinstance(segment, SpokenDigits):
                digits = [ch for ch in reveal(segment.value) if ch in DIGITS]
                group = max(1, segment.group)
                for i, digit in enumerate(digits):
                    gap = s.digit_pause if i == 0 or i % group else s.group_pause
                    pause = max(pause, gap)
                    sound(self.digit_clip(digit, play.language, sample_rate, rate))
                pause = max(pause, s.digit_pause)
            elif isinstance(segment, Text):
                raw = segment.text
                if not raw.strip():
                    pause = max(pause, s.sentence_pause)  # prompts joined: "No match." + "Main menu…"
                    continue
                pause = max(pause, self._pause_at(raw.lstrip()[:1]))
                text = speakable(raw)
                if _has_words(text):
                    pause = max(pause, s.digit_pause)
                    sound(self.text_clip(text, segment.language or play.language, sample_rate, rate))
                pause = max(pause, self._pause_at(raw.rstrip()[-1:]))
        if not pieces:
            return silence(0, sample_rate)
        return np.concatenate(pieces)

    def _pause_at(self, mark: str) -> float:
        if mark and mark in SENTENCE_MARKS:
            return self.settings.sentence_pause
        if mark and mark in COMMA_MARKS:
            return self.settings.group_pause
        return 0.0

    # ------------------------------------------------------------------ ahead of calls

    def warm(self, sample_rates: Sequence[int], languages: Iterable[str]) -> None:
        """Digit clips into memory (rendered if missing), so spoken digits never wait."""
        languages = list(languages)
        self._ensure([(language, digit, self.wpm(language, digits=True)) for language in languages for digit in DIGITS],
                     sample_rates)
        for language in languages:
            for rate in sample_rates:
                for digit in DIGITS:
                    self.digit_clip(digit, language, rate)

    def build(self, menu: Menu, languages: Sequence[str], sample_rates: Sequence[int],
              force: bool = False) -> BuildReport:
        """Render what the menu says and the digits, per language and rate, where not cached.

        A text is synthesised once and finished at every rate. Raises
        :class:`~voicebot.tts.errors.PromptCacheError` if the folder cannot be written and
        :class:`~voicebot.errors.ConfigError` for a language without a known voice.
        """
        started = time.perf_counter()
        wanted = [(language, text, self.wpm(language)) for language, text in menu_texts(menu, languages)]
        wanted += [(language, digit, self.wpm(language, digits=True)) for language in languages for digit in DIGITS]
        clips, rendered, synthesized = self._ensure(wanted, sample_rates, force)
        return BuildReport(clips, rendered, clips - rendered, synthesized, time.perf_counter() - started,
                           self.cache.folder)

    def _ensure(self, wanted: Sequence[tuple[str, str, int]], sample_rates: Sequence[int],
                force: bool = False) -> tuple[int, int, int]:
        """(language, text, wpm) cached at every rate: (clips, rendered, syntheses)."""
        clips = rendered = synthesized = 0
        for language, text, wpm in wanted:
            keys = [self.key(text, language, rate, wpm) for rate in sample_rates]
            clips += len(keys)
            missing = keys if force else [key for key in keys if key not in self.cache]
            if not missing:
                continue
            raw, raw_rate = self.synthesizer.synthesize(text, language, wpm)
            synthesized += 1
            for key in missing:
                self.cache.put(key, finish_clip(raw, raw_rate, key.sample_rate, self.level))
                rendered += 1
        return clips, rendered, synthesized


def prompt_renderer(config: Config, warm: bool = True) -> PromptRenderer:
    """The line's renderer, digit clips loaded for ``tts.sample_rates`` (``warm``)."""
    renderer = PromptRenderer.from_config(config)
    if warm:
        renderer.warm(config.tts.sample_rates, config.languages)
    return renderer


MIN_RATE = 0.5  # slower than half speed, words fall apart (espeak-ng stretches vowels)


def _scaled(wpm: int, rate: float) -> int:
    return max(80, round(wpm * rate)) if rate < 1.0 else max(80, wpm)
