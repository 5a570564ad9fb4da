"""Spanish and English speech fixtures through the real recogniser and the NLU, end to end.

They need the official models (`voicebot models download es en`). Their host is out of
reach of the CI machines, so there these tests are skipped with the reason; a user who
downloaded the models runs them with `make test`.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from voicebot.app import load_dialog
from voicebot.asr.recognizer import FinalTranscript
from voicebot.asr.speech import LineSpeech
from voicebot.config import Config
from voicebot.dialog.commands import Expect, Listen
from voicebot.dtmf.talkoff import speak
from voicebot.menu.model import MenuNode, UniversalCommand

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

CONFIG = Config()
VOICES = {"es": "es", "en": "en-us"}


@pytest.fixture(scope="module")
def line_speech():
    menu, interpreter = load_dialog(CONFIG)
    speech = LineSpeech.from_config(CONFIG, menu)
    yield speech, menu, interpreter
    speech.close()


def needs_model(speech: LineSpeech, language: str) -> None:
    if speech.models.get(language) is None:
        pytest.skip(f"no {language} model here: {speech.problems().get(language)}")


def hear(speech: LineSpeech, language: str, listen: Listen, text: str) -> list[FinalTranscript]:
    recognizer = speech.new_recognizer(language, 8000)
    assert recognizer is not None
    grammar = speech.grammar(listen, language)
    recognizer.listen(grammar, speech.end_silence(listen, grammar))
    audio = np.concatenate([np.zeros(3200), speak(text, VOICES[language], 160, 50), np.zeros(8000)])
    events = []
    for start in range(0, len(audio), 160):
        events += recognizer.feed(audio[start:start + 160])
    events += recognizer.flush()
    return [e for e in events if isinstance(e, FinalTranscript)]


DIGIT_CASES = [
    ("es", "cuatro cinco seis siete", "4567"),
    ("es", "uno dos tres cuatro cinco seis siete ocho", "12345678"),
    ("es", "cuarenta y cinco sesenta y siete", "4567"),
    ("en", "four five six seven", "4567"),
    ("en", "one two three four five six seven eight", "12345678"),
    ("en", "forty five sixty seven", "4567"),
]


@pytest.mark.parametrize(("language", "said", "digits"), DIGIT_CASES)
def test_spoken_digits_are_heard(line_speech, language: str, said: str, digits: str) -> None:
    speech, _menu, interpreter = line_speech
    needs_model(speech, language)
    listen = Listen(node="card", expect=Expect.DIGITS, languages=(language,), min_digits=4, max_digits=8)
    [final] = hear(speech, language, listen, said)
    assert interpreter.understand(final.transcript.text, language).digits == digits


@pytest.mark.parametrize("language", ["es", "en"])
def test_every_main_menu_option_is_heard_by_its_phrase(line_speech, language: str) -> None:
    speech, menu, interpreter = line_speech
    needs_model(speech, language)
    main = menu.nodes["main"]
    assert isinstance(main, MenuNode)
    listen = Listen(node="main", expect=Expect.CHOICE, languages=(language,),
                    keys=tuple(o.key for o in main.options),
                    phrases={language: tuple(p for o in main.options for p in o.say.get(language, []))})
    for option in main.options:
        phrase = option.say[language][0]
        [final] = hear(speech, language, listen, phrase)
        assert final.transcript.text == " ".join(phrase.lower().replace(",", "").split()), phrase


@pytest.mark.parametrize(("language", "said"), [("es", "quiero hablar con un operador"),
                                                ("en", "I want to speak to an agent")])
def test_asking_for_an_agent_is_heard(line_speech, language: str, said: str) -> None:
    speech, _menu, interpreter = line_speech
    needs_model(speech, language)
    listen = Listen(node="card", expect=Expect.DIGITS, languages=(language,), min_digits=4, max_digits=4)
    [final] = hear(speech, language, listen, said)
    assert interpreter.understand(final.transcript.text, language).command is UniversalCommand.AGENT


@pytest.mark.parametrize(("language", "said"), [("es", "mañana hará sol en la playa"),
                                                ("en", "tomorrow it will be sunny at the beach")])
def test_speech_outside_the_grammar_is_not_made_into_digits(line_speech, language: str, said: str) -> None:
    speech, _menu, interpreter = line_speech
    needs_model(speech, language)
    listen = Listen(node="card", expect=Expect.DIGITS, languages=(language,), min_digits=4, max_digits=4)
    for final in hear(speech, language, listen, said):
        understood = interpreter.understand(final.transcript.text, language)
        assert final.transcript.rejected or final.transcript.confidence < CONFIG.nlu.min_confidence \
            or len(understood.digits) < 4


@pytest.mark.parametrize("language", ["es", "en"])
def test_the_models_know_the_line_s_words(line_speech, language: str) -> None:
    speech, _menu, _interpreter = line_speech
    needs_model(speech, language)
    [report] = speech.vocabulary([language])
    words = speech.words[language]
    # Digits, numbers and yes/no must all be there; a phrase variant without its accent may not.
    assert not set(report.missing_words) & {*words.digits, *words.numbers, *words.affirm, *words.deny}
