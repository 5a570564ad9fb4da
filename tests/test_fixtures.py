"""Every audio fixture (`audio_fixtures/*.yaml`) played against the line through its whole audio path.

The prompts are the real ones (pyttsx3 with espeak-ng), so a change of wording that
changes their timing is part of what these tests see; the caller reacts to them.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicebot.app import Line
from voicebot.call.commands import DEFAULT_FIXTURES
from voicebot.call.fixtures import FixtureResult, load_scenario, run_scenario, scenario_files

from .conftest import make_config

SCENARIOS = scenario_files(DEFAULT_FIXTURES)
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory):
    from voicebot.tts import prompt_renderer

    config = make_config(tmp_path_factory.mktemp("prompts"))
    return prompt_renderer(config)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from voicebot.app import load_dialog
    from voicebot.asr.speech import LineSpeech

    config = make_config(tmp_path_factory.mktemp("speech"))
    menu, _ = load_dialog(config)
    line_speech = LineSpeech.from_config(config, menu)
    yield line_speech
    line_speech.close()


@pytest.fixture
def fresh_line(tmp_path: Path) -> Iterator[Line]:
    line = Line.open(make_config(tmp_path), echo=io.StringIO())
    line.ensure_demo_bank()
    yield line
    line.close()


def test_there_is_a_fixture_for_every_leaf_by_keys_in_both_languages() -> None:
    names = {path.stem for path in SCENARIOS}
    leaves = {name.removesuffix("-es-keys") for name in names if name.startswith("leaf-") and name.endswith("-es-keys")}
    assert len(leaves) >= 16
    assert all(f"{leaf}-en-keys" in names for leaf in leaves)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_fixture(path: Path, fresh_line: Line, renderer: object, speech: object) -> None:
    result: FixtureResult = run_scenario(fresh_line, renderer, speech, path)  # type: ignore[arg-type]
    if result.skipped:
        pytest.skip(result.skipped)
    assert result.passed, result.diff() + "\n" + json.dumps(result.transcript[-12:], ensure_ascii=False, indent=1)


def test_every_scenario_file_is_valid() -> None:
    for path in SCENARIOS:
        assert load_scenario(path).name == path.stem, f"{path.name}: `name` must match the file name"
