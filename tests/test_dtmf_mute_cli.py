"""Muting keypad tones in the audio passed on, and the `voicebot dtmf FILE` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicebot.dtmf import generator
from voicebot.dtmf.mute import DtmfMuter
from voicebot.dtmf.talkoff import espeak_available, speak


def mixed_signal(rng: np.random.Generator) -> tuple[np.ndarray, list[generator.Press], np.ndarray]:
    """Speech, then keys, then speech: the audio, the presses, and a mask of where tones are."""
    if espeak_available():
        speech = 0.5 * speak("Quiero desbloquear mi usuario, mi tarjeta acaba en siete cinco.", "es", 170, 50)
    else:  # a stand-in with the same role: loud, broadband, not a key
        speech = generator.white_noise(2.0, -15.0, rng=rng)
    keys, presses = generator.sequence("8642#", on=0.07, off=0.06, rng=rng, lead=0.2, tail=0.2)
    signal = np.concatenate([speech, keys, speech])
    offset = len(speech)
    presses = [generator.Press(p.key, p.start + offset, p.end + offset) for p in presses]
    mask = np.zeros(len(signal), dtype=bool)
    for press in presses:
        mask[press.start:press.end] = True
    return signal, presses, mask


@pytest.mark.parametrize("chunk", [160, 37, 4000])
def test_muter_silences_the_tones_and_keeps_everything_else(chunk: int) -> None:
    rng = np.random.default_rng(5)
    signal, presses, mask = mixed_signal(rng)
    muter = DtmfMuter(8000)
    pieces, keys = [], []
    for start in range(0, len(signal), chunk):
        out, found = muter.process(signal[start:start + chunk])
        assert len(out) == len(signal[start:start + chunk])  # as much out as in, always
        pieces.append(out)
        keys += found
    out, found = muter.flush()
    pieces.append(out)
    keys += found
    passed = np.concatenate(pieces)[muter.delay:]
    assert len(passed) == len(signal)
    assert "".join(k.key for k in keys) == "8642#"
    # Not a sample of any tone gets through.
    assert np.all(passed[mask] == 0.0)
    # Speech is untouched: no talk-off, so nothing outside the tones is muted...
    speech_end = presses[0].start - int(0.2 * 8000)
    np.testing.assert_array_equal(passed[:speech_end], signal[:speech_end])
    np.testing.assert_array_equal(passed[presses[-1].end + 400:], signal[presses[-1].end + 400:])
    # ...and around the tones, at most a few milliseconds of silence are added.
    extra = (~mask) & (passed != signal)
    assert extra.sum() <= len(presses) * 2 * 10 * 8  # under 10 ms at each edge


def test_muter_delay_is_fixed_and_short() -> None:
    muter = DtmfMuter(8000)
    assert muter.delay == 240  # 30 ms at 8 kHz
    impulse = np.zeros(1000)
    impulse[100] = 0.5
    out, _ = muter.process(impulse)
    assert out[100 + muter.delay] == 0.5 and np.count_nonzero(out) == 1
    assert DtmfMuter(16000).delay == 480


def test_muter_refuses_other_rates() -> None:
    with pytest.raises(ValueError, match="resample"):
        DtmfMuter(44100)


# ---------------------------------------------------------------------------- the command


def voicebot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "voicebot", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("recordings")
    rng = np.random.default_rng(9)
    keys, _ = generator.sequence("4567#", on=0.1, off=0.1, sample_rate=44100, rng=rng)
    other, _ = generator.sequence("90", on=0.1, off=0.1, sample_rate=44100, rng=rng, lead=0.4)
    other = np.pad(other, (0, len(keys) - len(other)))
    soundfile.write(folder / "stereo.wav", np.stack([keys, other], axis=1), 44100)
    soundfile.write(folder / "mono.flac", generator.to_int16(keys), 44100)
    soundfile.write(folder / "phone.ogg", keys[::1], 44100, format="OGG", subtype="VORBIS")
    soundfile.write(folder / "line.wav", generator.sequence("123", sample_rate=8000, rng=rng)[0], 8000, subtype="ULAW")
    soundfile.write(folder / "empty.wav", np.zeros(0), 8000)
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    (folder / "notes.txt").write_text("not audio")
    return folder


@pytest.mark.parametrize("name,keys", [("stereo.wav", "4567#"), ("mono.flac", "4567#"), ("phone.ogg", "4567#"),
                                       ("line.wav", "123")])
def test_dtmf_command_reads_any_format(recordings: Path, name: str, keys: str) -> None:
    run = voicebot("dtmf", str(recordings / name), "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["keys"] == keys
    first = result["tones"][0]
    assert first["key"] == keys[0] and abs(first["start"] - 0.1) < 0.003 and abs(first["end"] - 0.2) < 0.003


def test_dtmf_command_prints_keys_and_times(recordings: Path) -> None:
    run = voicebot("dtmf", str(recordings / "stereo.wav"))
    assert run.returncode == 0
    assert "channel 0 of 2: 5 keys 4567#" in run.stdout
    assert "  4     0.100 s –    0.200 s  (100 ms" in run.stdout


def test_dtmf_command_channels(recordings: Path) -> None:
    second = json.loads(voicebot("dtmf", str(recordings / "stereo.wav"), "--channel", "1", "--json").stdout)
    assert second["keys"] == "90" and second["channel"] == 1
    both = json.loads(voicebot("dtmf", str(recordings / "stereo.wav"), "--channel", "all", "--json").stdout)
    assert [r["keys"] for r in both] == ["4567#", "90"]
    missing = voicebot("dtmf", str(recordings / "stereo.wav"), "--channel", "2")
    assert missing.returncode == 1 and "there is no channel 2 (the file has 2" in missing.stderr


@pytest.mark.parametrize("name,message", [
    ("empty.wav", "the file holds no audio"),
    ("broken.wav", "cannot read it as audio"),
    ("notes.txt", "cannot read it as audio"),
    ("absent.wav", "no such file"),
])
def test_dtmf_command_bad_files(recordings: Path, name: str, message: str) -> None:
    run = voicebot("dtmf", str(recordings / name))
    assert run.returncode == 1
    assert message in run.stderr and "Traceback" not in run.stderr
