"""The line's speech, as the call fronts use it: models per language, grammars, one decoder pool.

Built once per process. A language whose model is missing or broken is not an error: the
line runs keys-only in it (``speech_languages`` leaves it out, the engine tells the caller)
and ``problems`` says why and how to fix it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..dialog.commands import Listen
from ..errors import ConfigError
from ..menu.model import Menu, MenuNode, UniversalCommand
from ..nlu.rasa_data import TrainingData, load_training_data
from .grammar import DEFAULT_SPEECH_WORDS, GrammarBuilder, SpeechWords, end_silence, load_speech_words
from .models import missing_model_message, model_path
from .recognizer import DecoderPool, RecognizerSettings, VoskRecognizer
from .speech_model import SpeechModels

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class VocabularyReport:
    """What a language's model lacks of the line's phrases (a grammar silently drops them)."""

    language: str
    model: Path | None
    problem: str | None  # no model, or a model that does not load
    missing_words: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.missing_words


def command_phrases(training: TrainingData) -> list[str]:
    """The phrases of the universal commands and of the entities, as written in the training
    data (accents kept: the models' words carry them)."""
    commands = {command.value for command in UniversalCommand}
    phrases = [example.text for example in training.examples if example.intent in commands]
    phrases += [span.text for example in training.examples for span in example.entities]
    phrases += list(training.synonyms)
    return phrases


class LineSpeech:
    def __init__(self, config: Config, menu: Menu, training: Mapping[str, TrainingData],
                 words: Mapping[str, SpeechWords] | None = None, pool: DecoderPool | None = None) -> None:
        self.config = config
        self.menu = menu
        self.languages = tuple(config.languages)
        self.words = dict(words) if words is not None else load_speech_words(DEFAULT_SPEECH_WORDS)
        self.grammars = GrammarBuilder(self.words, {lang: command_phrases(training[lang])
                                                    for lang in self.languages if lang in training})
        self._problems: dict[str, str] = {}
        paths: dict[str, Path | None] = {}
        for lang in self.languages:
            if not config.speech.enabled:
                paths[lang] = None
                self._problems[lang] = "speech is switched off (speech.enabled: false): the line is keys-only"
                continue
            try:
                paths[lang] = model_path(lang, config.speech)
            except ConfigError as exc:
                paths[lang] = None
                self._problems[lang] = f"{exc}; speech in {lang!r} is off (keys still work)"
                continue
            if paths[lang] is None:
                self._problems[lang] = missing_model_message(lang, config.speech)
        self.models = SpeechModels(paths)
        self._owns_pool = pool is None
        self.pool = pool or DecoderPool(config.speech.decoder_threads)
        self.recognizer_settings = RecognizerSettings(
            min_voice=config.speech.min_voice,
            voice_confirmation=config.speech.voice_confirmation,
            vad_aggressiveness=config.speech.vad_aggressiveness,
            max_utterance=config.speech.max_utterance,
            alternatives=config.speech.alternatives,
            alternatives_below=config.nlu.confirm_below,
        )

    @classmethod
    def from_config(cls, config: Config, menu: Menu) -> "LineSpeech":
        folder = Path(config.nlu.data_dir)
        return cls(config, menu, {lang: load_training_data(folder / lang) for lang in config.languages})

    def speech_languages(self) -> tuple[str, ...]:
        """The languages callers can speak (loads each model on first use)."""
        return tuple(lang for lang in self.languages if self.models.get(lang) is not None)

    def problems(self) -> dict[str, str]:
        """Per language without speech, why (after ``speech_languages`` tried to load them)."""
        found = dict(self._problems)
        for lang in self.languages:
            problem = self.models.problem(lang)
            if problem and lang not in found:
                found[lang] = problem
        return found

    def new_recognizer(self, language: str, sample_rate: int) -> VoskRecognizer | None:
        model = self.models.get(language)
        if model is None:
            return None
        return VoskRecognizer(model, self.pool, sample_rate, self.recognizer_settings)

    def grammar(self, listen: Listen, language: str) -> list[str]:
        return self.grammars.for_listen(listen, language)

    def end_silence(self, listen: Listen, grammar: list[str] | None) -> float:
        return end_silence(listen, grammar, self.config.speech)

    def menu_phrases(self, language: str) -> list[str]:
        return [phrase for node in self.menu.nodes.values() if isinstance(node, MenuNode)
                for option in node.options for phrase in option.say.get(language, [])]

    def vocabulary(self, languages: Iterable[str] | None = None) -> list[VocabularyReport]:
        """The start-up check: every phrase a grammar may hold, against each language's model."""
        reports = []
        for lang in languages or self.languages:
            model = self.models.get(lang)
            if model is None:
                reports.append(VocabularyReport(lang, None, self.problems().get(lang, "no model")))
                continue
            phrases = self.grammars.every_phrase(lang, self.menu_phrases(lang))
            reports.append(VocabularyReport(lang, model.path, None, tuple(model.missing_words(phrases))))
        return reports

    def start(self) -> list[VocabularyReport]:
        """At a front's start-up: load every model now (not in the first caller's face), and
        log what each lacks, once."""
        reports = self.vocabulary()
        for report in reports:
            if report.problem:
                log.warning("speech: %s", report.problem)
            elif report.missing_words:
                log.warning("speech: %s: %d words of the line's phrases are not in %s and are left out of its "
                            "grammars: %s", report.language, len(report.missing_words), report.model,
                            ", ".join(report.missing_words))
            else:
                log.info("speech: %s: %s loaded; every grammar word is in its vocabulary", report.language, report.model)
        return reports

    def close(self) -> None:
        if self._owns_pool:
            self.pool.close()
