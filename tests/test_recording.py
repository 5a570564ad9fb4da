"""Call recordings: two channels (caller, line), secret steps silent on the caller's side.

Real file calls keyed with generated tones (and line noise, so silence written by the
recorder shows); the recording is then searched with the real DTMF detector (the batch
path): the keys of the steps that are not secret are there, no key of the card or PIN
entry is, and the caller's channel is exactly zero from the moment a secret step listens.
The edges (a tone begun before its step, a press longer than the hold, keys typed where
no step listens) are driven through :class:`CallRecording` with the real DTMF muter.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.conftest import make_config
from tests.test_call_session import WordsTimedRenderer
from voicebot.app import CallMeta, Line
from voicebot.call.file import call_from_file
from voicebot.call.recording import CallRecording, Privacy
from voicebot.call.session import CallSession
from voicebot.dtmf import generator
from voicebot.dtmf.detector import detect
from voicebot.dtmf.mute import DtmfMuter
from voicebot.masking import MASK

CLEAR_KEYS = "1111" "12345678"  # Spanish, user, e-banking, DNI; the DNI number (Ana García, C001)
SECRET_KEYS = "4567" "1234"  # card digits, PIN


def line_recording_to(folder: Path, tmp_path: Path) -> Line:
    from voicebot.logs import configure_logging

    config = make_config(tmp_path, recording={"folder": str(folder)})
    configure_logging(config)
    line = Line.open(config, echo=io.StringIO())
    line.ensure_demo_bank()
    return line


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    line = line_recording_to(tmp_path / "recordings", tmp_path)
    yield line
    line.close()


def caller_audio(keys: str, *, on: float = 0.08, off: float = 0.12, rate: int = 8000,
                 seed: int = 1) -> tuple[np.ndarray, list[generator.Press]]:
    audio, presses = generator.sequence(keys, on=on, off=off, lead=0.5, tail=0.3, sample_rate=rate,
                                        level_dbm0=-10.0, rng=np.random.default_rng(seed))
    return audio + np.random.default_rng(seed).normal(0, 0.001, audio.size), presses  # a line's hiss


def same_audio(recorded: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Where the recording holds the original, as 16-bit PCM keeps it (within one step)."""
    return np.abs(recorded - original[:len(recorded)]) <= 1.5 / 32768


def secret_from(transcript: dict, prompt: str = "card_last4.prompt") -> float:
    """Seconds from which a secret step listens: the frame in which its prompt started."""
    t = next(e["t"] for e in transcript["entries"] if e["kind"] == "prompt" and e["prompt"] == prompt)
    return t - 0.02


def test_a_file_call_keeps_a_recording_with_the_secret_steps_silent(line: Line, tmp_path: Path) -> None:
    audio, _ = caller_audio(CLEAR_KEYS + SECRET_KEYS)
    soundfile.write(tmp_path / "caller.wav", audio, 8000)
    result = call_from_file(line, WordsTimedRenderer(), None, tmp_path / "caller.wav", caller_id="+34600000001",
                            dialed="950183313")
    assert result.record["outcome"] == "credentials_sent"

    # One file per call, named by its call id, 0600; the record and the transcript say where.
    path = tmp_path / "recordings" / f"{result.record['call_id']}.wav"
    assert os.listdir(tmp_path / "recordings") == [path.name]
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert result.record["recording"]["path"] == str(path) == result.transcript["recording"]["path"]
    assert line.call_log.recent(1)[0]["recording"]["path"] == str(path)

    info = soundfile.info(str(path))
    assert (info.channels, info.samplerate, info.subtype) == (2, 8000, "PCM_16")
    assert abs(info.frames - result.transcript["duration"] * 8000) <= 160  # within a frame
    recorded, _ = soundfile.read(str(path))
    caller, bot = recorded[:, 0], recorded[:, 1]

    # The detector finds the keys of the steps that are not secret, and nothing after them.
    assert "".join(k.key for k in detect(caller, 8000)) == CLEAR_KEYS
    # From the moment the card step listens the caller's channel is silence (the PIN step,
    # then the checks and the goodbye, still belong to it): not a sample, not the hiss.
    start = round(secret_from(result.transcript) * 8000)
    assert not caller[start:].any()
    # Before it, the caller as the line heard them (tones of the keys it took included).
    assert np.mean(same_audio(caller[:start], audio)) > 0.95
    # The line's channel: the prompts as the caller heard them.
    assert same_audio(bot, result.bot_audio).all()
    assert np.sqrt(np.mean(bot ** 2)) > 0.01


@pytest.mark.parametrize("rate, on, off", [(8000, 0.04, 0.04), (16000, 0.04, 0.04), (8000, 0.3, 0.045)],
                         ids=["fastest-8k", "fastest-16k", "long-presses"])
def test_no_part_of_a_secret_tone_leaks_however_fast_the_keys(line: Line, tmp_path: Path, rate: int, on: float,
                                                             off: float) -> None:
    # Keyed ahead as fast as Q.24 allows (40 ms tones, 40 ms gaps): the first card tone
    # starts while the DNI's last key is still being reported, and the muter is 30 ms late.
    audio, presses = caller_audio(CLEAR_KEYS + SECRET_KEYS, on=on, off=off, rate=rate)
    soundfile.write(tmp_path / "caller.wav", audio, rate)
    result = call_from_file(line, WordsTimedRenderer(), None, tmp_path / "caller.wav", caller_id="+34600000001",
                            dialed="950183313", sample_rate=rate)
    assert result.record["outcome"] == "credentials_sent"
    recorded, _ = soundfile.read(result.record["recording"]["path"])
    caller = recorded[:, 0]
    assert "".join(k.key for k in detect(caller, rate)) == CLEAR_KEYS
    margin = int(0.03 * rate)
    for press in presses[len(CLEAR_KEYS):]:
        assert not caller[press.start - margin:press.end + margin].any(), f"{press} leaks"
    assert not caller[round(secret_from(result.transcript) * rate):].any()


def test_a_prompt_that_reads_out_a_secret_is_silent_on_the_line_channel(line: Line, tmp_path: Path) -> None:
    # John Smith (C002) in English: SMS signature key, NIE, operation reference, card, PIN;
    # then, once the key has been read out, `*` to hear it again.
    keys, _ = caller_audio("2" "3" "2" "2" "01234567" "555000111#" "1111" "2222")
    star, _ = generator.sequence("*", lead=8.0, tail=0.5, level_dbm0=-10.0, rng=np.random.default_rng(3))
    soundfile.write(tmp_path / "caller.wav", np.concatenate([keys, star]), 8000)
    result = call_from_file(line, WordsTimedRenderer(), None, tmp_path / "caller.wav", caller_id="+34600000002",
                            dialed="950183313", hold_on=30.0)
    assert result.record["outcome"] == "sms_key_spoken", json.dumps(result.transcript, indent=1)
    recorded, _ = soundfile.read(result.record["recording"]["path"])
    caller, bot = recorded[:, 0], recorded[:, 1]
    readings = [e for e in result.transcript["entries"] if e["kind"] == "prompt" and MASK in e["text"]]
    assert len(readings) == 2  # read out, then again on `*`
    for reading in readings:
        start = round((reading["t"] - 0.02) * 8000)
        assert not bot[start:start + round(reading["seconds"] * 8000)].any()
    assert np.sqrt(np.mean(bot[:round(readings[0]["t"] * 8000)] ** 2)) > 0.01  # the other prompts are there
    # The caller's side: the keys of the steps that are not secret, and `*` after the secret
    # step ended (the line listens for it in the clear), nothing of the card or the PIN.
    assert "".join(k.key for k in detect(caller, 8000)) == "2322" "01234567" "555000111#" "*"


def test_the_recording_is_readable_while_the_call_goes_on(line: Line, tmp_path: Path) -> None:
    # A crash leaves what was written: the header is brought up to date with every write.
    path = tmp_path / "one-off.wav"
    session = CallSession(line, CallMeta(transport="file", dialed="950183313"), WordsTimedRenderer(), None, 8000,
                          record_to=path)
    session.start()
    hiss = np.random.default_rng(4).normal(0, 0.001, 160)
    for _ in range(200):  # 4 s
        session.step(hiss)
    with wave.open(str(path)) as w:  # the standard library's reader: it trusts the header alone
        assert w.getnchannels() == 2 and 2 * 8000 <= w.getnframes() <= 4 * 8000
    assert os.stat(path).st_mode & 0o777 == 0o600
    record = session.finish()
    assert soundfile.info(str(path)).frames == 200 * 160
    assert record["recording"] == {"path": str(path), "seconds": 4.0}


def test_a_folder_that_cannot_be_written_is_an_error_at_start(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from voicebot.cli import main

    (tmp_path / "a-file").write_text("")
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"database: {tmp_path / 'v.sqlite3'}\nlogging: {{file: null}}\n"
                      f"recording: {{folder: {tmp_path / 'a-file' / 'recordings'}}}\n")
    soundfile.write(tmp_path / "caller.wav", np.zeros(800), 8000)
    assert main(["--config", str(config), "call", "--input", str(tmp_path / "caller.wav"), "--no-speech"]) == 2
    err = capsys.readouterr().err
    assert "recording.folder" in err and "cannot be written" in err and "a-file" in err


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (the prompts)")
def test_voicebot_call_record_keeps_a_one_off_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voicebot.cli import main

    config = tmp_path / "voicebot.yaml"
    config.write_text(f"database: {tmp_path / 'v.sqlite3'}\nlogging: {{file: null}}\n")
    english, _ = generator.sequence("2", lead=4.0, tail=1.0, rng=np.random.default_rng(1))
    agent, _ = generator.sequence("0", lead=6.0, tail=0.5, rng=np.random.default_rng(2))
    soundfile.write(tmp_path / "caller.wav", np.concatenate([english, agent]), 8000)
    out = tmp_path / "call.wav"
    assert main(["--config", str(config), "call", "--input", str(tmp_path / "caller.wav"), "--record", str(out),
                 "--no-speech"]) == 0
    assert f"recording: {out}" in capsys.readouterr().out
    assert os.stat(out).st_mode & 0o777 == 0o600
    recorded, rate = soundfile.read(str(out))
    assert recorded.shape[1] == 2 and rate == 8000
    assert "".join(k.key for k in detect(recorded[:, 0], rate)) == "20"
    assert np.sqrt(np.mean(recorded[:, 1] ** 2)) > 0.01  # the prompts, spoken


def test_a_recording_that_fails_during_calls_never_stops_the_call(tmp_path: Path) -> None:
    # The start-up check passed, then the folder became unusable (here: a file in its way).
    # The caller is served all the same; the log and the call record say there is no recording.
    (tmp_path / "a-file").write_text("")
    line = line_recording_to(tmp_path / "a-file" / "recordings", tmp_path)
    try:
        audio, _ = caller_audio(CLEAR_KEYS + SECRET_KEYS)
        soundfile.write(tmp_path / "caller.wav", audio, 8000)
        result = call_from_file(line, WordsTimedRenderer(), None, tmp_path / "caller.wav",
                                caller_id="+34600000001", dialed="950183313")
    finally:
        line.close()
    assert result.record["outcome"] == "credentials_sent"
    assert result.record["recording"]["path"] is None and "not recorded" in result.record["recording"]["error"]
    warnings = [row for row in (tmp_path / "voicebot.log").read_text().splitlines() if "WARNING" in row]
    assert any(f"call {result.record['call_id']}: no recording" in row and "the call goes on" in row
               for row in warnings), warnings


def test_a_disk_that_fills_during_the_call_cuts_the_recording_not_the_call(line: Line, tmp_path: Path) -> None:
    path = tmp_path / "one-off.wav"
    session = CallSession(line, CallMeta(transport="file", dialed="950183313"), WordsTimedRenderer(), None, 8000,
                          record_to=path)
    session.start()
    hiss = np.random.default_rng(4).normal(0, 0.001, 160)
    for _ in range(200):
        session.step(hiss)
    assert session.recording is not None

    def full(_data: object) -> None:
        raise OSError(28, "No space left on device")

    session.recording._sound.write = full  # the next write of the file fails
    for _ in range(200):
        session.step(hiss)
    assert not session.finished
    record = session.finish()
    assert record["recording"]["seconds"] == soundfile.info(str(path)).frames / 8000 < 4.0
    assert "No space left on device" in record["recording"]["error"]
    assert line.call_log.recent(1)[0]["recording"] == record["recording"]


# ---------------------------------------------------------------------- the edges, through the recorder itself


def recorded_through_muter(tmp_path: Path, audio: np.ndarray, privacy_at: Callable[[float], Privacy],
                           rate: int = 8000) -> np.ndarray:
    """The caller's channel a recording keeps of ``audio`` when the step listening at each
    moment is ``privacy_at(seconds)`` and each key goes to the step listening when it is reported."""
    recording = CallRecording.create(tmp_path / "edge.wav", rate, DtmfMuter(rate).delay)
    muter = DtmfMuter(rate)
    frame = rate // 50
    before = privacy_at(0.0)
    for start in range(0, len(audio), frame):
        chunk = audio[start:start + frame]
        muted, tones = muter.process(chunk)
        after = privacy_at((start + len(chunk)) / rate)
        recording.add(chunk, muted, np.zeros(len(chunk)), before=before, after=after,
                      secret_seen=after is Privacy.SECRET, keys=[(tone, before) for tone in tones])
        before = after
    recording.close(*muter.flush())
    recorded, _ = soundfile.read(tmp_path / "edge.wav")
    return recorded[:, 0]


def test_a_press_begun_before_the_secret_step_and_longer_than_the_hold_is_silent_whole(tmp_path: Path) -> None:
    # A 2.5 s press from 0.5 s; a secret step listens from 2.5 s (the press is its first key).
    # Its first second is written before the step begins and before the press is reported.
    audio, presses = caller_audio("7", on=2.5, off=0.1)
    caller = recorded_through_muter(tmp_path, audio, lambda t: Privacy.SECRET if t >= 2.5 else Privacy.CLEAR)
    [press] = presses
    assert not caller[press.start - 40:press.end + 40].any()  # the tone, and 5 ms either side
    assert detect(caller, 8000) == []
    assert same_audio(caller[:press.start - 160], audio).all()  # the hiss before it


@pytest.mark.parametrize("then, kept", [(Privacy.SECRET, ""), (Privacy.CLEAR, "12")])
def test_keys_typed_where_no_step_listens_take_the_fate_of_the_next_step(tmp_path: Path, then: Privacy,
                                                                        kept: str) -> None:
    # A message plays (no step listens) while the caller keys "12"; the step that comes next
    # gets them: if it is secret, they are silence; if not, they are kept.
    audio, _ = caller_audio("12", on=0.1, off=0.1)
    caller = recorded_through_muter(tmp_path, np.concatenate([audio, np.zeros(8000)]),
                                    lambda t: Privacy.PENDING if t < 1.5 else then)
    assert "".join(k.key for k in detect(caller, 8000)) == kept
    if then is Privacy.SECRET:
        assert not caller[:12000].any()


def test_keys_of_a_step_that_never_came_are_not_kept(tmp_path: Path) -> None:
    # The call ends during a message: nobody took the keys typed there (they may be the PIN
    # the caller typed early); the voice (here, the hiss) is kept.
    audio, presses = caller_audio("8642", on=0.1, off=0.1)
    caller = recorded_through_muter(tmp_path, audio, lambda t: Privacy.CLEAR if t < 0.3 else Privacy.PENDING)
    assert detect(caller, 8000) == []
    assert caller[presses[0].start - 800:presses[0].start - 400].any()


def test_an_hour_long_call_is_written_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    rate, frame, delay = 8000, 800, DtmfMuter(8000).delay  # 100 ms steps: the same bookkeeping, faster
    recording = CallRecording.create(tmp_path / "hour.wav", rate, delay)
    hiss = np.random.default_rng(5).normal(0, 0.001, frame)
    lag, line = np.zeros(delay), np.zeros(frame, dtype=np.float32)
    before = Privacy.CLEAR
    tracemalloc.start()
    try:
        for i in range(3600 * 10):
            # Two minutes where no step listens, in the middle: more than is ever held.
            after = Privacy.PENDING if 600 * 10 <= i < 720 * 10 else Privacy.CLEAR
            lagged = np.concatenate([lag, hiss])
            muted, lag = lagged[:frame], lagged[frame:]  # what the muter hands on when there is no tone
            recording.add(hiss, muted, line, before=before, after=after, secret_seen=False, keys=[])
            before = after
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    recording.close(lag, [])
    assert peak < 8_000_000  # bytes: the held minute and a little, whatever the length of the call
    assert soundfile.info(str(tmp_path / "hour.wav")).frames == 3600 * rate
    held_too_long, _ = soundfile.read(str(tmp_path / "hour.wav"), start=600 * rate, frames=60 * rate)
    assert not held_too_long[:, 0].any()  # written silent: nobody could say whose it was
    then_decided, _ = soundfile.read(str(tmp_path / "hour.wav"), start=661 * rate, frames=50 * rate)
    assert np.mean(then_decided[:, 0] != 0) > 0.9  # the next minute was decided (a clear step came): kept
