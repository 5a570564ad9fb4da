"""One call on real audio: the imperative shell around the sans-I/O parts.

``CallSession.step(caller_frame) -> bot_frame``, every 20 ms of audio. What it does with a
frame, in order:

1. The DTMF muter finds keys and passes the audio on with the tones silenced (30 ms late),
   so the recogniser never hears a keypad as a word.
2. The recogniser of the call's language hears that audio (its voice detector always; Vosk
   only while the engine listens and a voice is present).
3. Keys, speech, timers that ran out, finished prompts and finished actions become the
   engine's events; its commands are carried out: prompts rendered and played frame by
   frame, timers set, actions run, the call transferred or hung up.
4. With ``recording.folder`` (or ``record_to``), the frame goes to the call's recording
   with what the line knew of it: whether a secret step listened, which step each key
   went to (``recording.py`` says how secrets are kept out of it).

Time is the audio: frame N starts at N × 20 ms. A file call runs on it as fast as the CPU
allows (``virtual=True``: actions run inline and the recogniser is waited for, so a
recording replays the same on any machine); a live call (headset, phone line) runs on it
in real time, actions on a worker thread.

Barge-in: a key always stops the prompt (the engine says so); a voice stops a prompt that
allows it as soon as the voice detector is sure it is a voice (not a click or a cough),
before the words are known.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..app import CallMeta, Line
from ..asr.recognizer import FinalTranscript, SpeechStarted, VoskRecognizer
from ..asr.speech import LineSpeech
from ..dialog import (
    ActionCompleted,
    CallerHungUp,
    CallStarted,
    CancelTimer,
    Command,
    DigitPressed,
    Event,
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
    TimerExpired,
    Transfer,
    TransferFailed,
)
from ..dtmf.detector import KeyTone
from ..dtmf.mute import DtmfMuter
from ..errors import EngineError
from ..masking import MASK
from .recording import CallRecording, Privacy, recording_path

log = logging.getLogger(__name__)

FRAME_SECONDS = 0.02
LINE_RATES = (8000, 16000)  # where the DTMF detector works natively
ACTION_WAIT = 30.0  # seconds a finishing call waits for its last backend action
DUPLICATE_KEY_WINDOW = 0.5  # seconds: the same key reported by two sources is one press
LISTENING_PHASES = (Phase.PLAYING, Phase.WAITING, Phase.AFTER_END)  # the engine takes input at the step that listens


class PromptRenderer(Protocol):
    """Turns a prompt into audio at the call's rate (float, full scale 1.0)."""

    def render(self, play: PlayPrompt, sample_rate: int) -> np.ndarray: ...


@dataclass
class TranscriptEntry:
    """One thing that happened in the call, at a time in seconds from its start."""

    t: float
    kind: str  # prompt, prompt_end, prompt_stopped, key, speech, timer, action, action_result, transfer, hangup, ...
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 3), "kind": self.kind, **self.detail}


@dataclass
class _Playing:
    play: PlayPrompt
    samples: np.ndarray
    position: int = 0


class CallSession:
    def __init__(self, line: Line, meta: CallMeta, renderer: PromptRenderer, speech: LineSpeech | None,
                 sample_rate: int = 8000, *, language: str | None = None, virtual: bool = True,
                 action_pool: Executor | None = None, record_to: str | Path | None = None) -> None:
        if sample_rate not in LINE_RATES:
            raise ValueError(f"a call runs at {LINE_RATES} Hz (resample the device or file first), not {sample_rate}")
        self.line = line
        self.meta = meta
        self.renderer = renderer
        self.speech = speech
        self.rate = sample_rate
        self.frame_len = int(sample_rate * FRAME_SECONDS)
        self.virtual = virtual
        self.engine = line.new_engine()
        self.transcript: list[TranscriptEntry] = []
        self._language = language
        self._muter = DtmfMuter(sample_rate)
        self._recognizers: dict[str, VoskRecognizer | None] = {}
        self._listening: Listen | None = None
        self._listening_to: list[VoskRecognizer] = []  # one per language the prompt accepts (the language menu: all)
        self._frames = 0
        self._timers: dict[str, float] = {}  # timer id -> deadline, seconds of call time
        self._playing: _Playing | None = None
        self._events: list[Event] = []
        self._action_results: queue.SimpleQueue[tuple[str, ActionCompleted]] = queue.SimpleQueue()
        # Live: actions run off the audio path, on a worker of the call's own, or on a pool
        # the transport shares among its calls (a server of many calls: not a thread each).
        self._owns_actions = action_pool is None and not virtual
        self._actions: Executor | None = (None if virtual else action_pool
                                          or ThreadPoolExecutor(max_workers=1, thread_name_prefix="action"))
        self._pending_actions = 0
        self._action_futures: list[Future[None]] = []
        self._keys_pressed: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._recent_keys: list[tuple[float, str, str]] = []  # (time, key, source): one press, several reports
        self._transfer_answers: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._transferring: Transfer | None = None
        self._finished = False
        self.on_finish: Callable[[], None] | None = None
        # A transport that transfers calls itself (SIP REFER) sets this; it answers with
        # ``transfer_answered``. Without it, the desk's hand-off is the transfer.
        self.on_transfer: Callable[[Transfer, str], None] | None = None
        # Each key found in the audio, just after it went to the engine (the SIP front's DTMF latency metric).
        self.on_key_tone: Callable[[KeyTone], None] | None = None
        # The call's recording: ``record_to`` (one call, e.g. `voicebot call --record`), else
        # one file per call in ``recording.folder``, else none.
        self._record_to = Path(record_to) if record_to is not None else None
        self.recording: CallRecording | None = None
        self.recording_note: dict[str, Any] | None = None  # for the record: path, seconds, error
        self._secret_seen = False  # a secret step listened at some moment of this frame
        self._secret_prompt = False  # this frame's prompt audio carries a secret (an SMS key read out)

    # ------------------------------------------------------------------ the transport's side

    @property
    def now(self) -> float:
        """Seconds of call audio so far."""
        return self._frames * FRAME_SECONDS

    @property
    def finished(self) -> bool:
        return self._finished

    def start(self) -> None:
        if not self.virtual:  # a live call can be cut off by the process's end: say it began
            self.line.begin_call(self.meta)
        self._note("call", caller_id=self.meta.caller_id, dialed=self.meta.dialed, rate=self.rate)
        self._start_recording()
        speech_languages = self.speech.speech_languages() if self.speech else ()
        if self.engine.settings.speech_languages is None:
            # The engine tells a caller whose language has no model to use the keypad.
            self.engine.settings = replace(self.engine.settings, speech_languages=tuple(speech_languages))
        self._feed(CallStarted(self.meta.caller_id, self.meta.dialed, self._language))

    def press(self, key: str, source: str = "keyboard") -> None:
        """A key from another source than the audio: a computer keyboard beside a headset,
        an RFC 4733 event or a SIP INFO on a phone line. Any thread; heard at the next frame."""
        self._keys_pressed.put((key, source))

    def transfer_answered(self, accepted: bool) -> None:
        """The transport's answer to ``on_transfer``: the call went to the agent (it ends
        here), or it was refused (the engine tells the caller the agent's number)."""
        self._transfer_answers.put(accepted)

    def step(self, caller: np.ndarray) -> np.ndarray:
        """One frame of the caller's audio in (any length, usually 20 ms); as much of the bot's out."""
        if self._finished:
            return np.zeros(len(caller), dtype=np.float32)
        # Everything decided in this frame is known at its end: that is its time in the
        # transcript, and the answer starts in the audio this step hands back.
        self._frames += 1
        samples = np.asarray(caller)
        if samples.dtype == np.int16:
            samples = samples.astype(np.float64) / 32768.0
        elif not np.abs(samples).max(initial=0.0) <= 1.0:  # (False for NaN and inf too)
            # Hostile or broken float audio (NaN, inf, far past full scale): heard as a line
            # that clips, never passed on to the detectors as values they cannot judge.
            samples = np.clip(np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        before = self._privacy()
        self._secret_seen = before is Privacy.SECRET
        muted, tones = self._muter.process(samples)
        taken: list[tuple[KeyTone, Privacy]] = []
        for tone in tones:
            taken.append((tone, self._privacy()))  # the step the key goes to
            self._key(tone.key, source="tone")
            if self.on_key_tone is not None:
                self.on_key_tone(tone)
        while not self._keys_pressed.empty():
            key, source = self._keys_pressed.get()
            self._key(key, source=source)
        while not self._transfer_answers.empty():
            self._transfer_answered(self._transfer_answers.get())
        self._hear(muted)
        self._collect_actions()
        self._run_timers()
        out = self._play_out(len(samples))
        if self.recording is not None:
            self._record(samples, muted, np.zeros_like(out) if self._secret_prompt else out, before, taken)
        return out

    def note(self, kind: str, **detail: Any) -> None:
        """Something the transport saw, in the transcript at the current time (hold, resume)."""
        self._note(kind, **detail)

    def hang_up(self, reason: str | None = None) -> None:
        """The caller is gone (``reason``: how we know, when it is not a hang-up: rtp_timeout, shutdown)."""
        if not self._finished:
            self._note("caller_hung_up", **({"reason": reason} if reason else {}))
            self._feed(CallerHungUp())
            self._finish()

    def finish(self) -> dict[str, Any]:
        """The call record (saved in the call log); ends the call first if it is still going."""
        if not self._finished:
            self.hang_up()
        self._close_recording()
        for recognizer in self._recognizers.values():
            if recognizer is not None:
                recognizer.close()
        if self._actions is not None and self._owns_actions:
            self._actions.shutdown(wait=True)
        elif self._action_futures:
            # A shared pool: wait for this call's own actions (an unlock, an SMS still being
            # sent), so the record says what they did. Never past ACTION_WAIT.
            wait(self._action_futures, timeout=ACTION_WAIT)
        self._collect_actions()
        record = self.line.finish_call(self.engine, self.meta, duration=self.now)
        if self.recording_note is not None:
            # The record says a recording exists, and where (saved again: the line's record
            # is built without it).
            record["recording"] = self.recording_note
            self.line.call_log.save(record)
        return record

    # ------------------------------------------------------------------ the recording

    def _start_recording(self) -> None:
        path = self._record_to or recording_path(self.line.config, self.meta.call_id)
        if path is None:
            return
        try:
            if self._record_to is None:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # (removed since start-up: made again)
            self.recording = CallRecording.create(path, self.rate, self._muter.delay,
                                                  exclusive=self._record_to is None)
        except (OSError, RuntimeError) as exc:
            # Never drop a caller for a disk: the call goes on, and the log and record say so.
            reason = getattr(exc, "strerror", None) or str(exc)
            log.warning("call %s: no recording: %s cannot be written (%s); the call goes on without one",
                        self.meta.call_id, path, reason)
            self.recording_note = {"path": None, "seconds": 0.0, "error": f"not recorded: {reason}"}
            return
        log.info("call %s: recording to %s", self.meta.call_id, path)

    def _close_recording(self) -> None:
        recording = self.recording
        if recording is None:
            return
        self.recording = None
        try:
            tail, closing = self._muter.flush()
            recording.close(tail, closing)
        except Exception:  # a bug here must not lose the call's record
            log.exception("call %s: closing the recording failed", self.meta.call_id)
            recording.abandon()
        self.recording_note = recording.summary()

    def _record(self, caller: np.ndarray, muted: np.ndarray, line: np.ndarray, before: Privacy,
                taken: list[tuple[KeyTone, Privacy]]) -> None:
        recording = self.recording
        assert recording is not None
        try:
            recording.add(caller, muted, line, before=before, after=self._privacy(), secret_seen=self._secret_seen,
                          keys=taken)
        except Exception:  # a bug in the recording must not end the call: it stops, the call goes on
            log.exception("call %s: recording failed; the call goes on without the rest", self.meta.call_id)
            self.recording = None
            recording.abandon()
            self.recording_note = {**recording.summary(), "error": "recording stopped by an internal error"}

    def _privacy(self) -> Privacy:
        """What the caller's audio is now: input to a secret step, to a step that is not, or
        to none yet (a message, an action: keys typed there count at the next step)."""
        listen = self._listening
        if listen is not None and listen.secret:
            return Privacy.SECRET
        if listen is not None and listen.node == self.engine.node_name and self.engine.phase in LISTENING_PHASES:
            return Privacy.CLEAR
        return Privacy.PENDING

    # ------------------------------------------------------------------ input

    def _key(self, key: str, source: str) -> None:
        try:
            pressed = Key(key)
        except ValueError:
            return
        # One press may come twice: an RFC 4733 event (or SIP INFO) and its tone left in the
        # audio. The same key from another source within DUPLICATE_KEY_WINDOW is that press.
        self._recent_keys = [k for k in self._recent_keys if self.now - k[0] <= DUPLICATE_KEY_WINDOW]
        if any(k[1] == key and k[2] != source for k in self._recent_keys):
            return
        self._recent_keys.append((self.now, key, source))
        listen = self._listening
        # A digit is shown only when the step listening for it is known not to be secret
        # (type-ahead during an action may belong to the PIN that comes next).
        shown = listen is not None and not listen.secret and listen.node == self.engine.node_name
        self._note("key", key=key if shown or not key.isdigit() else MASK, source=source)
        self._feed(DigitPressed(pressed))

    def _recognizer(self, language: str | None = None) -> VoskRecognizer | None:
        language = language or self.engine.language
        if language not in self._recognizers:
            self._recognizers[language] = self.speech.new_recognizer(language, self.rate) if self.speech else None
        return self._recognizers[language]

    def _hear(self, audio: np.ndarray) -> None:
        current = self._recognizer()
        recognizers = self._listening_to or ([current] if current is not None else [])
        finals: list[tuple[VoskRecognizer, FinalTranscript]] = []
        voice = False
        for recognizer in recognizers:
            events = recognizer.feed(audio)
            if self.virtual and recognizer.results_owed:
                # On a virtual clock the decoder is waited for: the same file, the same call.
                events += recognizer.wait()
            voice = voice or any(isinstance(e, SpeechStarted) for e in events)
            finals += [(recognizer, e) for e in events if isinstance(e, FinalTranscript)]
        if voice:
            self._voice_started()
        if finals:
            self._choose_final(finals)

    def _choose_final(self, finals: list[tuple[VoskRecognizer, FinalTranscript]]) -> None:
        """One utterance heard by each language's recogniser (the language menu): the surest
        words win. A no-match waits while another recogniser may still have words for it."""
        heard = [(r, f) for r, f in finals if f.transcript.text]
        if not heard:
            answered = {id(r) for r, _ in finals}
            others = [r for r in self._listening_to if id(r) not in answered and (r.results_owed or r.in_utterance)]
            if others:
                return
            self._speech(finals[0][1])
            return
        chosen, final = max(heard, key=lambda pair: pair[1].transcript.confidence)
        for recognizer in self._listening_to:
            if recognizer is not chosen:
                recognizer.stop_listening()  # its result for this utterance is stale now
        self._speech(final)

    def _voice_started(self) -> None:
        playing = self._playing
        if playing is None or not playing.play.barge_in or self._listening is None:
            return
        # A real voice (the detector's onset rule): the prompt stops now, before the words are known.
        self._note("prompt_stopped", prompt=playing.play.prompt_id, by="voice", at=round(playing.position / self.rate, 3))
        self._playing = None
        self._feed(PromptFinished(playing.play.play_id))

    def _speech(self, final: FinalTranscript) -> None:
        listen = self._listening
        text = final.transcript.text
        confidence = final.transcript.confidence if text else 0.0
        shown = MASK if listen is not None and listen.secret else text
        self._note("speech", text=shown, confidence=round(confidence, 2), unknown_words=final.transcript.unknown_words)
        self._feed(SpeechRecognized(text, confidence))

    # ------------------------------------------------------------------ the engine

    def _feed(self, event: Event) -> None:
        self._events.append(event)
        if len(self._events) > 1:
            return  # already inside _feed: the loop below takes it
        try:
            while self._events:
                commands = self.engine.feed(self._events[0])
                for command in commands:
                    self._execute(command)
                self._events.pop(0)
        except Exception as exc:
            # A bug (the engine, a renderer, a backend): say so in the log and the
            # transcript, end the call cleanly, never leave the caller in silence.
            log.exception("call %s: %s failed", self.meta.call_id,
                          "dialog engine" if isinstance(exc, EngineError) else "the call")
            self._note("internal_error", error=type(exc).__name__)
            self._events.clear()
            self._finish()

    def _execute(self, command: Command) -> None:
        if isinstance(command, PlayPrompt):
            samples = self.renderer.render(command, self.rate)
            self._playing = _Playing(command, np.asarray(samples, dtype=np.float32))
            self._note("prompt", prompt=command.prompt_id, language=command.language, text=command.masked_text(),
                       seconds=round(len(samples) / self.rate, 3), barge_in=command.barge_in)
        elif isinstance(command, StopPrompt):
            if self._playing is not None:
                self._note("prompt_stopped", prompt=self._playing.play.prompt_id, by="key",
                           at=round(self._playing.position / self.rate, 3))
                self._playing = None
        elif isinstance(command, Listen):
            self._listen(command)
        elif isinstance(command, StopListening):
            self._stop_listening()
        elif isinstance(command, StartTimer):
            self._timers[command.timer_id] = self.now + command.seconds
        elif isinstance(command, CancelTimer):
            self._timers.pop(command.timer_id, None)
        elif isinstance(command, RunAction):
            self._run_action(command)
        elif isinstance(command, Transfer):
            self._transfer(command)
        elif isinstance(command, HangUp):
            self._note("hangup", outcome=command.outcome.value, reason=command.reason)
            self._finish()

    def _listen(self, listen: Listen) -> None:
        if listen.secret:
            self._secret_seen = True
        if self._listening is not None and self._listening.secret:
            # Whatever is still being said at a secret step (a PIN said while keyed) must
            # not come out, unmasked, at the next one.
            self._stop_listening()
        self._listening = listen
        chosen: list[VoskRecognizer] = []
        for language in listen.languages:
            recognizer = self._recognizer(language)
            if recognizer is None or self.speech is None:
                continue
            grammar = self.speech.grammar(listen, language)
            recognizer.listen(grammar, self.speech.end_silence(listen, grammar))
            chosen.append(recognizer)
        for recognizer in self._listening_to:
            if recognizer not in chosen:
                recognizer.stop_listening()
        self._listening_to = chosen

    def _stop_listening(self) -> None:
        self._listening = None
        for recognizer in self._listening_to:
            recognizer.stop_listening()
        self._listening_to = []

    def _run_action(self, command: RunAction) -> None:
        self._note("action", name=command.name)
        language = self.engine.language
        if self._actions is None:
            outcome = self.line.actions.run(command.name, command.args, language)
            self._note("action_result", name=command.name, result=outcome.result)
            self._feed(ActionCompleted(command.action_id, outcome.result, outcome.data, outcome.detail))
            return

        asked_at = time.monotonic()

        def work() -> None:
            try:
                outcome = self.line.actions.run(command.name, command.args, language, asked_at=asked_at)
                done = ActionCompleted(command.action_id, outcome.result, outcome.data, outcome.detail)
            except Exception as exc:  # never leave the caller in silence: the engine hands over to an agent
                log.exception("call %s: action %s failed", self.meta.call_id, command.name)
                done = ActionCompleted(command.action_id, "error", {}, type(exc).__name__)
            self._action_results.put((command.name, done))

        self._pending_actions += 1
        self._action_futures = [f for f in self._action_futures if not f.done()]
        self._action_futures.append(self._actions.submit(work))

    def _collect_actions(self) -> None:
        while not self._action_results.empty():
            name, done = self._action_results.get()
            self._pending_actions -= 1
            self._note("action_result", name=name, result=done.result)
            self._feed(done)

    def _transfer(self, command: Transfer) -> None:
        try:
            ticket = self.line.desk.hand_off(command.reason, command.context)
        except Exception as exc:  # the desk is down: the caller must still be told what to do
            self._note("transfer_failed", reason=command.reason, error=type(exc).__name__)
            self._feed(TransferFailed(command.reason))
            return
        self._note("transfer", reason=command.reason, target=ticket.target, ticket=ticket.ticket_id)
        if self.on_transfer is None:
            self._finish()
            return
        self._transferring = command
        self.on_transfer(command, ticket.ticket_id)

    def _transfer_answered(self, accepted: bool) -> None:
        command, self._transferring = self._transferring, None
        if command is None or self._finished:
            return
        if accepted:
            self._note("transferred")
            self._finish()
        else:
            self._note("transfer_failed", reason=command.reason, error="refused")
            self._feed(TransferFailed(command.reason))

    def _run_timers(self) -> None:
        for timer_id, deadline in sorted(self._timers.items(), key=lambda item: item[1]):
            if deadline <= self.now and timer_id in self._timers:
                del self._timers[timer_id]
                self._note("timer", timer=timer_id.split("#")[0])
                self._feed(TimerExpired(timer_id))

    # ------------------------------------------------------------------ output

    def _play_out(self, amount: int) -> np.ndarray:
        out = np.zeros(amount, dtype=np.float32)
        playing = self._playing
        self._secret_prompt = playing is not None and playing.play.has_secret
        if playing is None:
            return out
        chunk = playing.samples[playing.position:playing.position + amount]
        out[:len(chunk)] = chunk
        playing.position += len(chunk)
        if playing.position >= len(playing.samples):
            self._playing = None
            self._note("prompt_end", prompt=playing.play.prompt_id)
            self._feed(PromptFinished(playing.play.play_id))
        return out

    # ------------------------------------------------------------------ the record

    def _note(self, kind: str, **detail: Any) -> None:
        self.transcript.append(TranscriptEntry(self.now, kind, detail))

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._stop_listening()
        if self.on_finish is not None:
            self.on_finish()

    @property
    def playing(self) -> bool:
        return self._playing is not None

    @property
    def busy(self) -> bool:
        """Something is still due without the caller: a prompt, an action, a timer."""
        return (self._playing is not None or self._pending_actions > 0 or bool(self._timers)
                or self._transferring is not None)
