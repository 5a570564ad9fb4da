"""The report's checks and their thresholds: a YAML file (``voicebot/data/a11y_checks.yaml``
documents each key and its default), read into one typed model; a typo or a wrong value is
a ``file:line`` error. :func:`evaluate` runs the checks over a report's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import yamlfile
from ..menu.model import UniversalCommand

DEFAULT_CHECKS = Path(__file__).resolve().parent.parent / "data" / "a11y_checks.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reach(_Section):
    every_node: bool = Field(True, description="every node reached in each mode and language")
    every_option: bool = Field(True, description="every option of every menu chosen in each mode and language")
    every_outcome: bool = Field(True, description="a call completed at every end and transfer node, in each mode and language")


class Voice(_Section):
    say_key_numbers: bool = Field(
        False, description="the voice-only caller may say an option's key ('tres') when no phrase picks it")


PromptText = Literal["prompt", "reprompt", "help"]
ModeName = Literal["keys", "voice"]


def _menu_prompt() -> list[PromptText]:
    return ["prompt"]


def _both_modes() -> list[ModeName]:
    return ["keys", "voice"]


class Prompts(_Section):
    max_options: int = Field(5, ge=1, le=9, description="options of one menu (working memory: 4-5)")
    max_words_per_minute: float = Field(180, gt=0, le=400, description="pace of a prompt, pauses included")
    min_words_for_pace: int = Field(
        10, ge=1, le=100, description="prompts shorter than this are not held to the pace (too short to measure)")
    max_seconds: float = Field(
        20, gt=0, le=300, description="one prompt of a menu or a digit entry (what the caller must take in to answer)")
    both_modes_announced: list[PromptText] = Field(
        default_factory=_menu_prompt,
        description="texts of a menu that must name, for every option, its key and words to say")
    barge_in: bool = Field(True, description="menus and digit entries let a voice interrupt their prompt")


class Timeouts(_Section):
    min_first_input: float = Field(5.0, gt=0, le=120, description="seconds of silence a menu or short entry waits")
    min_long_entry_first_input: float = Field(
        8.0, gt=0, le=120, description="... an entry of more than 4 digits (a document, a reference)")
    min_inter_digit: float = Field(3.0, gt=0, le=60, description="seconds allowed between two keys")
    not_shorter_after_no_input: bool = Field(
        True, description="after a no-input the next wait at the same step is at least as long")


class Outcomes(_Section):
    max_seconds: float = Field(240, gt=0, le=3600, description="the longest path to any outcome, in seconds")
    max_prompts: int = Field(25, ge=1, le=500, description="prompts heard on the longest path to any outcome")
    per_outcome: dict[str, float] = Field(
        default_factory=dict, description="seconds for one outcome or end node, instead of max_seconds")


class Commands(_Section):
    in_both_modes: list[UniversalCommand] = Field(
        default_factory=lambda: [UniversalCommand.REPEAT, UniversalCommand.AGENT, UniversalCommand.SLOWER],
        description="commands that must work by a key and by voice at the first menu")


class Checks(_Section):
    version: Literal[1] = 1
    languages: list[str] | None = Field(None, description="languages the checks apply to; null: every one reported")
    modes: list[ModeName] = Field(default_factory=_both_modes)
    reach: Reach = Reach()
    voice: Voice = Voice()
    prompts: Prompts = Prompts()
    timeouts: Timeouts = Timeouts()
    outcomes: Outcomes = Outcomes()
    commands: Commands = Commands()


def load_checks(path: str | Path | None = None) -> Checks:
    located = yamlfile.load(path or DEFAULT_CHECKS)
    return yamlfile.validate(located, Checks, "the checks file must be a mapping (see voicebot/data/a11y_checks.yaml)")


# ---------------------------------------------------------------------- running them


@dataclass
class CheckResult:
    name: str
    description: str
    threshold: Any
    problems: list[str] = field(default_factory=list)
    applies: bool = True

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "threshold": self.threshold,
                "applies": self.applies, "passed": self.passed, "problems": self.problems}


def evaluate(checks: Checks, report: dict[str, Any]) -> list[CheckResult]:
    """Every check over the report's data (the dicts :mod:`.report` builds)."""
    langs = set(checks.languages or report["languages"])
    modes = set(checks.modes)

    def ours(row: dict[str, Any]) -> bool:
        return row.get("language") in langs and row.get("mode", "keys") in modes

    results: list[CheckResult] = []

    def check(name: str, description: str, threshold: Any, problems: list[str], applies: bool = True) -> None:
        results.append(CheckResult(name, description, threshold, problems if applies else [], applies))

    coverage = [row for row in report["coverage"] if ours(row)]
    check("reach.every_node", "every node is reached by keys only and by voice only, in every language",
          checks.reach.every_node,
          [f"{row['node']}: not reached ({row['mode']}, {row['language']})" for row in coverage if not row["reached"]],
          checks.reach.every_node)
    check("reach.every_option", "every option of every menu can be chosen in each mode", checks.reach.every_option,
          [f"{row['node']} option {row['key']}: cannot be chosen ({row['mode']}, {row['language']})"
           for row in report["options"] if ours(row) and row["applies"] and not row["chosen"]],
          checks.reach.every_option)
    check("reach.every_outcome", "a call can be completed at every end and transfer node in each mode",
          checks.reach.every_outcome,
          [f"{row['node']}: no call completed there ({row['mode']}, {row['language']})"
           for row in coverage if row["terminal"] and not row["completed"]],
          checks.reach.every_outcome)
    failures = [f for f in report["failures"] if ours(f) and f["kind"] in ("audio", "error", "entry", "cut_short")]
    check("explorer.calls", "the calls placed on audio follow their plan; the search ran to its end", True,
          [f"{f['language']}/{f['mode']}: {f['message']}" for f in failures])

    p = checks.prompts
    prompts = [row for row in report["prompts"] if row["language"] in langs]
    check("prompts.max_options", "a menu offers at most this many options", p.max_options,
          sorted({f"{row['node']}: {row['options']} options" for row in prompts
                  if row["options"] is not None and row["options"] > p.max_options}))
    check("prompts.max_words_per_minute", f"prompts of {p.min_words_for_pace}+ words are not faster than this",
          p.max_words_per_minute,
          [f"{row['id']} ({row['language']}): {row['wpm']:.0f} words per minute" for row in prompts
           if row["words"] >= p.min_words_for_pace and row["wpm"] > p.max_words_per_minute])
    check("prompts.max_seconds", "a menu's or an entry's prompt lasts at most this long", p.max_seconds,
          [f"{row['id']} ({row['language']}): {row['seconds']:.1f} s" for row in prompts
           if row["kind"] in ("menu", "digits") and row["field"] == "prompt" and row["seconds"] > p.max_seconds])
    check("prompts.both_modes_announced", "every menu names, for each option, a key and words to say",
          p.both_modes_announced,
          [f"{row['id']} ({row['language']}): " + "; ".join(row["missing"]) for row in prompts
           if row["kind"] == "menu" and row["field"] in p.both_modes_announced and row["both_modes_announced"] is False],
          bool(p.both_modes_announced))
    check("prompts.barge_in", "a voice may interrupt the prompt of every menu and digit entry", p.barge_in,
          sorted({f"{row['node']}: barge-in is off" for row in prompts
                  if row["kind"] in ("menu", "digits") and row["field"] == "prompt" and row["barge_in"] is False}),
          p.barge_in)

    t = checks.timeouts
    timeout_problems = []
    for row in report["timeouts"]:
        if row["language"] not in langs:
            continue
        minimum = t.min_long_entry_first_input if row["long_entry"] else t.min_first_input
        if row["first_input"] is not None and row["first_input"] < minimum:
            timeout_problems.append(f"{row['node']} ({row['language']}): waits {row['first_input']:g} s for a first "
                                    f"input, the minimum is {minimum:g} s")
        if row["inter_digit"] is not None and row["inter_digit"] < t.min_inter_digit:
            timeout_problems.append(f"{row['node']} ({row['language']}): {row['inter_digit']:g} s between keys, the "
                                    f"minimum is {t.min_inter_digit:g} s")
        if (t.not_shorter_after_no_input and row["after_no_input"] is not None and row["first_input"] is not None
                and row["after_no_input"] < row["first_input"]):
            timeout_problems.append(f"{row['node']} ({row['language']}): waits less after a no-input "
                                    f"({row['after_no_input']:g} s < {row['first_input']:g} s)")
    check("timeouts", "the waits at every step are at least the minimums", t.model_dump(), timeout_problems)

    o = checks.outcomes
    outcome_problems = []
    for row in report["longest_paths"]:
        if not ours(row):
            continue
        limit = o.per_outcome.get(row["terminal"], o.per_outcome.get(row["outcome"] or "", o.max_seconds))
        if row["seconds"] > limit:
            outcome_problems.append(f"{row['terminal']} ({row['mode']}, {row['language']}): {row['seconds']:.0f} s, "
                                    f"the limit is {limit:g} s")
        if row["prompts"] > o.max_prompts:
            outcome_problems.append(f"{row['terminal']} ({row['mode']}, {row['language']}): {row['prompts']} prompts "
                                    f"heard, the limit is {o.max_prompts}")
    check("outcomes", "the longest path to each outcome, in seconds and prompts heard", o.model_dump(),
          outcome_problems)

    wanted = {c.value for c in checks.commands.in_both_modes}
    check("commands.in_both_modes", "these commands work by a key and by voice at the first menu", sorted(wanted),
          [f"{row['command']} ({row['mode']}, {row['language']}): {row['effect']}" for row in report["commands"]
           if ours(row) and row["command"] in wanted and not row["works"]]
          + [f"{name}: not a universal command of the menu" for name in sorted(wanted)
             if not any(row["command"] == name for row in report["commands"])])
    return results
