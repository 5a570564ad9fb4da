"""A call's speech recogniser: ``feed(samples) -> list[SpeechEvent]``, like the DTMF detector.

What happens to the audio of one call:

1. It is resampled to the model's rate (soxr, in its low-latency modes) and judged 20 ms
   at a time by the voice detector (``vad.VoiceActivity``), always: a voice during a
   prompt is what barge-in needs.
2. While the line listens and a voice is present, the audio (from a little before the
   voice began) goes to a Vosk recogniser built for this prompt's grammar. Silence and
   line noise never reach Vosk: that is what lets one machine serve many calls.
3. When the voice has been silent for this prompt's ``end_silence``, the recogniser is
   asked for its final result at once (a few ms with a grammar) instead of waiting for
   Vosk's own endpoint (about a second).

Decoding runs on a shared pool of threads (Vosk releases the GIL), one call's jobs in
order, so ``feed`` never waits for Vosk: results come back from a later ``feed`` or
``poll`` (or ``wait``, for files and tests). Vosk's JSON is parsed here, into
``Transcript``; nothing else in the project sees it.
"""

from __future__ import annotations

import dataclasses
import logging
import itertools
import json
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .speech_model import UNKNOWN_TOKENS, SpeechModel
from .vad import VoiceActivity, VoiceEnded, VoiceStarted

log = logging.getLogger(__name__)

PARTIAL_EVERY_SECONDS = 0.2  # how often a partial result is asked for while a voice goes on


@dataclass(frozen=True)
class RecognizerSettings:
    pre_roll: float = 0.3  # seconds of audio before the voice's onset sent with it (soft first sounds)
    min_voice: float = 0.12
    voice_confirmation: float | None = 0.5  # Silero's score an onset must reach (see vad.py); None: WebRTC alone
    vad_aggressiveness: int = 2
    min_level_dbfs: float = -55.0  # quieter frames are never a voice (WebRTC's VAD flags faint hiss at times)
    max_utterance: float = 12.0
    # An n-best list (with a grammar) for a result less sure than `alternatives_below`: a
    # second decoding of the utterance, before the result is out. Off by default: nothing in
    # the line reads it yet, and it costs (measured on 2 cores: 100 calls in real time
    # without it, 75 with it; +20-50 ms on a doubtful answer).
    alternatives: int = 0
    alternatives_below: float = 0.8
    partials: bool = True


@dataclass(frozen=True)
class Word:
    text: str = field(repr=False)  # may be a digit of a PIN
    confidence: float
    start: float  # seconds from the utterance's first sample sent to the recogniser
    end: float


@dataclass(frozen=True)
class Alternative:
    text: str = field(repr=False)
    score: float  # Vosk's lattice score: comparable within one utterance only


@dataclass(frozen=True)
class Transcript:
    text: str  # the words understood, unknown-word tokens removed
    words: tuple[Word, ...] = ()
    alternatives: tuple[Alternative, ...] = ()
    unknown_words: int = 0  # words the grammar could not place (out-of-grammar speech)

    @property
    def confidence(self) -> float:
        """The weakest word's confidence: one doubtful digit makes the whole entry doubtful."""
        known = [w.confidence for w in self.words if w.text not in UNKNOWN_TOKENS]
        if not known:
            return 0.0
        return min(known)

    @property
    def rejected(self) -> bool:
        """Nothing usable was said (silence, or speech outside the grammar)."""
        return not self.text

    def __repr__(self) -> str:
        # The text may be a PIN said aloud: keep it out of reprs and tracebacks.
        return (f"Transcript(<{len(self.text.split())} words>, confidence={self.confidence:.2f}, "
                f"unknown_words={self.unknown_words}, alternatives={len(self.alternatives)})")


@dataclass(frozen=True)
class SpeechStarted:
    at_sample: int  # input-rate samples from the first sample fed


@dataclass(frozen=True)
class PartialTranscript:
    utterance: int
    text: str

    def __repr__(self) -> str:
        return f"PartialTranscript(utterance={self.utterance}, <{len(self.text.split())} words>)"


@dataclass(frozen=True)
class FinalTranscript:
    utterance: int
    transcript: Transcript
    start_sample: int  # the voice's onset (input rate)
    end_sample: int  # the end of the last voiced frame
    detected_sample: int  # where the end of speech was decided (end_sample + the prompt's end_silence)


SpeechEvent = SpeechStarted | PartialTranscript | FinalTranscript


class DecoderPool:
    """Threads that decode every call's speech; each call's jobs run in order, one at a time."""

    def __init__(self, threads: int = 2) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vosk")

    def lane(self) -> "_Lane":
        return _Lane(self._executor)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "DecoderPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Lane:
    """One call's queue of decoding jobs: run in order, never two at once."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self._jobs: deque[Callable[[], None]] = deque()
        self._lock = threading.Lock()
        self._running = False
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.append(job)
            self._idle.clear()
            if self._running:
                return
            self._running = True
        self._executor.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._running = False
                    self._idle.set()
                    return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:  # a failing decode must not silence the call's later speech
                log.exception("speech decoding failed; the call's next utterances go on")

    def wait(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)


@dataclass
class _Utterance:
    """Decoder-side state of one utterance (touched only by the call's lane)."""

    number: int
    grammar: tuple[str, ...] | None
    recognizer: Any = None  # vosk.KaldiRecognizer
    audio: list[bytes] = field(default_factory=list)  # kept for an n-best decoding, if the result is doubtful
    segments: list[dict[str, Any]] = field(default_factory=list)  # results Vosk ended on its own
    last_partial: str = ""
    since_partial: int = 0


class VoskRecognizer:
    """The recogniser of one call (one language at a time).

    ``listen(grammar, end_silence)`` when a prompt expects speech, ``stop_listening()``
    when it no longer does; ``feed`` audio all the time (int16, or float in -1..1).
    """

    def __init__(self, model: SpeechModel, pool: DecoderPool, sample_rate: int,
                 settings: RecognizerSettings | None = None,
                 on_result: Callable[[], None] | None = None) -> None:
        self.model = model
        self.settings = settings or RecognizerSettings()
        self.input_rate = sample_rate
        # Vosk hears the model's own rate. (Fed 8 kHz, Kaldi resamples inside, and measured
        # here that recognised far worse: 1 of 6 against 6 of 6 for the same words.)
        self.rate = model.sample_rate
        self._resampler = None
        if sample_rate != self.rate:
            import soxr

            # Latency matters more than a steep filter: soxr's HQ buffers 100 ms at a time
            # from 8 kHz, a tenth of a second on every answer. Going up, cubic interpolation
            # (QQ) passes every frame on at once and has nothing to fold back; going down,
            # LQ's filter keeps what lies above the new Nyquist out, about 20 ms late.
            quality = "QQ" if sample_rate < self.rate else "LQ"
            # float32 out, rounded to int16 here: soxr dithers int16 output with a random
            # seed, which would make the same call decode differently twice.
            self._resampler = soxr.ResampleStream(sample_rate, self.rate, 1, dtype="float32", quality=quality)
        self.vad = VoiceActivity(self.rate, self.settings.vad_aggressiveness, self.settings.min_voice,
                                 min_level_dbfs=self.settings.min_level_dbfs,
                                 confirm=self.settings.voice_confirmation)
        self._lane = pool.lane()
        self._results: queue.SimpleQueue[SpeechEvent] = queue.SimpleQueue()
        self._on_result = on_result
        # Audio kept at the model's rate: the pre-roll while quiet, the voice while it lasts.
        self._audio = np.zeros(0, dtype=np.int16)
        self._audio_start = 0  # position of _audio[0], in model-rate samples
        self._sent_until = 0
        self._voice_start: int | None = None
        self._listening = False
        self._grammar: tuple[str, ...] | None = None
        self._decoding: int | None = None  # the utterance being sent to the decoder
        self._numbers = itertools.count(1)
        self._decoding_start = 0
        self.samples_decoded = 0  # model-rate samples sent to Vosk: voices only, never silence
        self._finals_asked = 0  # utterances ended (a final result owed)
        self._finals_given = 0  # final results returned by poll, or dropped as stale
        self.caught_up = True  # the last `wait` saw the decoder idle
        self._last_number = 0
        self._stale_up_to = 0  # results of utterances up to this number are stale (the line stopped listening)
        self._state: _Utterance | None = None  # decoder side
        self._spare: tuple[tuple[str, ...] | None, Any] | None = None  # (grammar, recogniser) of the last utterance

    # ------------------------------------------------------------------ the line's side

    def listen(self, grammar: Sequence[str] | None, end_silence: float) -> None:
        """Expect speech from now on: ``grammar`` is the phrases this prompt allows (None: free speech)."""
        self._listening = True
        self._grammar = tuple(grammar) if grammar is not None else None
        self.vad.end_silence = end_silence
        if self._voice_start is not None and self._decoding is None:
            # The caller was already speaking (over the prompt): decode from the voice's start.
            self._begin(self._voice_start)

    def stop_listening(self) -> None:
        """Nothing said from now on matters; an utterance being decoded is dropped."""
        self._listening = False
        self._stale_up_to = self._last_number
        self._voice_start = None  # that voice is not decoded again when the line listens next
        if self._decoding is not None:
            self._decoding = None
            self._lane.submit(self._job_drop)

    def feed(self, samples: np.ndarray) -> list[SpeechEvent]:
        pcm = _as_int16(samples)
        if self._resampler is not None:
            resampled = self._resampler.resample_chunk(pcm.astype(np.float32) / 32768)
            pcm = np.round(np.clip(resampled, -1.0, 32767 / 32768) * 32768).astype(np.int16)
        events: list[SpeechEvent] = []
        self._audio = np.concatenate([self._audio, pcm]) if self._audio.size else pcm.copy()
        for voice in self.vad.feed(pcm):
            if isinstance(voice, VoiceStarted):
                self._voice_start = voice.at_sample
                events.append(SpeechStarted(self._to_input(voice.at_sample)))
                if self._listening:
                    self._begin(voice.at_sample)
            elif isinstance(voice, VoiceEnded):
                if self._decoding is not None:
                    self._send_until(voice.detected_sample)
                    self._finish(voice)
                self._voice_start = None
        if self._decoding is not None:
            self._send_until(self._audio_start + self._audio.size)
            if self._sent_until - self._decoding_start >= self.settings.max_utterance * self.rate:
                # A voice that never stops (a radio, a crowd): take what there is.
                end = self._sent_until
                self._finish(VoiceEnded(end, end))
                self.vad.reset()
                self._voice_start = None
        self._trim()
        return events + self.poll()

    def poll(self) -> list[SpeechEvent]:
        """Results the decoder has produced since the last call."""
        found: list[SpeechEvent] = []
        while True:
            try:
                event = self._results.get_nowait()
            except queue.Empty:
                return found
            if isinstance(event, FinalTranscript):
                self._finals_given += 1
            if isinstance(event, (PartialTranscript, FinalTranscript)) and event.utterance <= self._stale_up_to:
                continue  # the line stopped listening since
            found.append(event)

    def wait(self, timeout: float | None = None) -> list[SpeechEvent]:
        """Block until the decoder has caught up (files and tests), then ``poll``.

        With a ``timeout`` it may return before: ``caught_up`` then says so."""
        self.caught_up = self._lane.wait(timeout)
        return self.poll()

    def flush(self) -> list[SpeechEvent]:
        """End of the audio: a voice still going on is ended now."""
        events: list[SpeechEvent] = []
        if self._decoding is not None:
            end = self._audio_start + self._audio.size
            self._send_until(end)
            self._finish(VoiceEnded(end, end))
        self.vad.reset()
        self._voice_start = None
        return events + self.wait()

    def close(self) -> None:
        self.stop_listening()
        self.vad.close()
        self._lane.submit(self._job_release)
        self._lane.wait(5.0)

    # ------------------------------------------------------------------ sending audio

    def _begin(self, voice_start: int) -> None:
        number = next(self._numbers)
        self._decoding = number
        self._last_number = number
        self._decoding_start = voice_start
        first = max(self._audio_start, voice_start - int(self.settings.pre_roll * self.rate))
        self._sent_until = first
        grammar = self._grammar
        self._lane.submit(lambda: self._job_begin(number, grammar))

    def _send_until(self, position: int) -> None:
        if position <= self._sent_until:
            return
        start = self._sent_until - self._audio_start
        chunk = self._audio[start:position - self._audio_start].tobytes()
        self._sent_until = position
        number = self._decoding
        if chunk and number is not None:
            self.samples_decoded += len(chunk) // 2
            self._lane.submit(lambda: self._job_audio(number, chunk))

    @property
    def in_utterance(self) -> bool:
        """A voice is being sent to the decoder (its end not decided yet)."""
        return self._decoding is not None

    @property
    def results_owed(self) -> int:
        """Utterances whose end was decided but whose final result ``poll`` has not returned yet:
        a host on a virtual clock ``wait``s for them, so a file replays the same at any speed."""
        return self._finals_asked - self._finals_given

    def _finish(self, voice: VoiceEnded) -> None:
        number = self._decoding
        assert number is not None
        self._decoding = None
        self._finals_asked += 1
        start, end, detected = (self._to_input(self._decoding_start), self._to_input(voice.at_sample),
                                self._to_input(voice.detected_sample))
        self._lane.submit(lambda: self._job_final(number, start, end, detected))

    def _trim(self) -> None:
        """Keep the pre-roll (and the onset window) while quiet, the unsent voice while it lasts."""
        end = self._audio_start + self._audio.size
        keep_from = end - int((self.settings.pre_roll + self.settings.min_voice + 0.1) * self.rate)
        if self._decoding is not None:
            keep_from = min(keep_from, self._sent_until)
        elif self.vad.candidate_sample is not None:
            # An onset waiting for Silero's verdict: its audio is kept for the decoder.
            keep_from = min(keep_from, self.vad.candidate_sample - int(self.settings.pre_roll * self.rate))
        elif self._voice_start is not None:
            # A voice over a prompt: kept (up to max_utterance) in case the line listens to it.
            keep_from = min(keep_from, max(self._voice_start - int(self.settings.pre_roll * self.rate),
                                           end - int(self.settings.max_utterance * self.rate)))
        drop = keep_from - self._audio_start
        if drop > 0:
            self._audio = self._audio[drop:]
            self._audio_start += drop

    def _to_input(self, position: int) -> int:
        return int(round(position * self.input_rate / self.rate))

    # ------------------------------------------------------------------ the decoder's side

    def _job_begin(self, number: int, grammar: tuple[str, ...] | None) -> None:
        state = _Utterance(number, grammar)
        if self._spare is not None and self._spare[0] == grammar:
            # The same grammar as this call's last utterance: reset that recogniser rather
            # than build one. Without a grammar that matters: a new one takes ~75 ms to
            # build and decodes its first utterance several times slower (measured RTF 0.69
            # against 0.07-0.19 reused).
            state.recognizer = self._spare[1]
            state.recognizer.Reset()
        else:
            state.recognizer = self.model.new_recognizer(self.rate, grammar)
        self._spare = (grammar, state.recognizer)
        self._state = state

    def _job_audio(self, number: int, chunk: bytes) -> None:
        state = self._state
        if state is None or state.number != number or state.recognizer is None:
            return
        recognizer = state.recognizer
        if recognizer.AcceptWaveform(chunk):
            # Vosk found an endpoint of its own inside the voice: keep that piece.
            state.segments.append(json.loads(recognizer.Result()))
        if state.grammar is not None and self.settings.alternatives:
            state.audio.append(chunk)
        if self.settings.partials:
            state.since_partial += len(chunk) // 2
            if state.since_partial >= PARTIAL_EVERY_SECONDS * self.rate:
                state.since_partial = 0
                partial = _drop_unknown(str(json.loads(recognizer.PartialResult()).get("partial", "")))
                if partial and partial != state.last_partial:
                    state.last_partial = partial
                    self._emit(PartialTranscript(number, partial))

    def _job_final(self, number: int, start: int, end: int, detected: int) -> None:
        state = self._state
        if state is None or state.number != number or state.recognizer is None:
            return
        recognizer = state.recognizer
        pieces = [*state.segments, json.loads(recognizer.FinalResult())]
        transcript = _transcript(pieces)
        if state.audio and transcript.confidence < self.settings.alternatives_below:
            transcript = dataclasses.replace(transcript, alternatives=self._n_best(state))
        self._state = None
        self._emit(FinalTranscript(number, transcript, start, end, detected))

    def _n_best(self, state: _Utterance) -> tuple[Alternative, ...]:
        """The utterance decoded again for its n-best list (a doubtful result only: cheap with a grammar)."""
        nbest = self.model.new_recognizer(self.rate, state.grammar, words=False, alternatives=self.settings.alternatives)
        for chunk in state.audio:
            nbest.AcceptWaveform(chunk)
        return _alternatives(json.loads(nbest.FinalResult()))

    def _job_drop(self) -> None:
        self._state = None

    def _job_release(self) -> None:
        self._state = None
        self._spare = None  # the call is over: its recogniser's memory goes back

    def _emit(self, event: SpeechEvent) -> None:
        self._results.put(event)
        if self._on_result is not None:
            self._on_result()


# ---------------------------------------------------------------------- Vosk's JSON, parsed


def _transcript(pieces: list[dict[str, Any]]) -> Transcript:
    words: list[Word] = []
    for piece in pieces:
        for item in piece.get("result", []) or []:
            if isinstance(item, dict):
                words.append(Word(str(item.get("word", "")), float(item.get("conf", 0.0)),
                                  float(item.get("start", 0.0)), float(item.get("end", 0.0))))
    if not words:  # SetWords gives "result"; without words, only "text"
        text = " ".join(str(piece.get("text", "")) for piece in pieces)
        words = [Word(w, 1.0, 0.0, 0.0) for w in text.split()]
    unknown = sum(1 for w in words if w.text in UNKNOWN_TOKENS)
    text = " ".join(w.text for w in words if w.text not in UNKNOWN_TOKENS)
    return Transcript(text, tuple(words), (), unknown)


def _alternatives(result: dict[str, Any]) -> tuple[Alternative, ...]:
    found = []
    for item in result.get("alternatives", []) or []:
        if isinstance(item, dict):
            found.append(Alternative(_drop_unknown(str(item.get("text", ""))), float(item.get("confidence", 0.0))))
    return tuple(found)


def _drop_unknown(text: str) -> str:
    return " ".join(w for w in text.split() if w not in UNKNOWN_TOKENS)


def _as_int16(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"the recogniser takes one channel: an array of shape (n,), not {x.shape}")
    if x.dtype == np.int16:
        return x
    if x.dtype.kind == "f":
        return np.round(np.clip(x, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    raise TypeError(f"samples must be int16 or float, not {x.dtype}")
