"""`voicebot call --input`, `voicebot fixtures build|run` and `voicebot devices` from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicebot.cli import main
from voicebot.dtmf import generator

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
FIXTURES = Path(__file__).parents[1] / "audio_fixtures"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "voicebot.yaml"
    path.write_text(f"database: {tmp_path / 'v.sqlite3'}\nlogging: {{file: null}}\n"
                    f"speech: {{models_dir: {tmp_path / 'models'}}}\n")
    return path


def test_a_call_from_a_recording_writes_the_bot_side_and_the_transcript(config_file: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    english, _ = generator.sequence("2", lead=4.0, tail=1.0, rng=np.random.default_rng(1))
    agent, _ = generator.sequence("0", lead=6.0, tail=0.5, rng=np.random.default_rng(2))
    caller = tmp_path / "caller.flac"
    soundfile.write(caller, np.concatenate([english, agent]), 8000)
    bot, transcript = tmp_path / "bot.wav", tmp_path / "call.json"
    assert main(["--config", str(config_file), "call", "--input", str(caller), "--output", str(bot),
                 "--transcript", str(transcript), "--caller-id", "+34600000001"]) == 0
    out = capsys.readouterr().out
    assert "transferred (caller_request)" in out
    record = json.loads(transcript.read_text())
    assert record["schema"] == "voicebot.call-transcript/1" and record["outcome"] == "transferred"
    assert [e["key"] for e in record["entries"] if e["kind"] == "key"] == ["2", "0"]
    audio, rate = soundfile.read(bot)
    assert rate == 8000 and len(audio) / rate == pytest.approx(record["duration"], abs=0.05)
    assert np.sqrt(np.mean(audio ** 2)) > 0.01  # the prompts, spoken


def test_a_recording_that_is_not_audio_is_a_clear_error(config_file: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    assert main(["--config", str(config_file), "call", "--input", str(bad)]) == 1
    assert "cannot read it as audio" in capsys.readouterr().err


def test_fixtures_build_then_run(config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "fixtures"
    folder.mkdir()
    for name in ("barge-in-key-en", "leaf-no-match-es-keys"):
        shutil.copy(FIXTURES / f"{name}.yaml", folder)
    assert main(["--config", str(config_file), "fixtures", "build", "--folder", str(folder)]) == 0
    assert "clips rendered" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["barge-in-key-en", "leaf-no-match-es-keys"]
    assert main(["--config", str(config_file), "fixtures", "build", "--folder", str(folder)]) == 0
    assert "0 clips rendered" in capsys.readouterr().out
    assert main(["--config", str(config_file), "fixtures", "build", "--folder", str(folder), "--force"]) == 0
    assert "0 already there" in capsys.readouterr().out
    assert main(["--config", str(config_file), "fixtures", "run", "--folder", str(folder), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["passed"]) for r in results] == [("barge-in-key-en", True), ("leaf-no-match-es-keys", True)]


def test_a_failing_fixture_says_what_differed(config_file: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "fixtures"
    folder.mkdir()
    text = (FIXTURES / "barge-in-key-en.yaml").read_text().replace("reason: caller_request", "reason: no_match")
    (folder / "barge-in-key-en.yaml").write_text(text)
    assert main(["--config", str(config_file), "fixtures", "run", "--folder", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  barge-in-key-en" in out and "reason: expected 'no_match', got 'caller_request'" in out


def test_a_malformed_fixture_names_the_place(config_file: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "fixtures"
    folder.mkdir()
    (folder / "bad.yaml").write_text("name: bad\nturns:\n  - wait_for: main.prompt\n    keys: '1'\n    say: hola\n"
                                     "expect: {outcome: transferred}\n")
    assert main(["--config", str(config_file), "fixtures", "run", "--folder", str(folder)]) == 2
    assert "bad.yaml:3" in capsys.readouterr().err


def test_devices_lists_or_says_there_are_none(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sounddevice")
    code = main(["--config", str(config_file), "devices", "--json"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert isinstance(json.loads(out), list) if code == 0 else "PortAudio" in out
