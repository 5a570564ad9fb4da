"""The report as one self-contained HTML page: tables, the checks, the pictures inline (SVG)."""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
     padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1e7b34;font-weight:bold}.fail{color:#b3261e;font-weight:bold}.muted{color:#777}
.yes{background:#e3f4e0}.no{background:#fbe1df}.na{color:#999}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.5em 1em;margin:.5em 0}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
figure{margin:1em 0;overflow-x:auto}figure svg{max-width:100%;height:auto}
details summary{cursor:pointer}
"""


def _yes(value: Any, yes: str = "yes", no: str = "no") -> str:
    if value is None:
        return '<td class="na">—</td>'
    return f'<td class="{"yes" if value else "no"}">{yes if value else no}</td>'


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    if value is None:
        return '<td class="na">—</td>'
    return f'<td class="num">{escape(fmt.format(value))}</td>'


def _table(head: list[str], rows: list[str]) -> str:
    return ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def render_html(report: dict[str, Any], figures: dict[str, str]) -> str:
    out: list[str] = []
    add = out.append
    passed = report["passed"]
    add(f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Accessibility report — "
        f"{escape(report['menu'])}</title><style>{STYLE}</style></head><body>")
    add("<h1>Accessibility report: voice only and keys only</h1>")
    add(f"<p>Menu <code>{escape(report['menu'])}</code>, languages {escape(', '.join(report['languages']))}, "
        f"generated {escape(report['generated_at'])}. Result: "
        f"<span class=\"{'pass' if passed else 'fail'}\">{'every check passes' if passed else 'some checks fail'}"
        "</span>.</p>")
    for run in report["runs"]:
        if run["mode"] == "voice" and run["medium"] == "text":
            add(f"<div class=\"note\"><strong>{escape(run['language'])}, voice only:</strong> {escape(run['note'])}</div>")

    add("<h2>Checks</h2>")
    rows = []
    for check in report["checks"]:
        status = ("<span class=\"muted\">off</span>" if not check["applies"] else
                  "<span class=\"pass\">pass</span>" if check["passed"] else "<span class=\"fail\">FAIL</span>")
        problems = "<br>".join(escape(p) for p in check["problems"][:30])
        if len(check["problems"]) > 30:
            problems += f"<br>… and {len(check['problems']) - 30} more"
        rows.append(f"<tr><td>{status}</td><td><code>{escape(check['name'])}</code></td>"
                    f"<td>{escape(check['description'])}</td><td><code>{escape(str(check['threshold']))}</code></td>"
                    f"<td>{problems}</td></tr>")
    add(_table(["", "check", "what", "threshold", "problems"], rows))

    add("<h2>How the menu was explored</h2>")
    rows = [f"<tr><td>{escape(r['language'])}</td><td>{escape(r['mode'])}</td><td>{escape(r['medium'])}</td>"
            f"<td class=\"num\">{r['calls_planned']}</td><td class=\"num\">{r['calls_on_audio']}</td>"
            f"<td>{escape(r['note'])}</td></tr>" for r in report["runs"]]
    add(_table(["language", "mode", "coverage from", "calls planned", "calls on audio", "how"], rows))

    add("<h2>The menu tree</h2>")
    if "menu_graph" in figures:
        add("<p>Green: reached and completed in every language and mode; yellow: reached, but no call ended there in "
            "some; red: not reached in some language or mode (a red edge: an option that could not be chosen). "
            "Each node shows K (keys only) and V (voice only) per language.</p>")
        add(f"<figure>{figures['menu_graph']}</figure>")
    else:
        add(f"<p class=\"fail\">The graph was not drawn: {escape(str(report['figures'].get('menu_graph_problem')))}</p>")

    add("<h2>Coverage: node × mode × language</h2>")
    languages, modes = report["languages"], report["modes"]
    columns = [(lang, mode) for lang in languages for mode in modes]
    head = ["node", "type"] + [f"{lang} {mode}" for lang, mode in columns]
    index = {(r["node"], r["language"], r["mode"]): r for r in report["coverage"]}
    rows = []
    for node in report["nodes"]:
        cells = []
        for lang, mode in columns:
            row = index.get((node["node"], lang, mode))
            if row is None:
                cells.append('<td class="na">—</td>')
                continue
            if not row["reached"]:
                cells.append('<td class="no">not reached</td>')
                continue
            done = (f"completed in {row['completed_in']:.0f} s" if row["completed"] else "not completed")
            title = escape("; ".join(row["steps"]) + f" ({row['caller']})")
            cls = "yes" if row["completed"] else "no"
            cells.append(f'<td class="{cls}" title="{title}">reached at {row["reached_at"]:.0f} s<br>{done}</td>')
        rows.append(f"<tr><td><code>{escape(node['node'])}</code></td><td>{escape(node['type'])}</td>"
                    + "".join(cells) + "</tr>")
    add("<p>Reached: the first time a call got there (seconds from the start of the call, the fastest way found). "
        "Completed: the quickest call through the node that ended (at an end or a transfer). Hover a cell for the "
        "caller's steps.</p>")
    add(_table(head, rows))

    add("<h3>Options of each menu</h3>")
    opt_index = {(r["node"], r["key"], r["language"], r["mode"]): r for r in report["options"]}
    rows = []
    seen: list[tuple[str, str]] = []
    for r in report["options"]:
        if (r["node"], r["key"]) not in seen:
            seen.append((r["node"], r["key"]))
    for node, key in seen:
        cells = []
        for lang, mode in columns:
            row = opt_index.get((node, key, lang, mode))
            if row is None or not row["applies"]:
                cells.append('<td class="na">—</td>')
            else:
                cells.append(_yes(row["chosen"], escape(row["how"] or "yes"), "cannot be chosen"))
        rows.append(f"<tr><td><code>{escape(node)}</code></td><td>{escape(key)}</td>" + "".join(cells) + "</tr>")
    add(_table(["menu", "key"] + [f"{lang} {mode}" for lang, mode in columns], rows))

    add("<h2>Prompts</h2>")
    add("<p>Duration from the rendered audio (8 kHz, pauses included); words per minute over that duration. Both "
        "modes announced: the text names, for every option, its key and words to say (see the rule in "
        "<code>voicebot/a11y/prompts.py</code>).</p>")
    rows = []
    for p in report["prompts"]:
        rows.append(f"<tr><td><code>{escape(p['id'])}</code></td><td>{escape(p['language'])}</td>"
                    + _num(p["seconds"]) + _num(p["words"], "{}") + _num(p["wpm"], "{:.0f}")
                    + _num(p["options"], "{}") + _yes(p["both_modes_announced"])
                    + _yes(p["barge_in"]) + f"<td>{escape(p['text'])}"
                    + (f"<br><span class=\"fail\">{escape('; '.join(p['missing']))}</span>" if p["missing"] else "")
                    + "</td></tr>")
    add(_table(["prompt", "lang", "seconds", "words", "wpm", "options", "both modes", "barge-in", "text"], rows))

    add("<h2>Timeouts in force at each step</h2>")
    configured = report["timeouts_configured"]
    add("<p>Seen at each menu and entry (the engine's timers): the wait for a first input, the wait after one "
        "no-input at the same step, and between two keys. Configured: "
        + escape(", ".join(f"{k} {v}" for k, v in configured.items())) + ".</p>")
    rows = [f"<tr><td><code>{escape(r['node'])}</code></td><td>{escape(r['type'])}</td><td>{escape(r['language'])}"
            f"</td>" + _num(r["first_input"], "{:g}") + _num(r["after_no_input"], "{:g}")
            + _num(r["inter_digit"], "{:g}") + "</tr>" for r in report["timeouts"]]
    add(_table(["step", "type", "lang", "first input (s)", "after a no-input (s)", "between keys (s)"], rows))

    add("<h2>Longest path to each outcome</h2>")
    add("<p>For each place a call ends, the longest call found there that visits no node twice (where every call "
        "there repeats a step, the one with the fewest repeats), with a caller who listens to every prompt to "
        "its end.</p>")
    rows = [f"<tr><td>{escape(r['language'])}</td><td>{escape(r['mode'])}</td><td><code>{escape(r['terminal'])}"
            f"</code></td><td>{escape(str(r['outcome']))}</td>" + _num(r["seconds"]) + _num(r["prompts"], "{}")
            + f"<td>{escape(r['caller'] or '')}</td><td>{escape('; '.join(r['steps']))}</td></tr>"
            for r in report["longest_paths"]]
    add(_table(["lang", "mode", "ends at", "outcome", "seconds", "prompts heard", "caller", "steps"], rows))
    rows = [f"<tr><td>{escape(r['language'])}</td><td>{escape(r['mode'])}</td><td>{escape(r['outcome'])}</td>"
            + _num(r["seconds"]) + _num(r["prompts"], "{}") + f"<td><code>{escape(r['terminal'])}</code></td></tr>"
            for r in report["outcomes"]]
    add("<h3>Per outcome</h3>")
    add(_table(["lang", "mode", "outcome", "longest (s)", "prompts heard", "at"], rows))
    for key, svg in sorted(figures.items()):
        if key.startswith("timeline-"):
            add(f"<figure>{svg}</figure>")

    add("<h2>Commands at the first menu</h2>")
    rows = [f"<tr><td>{escape(r['command'])}</td><td>{escape(r['language'])}</td><td>{escape(r['mode'])}</td>"
            f"<td>{escape(r['input'] or '—')}</td>" + _yes(r["works"]) + f"<td>{escape(r['effect'])}</td></tr>"
            for r in report["commands"]]
    add(_table(["command", "lang", "mode", "input", "works", "effect"], rows))

    add("<h2>Failures</h2>")
    if not report["failures"]:
        add("<p class=\"pass\">None: every node, option and outcome was reached in every language and mode.</p>")
    for failure in report["failures"]:
        add(f"<details><summary><span class=\"fail\">{escape(failure['kind'])}</span> "
            f"({escape(failure['language'])}, {escape(failure['mode'])}): {escape(failure['message'])}</summary>"
            f"<pre>{escape(chr(10).join(failure['transcript']))}</pre></details>")
    add("</body></html>")
    return "\n".join(out)
