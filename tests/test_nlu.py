"""The interpreter: spoken numbers, spelled documents, commands, entities.

The classifier itself (held-out accuracy, out of scope, determinism) is tested in
test_nlu_classifier.py.
"""

from __future__ import annotations

import pytest

from voicebot.config import DEFAULT_NLU_DATA
from voicebot.documents import Document
from voicebot.errors import ConfigError
from voicebot.menu.model import UniversalCommand
from voicebot.nlu import TextInterpreter
from voicebot.nlu.rasa_data import load_training_data, parse_example


@pytest.fixture(scope="module")
def nlu() -> TextInterpreter:
    return TextInterpreter.from_folder(DEFAULT_NLU_DATA, ["es", "en"])


@pytest.mark.parametrize("lang,text,digits", [
    ("es", "cuatro cinco seis siete", "4567"),
    ("es", "mi pin es uno dos tres cuatro", "1234"),
    ("es", "cero uno dos tres", "0123"),
    ("es", "doce millones trescientos cuarenta y cinco mil seiscientos setenta y ocho", "12345678"),
    ("es", "veinte veintiséis once veintinueve cero cero uno", "20261129001"),
    ("en", "four five six seven", "4567"),
    ("en", "oh one two three", "0123"),
    ("en", "double five one two", "5512"),
    ("en", "nine zero one two", "9012"),
])
def test_spoken_digits(nlu: TextInterpreter, lang: str, text: str, digits: str) -> None:
    assert nlu.understand(text, lang).digits == digits


@pytest.mark.parametrize("lang,text,digits", [
    ("es", "cuarenta y cinco sesenta y siete", "4567"),
    ("es", "dos cincos", "55"),
    ("es", "doble cinco uno dos", "5512"),
    ("en", "double five", "55"),
    ("en", "forty-five sixty-seven", "4567"),
    ("en", "um, my pin is four five six seven", "4567"),
])
def test_grouped_and_repeated_digits(nlu: TextInterpreter, lang: str, text: str, digits: str) -> None:
    heard = nlu.understand(text, lang)
    assert (heard.digits, heard.digits_ambiguous, heard.number_words_not_understood) == (digits, False, 0)
    assert heard.command is None


@pytest.mark.parametrize("lang,text,digits,ambiguous,not_understood", [
    ("es", "treinta cuatro", "34", True, 0),  # 34, or 3 0 4 said loosely?
    ("es", "cuatro o cinco", "45", True, 0),
    ("en", "oh four five six seven", "04567", True, 0),  # "oh" may be an interjection
    ("en", "four five double", "45", False, 1),
    ("es", "uno de mis hijos", "", False, 0),
])
def test_what_the_engine_needs_to_confirm_digits(
    nlu: TextInterpreter, lang: str, text: str, digits: str, ambiguous: bool, not_understood: int
) -> None:
    heard = nlu.understand(text, lang)
    assert (heard.digits, heard.digits_ambiguous, heard.number_words_not_understood) == (
        digits, ambiguous, not_understood)


def test_repr_hides_what_was_said(nlu: TextInterpreter) -> None:
    heard = nlu.understand("equis uno dos tres cuatro cinco seis siete ele", "es")
    assert heard.digits == "1234567" and heard.spelled == "X1234567L"
    shown = repr(heard)
    assert "1234567" not in shown and "equis" not in shown and "uno" not in shown
    assert "digits='****'" in shown and "language='es'" in shown


def test_a_language_without_spoken_numbers_is_a_config_error() -> None:
    data = load_training_data(DEFAULT_NLU_DATA / "en")
    with pytest.raises(ConfigError, match="'fr'.*known: en, es"):
        TextInterpreter({"fr": data})


@pytest.mark.parametrize("lang,text,kind,number", [
    ("es", "equis uno dos tres cuatro cinco seis siete ele", "nie", "X1234567L"),
    ("es", "i griega siete seis cinco cuatro tres dos uno", "nie", "Y7654321G"),
    ("es", "mi DNI es el 12345678 zeta", "dni", "12345678Z"),
    ("en", "ex one two three four five six seven el", "nie", "X1234567L"),
    ("en", "zed one two three four five six seven", "nie", "Z1234567R"),
    ("es", "X1234567L", "nie", "X1234567L"),
    ("es", "equis, uno dos tres, cuatro cinco seis siete, ele", "nie", "X1234567L"),
    ("es", "equis doce treinta y cuatro cincuenta y seis siete", "nie", "X1234567L"),
    ("es", "uno dos tres cuatro cinco seis seis seis uve doble", "dni", "12345666W"),
    ("en", "one two three four five six six six double u", "dni", "12345666W"),
])
def test_spelled_documents(nlu: TextInterpreter, lang: str, text: str, kind: str, number: str) -> None:
    assert Document.parse(kind, nlu.understand(text, lang).spelled).number == number


@pytest.mark.parametrize("lang,text,choice", [
    ("es", "dos", "2"), ("es", "la opción tres", "3"), ("es", "el uno", "1"),
    ("en", "two", "2"), ("en", "option one", "1"), ("en", "press three please", "3"),
    ("es", "la opción cuarenta", None), ("en", "oh", None),
    ("es", "quiero hablar con un operador", None), ("en", "one two", None),
])
def test_spoken_menu_choice(nlu: TextInterpreter, lang: str, text: str, choice: str | None) -> None:
    assert nlu.understand(text, lang).choice == choice


@pytest.mark.parametrize("lang,text,command", [
    ("es", "repita por favor otra vez", UniversalCommand.REPEAT),
    ("es", "AYUDA", UniversalCommand.HELP),
    ("es", "volver atrás", UniversalCommand.BACK),
    ("es", "quiero hablar con un operador", UniversalCommand.AGENT),
    ("es", "adiós", UniversalCommand.GOODBYE),
    ("en", "say that again", UniversalCommand.REPEAT),
    ("en", "go back", UniversalCommand.BACK),
    ("en", "can I talk to someone", UniversalCommand.AGENT),
    ("en", "bye", UniversalCommand.GOODBYE),
    ("es", "banca electrónica", None),
])
def test_universal_commands(nlu: TextInterpreter, lang: str, text: str, command: UniversalCommand | None) -> None:
    assert nlu.understand(text, lang).command == command


def test_one_sentence_entities(nlu: TextInterpreter) -> None:
    es = nlu.understand("Quiero recuperar mi usuario de Banca Electrónica; tengo DNI.", "es")
    assert dict(es.entities) == {"flow": "recover_user", "channel": "ebanking", "document_type": "dni"}
    en = nlu.understand("my signature is blocked and I have an NIE", "en")
    assert dict(en.entities) == {"flow": "unlock_signature", "document_type": "nie"}
    assert dict(nlu.understand("necesito la clave de firma SMS", "es").entities) == {"flow": "sms_key"}


def test_training_data_is_rasa_format() -> None:
    for lang in ("es", "en"):
        data = load_training_data(DEFAULT_NLU_DATA / lang)
        assert {"repeat", "help", "back", "agent", "goodbye", "affirm", "deny", "inform_number",
                "recover_user", "unlock_operation", "unlock_signature", "sms_key", "out_of_scope"} <= data.intents()
        assert all(example.text and "[" not in example.text for example in data.examples)
        assert "recover_user" in data.synonyms.values()


def test_annotation_forms() -> None:
    example = parse_example("request", 'tengo [DNI]{"entity": "document_type", "value": "dni"} y [banca](channel)',
                            {"banca": "ebanking"})
    assert example.text == "tengo DNI y banca"
    assert [(s.entity, s.value) for s in example.entities] == [("document_type", "dni"), ("channel", "ebanking")]
    with pytest.raises(ValueError, match="bad entity annotation"):
        parse_example("x", "[a]{not json}")


def test_bad_training_file_names_the_place(tmp_path) -> None:
    (tmp_path / "nlu.yml").write_text('version: "3.1"\nnlu:\n- intent: agent\n  examples: |\n    - ok\n- intnt: x\n  examples: |\n    - y\n')
    with pytest.raises(ConfigError, match=r"nlu.yml:6: nlu\[1\]: an item is an `intent`"):
        load_training_data(tmp_path)
