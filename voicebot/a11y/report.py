"""The accessibility report: explore the menu in every language and mode, measure, check, write.

:func:`build_report` returns the report as plain data (the JSON written for CI, schema
``voicebot.a11y-report/1``); :func:`write_report` writes it with the HTML page and the
pictures into a folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Config
from ..menu.loader import successors
from ..menu.model import DigitsNode, EndNode, Menu, MenuNode, TransferNode, UniversalCommand
from ..nlu.rasa_data import load_training_data
from .calls import CallRun, ScratchBank, Timing
from .caller import Mode, Step, StepKind, personas
from .checks import Checks, evaluate
from .explorer import Exploration, Explorer, option_targets
from .prompts import analyse

log = logging.getLogger(__name__)

SCHEMA = "voicebot.a11y-report/1"
Progress = Callable[[str], None]


@dataclass
class LanguageRuns:
    language: str
    explorations: dict[Mode, Exploration] = field(default_factory=dict)
    longest: dict[Mode, dict[str, CallRun]] = field(default_factory=dict)  # terminal -> the call measured
    measured: dict[Mode, list[CallRun]] = field(default_factory=dict)  # the calls coverage comes from
    medium: dict[Mode, str] = field(default_factory=dict)
    notes: dict[Mode, str] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    timeouts: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)


def build_report(config: Config, checks: Checks, languages: list[str] | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
    from ..asr.speech import LineSpeech
    from ..tts import prompt_renderer

    say = progress or (lambda _text: None)
    languages = list(languages or config.languages)
    started = datetime.now(timezone.utc)
    bank = ScratchBank(config)
    speech: LineSpeech | None = None
    try:
        menu = bank.menu
        renderer = prompt_renderer(bank.config)
        timing = Timing(renderer, bank.config)
        training = {lang: load_training_data(Path(config.nlu.data_dir) / lang) for lang in config.languages}
        explorer = Explorer(bank, timing, training, bank.config, personas(bank.seed, bank.config),
                            say_key_numbers=checks.voice.say_key_numbers)
        speech = LineSpeech.from_config(bank.config, menu)
        with_model = set(speech.speech_languages())
        problems = speech.problems()
        results = []
        for language in languages:
            runs = LanguageRuns(language)
            for mode in (Mode.KEYS, Mode.VOICE):
                say(f"{language}: exploring by {mode.value} only")
                exploration = explorer.explore(language, mode)
                runs.explorations[mode] = exploration
                longest = explorer.longest(exploration)
                on_audio = mode is Mode.KEYS or language in with_model
                if on_audio:
                    plans = _selection(menu, exploration, longest)
                    say(f"{language}: {len(plans)} {mode.value}-only calls on audio")
                    line_speech = speech if mode is Mode.VOICE else None
                    placed = [(plan, explorer.place_audio(plan, language, renderer, line_speech)) for plan in plans]
                    exploration.audio_runs = placed
                    runs.measured[mode] = [audio for _, audio in placed]
                    runs.longest[mode] = {terminal: next(audio for plan, audio in placed if plan is run)
                                          for terminal, run in longest.items()}
                    runs.medium[mode] = "audio"
                else:
                    runs.measured[mode] = exploration.runs
                    runs.longest[mode] = longest
                    runs.medium[mode] = "text"
                if mode is Mode.VOICE:
                    runs.notes[mode] = _voice_note(language, language in with_model, problems.get(language))
                else:
                    runs.notes[mode] = ("keys-only calls planned on text, then placed on audio: prompts rendered by "
                                        "pyttsx3, keys as DTMF tones through the detector")
                runs.failures += _failures(menu, language, mode, exploration)
            say(f"{language}: timeouts and commands")
            runs.timeouts = _timeouts(explorer, menu, language, runs.explorations[Mode.KEYS])
            runs.commands = _commands(explorer, menu, language, runs.explorations[Mode.KEYS])
            results.append(runs)
        say("prompts: rendering and measuring")
        prompt_rows = [info.as_dict() for info in analyse(menu, bank.config, renderer, languages)]
    finally:
        if speech is not None:
            speech.close()
        bank.close()
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "generated_at": started.isoformat(timespec="seconds"),
        "menu": str(config.menu),
        "languages": languages,
        "modes": [m.value for m in Mode],
        "runs": [{"language": r.language, "mode": m.value, "medium": r.medium[m], "note": r.notes[m],
                  "calls_planned": r.explorations[m].calls, "calls_on_audio": len(r.explorations[m].audio_runs),
                  "cut_short": r.explorations[m].cut_short} for r in results for m in Mode],
        "nodes": [{"node": name, "type": node.type, "terminal": isinstance(node, (EndNode, TransferNode))}
                  for name, node in menu.nodes.items()],
        "coverage": [row for r in results for m in Mode for row in _coverage(menu, r, m)],
        "options": [row for r in results for m in Mode for row in _options(menu, r, m)],
        "prompts": prompt_rows,
        "timeouts": [row for r in results for row in r.timeouts],
        "timeouts_configured": config.timeouts.model_dump(),
        "commands": [row for r in results for row in r.commands],
        "longest_paths": [row for r in results for m in Mode for row in _longest(menu, r, m)],
        "failures": [f for r in results for f in r.failures],
        "edges": _edges(menu),
        "entry_points": dict(menu.entry_points),
    }
    report["outcomes"] = _outcomes(report["longest_paths"])
    report["checks"] = [c.as_dict() for c in evaluate(checks, report)]
    report["passed"] = all(c["passed"] for c in report["checks"])
    return report


def _voice_note(language: str, with_model: bool, problem: str | None) -> str:
    if with_model:
        return ("voice-only calls on audio: espeak-ng speech fixtures through the Vosk recogniser, the NLU and the "
                "engine")
    return (f"No speech model for {language!r} is installed ({problem or 'no model'}). The voice-only run fell back "
            "to text-level input: each phrase went to the engine as recognised speech (confidence 1.0) through the "
            "NLU; the time a phrase takes is espeak-ng's rendering of it. Recognition itself was not tested: install "
            f"the model (`voicebot models download {language}`) and run the report again.")


# ---------------------------------------------------------------------- choosing calls to place on audio


def _selection(menu: Menu, exploration: Exploration, longest: dict[str, CallRun]) -> list[CallRun]:
    """The calls the report relies on: the longest to each place a call ends, a completed
    call through every node, a call that chose each option."""
    chosen: list[CallRun] = []

    def add(run: CallRun | None) -> None:
        if run is not None and all(run is not other for other in chosen):
            chosen.append(run)

    for run in longest.values():
        add(run)
    for name in menu.nodes:
        if not any(name in run.nodes for run in chosen):
            add(exploration.completed_through(name) or exploration.first.get(name))
    for run in exploration.chosen.values():
        if not any(_covers(other, run) for other in chosen):
            add(run)
    return chosen


def _covers(longer: CallRun, run: CallRun) -> bool:
    return (longer.entry == run.entry and longer.steps[:len(run.steps)] == run.steps
            and (run.persona is None or longer.persona == run.persona))


# ---------------------------------------------------------------------- tables


def _coverage(menu: Menu, runs: LanguageRuns, mode: Mode) -> list[dict[str, Any]]:
    measured = runs.measured[mode]
    exploration = runs.explorations[mode]
    good = {id(audio) for plan, audio in exploration.audio_runs if _same(plan, audio)}
    rows = []
    for name, node in menu.nodes.items():
        reached = [run for run in measured if name in run.nodes]
        completed = [run for run in reached if run.finished and (runs.medium[mode] == "text" or id(run) in good)]
        fastest = min(reached, key=lambda run: run.reached_at(name) or 0.0) if reached else None
        quickest = min(completed, key=lambda run: run.seconds) if completed else None
        shown = quickest or fastest
        rows.append({
            "node": name, "type": node.type, "terminal": isinstance(node, (EndNode, TransferNode)),
            "language": runs.language, "mode": mode.value, "medium": runs.medium[mode],
            "reached": bool(reached), "completed": bool(completed),
            "reached_at": round(fastest.reached_at(name) or 0.0, 1) if fastest else None,
            "completed_in": round(quickest.seconds, 1) if quickest else None,
            "steps": [s.shown() for s in shown.steps] if shown is not None else [],
            "caller": _who(shown),
        })
    return rows


def _who(run: CallRun | None) -> str | None:
    if run is None:
        return None
    return f"{run.entry}, {run.persona.label if run.persona else 'any caller'}"


def _options(menu: Menu, runs: LanguageRuns, mode: Mode) -> list[dict[str, Any]]:
    exploration = runs.explorations[mode]
    audio_ok = {id(plan) for plan, audio in exploration.audio_runs if _same(plan, audio)}
    rows = []
    for name, node in menu.nodes.items():
        if not isinstance(node, MenuNode):
            continue
        for index, option in enumerate(node.options):
            applies = (name, index) in exploration.applicable
            run = exploration.chosen.get((name, index))
            chosen = run is not None
            if run is not None and runs.medium[mode] == "audio" and exploration.audio_runs:
                # Chosen on text; on audio, some call placed must have gone the same way.
                chosen = id(run) in audio_ok or any(_covers(plan, run) for plan, audio in exploration.audio_runs
                                                    if id(plan) in audio_ok)
            how = None
            if run is not None:
                step = run.steps[-1] if run.steps else None
                how = step.shown() if step else None
            rows.append({"node": name, "key": option.key, "option": index, "language": runs.language,
                         "mode": mode.value, "applies": applies, "chosen": chosen, "how": how,
                         "targets": option_targets(option.next),
                         "phrases": option.say.get(runs.language, [])})
    return rows


def _same(plan: CallRun, audio: CallRun) -> bool:
    return (plan.nodes == audio.nodes and plan.finished == audio.finished
            and (not plan.finished or (plan.outcome, plan.reason) == (audio.outcome, audio.reason)))


def _longest(menu: Menu, runs: LanguageRuns, mode: Mode) -> list[dict[str, Any]]:
    rows = []
    for terminal, run in sorted(runs.longest[mode].items()):
        node = menu.nodes.get(terminal)
        rows.append({
            "language": runs.language, "mode": mode.value, "medium": run.medium, "terminal": terminal,
            "outcome": run.outcome, "reason": run.reason, "entry": run.entry, "caller": _who(run),
            "seconds": round(run.seconds, 1), "prompts": run.prompts_heard,
            "steps": [s.shown() for s in run.steps], "path": run.nodes,
            "node_type": node.type if node is not None else "engine",
            "timeline": timeline(run),
        })
    return rows


def _outcomes(longest: list[dict[str, Any]]) -> list[dict[str, Any]]:
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in longest:
        key = (row["language"], row["mode"], row["outcome"] or "")
        if key not in best or row["seconds"] > best[key]["seconds"]:
            best[key] = row
    return [{"language": k[0], "mode": k[1], "outcome": k[2], "seconds": row["seconds"], "prompts": row["prompts"],
             "terminal": row["terminal"]} for k, row in sorted(best.items())]


def timeline(run: CallRun) -> list[dict[str, Any]]:
    """The call as segments on its clock: prompts heard, the caller's keys, speech and silences."""
    segments: list[dict[str, Any]] = []
    open_prompt: dict[str, Any] | None = None
    silence_from: float | None = None
    for entry in run.entries:
        d = entry.detail
        if entry.kind == "prompt":
            open_prompt = {"start": entry.t, "end": entry.t + float(d.get("seconds", 0.0)), "kind": "prompt",
                           "label": d.get("prompt", "")}
            segments.append(open_prompt)
        elif entry.kind == "prompt_stopped" and open_prompt is not None:
            at = d.get("at")
            open_prompt["end"] = open_prompt["start"] + float(at) if at is not None else entry.t
            open_prompt = None
        elif entry.kind == "caller":
            if d.get("what") == "silence":
                silence_from = entry.t
            else:
                segments.append({"start": entry.t, "end": entry.t + float(d.get("seconds", 0.0)),
                                 "kind": d.get("what", "keys"), "label": d.get("text", "")})
        elif entry.kind == "timer" and silence_from is not None:
            segments.append({"start": silence_from, "end": entry.t, "kind": "silence", "label": "no input"})
            silence_from = None
    return [{**s, "start": round(s["start"], 2), "end": round(s["end"], 2)} for s in segments]


def _edges(menu: Menu) -> list[dict[str, Any]]:
    edges = []
    for name, node in menu.nodes.items():
        for path, target in successors(menu, name):
            label = ""
            if isinstance(node, MenuNode) and path[:1] == ("options",):
                label = node.options[int(path[1])].key
            elif path[:1] == ("results",):
                label = str(path[1])
            elif path[:1] == ("exceeded",):
                label = "exceeded"
            when = _route_condition(node, path)
            edges.append({"from": name, "to": target, "label": " ".join(p for p in (label, when) if p)})
    return edges


def _route_condition(node: Any, path: tuple[str | int, ...]) -> str:
    """``when flow=sms_key`` for an edge that is one of several routes."""
    if len(path) < 2 or path[-1] != "go":
        return ""
    value: Any = node
    for part in path[:-2]:
        value = value[part] if isinstance(part, int) or isinstance(value, dict) else getattr(value, str(part))
    route = value[int(path[-2])]
    return ("when " + ", ".join(f"{k}={v}" for k, v in route.when.items())) if route.when else "otherwise"


# ---------------------------------------------------------------------- failures


def format_run(run: CallRun) -> list[str]:
    """A call as lines to read: who, then what the line said and the caller did, with times."""
    lines = [f"call: {run.summary()}"]
    for entry in run.entries:
        d = entry.detail
        t = f"{entry.t:7.2f} s"
        if entry.kind == "prompt":
            lines.append(f"{t}  IVR    › {d.get('text', '')}  [{d.get('prompt')}, {d.get('seconds', 0):.1f} s]")
        elif entry.kind == "caller":
            what = d.get("what")
            shown = "(silence)" if what == "silence" else (f"keys {d.get('text')}" if what == "keys"
                                                           else f"says “{d.get('text')}”")
            lines.append(f"{t}  caller › {shown}" + (f"  ({d['why']})" if d.get("why") else ""))
        elif entry.kind == "node":
            lines.append(f"{t}         → {d.get('node')}")
        elif entry.kind in ("transfer", "hangup", "action_result", "timer", "internal_error", "speech",
                            "transfer_failed", "prompt_stopped"):
            shown = ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("text",))
            lines.append(f"{t}  {entry.kind}: {shown}")
    if run.error:
        lines.append(f"error: {run.error}")
    return lines


def _failures(menu: Menu, language: str, mode: Mode, exploration: Exploration) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def fail(kind: str, message: str, node: str | None = None, run: CallRun | None = None,
             more: list[CallRun] | None = None) -> None:
        transcript = format_run(run) if run is not None else []
        for other in more or []:
            transcript += [""] + format_run(other)
        found.append({"language": language, "mode": mode.value, "kind": kind, "node": node, "message": message,
                      "transcript": transcript})

    for problem in exploration.entry_problems:
        fail("entry", problem)
    if exploration.cut_short:
        fail("cut_short", f"the search stopped after {exploration.calls} calls: some paths were not explored")
    for run in exploration.runs:
        if run.error:
            fail("error", run.error, run.node, run)
            break
    for plan, audio in exploration.audio_runs:
        if not _same(plan, audio):
            went = f"{audio.outcome} ({audio.reason})" if audio.finished else f"stopped at {audio.node}"
            planned = f"{plan.outcome} ({plan.reason})" if plan.finished else f"waiting at {plan.node}"
            fail("audio", f"on audio the call went {' → '.join(audio.nodes)} and {went}; planned on text: "
                          f"{' → '.join(plan.nodes)} and {planned}", audio.node, audio)
    reached = set(exploration.first)
    for name, node in menu.nodes.items():
        if name in reached:
            continue
        tried = [a for a in exploration.attempts
                 if a.option is not None and isinstance(menu.nodes[a.node], MenuNode)
                 and name in option_targets(menu.nodes[a.node].options[a.option].next)]  # type: ignore[union-attr]
        ways_in = [src for src in menu.nodes for _, target in successors(menu, src) if target == name]
        if tried:
            fail("unreached", f"{name} is never reached by {mode.value} only: "
                              + "; ".join(f"at {a.node}, {a.what}: {a.problem}" for a in tried[:3]),
                 name, tried[0].run, [a.run for a in tried[1:2]])
        else:
            before = [src for src in ways_in if src in reached]
            why = (f"the nodes leading to it ({', '.join(before)}) never went on to it" if before
                   else f"nothing leading to it is reached either ({', '.join(ways_in) or 'no way in'})")
            fail("unreached", f"{name} is never reached by {mode.value} only: {why}", name,
                 exploration.first.get(before[0]) if before else None)
    for (name, index) in sorted(exploration.applicable - set(exploration.chosen)):
        node = menu.nodes[name]
        assert isinstance(node, MenuNode)
        tried = [a for a in exploration.attempts if a.node == name and a.option == index]
        message = (f"{name}: option {node.options[index].key} cannot be chosen by {mode.value} only"
                   + (": " + "; ".join(f"{a.what}: {a.problem}" for a in tried[:3]) if tried else ""))
        fail("option", message, name, tried[0].run if tried else exploration.first.get(name))
    completed_nodes = {n for run in exploration.completed for n in run.nodes}
    for name, node in menu.nodes.items():
        if isinstance(node, (EndNode, TransferNode)) and name in reached and name not in completed_nodes:
            fail("incomplete", f"{name} is reached by {mode.value} only but no call ends there", name,
                 exploration.first.get(name))
    return found


# ---------------------------------------------------------------------- timeouts and commands


def _timeouts(explorer: Explorer, menu: Menu, language: str, exploration: Exploration) -> list[dict[str, Any]]:
    rows = []
    for name, run in exploration.first.items():
        node = menu.nodes[name]
        if not isinstance(node, (MenuNode, DigitsNode)):
            continue
        base = explorer.prefix_to(run, name)
        silent = explorer.place_text(base.then(Step(StepKind.SILENCE, why="no input")))
        waits = [float(e.detail["seconds"]) for e in silent.entries
                 if e.kind == "timer_set" and e.detail.get("node") == name and e.detail.get("timer") == "no_input"]
        inter = None
        if isinstance(node, DigitsNode):
            keyed = explorer.place_text(base.then(Step(StepKind.KEYS, "1", "one key")))
            gaps = [float(e.detail["seconds"]) for e in keyed.entries
                    if e.kind == "timer_set" and e.detail.get("node") == name and e.detail.get("timer") == "inter_digit"]
            inter = gaps[0] if gaps else None
        rows.append({"node": name, "type": node.type, "language": language,
                     "long_entry": isinstance(node, DigitsNode) and node.max > 4,
                     "first_input": waits[0] if waits else None,
                     "after_no_input": waits[1] if len(waits) > 1 else None,
                     "inter_digit": inter})
    return rows


def _commands(explorer: Explorer, menu: Menu, language: str, exploration: Exploration) -> list[dict[str, Any]]:
    at = next((name for name in exploration.first
               if isinstance(menu.nodes[name], MenuNode) and not menu.nodes[name].any_language), None)  # type: ignore[union-attr]
    if at is None:
        return []
    base = explorer.prefix_to(exploration.first[at], at)
    rows = []
    for command in UniversalCommand:
        if command not in menu.universal:
            continue
        for mode in Mode:
            step = explorer.command_step(command, language, mode)
            row: dict[str, Any] = {"command": command.value, "language": language, "mode": mode.value, "node": at,
                                   "input": step.shown() if step else None}
            if step is None:
                row.update(works=False, effect="no key" if mode is Mode.KEYS else "no phrase in the NLU data")
                rows.append(row)
                continue
            run = explorer.place_text(base.then(step))
            row.update(_effect(run, len(base.steps)))
            rows.append(row)
    return rows


def _effect(run: CallRun, index: int) -> dict[str, Any]:
    if run.steps_taken <= index:
        return {"works": False, "effect": "the line did not listen"}
    callers = [i for i, e in enumerate(run.entries) if e.kind == "caller"]
    after = run.entries[callers[index] + 1:] if len(callers) > index else []
    no_match = any(e.kind == "prompt" and any(str(key).startswith("texts.no_match") for key in e.detail.get("texts", []))
                   for e in after)
    said = next((e for e in after if e.kind == "prompt"), None)
    ended = next((e for e in after if e.kind in ("transfer", "hangup")), None)
    parts = []
    if said is not None:
        rate = float(said.detail.get("rate", 1.0))
        parts.append(f"plays {said.detail.get('prompt')}" + (f" at {rate:.0%} of the speech rate" if rate != 1.0 else ""))
    if ended is not None:
        parts.append(f"{ended.kind} ({ended.detail.get('reason') or ended.detail.get('outcome')})")
    if not parts:
        waits = [e.detail.get("seconds") for e in after if e.kind == "timer_set"]
        parts.append(f"waits {waits[-1]:g} s" if waits else "nothing")
    effect = ", then ".join(parts)
    return {"works": not no_match, "effect": ("not understood: " if no_match else "") + effect}


def write_report(report: dict[str, Any], out: Path) -> dict[str, Path]:
    from .figures import menu_graph_svg, timeline_svg
    from .html import render_html

    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    figures: dict[str, str] = {}
    graph, graph_problem = menu_graph_svg(report)
    if graph is not None:
        (out / "menu-graph.svg").write_text(graph)
        figures["menu_graph"] = graph
        written["menu graph"] = out / "menu-graph.svg"
    report["figures"] = {"menu_graph": "menu-graph.svg" if graph is not None else None,
                         "menu_graph_problem": graph_problem, "timelines": {}}
    for language in report["languages"]:
        for mode in report["modes"]:
            rows = [r for r in report["longest_paths"] if r["language"] == language and r["mode"] == mode]
            if not rows:
                continue
            svg = timeline_svg(rows, f"Longest path to each outcome — {language}, {mode} only")
            name = f"timeline-{language}-{mode}.svg"
            (out / name).write_text(svg)
            figures[f"timeline-{language}-{mode}"] = svg
            report["figures"]["timelines"][f"{language}-{mode}"] = name
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n")
    written["json"] = out / "report.json"
    (out / "report.html").write_text(render_html(report, figures))
    written["html"] = out / "report.html"
    return written
