"""DTMF tone generator: keys, durations, gaps, levels, twist, frequency offsets, noise.

Used by the tests (every Q.24 case is generated, not recorded) and by the audio fixtures.
Levels are in dBm0 per tone: 0 dBm0 is a sine 3.14 dB below a full-scale sine (G.711's
digital milliwatt), so a full-scale sample is 1.0 in float and 32767 in int16.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .tones import KEY_FREQUENCIES, dbm0_to_amplitude


@dataclass(frozen=True)
class Press:
    """One key in a generated signal, where it really is (for checking a detector)."""

    key: str
    start: int  # sample index
    end: int


def tone(
    key: str,
    duration: float,
    sample_rate: int = 8000,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
    low_offset: float = 0.0,
    high_offset: float = 0.0,
    phase: tuple[float, float] | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One dual tone as float64 samples.

    ``level_dbm0`` is the level of the low tone; the high tone is ``twist_db`` above it
    (positive: high stronger, "reverse twist"; negative: high weaker). Offsets are relative
    (``0.015`` = +1.5 %). Phases are random unless given.
    """
    low, high = KEY_FREQUENCIES[key]
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    rng = rng or np.random.default_rng()
    p_low, p_high = phase if phase is not None else rng.uniform(0, 2 * np.pi, 2)
    a_low = dbm0_to_amplitude(level_dbm0)
    a_high = dbm0_to_amplitude(level_dbm0 + twist_db)
    return (a_low * np.sin(2 * np.pi * low * (1 + low_offset) * t + p_low)
            + a_high * np.sin(2 * np.pi * high * (1 + high_offset) * t + p_high))


def sequence(
    keys: Iterable[str],
    on: float = 0.1,
    off: float = 0.1,
    sample_rate: int = 8000,
    lead: float = 0.1,
    tail: float = 0.1,
    rng: np.random.Generator | None = None,
    **tone_args: float,
) -> tuple[np.ndarray, list[Press]]:
    """Keys one after the other, ``on`` seconds each with ``off`` seconds between."""
    rng = rng or np.random.default_rng()
    parts = [np.zeros(int(round(lead * sample_rate)))]
    presses = []
    position = len(parts[0])
    for index, key in enumerate(keys):
        if index:
            gap = np.zeros(int(round(off * sample_rate)))
            parts.append(gap)
            position += len(gap)
        samples = tone(key, on, sample_rate, rng=rng, **tone_args)  # type: ignore[arg-type]
        parts.append(samples)
        presses.append(Press(key, position, position + len(samples)))
        position += len(samples)
    parts.append(np.zeros(int(round(tail * sample_rate))))
    return np.concatenate(parts), presses


def with_dropout(signal: np.ndarray, start: int, length: int) -> np.ndarray:
    """A copy with ``length`` samples of silence from ``start`` (a line drop-out)."""
    out = signal.copy()
    out[start:start + length] = 0.0
    return out


def add_white_noise(signal: np.ndarray, snr_db: float, rng: np.random.Generator | None = None,
                    reference: np.ndarray | None = None) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` below the power of ``reference`` (default: the signal's non-silent part)."""
    rng = rng or np.random.default_rng()
    ref = signal if reference is None else reference
    active = ref[np.abs(ref) > 1e-9]
    power = float(np.mean(active ** 2)) if active.size else 0.0
    noise_power = power / (10 ** (snr_db / 10))
    return signal + rng.normal(0.0, np.sqrt(noise_power), signal.shape)


def white_noise(duration: float, level_dbm0: float, sample_rate: int = 8000,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Noise alone, with the power of a sine at ``level_dbm0``."""
    rng = rng or np.random.default_rng()
    rms = dbm0_to_amplitude(level_dbm0) / np.sqrt(2)
    return rng.normal(0.0, rms, int(round(duration * sample_rate)))


def to_int16(signal: np.ndarray) -> np.ndarray:
    return np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)
