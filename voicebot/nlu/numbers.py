"""Digits from what a caller says: "cuatro cinco seis siete", "forty-five sixty-seven", "double five".

:func:`read_digits` turns one utterance into every digit said, in order, and counts what it
could not use, so the dialog engine can decide to confirm or re-prompt. It never raises on
what a caller says. :func:`read_digits_in_place` also gives the words with each number put in
its place as digits, for the interpreter to read a spelled document from.

``text2num`` does the grouping of number words ("cuarenta y cinco sesenta y siete" -> 45 67,
"nineteen eighty four" -> 19 84, "mil doscientos" -> 1200, "cero cuatro" -> 04). What it lacks
is done here, with every word list in :data:`LANGUAGE_WORDS`:

- repeats: "double five", "triple siete", and Spanish plurals after a count, "dos cincos" -> 55
  (while "dos cinco" stays 25);
- English "oh" for zero, which is also an interjection (see below);
- words that are numbers only sometimes: "uno de mis", "one moment", "the last four digits";
- spellings its Spanish table refuses: "veintidos" (it wants "veintidós"), "veintiun";
  Spanish compounds said as two words ("veinte cinco", "diez y seis");
- "a hundred" (it knows only "one hundred").

Decisions, in the order they are made:

1. Hesitations ("eh", "um") are dropped as if not said, so "cuarenta eh y cinco" is still 45.
   Every other word that is not a number ("pues", "my pin is", "es el") is ignored and ends
   the number before it: "twenty, three" and "twenty banana three" are 20 3, not 23.
2. A word that counts something is not a digit: "los últimos cuatro dígitos son ..." and
   "the last four digits are ..." give only the digits after them.
3. "uno", "una", "un" and "one" are also articles or pronouns. They are digits next to another
   number ("uno dos", "double one", "un millón") or at the end of what was said, politeness
   aside ("es el uno", "option one please"); otherwise they are ignored words: "uno de mis
   hijos" and "one moment" give no digits.
4. English "oh" (and "o") is zero after a number ("four oh four", "nineteen oh four"), or when
   digits or the end of the utterance follow it ("oh seven" -> 07). Followed by any other word
   or by a comma ("oh, I forgot", "Oh, 4567") it is an interjection and ignored. A zero read
   from an "oh" that no number precedes is marked ambiguous: "oh four five six seven" is
   04567, but the caller may have said "oh ... 4567"; the engine's expected length decides.
5. Other readings marked ambiguous (digits are still returned, in the likelier reading):
   "ciento" ending a number ("cien" heard as "ciento", or the rest cut off); a connector ending
   one ("cuarenta y", "one hundred and"); a Spanish tens word followed by a unit without "y"
   ("treinta cuatro": 34 or 3 0 4?); "veinte cinco" / "diez y seis" read as 25 / 16; "cuatro o
   cinco" (the caller is unsure); a digit before a multiplier ("4 mil", text2num reads 4 1000).

Digits are concatenated as said: "doce treinta y cuatro" is 1234 and "un millón" is 1000000
(not useful for a PIN, but not a crash either: the engine's length check catches it).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, auto

from text_to_num import Token, find_numbers

from ..errors import ConfigError


@dataclass(frozen=True)
class SpokenNumber:
    """Every digit one utterance holds, and how much of the utterance went into them."""

    # Kept out of repr(): these are often a PIN or card digits, and a repr ends up in logs.
    digits: str = field(repr=False)  # every digit said, in order: "4567"
    words_used: int  # words read as (part of) numbers
    words_ignored: int  # hesitations, fillers and other words that are not numbers
    words_not_understood: int  # number words that made no digits: "double" with nothing after it
    ambiguous: bool  # a reading that could have gone another way (see the module docstring)


@dataclass(frozen=True)
class LanguageWords:
    """Every word list :func:`read_digits` uses for one language, spelled as :func:`words_of` leaves
    them (lower case, no accents)."""

    digit_words: Mapping[str, str]  # a word for one digit: "cinco" -> "5"
    other_cardinals: frozenset[str]  # the rest of what text2num groups: teens, tens, hundreds, "mil"
    articles: frozenset[str]  # number words that are also articles or pronouns (rule 3)
    zero_or_interjection: frozenset[str]  # rule 4
    repeats: Mapping[str, int]  # "double" -> 2
    plural_digits: Mapping[str, str]  # "cincos" -> "5", repeated by the count before it
    connectors: frozenset[str]  # inside a number: "cuarenta y cinco", "one hundred and one"
    alternatives: frozenset[str]  # "cuatro o cinco": the caller hesitates between two
    hesitations: frozenset[str]  # dropped as if not said (rule 1)
    polite_endings: frozenset[str]  # may follow an article read as a digit: "one please"
    count_nouns: frozenset[str]  # a number before them counts them (rule 2)
    count_leads: frozenset[str]  # a number after them is a count (rule 2)
    multipliers: frozenset[str]
    article_before_multiplier: Mapping[str, str]  # "a hundred": spelled so text2num knows it
    split_compounds: Mapping[str, tuple[str, frozenset[str]]]  # "veinte" + "cinco" -> "veinti" + "cinco"
    tens_before_connector: frozenset[str]  # tens that take "y" before a unit: "treinta y cuatro"
    cut_short_endings: frozenset[str]  # a number that should not end on them: "ciento"
    text2num_spellings: Mapping[str, str]  # what text2num accepts instead of our spelling

    def is_cardinal(self, word: str) -> bool:
        return word in self.digit_words or word in self.other_cardinals


_SPANISH_UNITS = frozenset({"uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"})

LANGUAGE_WORDS: dict[str, LanguageWords] = {
    "es": LanguageWords(
        digit_words={"cero": "0", "uno": "1", "una": "1", "un": "1", "dos": "2", "tres": "3",
                     "cuatro": "4", "cinco": "5", "seis": "6", "siete": "7", "ocho": "8", "nueve": "9"},
        other_cardinals=frozenset({
            "diez", "once", "doce", "trece", "catorce", "quince", "dieciseis", "diecisiete",
            "dieciocho", "diecinueve", "veinte", "veintiuno", "veintiuna", "veintiun", "veintidos",
            "veintitres", "veinticuatro", "veinticinco", "veintiseis", "veintisiete", "veintiocho",
            "veintinueve", "treinta", "cuarenta", "cincuenta", "sesenta", "setenta", "ochenta",
            "noventa", "cien", "ciento", "doscientos", "doscientas", "trescientos", "trescientas",
            "cuatrocientos", "cuatrocientas", "quinientos", "quinientas", "seiscientos",
            "seiscientas", "setecientos", "setecientas", "ochocientos", "ochocientas",
            "novecientos", "novecientas", "mil", "millon", "millones",
        }),
        articles=frozenset({"uno", "una", "un"}),
        zero_or_interjection=frozenset(),
        repeats={"doble": 2, "triple": 3},
        plural_digits={"ceros": "0", "unos": "1", "doses": "2", "treses": "3", "cuatros": "4",
                       "cincos": "5", "seises": "6", "sietes": "7", "ochos": "8", "nueves": "9"},
        connectors=frozenset({"y"}),
        alternatives=frozenset({"o", "u"}),
        hesitations=frozenset({"eh", "em", "ehm", "mm", "mmm", "hm", "hmm", "ah", "uh"}),
        polite_endings=frozenset({"por", "favor", "gracias"}),
        count_nouns=frozenset({"digitos", "cifras", "numeros", "numeritos"}),
        count_leads=frozenset({"ultimos", "ultimas"}),
        multipliers=frozenset({"cien", "ciento", "mil", "millon", "millones"}),
        article_before_multiplier={},
        split_compounds={
            "veinte": ("veinti", _SPANISH_UNITS),
            "diez": ("dieci", frozenset({"seis", "siete", "ocho", "nueve"})),
        },
        tens_before_connector=frozenset({"treinta", "cuarenta", "cincuenta", "sesenta", "setenta",
                                         "ochenta", "noventa"}),
        cut_short_endings=frozenset({"ciento"}),
        # text2num 3.1 knows "veintidós" and "veintitrés" only with their accents (while
        # "veintiseis" passes without), and "veintiún" in no spelling at all.
        text2num_spellings={"veintidos": "veintidós", "veintitres": "veintitrés",
                            "veintiun": "veintiuno", "millon": "millón"},
    ),
    "en": LanguageWords(
        digit_words={"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                     "six": "6", "seven": "7", "eight": "8", "nine": "9"},
        other_cardinals=frozenset({
            "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
            "eighteen", "nineteen", "twenty", "thirty", "forty", "fourty", "fifty", "sixty",
            "seventy", "eighty", "ninety", "hundred", "thousand", "million",
        }),
        articles=frozenset({"one"}),
        zero_or_interjection=frozenset({"oh", "o"}),
        repeats={"double": 2, "triple": 3, "treble": 3},
        plural_digits={"zeros": "0", "zeroes": "0", "ohs": "0", "ones": "1", "twos": "2",
                       "threes": "3", "fours": "4", "fives": "5", "sixes": "6", "sevens": "7",
                       "eights": "8", "nines": "9"},
        connectors=frozenset({"and"}),
        alternatives=frozenset({"or"}),
        hesitations=frozenset({"um", "umm", "uh", "uhm", "er", "erm", "eh", "hm", "hmm", "mm", "mmm",
                               "ah"}),
        polite_endings=frozenset({"please", "thanks", "thank", "you"}),
        count_nouns=frozenset({"digits", "numbers", "figures"}),
        count_leads=frozenset({"last"}),
        multipliers=frozenset({"hundred", "thousand", "million"}),
        article_before_multiplier={"a": "one"},
        split_compounds={},
        tens_before_connector=frozenset(),
        cut_short_endings=frozenset(),
        text2num_spellings={},
    ),
}

_PAUSE = ","  # what punctuation becomes: it ends a number the way a pause does
_DIGITS = re.compile(r"[0-9]+")
_WORD_OR_PAUSE = re.compile(r"[a-z]+|[0-9]+|[,.;:!?]")
_SEPARATOR_INSIDE_DIGITS = re.compile(r"(?<=[0-9])[.,](?=[0-9])")  # "4.567", "1,200"


def words_of(text: str) -> list[str]:
    """Lower-case words without accents, digit runs, and ``,`` wherever punctuation was."""
    text = unicodedata.normalize("NFKD", text.lower())  # NFKD also makes "４" a "4"
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    text = re.sub(r"['’]", "", text)  # "it's" is one word
    text = _SEPARATOR_INSIDE_DIGITS.sub("", text)
    return [_PAUSE if token in ",.;:!?" else token for token in _WORD_OR_PAUSE.findall(text)]


def read_digits(text: str, language: str) -> SpokenNumber:
    """Every digit said in ``text``, in order, read the way a caller dictates digits.

    ``language`` is "es" or "en"; another is a :class:`~voicebot.errors.ConfigError`.
    """
    return read_digits_in_place(text, language)[0]


def read_digits_in_place(text: str, language: str) -> tuple[SpokenNumber, list[str]]:
    """:func:`read_digits`, and the words said with each number read put in their place as digits.

    "equis uno dos tres, ele" gives ``["equis", "123", "ele"]``: what a spelled document is
    read from. Hesitations and pauses are left out; every other word stays as :func:`words_of`
    spells it, numbers that made no digits ("double" alone) too.
    """
    try:
        words = LANGUAGE_WORDS[language]
    except KeyError:
        known = ", ".join(sorted(LANGUAGE_WORDS))
        raise ConfigError(f"spoken numbers are not known in language {language!r} (known: {known})") from None
    tokens = words_of(text)
    spoken = [token for token in tokens if token not in words.hesitations]
    reader = _Reader(words, language, spoken)
    reader.words_ignored += len(tokens) - len(spoken)
    return reader.read(), reader.in_place


class _Kind(Enum):
    DIGITS = auto()  # "4567" as typed or as the recogniser wrote it
    CARDINAL = auto()  # a number word for text2num
    ARTICLE = auto()  # rule 3, until decided
    OH = auto()  # rule 4, until decided
    ZERO = auto()  # an "oh" decided to be 0
    REPEAT = auto()
    PLURAL = auto()
    CONNECTOR = auto()
    ALTERNATIVE = auto()
    PAUSE = auto()
    OTHER = auto()


_NUMBER_KINDS = frozenset({_Kind.DIGITS, _Kind.CARDINAL, _Kind.ZERO, _Kind.REPEAT, _Kind.PLURAL})


class _Word(Token):
    """A word as text2num's ``find_numbers`` takes it.

    A subclass, not merely something with a ``text()`` method: text2num 3.1 also calls
    ``nt_separated`` and ``not_a_number_part`` on every token, and without them it panics with
    a ``PanicException``, which is not an ``Exception``. ``Token`` gives both a default.
    """

    def __init__(self, spelling: str) -> None:
        self.spelling = spelling

    def text(self) -> str:
        return self.spelling


class _Reader:
    """One utterance read left to right; numbers made of words are grouped by text2num."""

    def __init__(self, words: LanguageWords, language: str, tokens: list[str]) -> None:
        self.words = words
        self.language = language
        self.tokens = tokens
        self.spellings = list(tokens)  # what text2num is given: "a" before "hundred" is "one"
        self.kinds = [self._kind_alone(i) for i in range(len(tokens))]
        self.digits: list[str] = []
        self.in_place: list[str] = []  # every word read, a number as its digits (see read_digits_in_place)
        self.words_used = 0
        self.words_ignored = 0
        self.words_not_understood = 0
        self.ambiguous = False
        self.run: list[int] = []  # indices of number words waiting to be grouped

    def read(self) -> SpokenNumber:
        self._drop_counts()
        self._decide_articles_and_ohs()
        index = 0
        while index < len(self.tokens):
            index = self._read_at(index)
        self._flush_run()
        return SpokenNumber(
            digits="".join(self.digits),
            words_used=self.words_used,
            words_ignored=self.words_ignored,
            words_not_understood=self.words_not_understood,
            ambiguous=self.ambiguous,
        )

    # -- classifying ---------------------------------------------------------------------

    def _kind_alone(self, index: int) -> _Kind:
        token, words = self.tokens[index], self.words
        if token == _PAUSE:
            return _Kind.PAUSE
        if _DIGITS.fullmatch(token):
            return _Kind.DIGITS
        if token in words.article_before_multiplier and self._next_token(index) in words.multipliers:
            self.spellings[index] = words.article_before_multiplier[token]
            return _Kind.CARDINAL
        if token in words.articles:
            return _Kind.ARTICLE
        if token in words.zero_or_interjection:
            return _Kind.OH
        if words.is_cardinal(token):
            return _Kind.CARDINAL
        if token in words.repeats:
            return _Kind.REPEAT
        if token in words.plural_digits:
            return _Kind.PLURAL
        if token in words.connectors:
            return _Kind.CONNECTOR
        if token in words.alternatives:
            return _Kind.ALTERNATIVE
        return _Kind.OTHER

    def _drop_counts(self) -> None:
        """Rule 2: "cuatro dígitos", "the last four" count digits, they are not digits."""
        for index, kind in enumerate(self.kinds):
            if kind not in (_Kind.CARDINAL, _Kind.ARTICLE, _Kind.DIGITS):
                continue
            before = self.tokens[index - 1] if index > 0 else ""
            if self._next_token(index) in self.words.count_nouns or before in self.words.count_leads:
                self.kinds[index] = _Kind.OTHER

    def _decide_articles_and_ohs(self) -> None:
        """Rules 3 and 4: a doubtful word is a number next to a number, spreading outwards."""
        doubtful = [i for i, kind in enumerate(self.kinds) if kind in (_Kind.ARTICLE, _Kind.OH)]
        decided = {i: False for i in doubtful}
        changed = True
        while changed:
            changed = False
            for index in doubtful:
                if decided[index]:
                    continue
                before = self._neighbour(index, -1, across_pause=True)
                # A comma after "oh" is how the interjection is written: "Oh, 4567".
                after = self._neighbour(index, +1, across_pause=self.kinds[index] is _Kind.ARTICLE)
                if self._is_number(before, decided) or self._is_number(after, decided):
                    decided[index] = changed = True
        for index in doubtful:
            if not decided[index]:
                decided[index] = self._only_doubtful_words_follow(index)
        for index in doubtful:
            was_oh = self.kinds[index] is _Kind.OH
            if not decided[index]:
                self.kinds[index] = _Kind.OTHER
            elif was_oh:
                self.kinds[index] = _Kind.ZERO
            else:
                self.kinds[index] = _Kind.CARDINAL
        for index in doubtful:
            before = self._neighbour(index, -1, across_pause=True)
            if self.kinds[index] is _Kind.ZERO and (before is None or self.kinds[before] not in _NUMBER_KINDS):
                self.ambiguous = True  # rule 4: a leading "oh" may have been an interjection

    def _is_number(self, index: int | None, decided: Mapping[int, bool]) -> bool:
        if index is None:
            return False
        return self.kinds[index] in _NUMBER_KINDS or decided.get(index, False)

    def _only_doubtful_words_follow(self, index: int) -> bool:
        """Rules 3 and 4 at the end of what was said: "es el uno", "one please", "oh seven"."""
        is_article = self.kinds[index] is _Kind.ARTICLE
        for later in range(index + 1, len(self.tokens)):
            kind = self.kinds[later]
            if kind in (_Kind.ARTICLE, _Kind.OH):
                continue
            if is_article and (kind is _Kind.PAUSE or self.tokens[later] in self.words.polite_endings):
                continue
            return False
        return True

    def _neighbour(self, index: int, step: int, across_pause: bool) -> int | None:
        other = index + step
        while 0 <= other < len(self.tokens):
            if self.kinds[other] is not _Kind.PAUSE:
                return other
            if not across_pause:
                return None
            other += step
        return None

    def _next_token(self, index: int) -> str:
        return self.tokens[index + 1] if index + 1 < len(self.tokens) else ""

    def _kind_at(self, index: int) -> _Kind | None:
        return self.kinds[index] if 0 <= index < len(self.tokens) else None

    # -- reading -------------------------------------------------------------------------

    def _read_at(self, index: int) -> int:
        """Read the word at ``index``; return the index of the next word to read."""
        kind, token = self.kinds[index], self.tokens[index]
        if kind in (_Kind.CARDINAL, _Kind.DIGITS) and self._kind_at(index + 1) is _Kind.PLURAL:
            count = self.words.digit_words.get(token, token)
            if count in "23456789" and len(count) == 1:
                self._flush_run()
                self._say(self.words.plural_digits[self.tokens[index + 1]] * int(count), words=2)
                return index + 2
        if kind is _Kind.CARDINAL:
            self.run.append(index)
        elif kind is _Kind.CONNECTOR:
            if self.run and self._kind_at(index + 1) is _Kind.CARDINAL:
                self.run.append(index)
            else:
                if self.run and self._neighbour(index, +1, across_pause=False) is None:
                    self.ambiguous = True  # "cuarenta y" and no more: cut short
                self._flush_run()
                self._ignore(token)
        elif kind is _Kind.DIGITS:
            self._flush_run()
            self._say(token, words=1)
            if self._next_token(index) in self.words.multipliers:
                self.ambiguous = True  # "4 mil": text2num does not multiply a typed digit
        elif kind is _Kind.ZERO:
            self._flush_run()
            self._say("0", words=1)
        elif kind is _Kind.REPEAT:
            self._flush_run()
            repeated = self._single_digit_at(index + 1)
            if repeated is None:
                self._not_understood(token)  # "double" with no digit after it
                return index + 1
            self._say(repeated * self.words.repeats[token], words=2)
            return index + 2
        elif kind is _Kind.PLURAL:
            self._flush_run()
            self._not_understood(token)  # "cincos" with no count before it
        elif kind is _Kind.ALTERNATIVE:
            self._flush_run()
            before = self._neighbour(index, -1, across_pause=True)
            after = self._neighbour(index, +1, across_pause=True)
            if self._is_number(before, {}) and self._is_number(after, {}):
                self.ambiguous = True  # "cuatro o cinco": the caller is unsure
            self._ignore(token)
        elif kind is _Kind.PAUSE:
            self._flush_run()
        else:
            self._flush_run()
            self._ignore(token)
        return index + 1

    def _single_digit_at(self, index: int) -> str | None:
        kind = self._kind_at(index)
        token = self.tokens[index] if kind is not None else ""
        if kind is _Kind.ZERO:
            return "0"
        if kind is _Kind.DIGITS and len(token) == 1:
            return token
        if kind is _Kind.CARDINAL:
            return self.words.digit_words.get(token)
        return None

    def _say(self, digits: str, words: int) -> None:
        self.digits.append(digits)
        self.in_place.append(digits)
        self.words_used += words

    def _ignore(self, spelling: str, words: int = 1) -> None:
        self.in_place.append(spelling)
        self.words_ignored += words

    def _not_understood(self, spelling: str, words: int = 1) -> None:
        self.in_place.append(spelling)
        self.words_not_understood += words

    def _flush_run(self) -> None:
        """Group the waiting number words with text2num."""
        if not self.run:
            return
        spellings, counts = self._repair_compounds([self.spellings[i] for i in self.run])
        self.run = []
        found = find_numbers([_Word(self.words.text2num_spellings.get(s, s)) for s in spellings],
                             self.language, 0)
        numbers = {occurrence.start: occurrence for occurrence in found
                   # An ordinal or a non-digit cannot come from cardinals alone: left uncovered.
                   if not occurrence.is_ordinal and occurrence.text.isdigit()}
        position = 0
        while position < len(spellings):  # in order, so that read_digits_in_place keeps it
            occurrence = numbers.get(position)
            if occurrence is None:
                spelling, count = spellings[position], counts[position]
                if spelling in self.words.connectors:
                    self._ignore(spelling, count)  # "cuatro y cinco": an "and" between digits
                else:
                    self._not_understood(spelling, count)
                position += 1
                continue
            start, end = occurrence.start, occurrence.end
            self._say(occurrence.text, words=sum(counts[start:end]))
            said = spellings[start:end]
            if said[-1] in self.words.cut_short_endings:
                self.ambiguous = True  # "ciento": was it "cien", or was the rest cut off?
            for first, second in itertools.pairwise(said):
                if first in self.words.tens_before_connector and second in self.words.digit_words:
                    self.ambiguous = True  # "treinta cuatro": 34, or 3 0 4 said loosely?
            position = max(end, position + 1)

    def _repair_compounds(self, spellings: list[str]) -> tuple[list[str], list[int]]:
        """Join "veinte cinco" and "diez y seis" into the one word text2num wants, marking them
        ambiguous; the counts say how many words each spelling stands for."""
        joined: list[str] = []
        counts: list[int] = []
        index = 0
        while index < len(spellings):
            word = spellings[index]
            prefix, units = self.words.split_compounds.get(word, ("", frozenset()))
            rest = spellings[index + 1:index + 3]
            if prefix and rest[:1] and rest[0] in units:
                joined.append(prefix + rest[0])
                counts.append(2)
                self.ambiguous = True
                index += 2
                continue
            if prefix and len(rest) == 2 and rest[0] in self.words.connectors and rest[1] in units:
                joined.append(prefix + rest[1])
                counts.append(3)
                self.ambiguous = True
                index += 3
                continue
            joined.append(word)
            counts.append(1)
            index += 1
        return joined, counts
