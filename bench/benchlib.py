"""What every bench here shares: markdown tables that also read in a terminal, and the
lines that say on what machine and with which versions a result was measured."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """A markdown table, padded so it also reads in a terminal. ``align``: 'l'/'r' per column."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else (":" + "-" * (w + 1)) for w, a in zip(widths, align)) + "|"
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def debian_version(package: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                              text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def python_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def machine_lines(command: str, python_packages: Sequence[str] = (), debian_packages: Sequence[str] = ()) -> list[str]:
    """Date, machine, versions and the command that reproduces a result."""
    versions = [f"{name} {python_version(name) or 'not installed'}" for name in python_packages]
    versions += [f"{name} {debian_version(name) or 'not installed'}" for name in debian_packages]
    return [
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='minutes')}",
        f"- Machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}; {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {', '.join(versions)}",
        f"- Command: {command}",
    ]
