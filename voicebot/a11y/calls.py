"""Calls the explorer places: on text (the engine fed directly) or on audio (a file-mode call).

Both run the real dialog engine, NLU and actions over a scratch copy of the demo bank, and
both keep the same kind of record, :class:`CallRun`: what was heard and done when, in
seconds from the start of the call, and where the call stands once the caller's steps
are spent (an open state the explorer goes on from).

- :class:`TextCall` feeds the engine ``DigitPressed`` and ``SpeechRecognized`` events, as
  the console does, on a clock of its own: a prompt lasts as long as its rendered audio,
  a phrase as long as espeak-ng takes to say it plus the line's end-of-speech silence, a
  key 0.3 s. It plans every call (hundreds per language, in milliseconds each) and is the
  voice-only run when a language's speech model is missing.
- :class:`AudioCall` is a :class:`~voicebot.call.session.CallSession` in file mode: the
  prompts rendered by pyttsx3, the caller's keys as DTMF tones through the detector, and
  the caller's phrases as espeak-ng audio through the recogniser when there is a model.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import tempfile
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..app import CallMeta, Line
from ..call.fixtures import next_frame
from ..call.session import TranscriptEntry
from ..backends.seed import DEMO_SEED, BankSeed, load_seed
from ..backends.sqlite import Database, SqliteAgentDesk, SqliteBank, SqliteCallLog, SqliteOutbox
from ..config import Bank, Config, Recording
from ..dialog import (
    ActionCompleted,
    CallStarted,
    CancelTimer,
    Command,
    DigitPressed,
    Event,
    Expect,
    HangUp,
    Key,
    Listen,
    Phase,
    PlayPrompt,
    PromptFinished,
    RunAction,
    SpeechRecognized,
    StartTimer,
    StopListening,
    StopPrompt,
    Text,
    TimerExpired,
    Transfer,
    TransferFailed,
)
from ..documents import Document
from ..errors import EngineError
from ..masking import Secret
from ..nlu.interpreter import TextInterpreter, Understanding
from ..outbox import DemoPhone
from .caller import KEY_OFF_SECONDS, KEY_ON_SECONDS, REACTION_SECONDS, Persona, Step, StepKind

log = logging.getLogger(__name__)

RATE = 8000  # the caller's side and the line, as a phone line carries them
LISTENING = (Phase.WAITING, Phase.AFTER_END)
MAX_CALL_SECONDS = 900.0  # a call that runs this long without ending is cut off (a loop in the menu)


# ---------------------------------------------------------------------- the bank


class ScratchBank:
    """The demo bank, seeded once into a real SQLite file, and a line whose database is
    reset to that seeded state before every call: each call the explorer places starts from
    the same bank (cards not locked, no codes issued), in a fraction of a millisecond.

    The line shares the menu and the trained NLU of ``Line.open``; its database is an
    in-memory copy of the file (SQLite's backup API), its SMS and e-mails go nowhere.
    """

    def __init__(self, config: Config, folder: Path | None = None, seed: Path = DEMO_SEED) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="voicebot-a11y-") if folder is None else None
        folder = Path(self._tmp.name) if self._tmp is not None else folder
        assert folder is not None
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "a11y-bank.sqlite3"
        path.unlink(missing_ok=True)
        # A scratch bank: a cheap PIN hash (the checks' cost is not what is measured), and
        # no recordings of the explorer's hundreds of calls.
        self.config = config.model_copy(update={
            "database": path,
            "security": config.security.model_copy(update={"scrypt_n": 2**10}),
            "recording": Recording(),
            "bank": Bank(),  # its own scratch SQLite bank, never the bank.http of the operator's file
        })
        self.seed: BankSeed = load_seed(seed)
        base = Line.open(self.config, echo=io.StringIO())
        try:
            if seed == DEMO_SEED:
                base.ensure_demo_bank()
            else:
                from ..backends.seed import seed_bank

                seed_bank(cast(SqliteBank, base.bank), self.seed)
            self.menu = base.menu
            self.interpreter = base.interpreter
        finally:
            base.close()
        self.path = path
        self._template = sqlite3.connect(":memory:")
        with sqlite3.connect(path) as source:
            source.backup(self._template)
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        self._template.backup(conn)
        self._conn = conn
        db = Database(Path(f"{path} (in-memory copy)"), conn)
        cfg = self.config
        self.line = Line(cfg, self.menu, cast(TextInterpreter, RememberingInterpreter(self.interpreter)), db, SqliteBank(db, cfg.codes, cfg.lockout, cfg.security),
                         SqliteOutbox(db), SqliteAgentDesk(db, cfg.agent.target), SqliteCallLog(db), DemoPhone(None))

    def fresh(self, persona: Persona | None) -> Line:
        """The line with the bank as seeded, plus what the persona did in earlier calls."""
        self._template.backup(self._conn)
        conn = self._conn
        conn.execute("PRAGMA foreign_keys = ON")
        if persona is not None and persona.earlier_failures and persona.document_number and persona.document_type:
            document = Document.parse(persona.document_type, persona.document_number)
            for attempt in range(persona.earlier_failures):
                # Earlier calls' failed checks, through the bank itself: a made-up card each time.
                self.line.bank.verify_card(document, Secret(f"00{attempt % 100:02d}"), Secret("0000"),
                                           persona.caller_id)
        return self.line

    def close(self) -> None:
        self.line.close()
        self._template.close()
        if self._tmp is not None:
            self._tmp.cleanup()


class RememberingInterpreter:
    """The line's interpreter, remembering what each phrase meant: the explorer says the same
    phrases in hundreds of calls, and the classifier is deterministic."""

    def __init__(self, interpreter: TextInterpreter) -> None:
        self._interpreter = interpreter
        self._known: dict[tuple[str, str], Understanding] = {}

    def understand(self, text: str, language: str) -> Understanding:
        key = (text, language)
        if key not in self._known:
            self._known[key] = self._interpreter.understand(text, language)
        return self._known[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._interpreter, name)


# ---------------------------------------------------------------------- what a call leaves


# One thing that happened, ``t`` seconds into the call (kinds: node, prompt, caller, key, speech, …).
Entry = TranscriptEntry


@dataclass
class CallRun:
    """One call of the explorer: its script, what happened, and where it stopped."""

    entry: str
    dialed: str | None
    persona: Persona | None
    steps: tuple[Step, ...]
    medium: str  # text | audio
    entries: list[Entry] = field(default_factory=list)
    path: list[tuple[str, float]] = field(default_factory=list)  # nodes entered, with times
    step_at: list[int] = field(default_factory=list)  # len(path) when each step was taken
    steps_taken: int = 0
    finished: bool = False
    outcome: str | None = None
    reason: str | None = None
    node: str = ""  # where the call stands at the end
    phase: str = ""
    listen: Listen | None = None
    slots: dict[str, str] = field(default_factory=dict)  # not the secret ones
    language: str = ""
    seconds: float = 0.0
    prompts_heard: int = 0
    error: str | None = None
    ends_at_node: bool = True  # False: the engine handed the call over (no input, no match, a request)

    @property
    def nodes(self) -> list[str]:
        return [name for name, _ in self.path]

    def entered_after(self, step_index: int) -> list[str]:
        """Nodes entered because of step ``step_index`` (until the next step)."""
        start = self.step_at[step_index]
        end = self.step_at[step_index + 1] if step_index + 1 < len(self.step_at) else len(self.path)
        return [name for name, _ in self.path[start:end]]

    def reached_at(self, node: str) -> float | None:
        return next((t for name, t in self.path if name == node), None)

    def steps_before(self, node: str) -> int:
        """How many steps the caller took before the call entered ``node``."""
        index = next(i for i, (name, _) in enumerate(self.path) if name == node)
        return sum(1 for at in self.step_at if at <= index)

    def terminal(self) -> str:
        """Where the call ended: its last node if the call ends there, else how the engine ended it."""
        if self.path and self.finished:
            return self.path[-1][0] if self.ends_at_node else f"agent ({self.reason})"
        return ""

    def transcript(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.entries if e.kind not in ("timer_set",)]

    def summary(self) -> str:
        script = "; ".join(step.shown() for step in self.steps)
        end = f"{self.outcome} ({self.reason})" if self.finished else f"open at {self.node}"
        return f"{self.entry} from {self.persona.label if self.persona else 'any caller'}: {script or '(no input)'} -> {end}"


def _caller_id(persona: Persona | None, default: str) -> str:
    return persona.caller_id if persona is not None else default


def _masked_slots(slots: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in slots.items() if not isinstance(value, Secret)}


def _segment_keys(play: PlayPrompt) -> list[str]:
    return [s.key for s in play.segments if isinstance(s, Text)]


# ---------------------------------------------------------------------- time on text


class Timing:
    """How long things take on a text call: prompts from their rendered audio, phrases
    from espeak-ng's rendering of them (the same voice a speech fixture would use)."""

    def __init__(self, renderer: Any, config: Config) -> None:
        self.renderer = renderer
        self.config = config
        self._prompts: dict[tuple[Any, ...], float] = {}
        self._speech: dict[tuple[str, str], float] = {}

    def prompt(self, play: PlayPrompt) -> float:
        key = (play.language, getattr(play, "rate", 1.0),
               tuple((s.text, s.language) if isinstance(s, Text) else ("#", s.words()) for s in play.segments))
        if key not in self._prompts:
            self._prompts[key] = len(self.renderer.render(play, RATE)) / RATE
        return self._prompts[key]

    def speech_clip(self, text: str, language: str) -> np.ndarray:
        from ..dtmf.talkoff import speak

        voice = self.config.tts.voices.get(language, language)
        return speak(text, voice, 150, 40)

    def speech(self, text: str, language: str) -> float:
        key = (text, language)
        if key not in self._speech:
            self._speech[key] = len(self.speech_clip(text, language)) / RATE
        return self._speech[key]

    def end_silence(self, listen: Listen | None) -> float:
        speech = self.config.speech
        if listen is None or listen.expect is Expect.CHOICE or listen.expect is Expect.YES_NO:
            return speech.end_silence_choice
        if listen.expect is Expect.DIGITS:
            return speech.end_silence_digits if listen.min_digits == listen.max_digits else speech.end_silence_open_digits
        return speech.end_silence_sentence


def keys_seconds(keys: str) -> float:
    return len(keys) * KEY_ON_SECONDS + max(0, len(keys) - 1) * KEY_OFF_SECONDS


# ---------------------------------------------------------------------- a call on text


class TextCall:
    """The engine fed events directly, on a clock that advances by what each thing lasts."""

    def __init__(self, line: Line, timing: Timing, *, entry: str, dialed: str | None, persona: Persona | None,
                 steps: tuple[Step, ...], default_caller: str) -> None:
        self.line = line
        self.timing = timing
        self.engine = line.new_engine()
        self.run = CallRun(entry, dialed, persona, steps, "text")
        self.caller_id = _caller_id(persona, default_caller)
        self.now = 0.0
        self._events: deque[Event] = deque()
        self._timers: dict[str, float] = {}
        self._playing: tuple[int, float, str] | None = None
        self._listen: Listen | None = None
        self._done = False

    def place(self) -> CallRun:
        run = self.run
        self._events.append(CallStarted(self.caller_id, self.run.dialed, None))
        try:
            while not self._done:
                if self.now > MAX_CALL_SECONDS:
                    run.error = f"the call was still going after {MAX_CALL_SECONDS:g} s"
                    break
                if self._events:
                    self._feed(self._events.popleft())
                    continue
                if self._playing is not None:
                    play_id, end, prompt_id = self._playing
                    self.now = max(self.now, end)
                    self._playing = None
                    self._note("prompt_end", prompt=prompt_id)
                    self._events.append(PromptFinished(play_id))
                    continue
                if self.engine.phase in LISTENING:
                    if run.steps_taken >= len(run.steps):
                        break  # the script is spent: an open state
                    self._take(run.steps[run.steps_taken])
                    continue
                if self._timers:
                    self._expire_next()
                    continue
                break
        except EngineError as exc:
            run.error = f"the dialog engine failed: {exc}"
            self._note("internal_error", error=str(exc))
        self._close()
        return run

    def _take(self, step: Step) -> None:
        run = self.run
        run.step_at.append(len(run.path))
        run.steps_taken += 1
        listen = self._listen
        secret = listen is not None and listen.secret
        if step.kind is StepKind.SILENCE:
            self._note("caller", what="silence", why=step.why)
            self._expire_next()
            return
        self.now += REACTION_SECONDS
        if step.kind is StepKind.KEYS:
            took = keys_seconds(step.text)
            self._note("caller", what="keys", text="****" if secret else step.text, seconds=round(took, 2), why=step.why)
            self.now += took
            for ch in step.text:
                self._events.append(DigitPressed(Key(ch)))
        else:
            took = self.timing.speech(step.text, self.engine.language)
            self._note("caller", what="say", text="****" if secret else step.text, seconds=round(took, 2), why=step.why)
            self.now += took + self.timing.end_silence(listen)
            self._events.append(SpeechRecognized(step.text, 1.0))

    def _expire_next(self) -> None:
        if not self._timers:
            return
        timer_id = min(self._timers, key=self._timers.__getitem__)
        self.now = max(self.now, self._timers.pop(timer_id))
        self._note("timer", timer=timer_id.split("#")[0])
        self._events.append(TimerExpired(timer_id))

    def _feed(self, event: Event) -> None:
        commands = self.engine.feed(event)
        self._track_path()
        for command in commands:
            self._execute(command)
            self._track_path()

    def _track_path(self) -> None:
        path = self.engine.record.path
        while len(self.run.path) < len(path):
            name = path[len(self.run.path)]
            self.run.path.append((name, self.now))
            self._note("node", node=name)

    def _execute(self, command: Command) -> None:
        if isinstance(command, PlayPrompt):
            seconds = self.timing.prompt(command)
            self._playing = (command.play_id, self.now + seconds, command.prompt_id)
            self.run.prompts_heard += 1
            self._note("prompt", prompt=command.prompt_id, language=command.language, text=command.masked_text(),
                       seconds=round(seconds, 2), barge_in=command.barge_in, texts=_segment_keys(command),
                       rate=getattr(command, "rate", 1.0))
        elif isinstance(command, StopPrompt):
            if self._playing is not None:
                self._note("prompt_stopped", prompt=self._playing[2], by="key")
                self._playing = None
        elif isinstance(command, Listen):
            self._listen = command
        elif isinstance(command, StopListening):
            self._listen = None
        elif isinstance(command, StartTimer):
            self._timers[command.timer_id] = self.now + command.seconds
            self._note("timer_set", node=self.engine.node_name, timer=command.kind.value, seconds=command.seconds)
        elif isinstance(command, CancelTimer):
            self._timers.pop(command.timer_id, None)
        elif isinstance(command, RunAction):
            self._note("action", name=command.name)
            outcome = self.line.actions.run(command.name, command.args, self.engine.language)
            self._note("action_result", name=command.name, result=outcome.result)
            self._events.append(ActionCompleted(command.action_id, outcome.result, outcome.data, outcome.detail))
        elif isinstance(command, Transfer):
            try:
                self.line.desk.hand_off(command.reason, command.context)
            except Exception as exc:  # the desk is down: the engine tells the caller the agent's number
                self._note("transfer_failed", reason=command.reason, error=type(exc).__name__)
                self._events.append(TransferFailed(command.reason))
                return
            self._note("transfer", reason=command.reason)
            self._done = True
        elif isinstance(command, HangUp):
            self._note("hangup", outcome=command.outcome.value, reason=command.reason)
            self._done = True

    def _note(self, kind: str, **detail: Any) -> None:
        self.run.entries.append(Entry(self.now, kind, detail))

    def _close(self) -> None:
        run, engine = self.run, self.engine
        record = engine.record
        run.finished = engine.finished
        run.outcome = record.outcome.value if record.outcome else None
        run.reason = record.outcome_reason
        run.node = engine.node_name
        run.phase = engine.phase.value
        run.listen = self._listen
        run.slots = _masked_slots(engine.slots)
        run.language = engine.language
        run.seconds = self.now
        finish_terminal(run, self.line)


def finish_terminal(run: CallRun, line: Line) -> None:
    """Whether the call ended at its last node (an end or transfer node) or by the engine's
    own hand-off (no input, no match, a caller asking for an agent)."""
    from ..menu.model import EndNode, TransferNode

    if not run.finished or not run.path:
        return
    last = line.menu.nodes.get(run.path[-1][0])
    ended_here = isinstance(last, (EndNode, TransferNode))
    if isinstance(last, TransferNode):
        ended_here = run.reason == last.reason
    if isinstance(last, EndNode):
        ended_here = run.outcome == last.outcome.value
    run.ends_at_node = ended_here


# ---------------------------------------------------------------------- a call on audio


class AudioCall:
    """A file-mode call: the line's audio path, frame by frame, with a reactive caller who
    waits for each prompt to end, then keys (DTMF tones) or speaks (espeak-ng audio)."""

    def __init__(self, line: Line, renderer: Any, speech: Any, timing: Timing, *, entry: str, dialed: str | None,
                 persona: Persona | None, steps: tuple[Step, ...], default_caller: str, language: str,
                 hold_on: float = 30.0) -> None:
        from ..call.session import CallSession

        self.line = line
        self.timing = timing
        self.language = language
        self.run = CallRun(entry, dialed, persona, steps, "audio")
        meta = CallMeta(transport="a11y", caller_id=_caller_id(persona, default_caller), dialed=dialed)
        self.session = CallSession(line, meta, renderer, speech, RATE, virtual=True)
        if speech is None:
            # A keys-only caller on a line that has speech in every language: no "use your
            # keypad" notice (it belongs to a machine without models, not to the menu).
            settings = self.session.engine.settings
            self.session.engine.settings = replace(settings, speech_languages=tuple(line.config.languages))
        self.hold_on = hold_on
        self._queue: list[np.ndarray] = []
        self._prompts_seen = 0
        self._awaiting_prompt = False
        self._silence_from: int | None = None
        self._caller_entries: list[Entry] = []

    def place(self) -> CallRun:
        from ..call.session import FRAME_SECONDS

        session, run = self.session, self.run
        session.start()
        frame = session.frame_len
        held = 0.0
        try:
            while not session.finished and session.now < MAX_CALL_SECONDS:
                self._track_path()
                self._react()
                if run.steps_taken >= len(run.steps) and not self._queue and self._silence_from is None:
                    if session.engine.phase in LISTENING and not session.playing and not self._awaiting_prompt:
                        if session.engine.phase is not Phase.AFTER_END:
                            break  # the script is spent and the line waits: an open state
                    held += FRAME_SECONDS
                    if held > self.hold_on:
                        break
                session.step(self._frame(frame))
            self._track_path()
        except EngineError as exc:
            run.error = f"the dialog engine failed: {exc}"
        open_state = not session.finished
        engine = session.engine
        run.node, run.phase, run.language = engine.node_name, engine.phase.value, engine.language
        run.slots = _masked_slots(engine.slots)
        listen = getattr(session, "_listening", None)
        run.listen = listen if isinstance(listen, Listen) else None
        if open_state:
            session.hang_up("explorer")
        record = session.finish()
        run.finished = not open_state
        run.outcome = record.get("outcome") if run.finished else None
        run.reason = record.get("outcome_reason") if run.finished else None
        run.seconds = session.now
        transcript = [e.as_dict() for e in session.transcript]
        for item in transcript:
            kind = item.pop("kind")
            t = item.pop("t")
            if kind == "prompt":
                run.prompts_heard += 1
            run.entries.append(Entry(t, kind, item))
        run.entries.extend(self._caller_entries)
        run.entries.extend(Entry(t, "node", {"node": name}) for name, t in run.path)
        run.entries.sort(key=lambda e: e.t)
        finish_terminal(run, self.line)
        return run

    def _track_path(self) -> None:
        path = self.session.engine.record.path
        while len(self.run.path) < len(path):
            self.run.path.append((path[len(self.run.path)], self.session.now))

    def _react(self) -> None:
        session, run = self.session, self.run
        prompts = sum(1 for e in session.transcript if e.kind == "prompt")
        if prompts > self._prompts_seen:
            self._prompts_seen = prompts
            self._awaiting_prompt = False
        if self._silence_from is not None:
            if any(e.kind == "timer" for e in session.transcript[self._silence_from:]):
                self._silence_from = None
            return
        if self._queue or self._awaiting_prompt or session.playing:
            return
        if session.engine.phase not in LISTENING or run.steps_taken >= len(run.steps):
            return
        step = run.steps[run.steps_taken]
        run.step_at.append(len(run.path))
        run.steps_taken += 1
        listen = getattr(session, "_listening", None)
        secret = isinstance(listen, Listen) and listen.secret
        start = session.now + REACTION_SECONDS
        if step.kind is StepKind.SILENCE:
            self._silence_from = len(session.transcript)
            self._awaiting_prompt = True
            self._caller_entries.append(Entry(session.now, "caller", {"what": "silence", "why": step.why}))
            return
        if step.kind is StepKind.KEYS:
            from ..dtmf import generator

            audio, _ = generator.sequence(step.text, on=KEY_ON_SECONDS, off=KEY_OFF_SECONDS, sample_rate=RATE,
                                          lead=0.0, tail=0.05, level_dbm0=-10, rng=np.random.default_rng(7))
            what = "keys"
        else:
            audio = self.timing.speech_clip(step.text, self.language)
            what = "say"
        clip = np.concatenate([np.zeros(int(REACTION_SECONDS * RATE)), np.asarray(audio, dtype=np.float64)])
        self._queue.append(clip)
        self._awaiting_prompt = True
        self._caller_entries.append(Entry(start, "caller", {
            "what": what, "text": "****" if secret else step.text,
            "seconds": round(len(audio) / RATE, 2), "why": step.why}))

    def _frame(self, length: int) -> np.ndarray:
        return next_frame(self._queue, length)


__all__ = ["AudioCall", "CallRun", "Entry", "ScratchBank", "TextCall", "Timing"]
