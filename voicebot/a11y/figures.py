"""The report's pictures, as SVG text: the menu tree coloured by result, and a timeline per path.

The tree is drawn by Graphviz (the ``graphviz`` Python package writes the DOT source and
runs Debian's ``dot``): the standard layout engine for directed graphs, maintained for
decades, whose ``dot`` layout ranks a menu tree top-down with few crossings, and whose SVG
carries each node's name as its title (tests read them back). The timelines are drawn by
matplotlib with its Agg backend (no display needed): the most used and best maintained
plotting library in Python, whose ``broken_barh`` is exactly a row of timed segments per
path, and whose SVG output needs nothing but the wheel.
"""

from __future__ import annotations

import io
from typing import Any

COLOURS = {
    "ok": "#b8e0b0",  # reached and completed in every language and mode
    "partial": "#f7d58b",  # reached everywhere, but some call could not end there
    "missing": "#f1a7a1",  # not reached in some language or mode
}
SHAPES = {"menu": "box", "digits": "box", "action": "ellipse", "message": "note", "transfer": "house", "end": "doubleoctagon"}


def node_status(report: dict[str, Any], node: str) -> tuple[str, list[str]]:
    rows = [row for row in report["coverage"] if row["node"] == node]
    missing = [f"{row['mode']} {row['language']}" for row in rows if not row["reached"]]
    incomplete = [f"{row['mode']} {row['language']}" for row in rows if row["reached"] and not row["completed"]]
    if missing:
        return "missing", [f"not reached: {', '.join(missing)}"]
    if incomplete:
        return "partial", [f"not completed: {', '.join(incomplete)}"]
    return "ok", []


def _marks(report: dict[str, Any], node: str) -> str:
    parts = []
    for mode in report["modes"]:
        cells = []
        for row in report["coverage"]:
            if row["node"] == node and row["mode"] == mode:
                cells.append(f"{row['language']}{'✓' if row['reached'] else '✗'}")
        parts.append(f"{mode[0].upper()}: {' '.join(cells)}")
    return " · ".join(parts)


def menu_graph_svg(report: dict[str, Any]) -> tuple[str | None, str | None]:
    """(SVG text, None), or (None, why it could not be drawn)."""
    try:
        import graphviz
    except ImportError:
        return None, "the graphviz Python package is not installed (pip install graphviz)"
    graph = graphviz.Digraph("menu", graph_attr={"rankdir": "TB", "fontname": "Helvetica", "fontsize": "10",
                                                  "nodesep": "0.25", "ranksep": "0.45"},
                             node_attr={"fontname": "Helvetica", "fontsize": "10", "style": "filled"},
                             edge_attr={"fontname": "Helvetica", "fontsize": "9", "color": "#666666"})
    blocked = {(row["node"], row["key"]) for row in report["options"] if row["applies"] and not row["chosen"]}
    keys = {(row["node"], row["key"]) for row in report["options"]}
    for entry, target in report["entry_points"].items():
        graph.node(f"entry__{entry}", f"☎ {entry}", shape="plaintext", style="", fillcolor="")
        graph.edge(f"entry__{entry}", target, style="dashed")
    for item in report["nodes"]:
        name = item["node"]
        status, why = node_status(report, name)
        label = f"{name}\n{_marks(report, name)}"
        graph.node(name, label, shape=SHAPES.get(item["type"], "box"), fillcolor=COLOURS[status],
                   tooltip="; ".join(why) or "reached and completed in every language and mode",
                   **({"style": "filled,rounded"} if item["type"] == "digits" else {}))
    for edge in report["edges"]:
        key = (edge["from"], edge["label"].split(" ")[0])
        red = key in keys and key in blocked
        graph.edge(edge["from"], edge["to"], label=edge["label"],
                   **({"color": "#c0392b", "fontcolor": "#c0392b", "penwidth": "2"} if red else {}))
    try:
        svg = graph.pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        return None, "Graphviz's `dot` is not installed (apt-get install graphviz)"
    return _inline(svg), None


def timeline_svg(rows: list[dict[str, Any]], title: str) -> str:
    """One row per path (the longest to each outcome): prompts, the caller's input, silences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"prompt": "#4a78b5", "keys": "#e0892b", "say": "#3a9a5b", "silence": "#bbbbbb"}
    height = 1.2 + 0.38 * len(rows)
    with plt.rc_context({"svg.fonttype": "none", "font.size": 8, "svg.hashsalt": "voicebot-a11y"}):
        fig, ax = plt.subplots(figsize=(10, max(2.0, height)))
        for index, row in enumerate(rows):
            y = len(rows) - 1 - index
            for kind, colour in colours.items():
                bars = [(s["start"], max(0.05, s["end"] - s["start"])) for s in row["timeline"] if s["kind"] == kind]
                if bars:
                    ax.broken_barh(bars, (y - 0.35, 0.7), facecolors=colour, edgecolor="white", linewidth=0.3)
            ax.text(row["seconds"] + 1, y, f"{row['seconds']:.0f} s, {row['prompts']} prompts", va="center",
                    fontsize=7)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r["terminal"] for r in reversed(rows)])
        ax.set_xlabel("seconds from the start of the call")
        longest = max((r["seconds"] for r in rows), default=10.0)
        ax.set_xlim(0, longest * 1.18 + 5)
        ax.set_title(title, fontsize=9, pad=18)
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
        ax.legend(handles, ["prompt", "caller keys", "caller speaks", "silence (no input)"], loc="lower center",
                  bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=7, frameon=False)
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        plt.close(fig)
    return _inline(buffer.getvalue())


def _inline(svg: str) -> str:
    """The <svg> element alone (no XML declaration or doctype), to sit inside an HTML page."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg
