"""Which intent of the training data a phrase means, and how surely.

One :class:`IntentClassifier` per language, trained at start-up from the Rasa-format
examples in ``nlu_data/<lang>/``; typed and transcribed phrases take the same path.

Why TF-IDF over word and character n-grams, then a logistic regression:

- The data is a few hundred short phrases per language. A linear model over sparse n-grams
  is the strong baseline at that size (Rasa's own small-data pipeline starts from the same
  word and ``char_wb`` count features); a neural model would need more data or a pretrained
  embedding, which this offline line does not ship.
- Character n-grams (2 to 5, inside word boundaries) carry inflection the examples do not
  list ("repita", "repítelo", "repetir"), recogniser misspellings and words typed without
  accents; word unigrams and bigrams keep what the words say together ("no es" is not "es").
- Logistic regression gives probabilities, which the out-of-scope threshold needs; a linear
  SVM gives only margins (calibrating them needs held-out data we do not have), and naive
  Bayes is overconfident on overlapping n-grams.
- It trains in a fraction of a second at start-up, so there is no model file to ship or to
  keep in step with the data, and it is deterministic. The solver is newton-cg: on these
  few thousand sparse features it converged in 7 iterations and about 40 ms per language
  where lbfgs took 20 or more and 130 ms or more (measured with one BLAS thread).

``out_of_scope`` is an intent like the others, trained on what the line does not do
(mortgages, the weather, card loss...). Whether it wins, or no intent reaches the
threshold, the answer is the same: no intent.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from threadpoolctl import threadpool_limits  # installed with scikit-learn, which uses it

from ..config import Nlu
from ..errors import ConfigError
from .rasa_data import TrainingData

log = logging.getLogger(__name__)

OUT_OF_SCOPE_INTENT = "out_of_scope"
DEFAULT_OUT_OF_SCOPE_THRESHOLD: float = Nlu().out_of_scope_threshold
MIN_EXAMPLES_PER_INTENT = 2
# Inverse regularisation strength, chosen by 5-fold cross-validation on the training data
# (never on the held-out tests): at 3 paraphrases fall below the threshold, at 30 more
# out-of-scope phrases get through.
_REGULARISATION_C = 10.0
_RANDOM_STATE = 0
# A word used by the examples of this many intents or fewer says something about them
# ("operador", "atrás", "gracias"); one used more widely ("con", "the", "quiero") does not.
_DISTINCTIVE_WORD_MAX_INTENTS = 3
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class IntentGuess:
    """The classifier's answer for one phrase."""

    intent: str | None  # None: out of scope (guessed so, or nothing reached the threshold)
    confidence: float  # the probability of `best`
    best: str  # the most likely intent, even when it did not reach the threshold
    ranking: tuple[tuple[str, float], ...]  # the most likely intents first (at most 5)
    evidence: tuple[str, ...] = ()  # words of the phrase that few intents but `best` use


def normalise(text: str) -> str:
    """Lower case, no accents, no punctuation, single spaces: how phrases are compared.

    It lives here, not in the interpreter, because the classifier's features and the
    interpreter's phrase matching must see the same text.
    """
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


def classifier_text(text: str) -> str:
    """What the model sees: normalised text, every digit the same ("12345678" is like "4567")."""
    return _DIGIT.sub("0", normalise(text))


@dataclass(frozen=True)
class _Trained:
    model: Pipeline
    seconds: float


class IntentClassifier:
    """``classify(text) -> IntentGuess``; trained when built, read-only afterwards (thread-safe)."""

    def __init__(
        self,
        examples: Iterable[tuple[str, str]],
        out_of_scope_threshold: float = DEFAULT_OUT_OF_SCOPE_THRESHOLD,
        *,
        source: str = "training data",
    ) -> None:
        """``examples`` are ``(intent, text)`` pairs."""
        if not 0.0 <= out_of_scope_threshold <= 1.0:
            raise ConfigError(f"out_of_scope_threshold must be between 0 and 1, not {out_of_scope_threshold}")
        pairs = tuple((intent, classifier_text(text)) for intent, text in examples)
        _check_examples(pairs, source)
        trained = _train_cached(pairs)
        self._model = trained.model
        self.training_seconds = trained.seconds
        self.threshold = out_of_scope_threshold
        self.intents: tuple[str, ...] = tuple(str(label) for label in self._model.classes_)
        self._distinctive = _distinctive_words(pairs)

    @classmethod
    def from_training_data(
        cls,
        data: TrainingData,
        out_of_scope_threshold: float = DEFAULT_OUT_OF_SCOPE_THRESHOLD,
    ) -> "IntentClassifier":
        return cls(((example.intent, example.text) for example in data.examples), out_of_scope_threshold,
                   source=data.source or "training data")

    def classify(self, text: str) -> IntentGuess:
        features = classifier_text(text)
        if not features:
            return IntentGuess(None, 0.0, OUT_OF_SCOPE_INTENT, ())
        probabilities = self._model.predict_proba([features])[0]
        order = sorted(range(len(probabilities)), key=lambda i: (-probabilities[i], self.intents[i]))
        ranking = tuple((self.intents[i], float(probabilities[i])) for i in order[:5])
        best, confidence = ranking[0]
        intent = best if confidence >= self.threshold and best != OUT_OF_SCOPE_INTENT else None
        distinctive = self._distinctive.get(best, frozenset())
        evidence = tuple(word for word in dict.fromkeys(features.split()) if word in distinctive)
        return IntentGuess(intent, confidence, best, ranking, evidence)


def train_intent_model(examples: Sequence[tuple[str, str]]) -> Pipeline:
    """A fitted pipeline over ``(intent, classifier_text)`` pairs; the same pairs give the same model."""
    features = FeatureUnion([
        ("words", TfidfVectorizer(analyzer="word", token_pattern=r"\S+", ngram_range=(1, 2), sublinear_tf=True)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
    ])
    model = Pipeline([
        ("features", features),
        # class_weight="balanced": out_of_scope has more examples than the commands, and a
        # command should not lose a close call only because it has fewer.
        ("classify", LogisticRegression(C=_REGULARISATION_C, class_weight="balanced", solver="newton-cg",
                                        max_iter=2000, random_state=_RANDOM_STATE)),
    ])
    # One BLAS thread: on a fit this small, threads cost more to start and share than they
    # save; measured per language on a busy 2-core machine, the default took 0.5-2 s and
    # varied from run to run, one thread about 0.1 s.
    with threadpool_limits(limits=1):
        model.fit([text for _, text in examples], [intent for intent, _ in examples])
    return model


@lru_cache(maxsize=8)
def _train_cached(examples: tuple[tuple[str, str], ...]) -> _Trained:
    # A process that opens several lines (the tests open one per test) trains each language
    # once: the model depends only on the examples, and is never changed after fitting.
    started = time.perf_counter()
    model = train_intent_model(examples)
    seconds = time.perf_counter() - started
    log.info("intent classifier: %d examples of %d intents trained in %.3f s",
             len(examples), len({intent for intent, _ in examples}), seconds)
    return _Trained(model, seconds)


def _distinctive_words(pairs: Sequence[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """For each intent, the words of its examples that few other intents use.

    The model also scores letters and word pairs; this is the plainer question a caller
    would ask of a guess: which of the words I said made you think so?
    """
    intents_of: dict[str, set[str]] = {}
    for intent, text in pairs:
        for word in text.split():
            intents_of.setdefault(word, set()).add(intent)
    found: dict[str, set[str]] = {}
    for word, intents in intents_of.items():
        if len(intents) <= _DISTINCTIVE_WORD_MAX_INTENTS:
            for intent in intents:
                found.setdefault(intent, set()).add(word)
    return {intent: frozenset(words) for intent, words in found.items()}


def _check_examples(pairs: Sequence[tuple[str, str]], source: str) -> None:
    counts: dict[str, int] = {}
    for intent, text in pairs:
        if text:
            counts[intent] = counts.get(intent, 0) + 1
    if len(counts) < 2:
        raise ConfigError(f"{source}: the intent classifier needs examples of at least two intents, "
                          f"found {sorted(counts) or 'none'}")
    scarce = sorted(intent for intent, count in counts.items() if count < MIN_EXAMPLES_PER_INTENT)
    if scarce:
        raise ConfigError(f"{source}: intents with fewer than {MIN_EXAMPLES_PER_INTENT} examples "
                          f"(the classifier cannot learn them): {', '.join(scarce)}")
    if OUT_OF_SCOPE_INTENT not in counts:
        raise ConfigError(f"{source}: no `{OUT_OF_SCOPE_INTENT}` examples; without them every phrase "
                          f"is forced onto some intent")
