"""The Q.24 test battery: every accept and reject case, as generated signals.

Figures: ITU-T Q.24 (AT&T column, as the MESi measurement page reproduces it), the Mitel
MT8870D datasheet, spandsp and Asterisk. Tests assert on it; ``bench/dtmf.py`` runs this
detector and the reference receivers on the very same signals.

Each :class:`Case` is one signal with the keys a receiver should report (``expect``): the
key itself for an accept case, nothing for a reject case, two keys for two presses.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import generator
from .tones import KEY_FREQUENCIES

KEYS = "123A456B789C*0#D"
ACCEPT_OFFSET = 0.015  # ±1.5 % ...
ACCEPT_OFFSET_HZ = 2.0  # ... ±2 Hz
REJECT_OFFSET = 0.035
TWISTS = (-8.0, 4.0)  # high tone weaker by 8 dB, stronger by 4 dB
ACCEPT_MS, REJECT_MS = 40, 23
PAUSE_MS, DROPOUT_MS = 40, 10
LEVELS = (0.0, -5.0, -10.0, -15.0, -20.0, -25.0)


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    samples: np.ndarray = field(repr=False)
    expect: str  # the keys in order; "" for a reject case
    sample_rate: int = 8000

    @property
    def accept(self) -> bool:
        return bool(self.expect)


def _lead(rng: np.random.Generator) -> float:
    # A random start, so the tone falls anywhere on the detector's block grid.
    return float(rng.uniform(0.05, 0.1))


def _one(key: str, rng: np.random.Generator, on_ms: float = 100, **tone: Any) -> np.ndarray:
    signal, _ = generator.sequence(key, on=on_ms / 1000, lead=_lead(rng), tail=0.1, rng=rng, **tone)
    return signal


def _offset(frequency: float, sign: int, accept: bool) -> float:
    """Relative offset at Q.24's accept limit (±1.5 % ±2 Hz) or reject limit (±3.5 %)."""
    return sign * ((ACCEPT_OFFSET + ACCEPT_OFFSET_HZ / frequency) if accept else REJECT_OFFSET)


def offset_cases(rng: np.random.Generator) -> Iterator[Case]:
    for key, sign, which in itertools.product(KEYS, (1, -1), ("both", "low", "high")):
        low, high = KEY_FREQUENCIES[key]
        for accept in (True, False):
            tone = {"low_offset": _offset(low, sign, accept) if which != "high" else 0.0,
                    "high_offset": _offset(high, sign, accept) if which != "low" else 0.0}
            label = f"{'+' if sign > 0 else '-'}{'1.5%+2Hz' if accept else '3.5%'} {which}"
            yield Case("offset", f"{key} {label}", _one(key, rng, **tone), key if accept else "")


def twist_cases(rng: np.random.Generator) -> Iterator[Case]:
    for key, twist in itertools.product(KEYS, TWISTS):
        yield Case("twist", f"{key} twist {twist:+.0f} dB", _one(key, rng, twist_db=twist), key)


def duration_cases(rng: np.random.Generator) -> Iterator[Case]:
    for key in KEYS:
        yield Case("duration", f"{key} {ACCEPT_MS} ms", _one(key, rng, on_ms=ACCEPT_MS), key)
        yield Case("duration", f"{key} {REJECT_MS} ms", _one(key, rng, on_ms=REJECT_MS), "")


def level_cases(rng: np.random.Generator) -> Iterator[Case]:
    for key, level in itertools.product(KEYS, LEVELS):
        yield Case("level", f"{key} {level:.0f} dBm0", _one(key, rng, level_dbm0=level), key)


def noise_cases(rng: np.random.Generator) -> Iterator[Case]:
    for key in KEYS:
        signal = generator.add_white_noise(_one(key, rng), 15.0, rng)
        yield Case("noise", f"{key} SNR 15 dB", signal, key)
    for level in (-10.0, -25.0, -40.0):
        yield Case("noise", f"noise alone {level:.0f} dBm0", generator.white_noise(2.0, level, rng=rng), "")


def g711_cases(rng: np.random.Generator) -> Iterator[Case]:
    for key, law, level in itertools.product(KEYS, ("mu", "a"), (-3.0, -25.0)):
        signal = g711_round_trip(_one(key, rng, level_dbm0=level), law)
        yield Case("g711", f"{key} {law}-law {level:.0f} dBm0", signal, key)


def pause_cases(rng: np.random.Generator) -> Iterator[Case]:
    for key in KEYS:
        first, _ = generator.sequence(key, on=0.06, lead=_lead(rng), tail=0.0, rng=rng)
        second, _ = generator.sequence(key, on=0.06, lead=PAUSE_MS / 1000, tail=0.1, rng=rng)
        yield Case("pause", f"{key} twice, {PAUSE_MS} ms apart", np.concatenate([first, second]), key + key)
        signal, presses = generator.sequence(key, on=0.1, lead=_lead(rng), tail=0.1, rng=rng)
        cut = presses[0].start + int(rng.uniform(0.03, 0.06) * 8000)
        yield Case("pause", f"{key} with a {DROPOUT_MS} ms drop-out",
                   generator.with_dropout(signal, cut, DROPOUT_MS * 8), key)


def corner_cases(rng: np.random.Generator) -> Iterator[Case]:
    """Several parameters at their limits at once: 40 ms, ±1.5 % ±2 Hz on both tones, twist, -25 dBm0."""
    for key, s_low, s_high, twist in itertools.product(KEYS, (1, -1), (1, -1), TWISTS):
        low, high = KEY_FREQUENCIES[key]
        level = -25.0 if twist > 0 else -25.0 - twist  # the weaker tone sits at -25 dBm0
        tone = {"low_offset": s_low * (ACCEPT_OFFSET + ACCEPT_OFFSET_HZ / low),
                "high_offset": s_high * (ACCEPT_OFFSET + ACCEPT_OFFSET_HZ / high),
                "twist_db": twist, "level_dbm0": level}
        signal = _one(key, rng, on_ms=ACCEPT_MS, **tone)
        name = f"{key} 40 ms {s_low:+d}/{s_high:+d} twist {twist:+.0f}"
        yield Case("corner", name, signal, key)
        yield Case("corner", name + " SNR 15 dB", generator.add_white_noise(signal, 15.0, rng), key)


FAMILIES = {
    "offset": offset_cases,
    "twist": twist_cases,
    "duration": duration_cases,
    "level": level_cases,
    "noise": noise_cases,
    "g711": g711_cases,
    "pause": pause_cases,
    "corner": corner_cases,
}


def battery(seed: int = 24, families: tuple[str, ...] = tuple(FAMILIES)) -> list[Case]:
    rng = np.random.default_rng(seed)
    return [case for family in families for case in FAMILIES[family](rng)]


def g711_round_trip(signal: np.ndarray, law: str) -> np.ndarray:
    """``signal`` through a G.711 encoder and decoder (``law`` "mu" or "a"), as a phone line does.

    The bit-exact codec of the standard library's ``audioop`` (``audioop-lts`` on Python
    3.13 and later, where the module left the standard library).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    pcm = generator.to_int16(signal).tobytes()
    if law == "mu":
        decoded = audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2)
    elif law == "a":
        decoded = audioop.alaw2lin(audioop.lin2alaw(pcm, 2), 2)
    else:
        raise ValueError(f"law is 'mu' or 'a', not {law!r}")
    return np.frombuffer(decoded, dtype=np.int16).astype(np.float64) / 32768.0
