"""`voicebot a11y report`: the accessibility report from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config import Config

DEFAULT_OUT = Path("var/a11y")


def add_a11y_commands(sub: Any) -> None:
    a11y = sub.add_parser("a11y", help="accessibility: prove every path works by voice only and by keys only")
    a11y_sub = a11y.add_subparsers(title="a11y commands", metavar="COMMAND")
    report = a11y_sub.add_parser(
        "report", help="explore the menu by keys only and by voice only, measure the prompts, check the thresholds; "
                       "write report.html and report.json (exit 1 if a check fails)")
    report.add_argument("--lang", action="append", metavar="LANG",
                        help="a language to explore (repeatable; default: every language of the configuration)")
    report.add_argument("--out", default=str(DEFAULT_OUT), metavar="DIR",
                        help=f"where to write the report (default: {DEFAULT_OUT})")
    report.add_argument("--checks", metavar="FILE",
                        help="the thresholds (default: voicebot/data/a11y_checks.yaml, which documents each)")
    report.add_argument("--quiet", action="store_true", help="print only the failing checks")
    report.set_defaults(handler=cmd_a11y_report)
    a11y.set_defaults(handler=lambda _args, _config, parser=a11y: (parser.print_help(), 2)[1])


def cmd_a11y_report(args: argparse.Namespace, config: Config) -> int:
    from .checks import load_checks
    from .report import build_report, write_report

    checks = load_checks(args.checks)  # a wrong thresholds file stops here, with its line
    languages = list(dict.fromkeys(args.lang)) if args.lang else list(config.languages)
    unknown = [lang for lang in languages if lang not in config.languages]
    if unknown:
        print(f"error: --lang {unknown[0]}: not a language of the configuration ({', '.join(config.languages)})",
              file=sys.stderr)
        return 2

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"  … {text}", file=sys.stderr, flush=True)

    report = build_report(config, checks, languages, progress)
    written = write_report(report, Path(args.out))
    if not args.quiet:
        _summary(report)
        print(f"report: {written['html']} (and {written['json'].name}"
              + (f", {written['menu graph'].name}" if "menu graph" in written else "") + ")")
    failed = [check for check in report["checks"] if not check["passed"]]
    for check in failed:
        print(f"FAIL {check['name']}: {check['description']}", file=sys.stderr)
        for problem in check["problems"][:20]:
            print(f"  - {problem}", file=sys.stderr)
        if len(check["problems"]) > 20:
            print(f"  ... and {len(check['problems']) - 20} more", file=sys.stderr)
    if not failed and not args.quiet:
        print(f"all {len(report['checks'])} checks pass")
    return 1 if failed else 0


def _summary(report: dict[str, Any]) -> None:
    for run in report["runs"]:
        rows = [r for r in report["coverage"] if r["language"] == run["language"] and r["mode"] == run["mode"]]
        reached = sum(r["reached"] for r in rows)
        terminals = [r for r in rows if r["terminal"]]
        completed = sum(r["completed"] for r in terminals)
        print(f"{run['language']} {run['mode']:5} ({run['medium']}, {run['calls_planned']} calls planned, "
              f"{run['calls_on_audio']} on audio): {reached}/{len(rows)} nodes reached, "
              f"{completed}/{len(terminals)} ends completed")
        if run["mode"] == "voice" and run["medium"] == "text":
            print(f"  note: {run['note']}")
    for row in report["outcomes"]:
        print(f"  longest to {row['outcome']:<20} {row['language']} {row['mode']:5} {row['seconds']:6.1f} s, "
              f"{row['prompts']} prompts ({row['terminal']})")
