"""Keypad tones taken out of the audio passed on, so a speech recogniser never hears them.

Asterisk does this on its channels; pipecat users ask for it. :class:`DtmfMuter` passes the
audio on with a fixed delay (30 ms) and every sub-block where a dual tone was heard
replaced by silence, and reports the keys as :class:`DtmfDetector` does. The delay is what
it takes to know, before a sample leaves, whether a tone covered it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .detector import NATIVE_RATES, WINDOW_SUB_BLOCKS, DtmfSettings, KeyTone, _Core, as_float


class DtmfMuter:
    def __init__(self, sample_rate: int = 8000, settings: DtmfSettings | None = None) -> None:
        if sample_rate not in NATIVE_RATES:
            raise ValueError(f"muting works at {NATIVE_RATES[0]} or {NATIVE_RATES[1]} Hz; resample to one of them first")
        self.sample_rate = sample_rate
        # Every sub-block is analysed as it arrives (no `analysis_ms` wait): the fate of each
        # sample must be known within the fixed delay.
        settings = replace(settings or DtmfSettings(), analysis_ms=0.0)
        self._core = _Core(sample_rate, 1, settings, record_tones=True)
        sub = self._core.sub
        # A sample's fate is known once every window that could cover it (and the ragged
        # edge after it) has been seen, plus the part of a sub-block still waiting.
        self.delay = (WINDOW_SUB_BLOCKS + 2) * sub
        self._pending = np.zeros(self.delay)  # audio received, not yet passed on
        self._pending_start = -self.delay  # stream position of _pending[0]
        self._muted: list[tuple[int, int]] = []  # sample ranges, stream positions

    def process(self, samples: np.ndarray | Sequence[float]) -> tuple[np.ndarray, list[KeyTone]]:
        """Audio in, the same amount of audio out (``delay`` samples later, tones silenced), keys found."""
        x = as_float(samples)
        tones = self._core.feed(x[None, :])[0]
        self._pending = np.concatenate([self._pending, x])
        return self._pass_on(len(x)), tones

    def flush(self) -> tuple[np.ndarray, list[KeyTone]]:
        """The audio still held back (muted where needed) and any press open at the end."""
        closing = self._core.flush()[0]
        return self._pass_on(len(self._pending)), closing

    def _pass_on(self, amount: int) -> np.ndarray:
        """The oldest ``amount`` held samples, silenced wherever a tone was heard."""
        sub = self._core.sub
        for first, last in self._core.tone_spans[0]:
            self._muted.append((max(first, 0) * sub, (last + 1) * sub))
        self._core.tone_spans[0].clear()
        out = self._pending[:amount].copy()
        start = self._pending_start
        for first, last in self._muted:
            lo, hi = max(first - start, 0), min(last - start, amount)
            if lo < hi:
                out[lo:hi] = 0.0
        self._pending = self._pending[amount:]
        self._pending_start += amount
        # Ranges wholly passed on are done with.
        self._muted = [(first, last) for first, last in self._muted if last > self._pending_start]
        return out
