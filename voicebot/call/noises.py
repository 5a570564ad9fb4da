"""Sounds that are not a voice, as a phone line brings them: the caller's cough or breath,
a click, crackle, mains hum, a burst of line noise.

The audio fixtures play them during prompts that allow barge-in, and the call benchmark
counts how many stop a prompt: none should (a cut prompt makes the caller start over).
Each is deterministic for a seed, 8 kHz float in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RATE = 8000


def _band(rng: np.random.Generator, seconds: float, low: float, high: float) -> np.ndarray:
    """White noise limited to low..high Hz (shaped in the frequency domain), peak 1."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    shaped = np.fft.irfft(spectrum, n)
    return shaped / np.abs(shaped).max()


def _envelope(n: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / RATE
    return np.minimum(t / attack, 1.0) * np.exp(-t / decay)


def click(rng: np.random.Generator) -> np.ndarray:
    """A handset knock or a relay: a few samples."""
    out = np.zeros(int(0.02 * RATE))
    out[:6] = np.array([0.9, -0.7, 0.5, -0.3, 0.15, -0.05]) * rng.uniform(0.6, 1.0)
    return out


def cough(rng: np.random.Generator) -> np.ndarray:
    """A sharp attack and a 80 ms decay of breathy noise (300-2500 Hz): 350 ms, -6 dBFS peak."""
    burst = _band(rng, 0.35, 300, 2500)
    return 0.5 * burst * _envelope(burst.size, 0.01, 0.08)


def breath(rng: np.random.Generator) -> np.ndarray:
    """An audible breath into the mouthpiece: 600 ms of soft, swelling noise."""
    air = _band(rng, 0.6, 500, 3000)
    return 0.1 * air * np.hanning(air.size)


def crackle(rng: np.random.Generator) -> np.ndarray:
    """A bad line: 2 s of random clicks (30 a second)."""
    out = np.zeros(2 * RATE)
    where = rng.integers(0, out.size, 60)
    out[where] = rng.uniform(-0.5, 0.5, where.size)
    return out


def hum(rng: np.random.Generator) -> np.ndarray:
    """Mains hum picked up by the line: 2 s of 50 Hz and its third harmonic (-20 dBFS)."""
    t = np.arange(2 * RATE) / RATE
    phase = rng.uniform(0, 2 * np.pi)
    return 0.1 * np.sin(2 * np.pi * 50 * t + phase) + 0.05 * np.sin(2 * np.pi * 150 * t + 3 * phase)


def burst(rng: np.random.Generator) -> np.ndarray:
    """A burst of white line noise: 300 ms at -20 dBFS RMS."""
    return rng.normal(0, 0.1, int(0.3 * RATE))


NOISES: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "click": click, "cough": cough, "breath": breath, "crackle": crackle, "hum": hum, "burst": burst,
}


def noise(kind: str, seed: int = 0) -> np.ndarray:
    if kind not in NOISES:
        raise ValueError(f"unknown noise {kind!r}: one of {', '.join(NOISES)}")
    return NOISES[kind](np.random.default_rng(seed))
