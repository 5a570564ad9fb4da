"""The interpreter: text in one language -> :class:`Understanding`.

The intent comes from the classifier trained on ``nlu_data/`` (:mod:`.classifier`); entities
from the phrases that data annotates, its synonyms and its lookups; digits from
:func:`.numbers.read_digits_in_place`, and a spelled document from the same reading, whose
numbers are then joined with the letter names around them. Typed and transcribed text take
the same path.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..masking import MASK
from ..menu.model import UniversalCommand
from .classifier import DEFAULT_OUT_OF_SCOPE_THRESHOLD, IntentClassifier, IntentGuess, normalise
from .numbers import LANGUAGE_WORDS, read_digits_in_place
from .rasa_data import TrainingData, load_training_data

COMMAND_INTENTS = frozenset(command.value for command in UniversalCommand)

# Words around a spoken menu choice: "la opción dos", "press two", "el número 3".
CHOICE_FILLERS = {
    "es": {"la", "el", "opcion", "numero", "tecla", "pulso", "marco", "quiero", "de", "por", "favor", "pues", "eh"},
    "en": {"the", "option", "number", "press", "key", "i", "want", "choose", "please", "um", "uh"},
}
# Letter names a caller uses to spell a document (NIE prefix, control letter); a letter
# written alone ("12345678 z", "x1234567l") is itself.
LETTER_NAMES = {
    "es": {"a": "A", "be": "B", "ce": "C", "de": "D", "e": "E", "efe": "F", "ge": "G", "hache": "H",
           "i": "I", "jota": "J", "ka": "K", "ele": "L", "eme": "M", "ene": "N", "o": "O", "pe": "P",
           "cu": "Q", "erre": "R", "ese": "S", "te": "T", "u": "U", "uve": "V", "equis": "X",
           "zeta": "Z", "x": "X", "y": "Y", "z": "Z"},
    "en": {"a": "A", "bee": "B", "cee": "C", "see": "C", "dee": "D", "e": "E", "ef": "F", "gee": "G",
           "aitch": "H", "i": "I", "jay": "J", "kay": "K", "el": "L", "em": "M", "en": "N", "o": "O",
           "pee": "P", "cue": "Q", "ar": "R", "ess": "S", "tee": "T", "u": "U", "vee": "V", "ex": "X",
           "why": "Y", "zed": "Z", "zee": "Z", "x": "X", "y": "Y", "z": "Z"},
}
# Replaced by their letter before the numbers are read: "uve doble cinco" is W5, not 55.
MULTIWORD_LETTERS = {"es": {"i griega": "y", "uve doble": "w"}, "en": {"double u": "w"}}


def find_phrase(tokens: list[str], phrase: list[str]) -> int:
    """Start index of ``phrase`` as whole words in ``tokens``, or -1."""
    n = len(phrase)
    for start in range(len(tokens) - n + 1):
        if tokens[start:start + n] == phrase:
            return start
    return -1


def longest_match(tokens: list[str], phrases: Iterable[str]) -> int:
    """Length in words of the longest of ``phrases`` found in ``tokens`` (0 if none)."""
    best = 0
    for phrase in phrases:
        words = normalise(phrase).split()
        if words and len(words) > best and find_phrase(tokens, words) >= 0:
            best = len(words)
    return best


@dataclass(frozen=True, repr=False)
class Understanding:
    """What one utterance means, as far as the engine cares.

    ``text``, ``digits`` and ``spelled`` may hold a PIN or a document: ``repr`` masks them.
    """

    text: str  # normalised
    language: str
    intent: str | None = None  # the classifier's intent (None: out of scope)
    confidence: float = 0.0  # the classifier's confidence in `intent`
    command: UniversalCommand | None = None
    entities: Mapping[str, str] = field(default_factory=dict)
    choice: str | None = None  # a single key said as a word: "dos", "option two"
    # Every digit said, in order, as numbers.read_digits reads them: "cuarenta y cinco
    # sesenta y siete" -> "4567", "double five" -> "55", "dos cincos" -> "55".
    digits: str = ""
    # `digits` is one reading of several ("oh four five...", "treinta cuatro", "cuatro o
    # cinco"; numbers.py's rules 4 and 5): read them back before acting on them.
    digits_ambiguous: bool = False
    # Number words that made no digit ("double" with nothing after it, "cincos" without a
    # count): something was said that `digits` lacks, so confirm or ask again.
    number_words_not_understood: int = 0
    spelled: str = ""  # digits and spelled letters: "equis 1234567 ele" -> "X1234567L"

    @property
    def tokens(self) -> list[str]:
        return self.text.split()

    def __repr__(self) -> str:
        # Masked at a fixed width, as the engine's records are: not even a PIN's length shows.
        shown = []
        for name in (f.name for f in dataclasses.fields(self)):
            value = getattr(self, name)
            shown.append(f"{name}={MASK if value and name in _MASKED_IN_REPR else value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


_MASKED_IN_REPR = frozenset({"text", "digits", "spelled"})


class TextInterpreter:
    """``understand(text, language) -> Understanding``, one classifier per language, trained when built."""

    def __init__(
        self,
        data: Mapping[str, TrainingData],
        out_of_scope_threshold: float = DEFAULT_OUT_OF_SCOPE_THRESHOLD,
    ) -> None:
        if not data:
            raise ConfigError("no NLU training data: name at least one language")
        self._classifiers: dict[str, IntentClassifier] = {}
        self._commands: dict[str, list[tuple[list[str], UniversalCommand]]] = {}
        self._entities: dict[str, list[tuple[list[str], str, str]]] = {}
        for lang, training in data.items():
            self._classifiers[lang] = IntentClassifier.from_training_data(training, out_of_scope_threshold)
            if lang not in LANGUAGE_WORDS:
                known = ", ".join(sorted(LANGUAGE_WORDS))
                raise ConfigError(f"NLU language {lang!r}: spoken numbers are not known in it (known: {known})")
            self._commands[lang] = [
                (normalise(example.text).split(), UniversalCommand(example.intent))
                for example in training.examples
                if example.intent in COMMAND_INTENTS
            ]
            # Longest phrases first, so "banca electronica" wins over "electronica".
            self._entities[lang] = sorted(
                ((list(words), entity, value) for words, (entity, value) in _entity_phrases(training).items() if words),
                key=lambda item: -len(item[0]),
            )

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        languages: Iterable[str],
        out_of_scope_threshold: float = DEFAULT_OUT_OF_SCOPE_THRESHOLD,
    ) -> "TextInterpreter":
        """``folder/<lang>/*.yml`` for each language."""
        folder = Path(folder)
        return cls({lang: load_training_data(folder / lang) for lang in languages}, out_of_scope_threshold)

    @property
    def languages(self) -> list[str]:
        return list(self._commands)

    def understand(self, text: str, language: str) -> Understanding:
        lang = language if language in self._commands else next(iter(self._commands))
        normal = normalise(text)
        tokens = normal.split()
        number, in_place = read_digits_in_place(_with_letters_joined(text, lang), lang)
        choice = _single_choice(tokens, lang)
        guess = self._classifiers[lang].classify(normal)
        return Understanding(
            text=normal,
            language=lang,
            intent=guess.intent,
            confidence=guess.confidence,
            command=self._command(tokens, in_place, choice, guess, lang),
            entities=self._extract_entities(tokens, lang),
            choice=choice,
            digits=number.digits,
            digits_ambiguous=number.ambiguous,
            number_words_not_understood=number.words_not_understood,
            spelled=_spelled(in_place, lang),
        )

    def intents(self, language: str) -> tuple[str, ...]:
        """The intents the classifier of ``language`` knows (empty for an unknown language)."""
        classifier = self._classifiers.get(language)
        return classifier.intents if classifier else ()

    def phrases(self, language: str) -> list[str]:
        """Every command and entity phrase known in ``language`` (for grammars and checks)."""
        found = [" ".join(words) for words, _ in self._commands.get(language, [])]
        found += [" ".join(words) for words, _, _ in self._entities.get(language, [])]
        return sorted(set(found))

    def _command(
        self, tokens: list[str], in_place: list[str], choice: str | None, guess: IntentGuess, lang: str
    ) -> UniversalCommand | None:
        """The universal command the caller asks for, if the words really ask for one.

        A command acts at once (goodbye hangs up, agent transfers the call), so a guess the
        model made from letters alone is not enough: it must also rest on a word that few
        intents but this command use, or, when the model leans to the command without
        reaching the threshold, one of the command's example phrases is in what was said.
        """
        if choice is not None or _only_numbers(in_place, lang):
            return None  # "dos", "la opción tres", "cuatro cinco seis": an answer, never a command
        if guess.best not in COMMAND_INTENTS:
            return None
        command = UniversalCommand(guess.best)
        if guess.intent == guess.best and guess.evidence:
            return command
        for words, phrase_command in self._commands[lang]:
            if phrase_command is command and find_phrase(tokens, words) >= 0:
                return command
        return None

    def _extract_entities(self, tokens: list[str], lang: str) -> dict[str, str]:
        taken = [False] * len(tokens)
        found: dict[str, str] = {}
        for words, entity, value in self._entities[lang]:
            start = find_phrase(tokens, words)
            if start < 0 or entity in found or any(taken[start:start + len(words)]):
                continue
            taken[start:start + len(words)] = [True] * len(words)
            found[entity] = value
        return found


def _entity_phrases(training: TrainingData) -> dict[tuple[str, ...], tuple[str, str]]:
    """Normalised phrase -> (entity, value), from annotations, lookups and synonyms."""
    phrases: dict[tuple[str, ...], tuple[str, str]] = {}
    for example in training.examples:
        for span in example.entities:
            phrases[tuple(normalise(span.text).split())] = (span.entity, span.value)
    for entity, entries in training.lookups.items():
        for entry in entries:
            # A lookup lists raw text, as Rasa's; a synonym gives it its value.
            value = training.synonyms.get(entry.lower(), entry)
            phrases.setdefault(tuple(normalise(entry).split()), (entity, value))
    entity_of_value = {value: entity for entity, value in phrases.values()}
    for phrase, value in training.synonyms.items():
        if value in entity_of_value:
            phrases.setdefault(tuple(normalise(phrase).split()), (entity_of_value[value], value))
    return phrases


def _with_letters_joined(text: str, lang: str) -> str:
    for phrase, letter in MULTIWORD_LETTERS.get(lang, {}).items():
        pattern = r"\b" + r"\s+".join(phrase.split()) + r"\b"
        text = re.sub(pattern, letter, text, flags=re.IGNORECASE)
    return text


def _letter(word: str, lang: str) -> str | None:
    """The letter ``word`` names, if it names one."""
    if len(word) == 1 and word.isalpha():
        return word.upper()
    return LETTER_NAMES.get(lang, {}).get(word)


def _only_numbers(in_place: list[str], lang: str) -> bool:
    """Whether the words are nothing but digits, letters of a document and filler words."""
    fillers = CHOICE_FILLERS.get(lang, set())
    return any(word.isdigit() for word in in_place) and all(
        word.isdigit() or word in fillers or _letter(word, lang) for word in in_place
    )


def _single_choice(tokens: list[str], lang: str) -> str | None:
    rest = [t for t in tokens if t not in CHOICE_FILLERS.get(lang, set())]
    if len(rest) != 1:
        return None
    word = rest[0]
    if len(word) == 1 and word.isdigit():
        return word
    return LANGUAGE_WORDS[lang].digit_words.get(word)


def _spelled(in_place: list[str], lang: str) -> str:
    """The longest run of digits and letter names, as one string: how a document is dictated."""
    best, run, best_digits, run_digits = "", "", 0, 0
    for word in in_place:
        letter = _letter(word, lang)
        if word.isdigit():
            run, run_digits = run + word, run_digits + len(word)
        elif letter is not None:
            run += letter
        else:
            run, run_digits = "", 0
            continue
        if run_digits and (run_digits, len(run)) > (best_digits, len(best)):
            best, best_digits = run, run_digits
    return best
