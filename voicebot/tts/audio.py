"""Clip finishing: resample to the line's rate, trim the engine's silence, set one level.

Every clip a caller hears goes through :func:`finish_clip`, so prompts, digits and dynamic
fills sound equally loud and join without the half second of silence eSpeak NG leaves at
the end of every utterance (the pauses between pieces are the renderer's to choose).

Loudness is the *active speech level*: the RMS of the 20 ms frames within
``ACTIVE_GATE_DB`` of the loudest one, so the pauses inside a long prompt do not make it
louder than a single word (a simpler cousin of ITU-T P.56). A clip whose peaks would pass
the ceiling is turned down instead, so it is never clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

ACTIVE_GATE_DB = 35.0  # frames this far below the loudest count as pauses, not speech
TRIM_FLOOR_DB = 50.0  # what is this far below the loudest 5 ms counts as silence at the ends
TRIM_MARGIN_S = 0.015  # kept either side of the speech (consonant onsets, decays)
FADE_S = 0.003  # a cut never starts or ends on a non-zero sample (no click)


@dataclass(frozen=True)
class Level:
    """Where every clip is set: active speech level and peak ceiling, in dBFS (full scale 1.0)."""

    target_dbfs: float = -20.0
    peak_dbfs: float = -1.0

    def tag(self) -> str:
        """A stable text for cache keys: a change of level is a different clip."""
        return f"{self.target_dbfs:.1f}/{self.peak_dbfs:.1f}"


def active_level_dbfs(samples: np.ndarray, rate: int) -> float:
    """The RMS level, in dBFS, of the frames that carry speech; ``-inf`` for silence."""
    x = np.asarray(samples, dtype=np.float64)
    frame = max(1, rate // 50)
    n = len(x) // frame
    if n == 0:
        power = np.array([np.mean(x**2)]) if len(x) else np.zeros(1)
    else:
        power = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    loudest = float(power.max())
    if loudest <= 1e-12:
        return float("-inf")
    active = power[power >= loudest * 10 ** (-ACTIVE_GATE_DB / 10)]
    return float(10 * np.log10(np.mean(active)))


def trim_silence(samples: np.ndarray, rate: int) -> np.ndarray:
    """``samples`` without the silence before and after the speech (a short margin stays)."""
    x = np.asarray(samples, dtype=np.float32)
    frame = max(1, rate // 200)
    n = len(x) // frame
    if n == 0:
        return x
    power = np.mean(x[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    loudest = float(power.max())
    if loudest <= 1e-12:
        return x[:0]
    loud = np.flatnonzero(power >= max(loudest * 10 ** (-TRIM_FLOOR_DB / 10), 1e-10))
    margin = int(TRIM_MARGIN_S * rate)
    start = max(0, int(loud[0]) * frame - margin)
    end = min(len(x), (int(loud[-1]) + 1) * frame + margin)
    out = x[start:end].copy()
    fade = min(int(FADE_S * rate), len(out) // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
        out[:fade] *= ramp
        out[-fade:] *= ramp[::-1]
    return out


def normalise(samples: np.ndarray, rate: int, level: Level) -> np.ndarray:
    """``samples`` at ``level``'s active speech level, peaks at most at its ceiling."""
    x = np.asarray(samples, dtype=np.float32)
    current = active_level_dbfs(x, rate)
    if not np.isfinite(current):
        return x
    gain = 10 ** ((level.target_dbfs - current) / 20)
    peak = float(np.max(np.abs(x)))
    ceiling = 10 ** (level.peak_dbfs / 20)
    if peak * gain > ceiling:
        gain = ceiling / peak
    return (x * np.float32(gain)).astype(np.float32)


def finish_clip(raw: np.ndarray, raw_rate: int, rate: int, level: Level) -> np.ndarray:
    """An engine's output made ready for a line: at ``rate``, trimmed, at ``level`` (float32)."""
    x = np.asarray(raw, dtype=np.float32)
    if raw_rate != rate and len(x):
        x = soxr.resample(x, raw_rate, rate, quality="HQ").astype(np.float32)
    return normalise(trim_silence(x, rate), rate, level)


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(max(0, int(round(seconds * rate))), dtype=np.float32)
