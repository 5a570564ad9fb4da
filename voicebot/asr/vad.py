"""Where a voice starts and stops: WebRTC's VAD frame by frame, with our own onset and end rules.

Vosk's own endpointing waits 0.8-1.0 s of silence after the last word (and sometimes
never fires on a digit string); a phone line must answer sooner. So the line decides the
end of speech itself: ``end_silence`` seconds without voice, a setting per kind of prompt
(short after a menu choice or digits, longer after a free sentence). The onset rule keeps
a click, a cough or a burst of line noise from counting as speech: ``min_voice`` seconds of
voice, nearly unbroken, before a voice is said to have started.

``VoiceActivity.feed(samples) -> list[VoiceStarted | VoiceEnded]``; positions are samples
at the detector's rate from the first sample fed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

VAD_RATES = (8000, 16000, 32000, 48000)
FRAME_SECONDS = 0.02  # webrtcvad takes 10, 20 or 30 ms frames
ONSET_SHARE = 0.8  # of the onset window's frames that must be voiced


@dataclass(frozen=True)
class VoiceStarted:
    at_sample: int  # the first voiced frame of the onset


@dataclass(frozen=True)
class VoiceEnded:
    at_sample: int  # the end of the last voiced frame
    detected_sample: int  # where the trailing silence was long enough (the decision's time)


VoiceEvent = VoiceStarted | VoiceEnded


class VoiceActivity:
    """One stream of int16 samples at one of ``VAD_RATES``; any chunk size."""

    def __init__(self, sample_rate: int, aggressiveness: int = 2, min_voice: float = 0.12,
                 end_silence: float = 0.3, min_level_dbfs: float = -55.0) -> None:
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
            voiced = self._vad.is_speech(data[start:start + self._frame_bytes], self.sample_rate) and bool(loud[index])
            event = self._judge(voiced)
            if event is not None:
                events.append(event)
        return events

    def reset(self) -> None:
        """Forget any voice in progress (the line stopped listening); positions go on."""
        self.in_voice = False
        self._recent.clear()

    def _judge(self, voiced: bool) -> VoiceEvent | None:
        frame = self._frames
        self._frames += 1
        self._recent.append(voiced)
        if voiced:
            self._last_voiced = frame
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
