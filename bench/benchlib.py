"""What every bench here shares: markdown tables that also read in a terminal, and the
lines that say on what machine and with which versions a result was measured."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time
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


def busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class OthersCpu:
    """How much of the machine other processes take from now on (they share our cores)."""

    def __init__(self) -> None:
        self._busy, self._own, self._wall = busy_seconds(), time.process_time(), time.perf_counter()

    def share(self) -> float:
        wall = time.perf_counter() - self._wall
        others = (busy_seconds() - self._busy) - (time.process_time() - self._own)
        return max(0.0, others) / wall / (os.cpu_count() or 1)
