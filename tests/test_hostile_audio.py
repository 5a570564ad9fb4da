"""Hostile audio against the file front, the DTMF command and a live session: random bytes
behind a WAV header, NaN and inf, clipping, empty files, extreme rates, 100 channels, an
hour of noise. Each ends with a clear error or the line's no-input path: never a crash, a
hang or unbounded memory. (Property-based with hypothesis; a bounded number of examples in
CI, more with VOICEBOT_FUZZ_EXAMPLES.)"""

from __future__ import annotations

import io
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicebot.app import CallMeta, Line
from voicebot.call.file import call_from_file
from voicebot.call.session import CallSession
from voicebot.errors import VoicebotError

from .conftest import make_config
from .test_call_session import WordsTimedRenderer

EXAMPLES = int(os.environ.get("VOICEBOT_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
OUTCOMES = {"transferred", "hung_up", "caller_hung_up", "failed"}


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Line:
    folder = tmp_path_factory.mktemp("hostile")
    opened = Line.open(make_config(folder), echo=io.StringIO())
    opened.ensure_demo_bank()
    return opened


def wav_header(rate: int, channels: int, bits: int, data_bytes: int, fmt: int = 1) -> bytes:
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, fmt, channels, rate, rate * block, block, bits) +
            b"data" + struct.pack("<I", data_bytes))


def file_call(line: Line, path: Path) -> str:
    """The outcome of a file call, or 'error' for a clear refusal; anything else fails the test."""
    try:
        result = call_from_file(line, WordsTimedRenderer(), None, path, dialed="950183313")
    except VoicebotError as exc:
        assert str(path) in str(exc) or "audio" in str(exc).lower(), str(exc)
        return "error"
    assert result.record["outcome"] in OUTCOMES, result.record
    return result.record["outcome"]


@FUZZ
@given(rate=st.sampled_from([1, 7, 8000, 11025, 44100, 192000, 384000]),
       channels=st.integers(1, 100), bits=st.sampled_from([8, 16, 24, 32]),
       body=st.binary(min_size=0, max_size=20000), fmt=st.sampled_from([1, 3, 6, 7, 0xFFFE, 0x1234]),
       lie=st.booleans())
def test_random_bytes_behind_a_wav_header_end_in_an_error_or_a_call(tmp_path: Path, line: Line, rate: int,
                                                                    channels: int, bits: int, body: bytes,
                                                                    fmt: int, lie: bool) -> None:
    # `lie`: the header claims more data than there is (a truncated upload).
    path = tmp_path / "hostile.wav"
    path.write_bytes(wav_header(rate, channels, bits, len(body) * (7 if lie else 1), fmt) + body)
    assert file_call(line, path) in OUTCOMES | {"error"}


@FUZZ
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                                 st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0])),
                       min_size=1, max_size=4000),
       rate=st.sampled_from([8000, 16000, 22050]))
def test_nan_inf_and_huge_float_audio_is_heard_as_a_clipping_line(tmp_path: Path, line: Line, values: list[float],
                                                                  rate: int) -> None:
    path = tmp_path / "floats.wav"
    soundfile.write(path, np.array(values, dtype=np.float32), rate, subtype="FLOAT")
    assert file_call(line, path) in OUTCOMES


@FUZZ
@given(frames=st.lists(st.one_of(
    st.just(np.full(160, np.nan)), st.just(np.full(160, np.inf)), st.just(np.full(160, 40.0)),
    st.just(np.zeros(0)), st.just(np.zeros(1)), st.just(np.zeros(7919)),
    st.builds(lambda seed: np.random.default_rng(seed).normal(0, 3, 160), st.integers(0, 2**32 - 1)),
), min_size=1, max_size=60))
def test_a_live_session_takes_any_frame_it_is_given(line: Line, frames: list[np.ndarray]) -> None:
    session = CallSession(line, CallMeta("fuzz", "+34600000001", "950183313"), WordsTimedRenderer(), None, 8000,
                          virtual=True)
    session.start()
    for frame in frames:
        out = session.step(frame)
        assert len(out) == len(frame) and np.all(np.isfinite(out))
    assert session.finish()["outcome"] in OUTCOMES


def test_an_hour_of_loud_noise_ends_on_no_input_with_bounded_memory(tmp_path: Path, line: Line) -> None:
    path = tmp_path / "noise.flac"
    rng = np.random.default_rng(8)
    with soundfile.SoundFile(path, "w", 8000, 1, subtype="PCM_16", format="FLAC") as out:
        for _ in range(60):
            out.write(np.clip(rng.normal(0, 0.3, 8000 * 60), -1, 1))
    tracemalloc.start()
    try:
        outcome = file_call(line, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome == "transferred"  # no input heard in noise: the agent, as for silence
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MB for an hour of noise"


def test_the_dtmf_command_refuses_hostile_files_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voicebot.cli import main

    cases = {
        "empty.wav": b"",
        "header-only.wav": wav_header(8000, 1, 16, 0),
        "lying.wav": wav_header(8000, 1, 16, 10**9) + b"\x00\x01" * 100,
        "not-audio.wav": b"<?xml version='1.0'?><svg/>",
        "channels.wav": wav_header(8000, 100, 16, 200 * 100) + bytes(200 * 100),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        code = main(["dtmf", str(path), "--json"])
        captured = capsys.readouterr()
        assert code in (0, 1, 2), name
        assert "Traceback" not in captured.err, (name, captured.err)
        if code != 0:
            assert name in captured.err, (name, captured.err)
