"""The intent classifier trained from nlu_data/: held-out paraphrases, out of scope, commands
that must and must not fire, determinism, and training files that are wrong.

The held-out phrases (tests/data/nlu_heldout/<lang>.yml, Rasa format) are wording the
training data does not contain; run with ``-s`` to see the accuracy, the misses and the
training time.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from voicebot.config import DEFAULT_MENU, DEFAULT_NLU_DATA
from voicebot.errors import ConfigError
from voicebot.menu.loader import load_menu
from voicebot.menu.model import MenuNode, UniversalCommand
from voicebot.nlu import IntentClassifier, TextInterpreter, normalise
from voicebot.nlu.classifier import (
    DEFAULT_OUT_OF_SCOPE_THRESHOLD,
    OUT_OF_SCOPE_INTENT,
    classifier_text,
    train_intent_model,
)
from voicebot.nlu.rasa_data import TrainingData, load_training_data

HELDOUT = Path(__file__).parent / "data" / "nlu_heldout"
LANGUAGES = ("es", "en")
REQUIRED_ACCURACY = 0.90
REQUIRED_REJECTION = 0.90
MIN_HELDOUT_PER_INTENT = 5

# Which intent each menu option is; every `say` phrase of the menu must come out as it.
OPTION_INTENTS = {
    ("language", "1"): "choose_language", ("language", "2"): "choose_language",
    ("support", "4"): "unlock_credentials", ("support", "1"): "other",
    ("support", "9"): "choose_language", ("support", "8"): "choose_language",
    ("main", "1"): "recover_user", ("main", "2"): "unlock_operation", ("main", "3"): "other",
    ("user_channel", "1"): "inform_channel", ("user_channel", "2"): "inform_channel",
    ("other", "1"): "unlock_signature", ("other", "2"): "sms_key",
    ("document_type", "1"): "inform_document_type", ("document_type", "2"): "inform_document_type",
    ("document_type", "3"): "inform_document_type",
}


@pytest.fixture(scope="module")
def training() -> dict[str, TrainingData]:
    return {lang: load_training_data(DEFAULT_NLU_DATA / lang) for lang in LANGUAGES}


@pytest.fixture(scope="module")
def heldout() -> dict[str, TrainingData]:
    return {lang: load_training_data(HELDOUT / f"{lang}.yml") for lang in LANGUAGES}


@pytest.fixture(scope="module")
def classifiers(training: dict[str, TrainingData]) -> dict[str, IntentClassifier]:
    return {lang: IntentClassifier.from_training_data(data) for lang, data in training.items()}


@pytest.fixture(scope="module")
def nlu() -> TextInterpreter:
    return TextInterpreter.from_folder(DEFAULT_NLU_DATA, LANGUAGES)


# ------------------------------------------------------------------ held-out paraphrases


@pytest.mark.parametrize("lang", LANGUAGES)
def test_heldout_paraphrases_are_understood(lang: str, classifiers, heldout, training) -> None:
    in_scope = [e for e in heldout[lang].examples if e.intent != OUT_OF_SCOPE_INTENT]
    misses = []
    for example in in_scope:
        guess = classifiers[lang].classify(example.text)
        if guess.intent != example.intent:
            misses.append(f"  {example.intent:22} {example.text!r} -> {guess.intent} "
                          f"({guess.best} {guess.confidence:.2f})")
    accuracy = 1 - len(misses) / len(in_scope)
    print(f"\n[{lang}] held-out intent accuracy {accuracy:.1%} "
          f"({len(in_scope) - len(misses)}/{len(in_scope)})", *misses, sep="\n")
    assert accuracy >= REQUIRED_ACCURACY


@pytest.mark.parametrize("lang", LANGUAGES)
def test_heldout_out_of_scope_is_rejected(lang: str, classifiers, heldout) -> None:
    phrases = [e.text for e in heldout[lang].examples if e.intent == OUT_OF_SCOPE_INTENT]
    accepted = [f"  {text!r} -> {classifiers[lang].classify(text).intent}"
                for text in phrases if classifiers[lang].classify(text).intent is not None]
    rejection = 1 - len(accepted) / len(phrases)
    print(f"\n[{lang}] out-of-scope rejected {rejection:.1%} ({len(phrases) - len(accepted)}/{len(phrases)})",
          *accepted, sep="\n")
    assert len(phrases) >= 20
    assert rejection >= REQUIRED_REJECTION


@pytest.mark.parametrize("lang", LANGUAGES)
def test_heldout_covers_every_intent(lang: str, heldout, training) -> None:
    counts: dict[str, int] = {}
    for example in heldout[lang].examples:
        counts[example.intent] = counts.get(example.intent, 0) + 1
    assert set(counts) == training[lang].intents()
    assert min(counts.values()) >= MIN_HELDOUT_PER_INTENT, counts


def test_no_heldout_phrase_is_in_the_training_data(training, heldout) -> None:
    for lang in LANGUAGES:
        # Compared as the model sees them: case, accents and punctuation do not make a phrase new.
        trained = {classifier_text(example.text) for example in training[lang].examples}
        copied = [e.text for e in heldout[lang].examples if classifier_text(e.text) in trained]
        assert copied == [], f"{lang}: held-out phrases found in nlu_data/{lang}: {copied}"


# ------------------------------------------------------------------ training


def test_training_time_is_reported(training, record_property) -> None:
    # Reported, not asserted: a test never judges wall-clock speed.
    started = time.perf_counter()
    for lang in LANGUAGES:
        train_intent_model([(e.intent, classifier_text(e.text)) for e in training[lang].examples])
    seconds = time.perf_counter() - started
    examples = sum(len(training[lang].examples) for lang in LANGUAGES)
    record_property("nlu_training_seconds", round(seconds, 3))
    print(f"\ntraining {examples} examples in {len(LANGUAGES)} languages: {seconds:.3f} s")


def test_training_is_deterministic(training, heldout) -> None:
    examples = [(e.intent, classifier_text(e.text)) for e in training["es"].examples]
    texts = [classifier_text(e.text) for e in heldout["es"].examples]
    first = train_intent_model(examples).predict_proba(texts)
    second = train_intent_model(list(examples)).predict_proba(texts)
    assert np.array_equal(first, second)


def test_a_guess_says_why(classifiers) -> None:
    guess = classifiers["es"].classify("quiero hablar con un operador")
    assert (guess.intent, guess.best) == ("agent", "agent")
    assert guess.confidence == guess.ranking[0][1] >= DEFAULT_OUT_OF_SCOPE_THRESHOLD
    assert [p for _, p in guess.ranking] == sorted((p for _, p in guess.ranking), reverse=True)
    assert "operador" in guess.evidence and "con" not in guess.evidence
    assert classifiers["es"].classify("¿?").intent is None


def test_the_threshold_decides_what_is_out_of_scope(training) -> None:
    strict = IntentClassifier.from_training_data(training["en"], out_of_scope_threshold=1.0)
    lenient = IntentClassifier.from_training_data(training["en"], out_of_scope_threshold=0.0)
    assert strict.classify("i need to recover my login").intent is None
    assert lenient.classify("i need to recover my login").intent == "recover_user"
    # out_of_scope winning is never an intent, whatever the threshold
    assert lenient.classify("what's the weather like tomorrow").intent is None
    with pytest.raises(ConfigError, match="between 0 and 1"):
        IntentClassifier.from_training_data(training["en"], out_of_scope_threshold=1.5)


def test_the_interpreter_takes_the_configured_threshold() -> None:
    strict = TextInterpreter.from_folder(DEFAULT_NLU_DATA, ["en"], out_of_scope_threshold=1.0)
    understood = strict.understand("i need to recover my login", "en")
    assert understood.intent is None and 0 < understood.confidence < 1


# ------------------------------------------------------------------ the interpreter


def test_understanding_carries_intent_and_confidence(nlu: TextInterpreter) -> None:
    understood = nlu.understand("No me acuerdo de mi nombre de usuario", "es")
    assert understood.intent == "recover_user" and understood.confidence >= DEFAULT_OUT_OF_SCOPE_THRESHOLD
    assert understood.command is None
    out = nlu.understand("¿Qué tiempo hará mañana en Almería?", "es")
    assert out.intent is None and out.command is None


@pytest.mark.parametrize("lang,text,command", [
    ("es", "¿me lo puede decir otra vez?", UniversalCommand.REPEAT),
    ("es", "repita la clave", UniversalCommand.REPEAT),
    ("es", "atrás", UniversalCommand.BACK),
    ("es", "quiero hablar con una persona", UniversalCommand.AGENT),
    ("es", "ya está, muchas gracias, adiós", UniversalCommand.GOODBYE),
    ("es", "no sé qué tengo que hacer", UniversalCommand.HELP),
    ("en", "could you say that one more time", UniversalCommand.REPEAT),
    ("en", "back", UniversalCommand.BACK),
    ("en", "i'd like to speak to a real person", UniversalCommand.AGENT),
    ("en", "that's all, bye", UniversalCommand.GOODBYE),
    ("en", "say the key again", UniversalCommand.REPEAT),
])
def test_paraphrased_commands(nlu: TextInterpreter, lang: str, text: str, command: UniversalCommand) -> None:
    assert nlu.understand(text, lang).command is command


@pytest.mark.parametrize("lang,text", [
    ("es", "cuatro cinco seis siete"), ("es", "dos"), ("es", "la opción tres"), ("es", "12345678"),
    ("es", "equis uno dos tres cuatro cinco seis siete ele"), ("es", "el pin es uno dos tres cuatro"),
    ("en", "four five six seven"), ("en", "two"), ("en", "option one"), ("en", "oh one two three"),
    ("en", "double five one two"), ("en", "the reference is two zero two six"),
])
def test_numbers_and_keys_are_never_commands(nlu: TextInterpreter, lang: str, text: str) -> None:
    understood = nlu.understand(text, lang)
    assert understood.command is None
    assert understood.digits or understood.choice


@pytest.mark.parametrize("lang,text", [
    ("es", "patata frita con huevo"), ("es", "con huevo"), ("es", "quiero una pizza"), ("es", "nada"),
    ("es", "banca electrónica"), ("es", "cómo desbloqueo mi usuario"),
    ("en", "a pizza"), ("en", "nothing"), ("en", "the weather"), ("en", "with my sister"),
])
def test_what_is_not_a_command_does_not_act(nlu: TextInterpreter, lang: str, text: str) -> None:
    assert nlu.understand(text, lang).command is None


def test_every_menu_phrase_is_its_options_intent(nlu: TextInterpreter) -> None:
    menu = load_menu(DEFAULT_MENU)
    wrong = []
    for name, node in menu.nodes.items():
        if not isinstance(node, MenuNode):
            continue
        for option in node.options:
            intent = OPTION_INTENTS[(name, option.key)]
            for lang, phrases in option.say.items():
                for phrase in phrases:
                    understood = nlu.understand(phrase, lang)
                    if understood.intent != intent or understood.command is not None:
                        wrong.append((name, option.key, lang, phrase, understood.intent, understood.command))
    assert wrong == []


def test_every_menu_phrase_is_training_data(training) -> None:
    # The classifier must not fight the menu's own matching: it learns the menu's words.
    menu = load_menu(DEFAULT_MENU)
    for name, node in menu.nodes.items():
        if isinstance(node, MenuNode):
            for option in node.options:
                for lang, phrases in option.say.items():
                    examples = {normalise(e.text) for e in training[lang].examples
                                if e.intent == OPTION_INTENTS[(name, option.key)]}
                    assert {normalise(p) for p in phrases} <= examples, (name, option.key, lang)


def test_entities_come_from_lookups_and_synonyms_too(nlu: TextInterpreter) -> None:
    # "carnet de identidad" is only in a synonym and a lookup, never annotated in an example
    assert dict(nlu.understand("tengo el carnet de identidad", "es").entities) == {"document_type": "dni"}
    assert dict(nlu.understand("with my residence card", "en").entities) == {"document_type": "nie"}
    assert dict(nlu.understand("for web banking", "en").entities) == {"channel": "ebanking"}


# ------------------------------------------------------------------ training files that are wrong


def _write(folder: Path, body: str, version: str = '"3.1"') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "nlu.yml"
    path.write_text(f"version: {version}\nnlu:\n{body}", encoding="utf-8")
    return path


OUT_OF_SCOPE_ITEM = "- intent: out_of_scope\n  examples: |\n    - the weather\n    - a joke\n"


def test_one_intent_is_not_enough(tmp_path: Path) -> None:
    _write(tmp_path, "- intent: agent\n  examples: |\n    - agent\n    - operator\n")
    with pytest.raises(ConfigError, match="at least two intents"):
        TextInterpreter.from_folder(tmp_path.parent, [tmp_path.name])


def test_an_intent_with_one_example_is_named(tmp_path: Path) -> None:
    _write(tmp_path, "- intent: agent\n  examples: |\n    - operator\n" + OUT_OF_SCOPE_ITEM)
    with pytest.raises(ConfigError, match=r"fewer than 2 examples .*: agent"):
        IntentClassifier.from_training_data(load_training_data(tmp_path))


def test_out_of_scope_examples_are_required(tmp_path: Path) -> None:
    _write(tmp_path, "- intent: agent\n  examples: |\n    - agent\n    - operator\n"
                     "- intent: back\n  examples: |\n    - back\n    - go back\n")
    with pytest.raises(ConfigError, match="no `out_of_scope` examples"):
        IntentClassifier.from_training_data(load_training_data(tmp_path))


def test_an_example_under_two_intents_names_both_places(tmp_path: Path) -> None:
    _write(tmp_path, "- intent: agent\n  examples: |\n    - operator\n    - agent\n"
                     "- intent: back\n  examples: |\n    - back\n    - Operator\n")
    with pytest.raises(ConfigError, match=r"nlu.yml:10: nlu\[1\].examples: 'Operator' is an example of 'back' "
                                          r"and also of 'agent' \(.*nlu.yml:5: nlu\[0\].examples\)"):
        load_training_data(tmp_path)


def test_a_line_that_is_not_an_example_names_its_line(tmp_path: Path) -> None:
    _write(tmp_path, "- intent: agent\n  examples: |\n    - operator\n    agent\n")
    with pytest.raises(ConfigError, match=r"nlu.yml:6: nlu\[0\].examples: 'agent': each example is one line"):
        load_training_data(tmp_path)


def test_an_intent_without_examples(tmp_path: Path) -> None:
    _write(tmp_path, "- intent: agent\n  examples: |\n\n" + OUT_OF_SCOPE_ITEM)
    with pytest.raises(ConfigError, match="intent 'agent' has no examples"):
        load_training_data(tmp_path)


def test_an_unquoted_version_is_refused_as_rasa_does(tmp_path: Path) -> None:
    _write(tmp_path, OUT_OF_SCOPE_ITEM, version="3.1")
    with pytest.raises(ConfigError, match=r'nlu.yml:1: version: write the version as a string in quotes: version: "3.1"'):
        load_training_data(tmp_path)


def test_a_single_file_can_be_read(tmp_path: Path) -> None:
    path = _write(tmp_path, OUT_OF_SCOPE_ITEM)
    data = load_training_data(path)
    assert data.intents() == {"out_of_scope"} and data.source == str(path)
