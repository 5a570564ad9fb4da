"""DTMF: this project's numpy detector beside spandsp's ``dtmf_rx`` and ``multimon-ng``.

Run by ``make bench`` (all benches) or ``.venv/bin/python bench/run.py dtmf``. Prints its
tables and writes them to ``bench/results/dtmf.md``.

1. Detection on the Q.24 battery (``voicebot.dtmf.battery``, fixed seed): per family, accept
   cases whose keys came out exactly, and reject cases that wrongly reported a key.
2. Talk-off: false keys on the espeak-ng speech corpus (``voicebot.dtmf.talkoff``; 20
   minutes, or ``DTMF_BENCH_TALKOFF_MINUTES``).
3. Throughput as × real time on one core (BLAS held to one thread), medians of repeated
   runs, on a 10-minute call-like signal (speech, silence, line noise at −60 dBm0, a burst
   of 6 keys every 15 s) and on a keys-only worst case (keys back to back, 50 ms on, 50 ms
   off, for the whole file); peak memory.

spandsp and multimon-ng are skipped, with a clear line, when they are not installed.
"""

from __future__ import annotations

import os

# One core: OpenBLAS reads these when numpy loads it (and numpy may not be loaded yet when
# `bench/run.py dtmf` imports this module). `_one_blas_thread` covers the other case.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import ctypes
import gc
import itertools
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import dtmf_references as refs
import numpy as np
from benchlib import machine_lines, table

from voicebot.dtmf import DtmfDetector, MultiStreamDtmfDetector, detect, generator
from voicebot.dtmf.battery import FAMILIES, Case, battery
from voicebot.dtmf.talkoff import Utterance, corpus, espeak_available

T = TypeVar("T")
RATE = 8000
FRAME = 160  # 20 ms
SEED = 24  # the battery's
TALKOFF_SEED = 7
CALL_SECONDS = 600.0
BURST_EVERY = 15.0
BURST_KEYS = 6
NOISE_DBM0 = -60.0
CALL_SPEECH_MINUTES = 8.0
RESULTS = Path(__file__).resolve().parent / "results" / "dtmf.md"
COMMAND = "`make bench` (every bench) or `.venv/bin/python bench/run.py dtmf` (this one)"

# The figures (issue 3), × real time on one core.
TARGET_ONE_STREAM = 2_000
TARGET_100_STREAMS = 5_000
TARGET_BATCH = 20_000
ANCHOR_SPANDSP_FRAMES = 5_100
ANCHOR_SPANDSP_CHUNKS = (21_000, 23_000)

RECEIVERS = ("voicebot", "spandsp", "multimon-ng")


# ======================================================================== helpers


def _one_blas_thread() -> str:
    """Hold numpy's BLAS to one thread; say how."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(1)
        found = ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info())
        return f"threadpoolctl: {found or 'no BLAS found'} thread(s)"
    except ImportError:
        pass
    # numpy's bundled OpenBLAS, found among the loaded libraries.
    paths = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "openblas" in Path(path).name.lower() and ".so" in path and path not in paths:
                paths.append(path)
    for path in paths:
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"),
                               ("openblas_", "")):
            setter = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes = [ctypes.c_int]
                setter(1)
                return f"OpenBLAS ({Path(path).name}): {getter()} thread (OPENBLAS_NUM_THREADS=1 and set_num_threads(1))"
    return f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')} (no OpenBLAS library found loaded to check)"


def _median_time(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Median wall time of ``repeat`` runs of ``fn`` (after none: the first run counts), and its result."""
    times = []
    result: T | None = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(times), result


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident high-water mark (Linux ≥ 4.0), so getrusage shows this run's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as refs_file:
            refs_file.write("5")
        return True
    except OSError:
        return False


@dataclass
class Memory:
    traced_peak: float | None  # MB, tracemalloc (Python and numpy allocations)
    rss_growth: float  # MB, peak resident set above the resident set before the run
    rss_exact: bool  # False: the high-water mark could not be reset, so this is a lower bound


def _release_free_heap() -> None:
    """Give freed heap back to the system, so a run's peak resident growth is its own."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _memory(fn: Callable[[], object], traced: bool = True) -> Memory:
    _release_free_heap()
    exact = _reset_peak_rss()
    before = _rss_kb()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    growth = (peak - (before if exact else base)) / 1024
    traced_peak = None
    if traced:
        tracemalloc.start()
        fn()
        traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return Memory(traced_peak, max(growth, 0.0), exact)




def _x(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}×"


def _pct(ok: int, total: int) -> str:
    return f"{ok}/{total} ({100 * ok / total:.0f} %)" if total else "—"


# ======================================================================== receivers


def voicebot_keys(samples: np.ndarray) -> str:
    """Our detector as a call would run it: 20 ms frames, then the end of the stream."""
    detector = DtmfDetector(RATE)
    keys = []
    for start in range(0, len(samples), FRAME):
        keys += detector.feed(samples[start:start + FRAME])
    keys += detector.flush()
    return "".join(tone.key for tone in keys)


def _receivers(missing: dict[str, str | None]) -> dict[str, Callable[[np.ndarray], str]]:
    available: dict[str, Callable[[np.ndarray], str]] = {"voicebot": voicebot_keys}
    if missing["spandsp"] is None:
        available["spandsp"] = refs.spandsp_keys
    if missing["multimon-ng"] is None:
        available["multimon-ng"] = refs.multimon_keys
    return available


# ======================================================================== detection


@dataclass
class Outcome:
    case: Case
    got: dict[str, str] = field(default_factory=dict)

    def ok(self, receiver: str) -> bool:
        return self.got[receiver] == self.case.expect


def run_battery(receivers: dict[str, Callable[[np.ndarray], str]]) -> list[Outcome]:
    outcomes = []
    for case in battery(SEED):
        outcome = Outcome(case)
        for name, keys in receivers.items():
            outcome.got[name] = keys(case.samples)
        outcomes.append(outcome)
    return outcomes


def detection_tables(outcomes: list[Outcome], names: Sequence[str]) -> tuple[str, str, str]:
    headers = ["family"]
    for name in names:
        headers += [f"{name} accept", f"{name} false keys"]
    rows: list[list[object]] = []
    for family in FAMILIES:
        cases = [o for o in outcomes if o.case.family == family]
        accept = [o for o in cases if o.case.accept]
        reject = [o for o in cases if not o.case.accept]
        row: list[object] = [f"{family} ({len(cases)})"]
        for name in names:
            row.append(_pct(sum(o.ok(name) for o in accept), len(accept)))
            row.append(f"{sum(not o.ok(name) for o in reject)}/{len(reject)}" if reject else "—")
        rows.append(row)
    accept = [o for o in outcomes if o.case.accept]
    reject = [o for o in outcomes if not o.case.accept]
    total: list[object] = [f"**all** ({len(outcomes)})"]
    for name in names:
        total.append(_pct(sum(o.ok(name) for o in accept), len(accept)))
        total.append(f"{sum(not o.ok(name) for o in reject)}/{len(reject)}")
    rows.append(total)
    overall: list[object] = ["**cases passed**"]
    for name in names:
        overall += [_pct(sum(o.ok(name) for o in outcomes), len(outcomes)), ""]
    rows.append(overall)
    main = table(headers, rows)

    # The figures MEASURED.md quotes for spandsp, and a few more, side by side.
    spots: list[tuple[str, Callable[[Case], bool]]] = [
        ("both tones +1.5 % +2 Hz", lambda c: c.family == "offset" and "+1.5%+2Hz both" in c.name),
        ("both tones −1.5 % −2 Hz", lambda c: c.family == "offset" and "-1.5%+2Hz both" in c.name),
        ("one tone ±1.5 % ±2 Hz", lambda c: c.family == "offset" and "1.5%+2Hz" in c.name and "both" not in c.name),
        ("±3.5 % rejected (any tone)", lambda c: c.family == "offset" and "3.5%" in c.name),
        ("twist −8 dB (high weaker)", lambda c: c.family == "twist" and "-8 dB" in c.name),
        ("twist +4 dB (high stronger)", lambda c: c.family == "twist" and "+4 dB" in c.name),
        ("40 ms accepted", lambda c: c.family == "duration" and c.accept),
        ("23 ms rejected", lambda c: c.family == "duration" and not c.accept),
        ("−25 dBm0 per tone", lambda c: c.family == "level" and "-25 dBm0" in c.name),
        ("same key twice, 40 ms pause", lambda c: c.family == "pause" and "twice" in c.name),
        ("10 ms drop-out bridged", lambda c: c.family == "pause" and "drop-out" in c.name),
        ("corners, clean", lambda c: c.family == "corner" and "SNR" not in c.name),
        ("corners + SNR 15 dB", lambda c: c.family == "corner" and "SNR" in c.name),
    ]
    spot_rows = []
    for label, pick in spots:
        chosen = [o for o in outcomes if pick(o.case)]
        spot_rows.append([f"{label} ({len(chosen)})"] + [_pct(sum(o.ok(n) for o in chosen), len(chosen)) for n in names])
    spot = table(["cases passed exactly"] + list(names), spot_rows)

    lines = []
    for name in names:
        failed = [o for o in outcomes if not o.ok(name)]
        if not failed:
            lines.append(f"- {name}: no failure.")
            continue
        shown = failed if name == "voicebot" else failed[:6]
        detail = "; ".join(f"{o.case.family} `{o.case.name}` → `{o.got[name] or '∅'}`" for o in shown)
        more = f" … and {len(failed) - len(shown)} more" if len(failed) > len(shown) else ""
        lines.append(f"- {name}: {len(failed)} failed, e.g. {detail}{more}")
    return main, spot, "\n".join(lines)


# ======================================================================== talk-off


def run_talkoff(utterances: list[Utterance], receivers: dict[str, Callable[[np.ndarray], str]]) -> tuple[str, str]:
    rows_found: dict[str, list[tuple[Utterance, str]]] = {name: [] for name in receivers}
    for utterance in utterances:
        for name, keys in receivers.items():
            got = keys(utterance.samples)
            if got:
                rows_found[name].append((utterance, got))
    seconds = sum(u.seconds for u in utterances)
    vowels = [u for u in utterances if u.text.startswith("[[")]
    headers = ["receiver", "false keys", "utterances with a false key", "of them sustained vowels"]
    rows = []
    for name, found in rows_found.items():
        rows.append([name, sum(len(k) for _, k in found), f"{len(found)}/{len(utterances)}",
                     f"{sum(u.text.startswith('[[') for u, _ in found)}/{len(vowels)}"])
    talk_table = table(headers, rows)
    notes = [(f"Corpus: {len(utterances)} utterances, {seconds / 60:.1f} min of espeak-ng speech at 8 kHz "
             f"(seed {TALKOFF_SEED}), {len(vowels)} of them sustained vowels.")]
    for name, found in rows_found.items():
        for utterance, heard in found[:5]:
            text = utterance.text if len(utterance.text) < 60 else utterance.text[:57] + "…"
            notes.append(f"- {name} heard `{heard}` in {utterance.voice} rate {utterance.rate} pitch {utterance.pitch}: "
                         f"“{text}”")
        if len(found) > 5:
            notes.append(f"- {name}: … and {len(found) - 5} more utterances")
    return talk_table, "\n".join(notes)


# ======================================================================== throughput


def call_like(utterances: Sequence[Utterance], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """10 minutes of a call: speech and silence, a burst of 6 keys every 15 s, line noise at −60 dBm0."""
    n = int(CALL_SECONDS * RATE)
    signal = np.zeros(n)
    keys = []
    speech = itertools.cycle(utterances)
    t = 0.0
    while t + BURST_EVERY <= CALL_SECONDS:
        burst_keys = "".join(rng.choice(list("0123456789*#ABCD"), BURST_KEYS))
        burst, _ = generator.sequence(burst_keys, on=float(rng.uniform(0.06, 0.1)), off=float(rng.uniform(0.06, 0.1)),
                                      lead=0.0, tail=0.0, rng=rng, level_dbm0=float(rng.uniform(-20, -5)))
        start = int((t + rng.uniform(0.5, 2.0)) * RATE)
        signal[start:start + len(burst)] = burst
        keys.append(burst_keys)
        # Speech and pauses fill the rest of the 15 s.
        position = start + len(burst) + int(rng.uniform(0.5, 1.5) * RATE)
        end = int((t + BURST_EVERY) * RATE) - int(0.5 * RATE)
        while True:
            words = next(speech).samples
            if position + len(words) > end:
                break
            signal[position:position + len(words)] = words
            position += len(words) + int(rng.uniform(0.3, 2.0) * RATE)
        t += BURST_EVERY
    signal += generator.white_noise(CALL_SECONDS, NOISE_DBM0, RATE, rng)
    return signal, "".join(keys)


def keys_only(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The worst case: keys back to back for 10 minutes (50 ms on, 50 ms off, −10 dBm0), line noise."""
    count = int(CALL_SECONDS / 0.1)
    keys = "".join("123A456B789C*0#D"[i % 16] for i in range(count))
    signal, _ = generator.sequence(keys, on=0.05, off=0.05, lead=0.025, tail=0.025, rng=rng, level_dbm0=-10.0)
    signal = signal[:int(CALL_SECONDS * RATE)]
    signal += generator.white_noise(len(signal) / RATE, NOISE_DBM0, RATE, rng)
    return signal, keys


def stream_frames(samples: np.ndarray) -> list[str]:
    detector = DtmfDetector(RATE)
    found = []
    for start in range(0, len(samples), FRAME):
        found += detector.feed(samples[start:start + FRAME])
    found += detector.flush()
    return [t.key for t in found]


def multi_frames(block: np.ndarray) -> int:
    detector = MultiStreamDtmfDetector(block.shape[0], RATE)
    found = 0
    for start in range(0, block.shape[1], FRAME):
        found += sum(len(tones) for tones in detector.feed(block[:, start:start + FRAME]))
    found += sum(len(tones) for tones in detector.flush())
    return found


@dataclass
class Row:
    workload: str
    signal: str
    audio_seconds: float
    wall: float
    keys: str  # what was found, against what was sent
    memory: Memory | None = None

    @property
    def speed(self) -> float:
        return self.audio_seconds / self.wall


MULTI_SECONDS = {1: 600.0, 10: 60.0, 100: 30.0}  # audio per stream: enough to time, little enough to hold


def throughput(name: str, signal: np.ndarray, expect: str, missing: dict[str, str | None],
               rng: np.random.Generator, repeat: int) -> list[Row]:
    seconds = len(signal) / RATE
    rows: list[Row] = []
    n_expect = len(expect)

    def found(keys: Sequence[str] | str) -> str:
        exact = "".join(keys) == expect
        return f"{len(keys)}/{n_expect}" + ("" if exact else " (differs)")

    wall, stream_keys = _median_time(lambda: stream_frames(signal), repeat)
    rows.append(Row("voicebot, 1 stream, 20 ms frames", name, seconds, wall, found(stream_keys),
                    _memory(lambda: stream_frames(signal))))
    wall, tones = _median_time(lambda: detect(signal, RATE), repeat)
    rows.append(Row("voicebot, batch (whole file)", name, seconds, wall, found([t.key for t in tones]),
                    _memory(lambda: detect(signal, RATE))))
    for streams, per_stream in MULTI_SECONDS.items():
        length = int(per_stream * RATE)
        # Each stream is its own stretch of the file, so the streams' keys do not line up.
        starts = rng.integers(0, len(signal) - length + 1, streams)
        block = np.stack([signal[s:s + length] for s in starts])
        run_multi = partial(multi_frames, block)
        wall, count = _median_time(run_multi, max(3, repeat - 2) if streams == 100 else repeat)
        label = f"{streams} stream{'s together' if streams > 1 else ''}"
        rows.append(Row(f"voicebot multi-stream, {label}, 20 ms frames ({per_stream:.0f} s each)", name,
                        streams * per_stream, wall, f"{count} keys", _memory(run_multi)))
        del run_multi, block
    if missing["spandsp"] is None:
        pcm = refs.to_int16(signal)
        for label, chunk, binding in (("160-sample frames", FRAME, "address"),
                                      ("160-sample frames, per-frame data_as()", FRAME, "data_as"),
                                      ("large chunks (1 s)", RATE, "address")):
            run = partial(refs.spandsp_keys, pcm, chunk, binding)
            wall, keys = _median_time(run, repeat)
            rows.append(Row(f"spandsp dtmf_rx (ctypes), {label}", name, seconds, wall, found(keys),
                            _memory(run, traced=False)))
    else:
        rows.append(Row("spandsp dtmf_rx: not available (see Skipped)", name, seconds, float("nan"), "—"))
    if missing["multimon-ng"] is None:
        raw = refs.multimon_input(signal)
        wall, keys = _median_time(partial(refs.multimon_run, raw), max(3, repeat - 2))
        rows.append(Row("multimon-ng, whole file through a pipe (22,050 Hz, process start included)", name, seconds,
                        wall, found(keys)))
    else:
        rows.append(Row("multimon-ng: not available (see Skipped)", name, seconds, float("nan"), "—"))
    return rows


def throughputtable(rows: list[Row]) -> str:
    headers = ["receiver and feeding", "signal", "audio", "× real time", "keys found", "peak traced", "peak RSS growth"]
    out = []
    for r in rows:
        mem = r.memory
        out.append([r.workload, r.signal, f"{r.audio_seconds:,.0f} s", _x(r.speed) if r.wall == r.wall else "skipped",
                    r.keys,
                    f"{mem.traced_peak:.1f} MB" if mem and mem.traced_peak is not None else "—",
                    (f"{mem.rss_growth:.1f} MB" + ("" if mem.rss_exact else " (≥)")) if mem else "—"])
    return table(headers, out, "llrrrrr")


def targetstable(rows: list[Row]) -> str:
    def speed(workload_start: str, signal: str) -> float | None:
        for r in rows:
            if r.workload.startswith(workload_start) and r.signal == signal and r.wall == r.wall:
                return r.speed
        return None

    def mark(value: float | None, target: float) -> str:
        if value is None:
            return "not measured"
        return "met" if value >= target else "**not met**"

    def anchor(value: float | None, low: float, high: float) -> str:
        if value is None:
            return "skipped"
        if low <= value <= high:
            return "as anchored"
        return f"{100 * value / (low if value < low else high):.0f} % of the anchor's {'low' if value < low else 'high'} end"

    out = []
    for signal in ("call-like", "keys only"):
        one = speed("voicebot, 1 stream", signal)
        batch = speed("voicebot, batch", signal)
        hundred = speed("voicebot multi-stream, 100 streams", signal)
        out += [
            ["voicebot, one stream, 20 ms frames", signal, _x(one), f"≥ {TARGET_ONE_STREAM:,}×", mark(one, TARGET_ONE_STREAM)],
            ["voicebot, 100 streams together (aggregate)", signal, _x(hundred), f"≥ {TARGET_100_STREAMS:,}×",
             mark(hundred, TARGET_100_STREAMS)],
            ["voicebot, batch over a 10-minute file", signal, _x(batch), f"≥ {TARGET_BATCH:,}×", mark(batch, TARGET_BATCH)],
        ]
    for signal in ("call-like", "keys only"):
        frames = speed("spandsp dtmf_rx (ctypes), 160-sample frames", signal)
        naive = speed("spandsp dtmf_rx (ctypes), 160-sample frames, per-frame", signal)
        chunks = speed("spandsp dtmf_rx (ctypes), large", signal)
        out += [
            ["spandsp, 160-sample frames, buffer address (anchor)", signal, _x(frames), f"≈ {ANCHOR_SPANDSP_FRAMES:,}×",
             anchor(frames, ANCHOR_SPANDSP_FRAMES * 0.9, ANCHOR_SPANDSP_FRAMES * 1.1)],
            ["spandsp, 160-sample frames, per-frame data_as() (anchor)", signal, _x(naive),
             f"≈ {ANCHOR_SPANDSP_FRAMES:,}×", anchor(naive, ANCHOR_SPANDSP_FRAMES * 0.9, ANCHOR_SPANDSP_FRAMES * 1.1)],
            ["spandsp, large chunks (anchor)", signal, _x(chunks),
             f"≈ {ANCHOR_SPANDSP_CHUNKS[0]:,}–{ANCHOR_SPANDSP_CHUNKS[1]:,}×", anchor(chunks, *ANCHOR_SPANDSP_CHUNKS)],
        ]
    return table(["figure", "signal", "measured", "issue's target / anchor", "status"], out, "lllrl")


# ======================================================================== main




def main() -> None:
    started = time.perf_counter()
    blas = _one_blas_thread()
    missing = {"spandsp": refs.spandsp_missing(), "multimon-ng": refs.multimon_missing()}
    for reason in missing.values():
        if reason:
            print(f"DTMF bench: {reason}")
    receivers = _receivers(missing)
    names = list(receivers)
    machine = machine_lines(COMMAND, ['numpy'], ['libspandsp2', 'multimon-ng', 'espeak-ng'])
    others = ", ".join(n for n in RECEIVERS[1:] if n in receivers) or "no reference receiver (both skipped)"
    print(f"\nDTMF: voicebot vs {others}\n" + "\n".join(machine))
    print(f"- BLAS: {blas}")

    outcomes = run_battery(receivers)
    main_table, spot_table, failures = detection_tables(outcomes, names)
    print(f"\nQ.24 battery (seed {SEED}): accept cases whose keys came out exactly; false keys on reject cases")
    print(main_table)
    print("\nSpotlight (spandsp's figures in MEASURED.md: both tones ±1.5 % 84 %, −8 dB twist 41 %, corners 14 %)")
    print(spot_table)
    print(failures)

    minutes = float(os.environ.get("DTMF_BENCH_TALKOFF_MINUTES", "20"))
    if espeak_available():
        utterances = list(corpus(minutes, TALKOFF_SEED))
        talk_table, talk_notes = run_talkoff(utterances, receivers)
    else:
        utterances = []
        talk_table, talk_notes = "espeak-ng is not installed: no talk-off corpus.", ""
    print(f"\nTalk-off: false keys on {minutes:g} minutes of speech")
    print(talk_table)
    print(talk_notes)

    rng = np.random.default_rng(SEED)
    # The call-like file takes its speech from the same corpus (the same utterances whatever
    # the talk-off length: the corpus is deterministic), and needs about 8 minutes of it.
    if espeak_available() and minutes < CALL_SPEECH_MINUTES:
        utterances = list(corpus(CALL_SPEECH_MINUTES, TALKOFF_SEED))
    if not utterances:
        print("DTMF bench: espeak-ng missing, the call-like signal has no speech")
        utterances = [Utterance("none", "none", 0, 0, "silence", np.zeros(RATE))]
    call, call_keys = call_like(utterances, rng)
    worst, worst_keys = keys_only(rng)
    rows = throughput("call-like", call, call_keys, missing, rng, repeat=5)
    rows += throughput("keys only", worst, worst_keys, missing, rng, repeat=3)
    through = throughputtable(rows)
    targets = targetstable(rows)
    print("\nThroughput on one core (median of 3–5 runs), × real time = audio seconds / wall seconds")
    print(through)
    print("\nAgainst the issue's targets")
    print(targets)
    elapsed = time.perf_counter() - started
    print(f"\n(DTMF bench took {elapsed:.0f} s; results in {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS})")

    skipped = [reason for reason in missing.values() if reason]
    text = [
        "# DTMF detection: voicebot vs spandsp `dtmf_rx` vs multimon-ng",
        "",
        "Generated by `bench/dtmf.py`; do not edit by hand.",
        "",
        *machine,
        f"- BLAS: {blas}",
        f"- Bench wall time: {elapsed:.0f} s",
        *(f"- **Skipped**: {reason}" for reason in skipped),
        "",
        ("Receivers: **voicebot** (`voicebot.dtmf.DtmfDetector`, fed 20 ms frames, default settings); "
        "**spandsp** `dtmf_rx` from Debian `libspandsp2` through ctypes, default settings (as "
        "FreeSWITCH/Asterisk-class systems run it), fed int16 in 160-sample frames; **multimon-ng** "
        "`-a DTMF -t raw -`, the 8 kHz signal resampled to 22,050 Hz with soxr. A case passes when the "
        "receiver's key string equals the expected one exactly (an accept case: its key(s); a reject "
        "case: nothing)."),
        "",
        f"## Q.24 battery (`voicebot.dtmf.battery`, seed {SEED})",
        "",
        ("Accept: accept cases whose keys came out exactly / accept cases. False keys: reject cases "
        "for which the receiver reported a key / reject cases."),
        "",
        main_table,
        "",
        "### Spotlight",
        "",
        ("MEASURED.md's figures for spandsp were: both tones at ±1.5 %: 84 %; −8 dB twist: 41 %; "
        "several limits together: 14 %. The battery's offsets are ±(1.5 % + 2 Hz), a little beyond "
        "±1.5 %."),
        "",
        spot_table,
        "",
        "### Failures",
        "",
        failures,
        "",
        f"## Talk-off ({minutes:g} minutes of speech)",
        "",
        "Any key reported on speech is a false key.",
        "",
        talk_table,
        "",
        talk_notes,
        "",
        "## Throughput and memory (one core)",
        "",
        ("× real time = audio seconds / wall seconds, median of 5 runs (3 for the keys-only signal, "
        "the 100-stream rows and multimon-ng). Signals, 10 minutes each at 8 kHz: **call-like** = "
        f"espeak-ng speech and pauses, a burst of {BURST_KEYS} keys every {BURST_EVERY:.0f} s, white "
        f"line noise at {NOISE_DBM0:.0f} dBm0 throughout; **keys only** = keys back to back (50 ms on, "
        "50 ms off, −10 dBm0) for the whole file, the worst case for a detector that skips quiet audio. "
        "voicebot takes float64; spandsp takes int16 (converted before timing); multimon-ng's "
        "resampling to 22,050 Hz is done before timing, its process start is inside. N streams: each "
        "stream is its own stretch of the file, all fed as one (N, 160) array per 20 ms; aggregate = "
        "N × audio seconds / wall seconds. Keys found: keys reported / keys in the signal (“differs” "
        "when the string is not exactly the one sent). Peak traced = tracemalloc's peak (Python and "
        "numpy allocations) during one run; peak RSS growth = the resident high-water mark during one "
        "run (reset through /proc/self/clear_refs, read with getrusage) minus the resident size before "
        "it, after giving freed heap back with malloc_trim; the input signal is allocated before and "
        "not counted. spandsp is timed with two ctypes bindings for 160-sample frames: the buffer's "
        "address plus an offset per call (the thinnest), and a per-frame numpy slice converted with "
        "`.ctypes.data_as(POINTER(c_int16))` (a straightforward binding, about 4 µs more per call); "
        "large chunks use the address."),
        "",
        through,
        "",
        "### Against the issue's targets",
        "",
        targets,
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(text), encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
