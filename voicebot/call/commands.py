"""`voicebot call` and `voicebot fixtures`: calls on audio from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..config import Config

DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "audio_fixtures"


def add_call_commands(sub: Any) -> None:
    call = sub.add_parser("call", help="a call on audio: from a recording of the caller (--input) or a headset (--device)")
    source = call.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="FILE", help="the caller's side, a recording (WAV, FLAC, OGG; any rate)")
    source.add_argument("--device", nargs="?", const="", metavar="NAME",
                        help="a headset: the default device, or one named (`voicebot devices` lists them)")
    call.add_argument("--output", metavar="FILE", help="write the line's side of the call as a WAV file")
    call.add_argument("--transcript", metavar="FILE", help="write the call's transcript as JSON (schema in the README)")
    call.add_argument("--record", metavar="FILE",
                      help="keep the call's recording there: a WAV of two channels, caller and line, secret steps "
                           "silent (instead of recording.folder's)")
    call.add_argument("--caller-id", default=None, help="the caller's number, e.g. +34600000001")
    call.add_argument("--dialed", default="950183313", help="number dialled: 950183313 (unlock) or 901511000 (support)")
    call.add_argument("--lang", default=None, help="language known in advance (skips the language choice)")
    call.add_argument("--rate", type=int, default=8000, choices=[8000, 16000], help="the line's rate (a file call)")
    call.add_argument("--no-speech", action="store_true", help="keys only (no speech models loaded)")
    call.set_defaults(handler=cmd_call)

    fixtures = sub.add_parser("fixtures", help="audio fixtures: scenario files of a caller, played against the line")
    fixtures_sub = fixtures.add_subparsers(title="fixtures commands", metavar="COMMAND")
    folder = argparse.ArgumentParser(add_help=False)
    folder.add_argument("--folder", default=str(DEFAULT_FIXTURES), help="where the scenarios are (default: audio_fixtures/)")
    build = fixtures_sub.add_parser("build", parents=[folder], help="render each caller's clips into WAV files beside it")
    build.add_argument("pattern", nargs="?", default="*", help="scenario names (shell pattern)")
    build.add_argument("--force", action="store_true", help="render every clip again (the generator or espeak-ng changed)")
    build.set_defaults(handler=cmd_fixtures_build)
    run = fixtures_sub.add_parser("run", parents=[folder], help="play the scenarios against the line: pass or fail")
    run.add_argument("pattern", nargs="?", default="*", help="scenario names (shell pattern)")
    run.add_argument("--json", action="store_true")
    run.set_defaults(handler=cmd_fixtures_run)
    fixtures.set_defaults(handler=lambda _args, _config, parser=fixtures: (parser.print_help(), 2)[1])


def _prompt_renderer(config: Config) -> Any:
    from ..tts import prompt_renderer

    return prompt_renderer(config)


def _speech(config: Config, menu: Any, wanted: bool) -> Any:
    if not wanted:
        return None
    from ..asr.speech import LineSpeech

    speech = LineSpeech.from_config(config, menu)
    speech.start()
    return speech


def cmd_call(args: argparse.Namespace, config: Config) -> int:
    from ..app import Line
    from .file import call_from_file, write_results
    from .recording import check_recording_folder

    if args.record is None:
        check_recording_folder(config)  # before the call: a folder that takes no file is the operator's to fix
    line = Line.open(config)
    speech = None
    try:
        line.ensure_demo_bank()
        speech = _speech(config, line.menu, not args.no_speech)
        renderer = _prompt_renderer(config)
        if args.device is not None:
            from .headset import call_on_device

            record = call_on_device(line, renderer, speech, device=args.device or None, caller_id=args.caller_id,
                                    dialed=args.dialed, language=args.lang, transcript=args.transcript,
                                    record_to=args.record)
            print(f"call ended: {record['outcome']}" + (f" ({record['outcome_reason']})" if record["outcome_reason"] else ""))
            return 0
        result = call_from_file(line, renderer, speech, args.input, caller_id=args.caller_id, dialed=args.dialed,
                                language=args.lang, sample_rate=args.rate, record_to=args.record)
        write_results(result, args.output, args.transcript)
        t = result.transcript
        print(f"{args.input}: {t['input_seconds']:.1f} s heard, call of {t['duration']:.1f} s: {t['outcome']}"
              + (f" ({t['outcome_reason']})" if t["outcome_reason"] else ""))
        recording = t.get("recording")
        if recording:
            print(f"  recording: {recording['path'] or 'none'}"
                  + (f" ({recording['error']})" if recording.get("error") else f" ({recording['seconds']:.1f} s)"))
        for entry in t["entries"]:
            if entry["kind"] in ("prompt", "key", "speech", "prompt_stopped", "action_result", "transfer", "hangup"):
                shown = {k: v for k, v in entry.items() if k not in ("t", "kind", "text")}
                print(f"  {entry['t']:7.2f} s  {entry['kind']:<15} {json.dumps(shown, ensure_ascii=False)}")
        return 0
    finally:
        if speech is not None:
            speech.close()
        line.close()


def cmd_fixtures_build(args: argparse.Namespace, config: Config) -> int:
    from .fixtures import build_clips, scenario_files

    files = scenario_files(args.folder, args.pattern)
    if not files:
        print(f"no scenario matches {args.pattern!r} in {args.folder}", file=sys.stderr)
        return 1
    written = kept = 0
    for path in files:
        w, k = build_clips(path, force=args.force)
        written, kept = written + w, kept + k
    print(f"{len(files)} scenarios: {written} clips rendered, {kept} already there")
    return 0


def cmd_fixtures_run(args: argparse.Namespace, config: Config) -> int:
    import tempfile

    from ..app import Line
    from .fixtures import run_scenario, scenario_files

    files = scenario_files(args.folder, args.pattern)
    if not files:
        print(f"no scenario matches {args.pattern!r} in {args.folder}", file=sys.stderr)
        return 1
    # Each run starts from the demo bank in a scratch database: fixtures change the bank
    # (cards lock, codes are issued) and must not touch the operator's.
    with tempfile.TemporaryDirectory(prefix="voicebot-fixtures-") as scratch:
        scratch_config = config.model_copy(update={"database": Path(scratch) / "fixtures.sqlite3"})
        renderer = _prompt_renderer(config)
        speech = None  # loaded with the first line (it needs the menu), shared by all runs
        results = []
        try:
            for path in files:
                line = Line.open(scratch_config.model_copy(update={"database": Path(scratch) / f"{path.stem}.sqlite3"}))
                try:
                    line.ensure_demo_bank()
                    if speech is None:
                        speech = _speech(scratch_config, line.menu, True)
                    results.append(run_scenario(line, renderer, speech, path))
                finally:
                    line.close()
        finally:
            if speech is not None:
                speech.close()
    failed = [r for r in results if not r.passed]
    if args.json:
        print(json.dumps([{"name": r.name, "passed": r.passed, "skipped": r.skipped, "problems": r.problems,
                           "seconds": round(r.seconds, 2)} for r in results], ensure_ascii=False, indent=2))
    else:
        for r in results:
            status = "skip" if r.skipped else ("pass" if r.passed else "FAIL")
            print(f"{status:4}  {r.name}  ({r.seconds:.1f} s of call)" + (f": {r.skipped}" if r.skipped else ""))
            for problem in r.problems:
                print(f"        {problem}")
        ran = [r for r in results if not r.skipped]
        print(f"{len(ran) - len(failed)}/{len(ran)} passed, {len(results) - len(ran)} skipped")
    return 1 if failed else 0
