"""Streaming DTMF detection with numpy: ``DtmfDetector.feed(samples) -> list[KeyTone]``.

How it decides (every figure is a :class:`DtmfSettings` field):

1. The audio is cut into 5 ms sub-blocks on a fixed grid from the stream's first sample
   (so any chunking gives identical results). For each sub-block one matrix product gives
   its DFT at the eight keypad frequencies, phase-referenced to absolute time, so the DFT
   of any run of sub-blocks is a plain sum.
2. Every 5 ms, a 20 ms window (four sub-blocks) is screened: the strongest tone of each
   group, its power against the window's whole power, and level and twist, loosely.
3. A window that passes is checked strictly. Each tone's true frequency comes from the
   phase turn between the window's two 10 ms halves; it must lie within
   ``frequency_tolerance`` of the key's (Q.24: accept ±1.5 % ±2 Hz, reject ±3.5 %). Levels
   and twist are corrected for that offset. The two tones must carry ``min_purity`` of the
   window's power: speech and noise spread theirs.
4. A press is a run of such windows for one key. Its real extent comes from the two
   tones' amplitudes in each 5 ms sub-block, as a fraction of the press's own level. That
   gives the on-time (Q.24: accept 40 ms, reject 23 ms) and the length of a gap
   (a ≤10 ms drop-out is bridged, a ≥40 ms pause separates two presses), whatever the level.

Several calls' streams can be fed together (``MultiStreamDtmfDetector``): the DFTs and the
screening of all of them are one numpy operation. Rates other than 8 and 16 kHz are
resampled to 8 kHz with soxr.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .tones import FREQUENCIES, KEY_AT, power_to_dbm0, dbm0_to_amplitude

NATIVE_RATES = (8000, 16000)
SUB_BLOCK_SECONDS = 0.005
WINDOW_SUB_BLOCKS = 4  # 20 ms
HISTORY_SUB_BLOCKS = 16  # Z values kept for re-measuring a press's first sub-blocks


@dataclass(frozen=True)
class DtmfSettings:
    """What counts as a key. Defaults sit between Q.24's accept and reject limits."""

    min_level_dbm0: float = -36.0  # per tone; Q.24 asks for -25 dBm0
    max_normal_twist_db: float = 10.0  # high tone weaker than the low one by at most this (Q.24: 8)
    max_reverse_twist_db: float = 6.0  # high tone stronger by at most this (Q.24: 4)
    frequency_tolerance: float = 0.025  # relative, plus frequency_tolerance_hz (accept 1.5 %+2 Hz, reject 3.5 %)
    frequency_tolerance_hz: float = 1.0
    min_purity: float = 0.75  # share of the window's power the two tones must carry
    min_steadiness: float = 0.7  # a tone's weaker 10 ms half of the window against its stronger one
    min_on_ms: float = 31.5  # accept 40 ms, reject 23 ms
    bridge_ms: float = 25.0  # a gap shorter than this inside a press is a drop-out (10 ms), longer a pause (40 ms)


@dataclass(frozen=True)
class KeyTone:
    """One key press found in the audio. Sample indices are at the stream's own rate."""

    key: str
    start_sample: int
    end_sample: int
    sample_rate: int
    low_dbm0: float
    high_dbm0: float

    @property
    def start(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def end(self) -> float:
        return self.end_sample / self.sample_rate

    @property
    def duration(self) -> float:
        return (self.end_sample - self.start_sample) / self.sample_rate

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "duration": round(self.duration, 4),
            "low_dbm0": round(self.low_dbm0, 1),
            "high_dbm0": round(self.high_dbm0, 1),
        }


@dataclass
class _Press:
    """A press being followed in one stream (positions are sub-block numbers)."""

    row: int
    col: int
    last_hit: int
    first_sub: int  # the sub-block amps[0] belongs to
    amps: list[tuple[float, float]]  # each sub-block's low and high tone amplitude (full scale = 1)
    powers_low: list[float] = field(default_factory=list)
    powers_high: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return KEY_AT[(self.row, self.col)]

    def references(self) -> tuple[float, float]:
        """The press's own amplitudes: the median of its windows, robust to the edge ones."""
        return math.sqrt(2 * float(np.median(self.powers_low))), math.sqrt(2 * float(np.median(self.powers_high)))

    def coverage(self, k: int, refs: tuple[float, float]) -> float:
        """Share of sub-block ``k`` the press's two tones fill, from their amplitudes there."""
        low, high = self.amps[k - self.first_sub]
        return min(1.0, (low / refs[0] + high / refs[1]) / 2)


class _Core:
    """The detector for ``streams`` streams at a native rate; the public classes wrap it."""

    def __init__(self, sample_rate: int, streams: int, settings: DtmfSettings, record_tones: bool = False) -> None:
        if sample_rate not in NATIVE_RATES:
            raise ValueError(f"native rates are {NATIVE_RATES}, not {sample_rate}")
        self.rate = sample_rate
        self.streams = streams
        self.settings = settings
        self.sub = int(round(sample_rate * SUB_BLOCK_SECONDS))
        n = np.arange(self.sub)
        freqs = np.array(FREQUENCIES, dtype=np.float64)
        angle = 2 * np.pi * np.outer(n, freqs) / sample_rate
        # Columns: cos for the eight frequencies, then -sin: a real matrix product gives Re, Im.
        self.basis = np.hstack([np.cos(angle), -np.sin(angle)])
        # Phase of each sub-block's first sample, so sums of sub-blocks stay coherent. The
        # keypad frequencies are whole hertz, so the phase repeats after `period` sub-blocks.
        self.period = _phase_period(self.sub, sample_rate)
        j = np.arange(self.period)[:, None]
        turns = (j * self.sub * np.array(FREQUENCIES, dtype=np.int64)[None, :]) % sample_rate
        self.phase = np.exp(-2j * np.pi * turns / sample_rate)
        self.window_len = WINDOW_SUB_BLOCKS * self.sub
        self.half_len = self.window_len // 2
        # For the strict check: Hann-windowed DFTs of the window's two halves, whose low
        # side lobes keep the other group's tone out of each tone's phase.
        m = np.arange(self.half_len)
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * (m + 0.5) / self.half_len)
        self.half_basis = hann[:, None] * np.exp(-2j * np.pi * np.outer(m, freqs) / sample_rate)
        self.half_turn = np.exp(-2j * np.pi * freqs * self.half_len / sample_rate)
        self.amp_scale = 2.0 / self.sub
        self.min_power = dbm0_to_amplitude(settings.min_level_dbm0) ** 2 / 2
        self.tolerance = settings.frequency_tolerance * freqs + settings.frequency_tolerance_hz
        # Per stream: leftover samples, Z and energy history, press state.
        self.leftover = np.zeros((streams, 0))
        self.z_hist = np.zeros((streams, HISTORY_SUB_BLOCKS, 8), dtype=np.complex128)
        self.e_hist = np.zeros((streams, HISTORY_SUB_BLOCKS))
        self.s_hist = np.zeros((streams, self.window_len))  # the last window's samples
        self.count = 0  # sub-blocks seen (the same for every stream)
        self.presses: list[_Press | None] = [None] * streams
        # Sub-block ranges where a dual tone was heard, for muting (only when asked for).
        self.record_tones = record_tones
        self.tone_spans: list[list[tuple[int, int]]] = [[] for _ in range(streams)]

    # -------------------------------------------------------------- feeding

    def feed(self, samples: np.ndarray) -> list[list[KeyTone]]:
        """``samples``: float64 array (streams, n). Returns the presses that ended, per stream."""
        if self.leftover.shape[1]:
            samples = np.concatenate([self.leftover, samples], axis=1)
        usable = samples.shape[1] // self.sub * self.sub
        self.leftover = samples[:, usable:]
        found: list[list[KeyTone]] = [[] for _ in range(self.streams)]
        if not usable:
            return found
        s_all = np.concatenate([self.s_hist, samples[:, :usable]], axis=1)
        blocks = samples[:, :usable].reshape(self.streams, -1, self.sub)
        count = blocks.shape[1]
        local = blocks @ self.basis  # (streams, count, 16)
        index = (self.count + np.arange(count)) % self.period
        z = (local[..., :8] + 1j * local[..., 8:]) * self.phase[index]
        energy = np.einsum("sbn,sbn->sb", blocks, blocks)
        h = HISTORY_SUB_BLOCKS
        z_all = np.concatenate([self.z_hist, z], axis=1)
        e_all = np.concatenate([self.e_hist, energy], axis=1)
        # Windows ending at each new sub-block: four sub-blocks summed in a fixed order, so
        # the result does not depend on how the audio was chunked.
        w1 = z_all[:, h - 3:h - 3 + count] + z_all[:, h - 2:h - 2 + count]
        w2 = z_all[:, h - 1:h - 1 + count] + z_all[:, h:h + count]
        total = (e_all[:, h - 3:h - 3 + count] + e_all[:, h - 2:h - 2 + count]
                 + e_all[:, h - 1:h - 1 + count] + e_all[:, h:h + count]) / self.window_len
        window = w1 + w2
        power = 2 * (window.real ** 2 + window.imag ** 2) / self.window_len ** 2
        candidates = self._screen(power, total)
        busy = candidates.any(axis=1)
        for stream in range(self.streams):
            if busy[stream] or self.presses[stream] is not None:
                found[stream] = self._follow(stream, candidates[stream], power[stream], total[stream],
                                             z_all[stream], s_all[stream])
        self.s_hist = s_all[:, -self.window_len:]
        self.z_hist = z_all[:, -h:]
        self.e_hist = e_all[:, -h:]
        self.count += count
        return found

    def _screen(self, power: np.ndarray, total: np.ndarray) -> np.ndarray:
        """Windows worth the strict check: loose versions of level and purity."""
        low = power[..., :4].max(axis=-1)
        high = power[..., 4:].max(axis=-1)
        loose = self.min_power * 0.25  # room for an offset's loss, which the strict check undoes
        return (low > loose) & (high > loose) & (low + high > 0.4 * total)

    # -------------------------------------------------------------- one stream

    def _follow(self, stream: int, candidates: np.ndarray, power: np.ndarray, total: np.ndarray,
                z_all: np.ndarray, s_all: np.ndarray) -> list[KeyTone]:
        found: list[KeyTone] = []
        base = self.count - HISTORY_SUB_BLOCKS  # sub-block number of z_all[0]
        for offset in range(candidates.shape[0]):
            j = self.count + offset  # the window ending at sub-block j
            press = self.presses[stream]
            if press is not None:
                press.amps.append(self._amps(z_all[j - base], press.row, press.col))
            hit = None
            if candidates[offset]:
                hit = self._check(power[offset], total[offset],
                                  s_all[(offset + 1) * self.sub:(offset + 1) * self.sub + self.window_len],
                                  z_all[j - base - WINDOW_SUB_BLOCKS + 1:j - base + 1])
            if hit is not None:
                row, col, p_low, p_high = hit
                if self.record_tones:
                    self.tone_spans[stream].append((j - WINDOW_SUB_BLOCKS + 1, j))
                if press is not None and (press.row, press.col) != (row, col):
                    found += self._end(stream, press, j - 1)
                    press = None
                if press is None:
                    first = j - WINDOW_SUB_BLOCKS  # one sub-block before the window, for a ragged edge
                    amps = [self._amps(z_all[k - base], row, col) for k in range(first, j + 1)]
                    press = _Press(row, col, j, first, amps)
                    self.presses[stream] = press
                press.last_hit = j
                press.powers_low.append(p_low)
                press.powers_high.append(p_high)
            elif press is not None:
                refs = press.references()
                gap = sum(1.0 - press.coverage(k, refs) for k in range(press.last_hit + 1, j + 1))
                if gap * SUB_BLOCK_SECONDS * 1000 >= self.settings.bridge_ms:
                    found += self._end(stream, press, j)
        return found

    def _amps(self, z: np.ndarray, row: int, col: int) -> tuple[float, float]:
        return abs(z[row]) * self.amp_scale, abs(z[4 + col]) * self.amp_scale

    def _check(self, power: np.ndarray, total: float, samples: np.ndarray,
               subs: np.ndarray) -> tuple[int, int, float, float] | None:
        row = int(np.argmax(power[:4]))
        col = int(np.argmax(power[4:]))
        pair = [row, 4 + col]
        halves = samples.reshape(2, self.half_len) @ self.half_basis[:, pair]
        # A tone that starts or stops inside the window would bias its phase (and speech
        # seldom holds still for 20 ms): each tone must be as strong in both halves.
        amps = np.abs(halves)
        if (amps.min(axis=0) < self.settings.min_steadiness * amps.max(axis=0)).any():
            return None
        turns = halves[1] * np.conj(halves[0]) * self.half_turn[pair]
        measured = []
        alias = self.rate / self.half_len  # the 10 ms lag cannot tell offsets this far apart
        for which, index in enumerate(pair):
            # The phase turn between the window's two 10 ms halves gives the tone's offset
            # from nominal, precisely but modulo `alias` (100 Hz); the turn from one 5 ms
            # sub-block to the next is rougher but unambiguous to ±100 Hz: it picks the alias.
            fine = np.angle(turns[which]) * self.rate / (2 * np.pi * self.half_len)
            steps = subs[1:, index] * np.conj(subs[:-1, index])
            rough = np.angle(steps.sum()) * self.rate / (2 * np.pi * self.sub)
            offset = fine + alias * round((rough - fine) / alias)
            if abs(offset) > self.tolerance[index]:
                return None
            # Undo the rectangular window's loss at that offset (Dirichlet kernel).
            x = np.pi * offset / self.rate
            gain = abs(math.sin(x * self.window_len) / (self.window_len * math.sin(x))) if x else 1.0
            true_power = float(power[index]) / max(gain, 1e-3) ** 2
            if true_power < self.min_power:
                return None
            measured.append(true_power)
        p_low, p_high = measured
        twist = 10 * math.log10(p_high / p_low)
        settings = self.settings
        if twist > settings.max_reverse_twist_db or -twist > settings.max_normal_twist_db:
            return None
        if p_low + p_high < settings.min_purity * total:
            return None
        return row, col, p_low, p_high

    def _end(self, stream: int, press: _Press, j: int) -> list[KeyTone]:
        """Close ``press`` at sub-block ``j``; a key only if its tones lasted ``min_on_ms``."""
        self.presses[stream] = None
        refs = press.references()
        last = min(j, press.last_hit + 1, press.first_sub + len(press.amps) - 1)
        cover = [(k, press.coverage(k, refs)) for k in range(press.first_sub, last + 1)]
        on_ms = sum(c for _, c in cover) * SUB_BLOCK_SECONDS * 1000
        if on_ms < self.settings.min_on_ms:
            return []
        inside = [(k, c) for k, c in cover if c >= 0.15]
        (k_start, c_start), (k_end, c_end) = inside[0], inside[-1]
        start = int(round((k_start + 1 - c_start) * self.sub))
        end = int(round((k_end + c_end) * self.sub))
        p_low, p_high = float(np.median(press.powers_low)), float(np.median(press.powers_high))
        # Levels to 0.01 dB: below that, the last bits differ with how BLAS splits the work.
        return [KeyTone(press.key, start, end, self.rate,
                        round(power_to_dbm0(p_low), 2), round(power_to_dbm0(p_high), 2))]

    def flush(self) -> list[list[KeyTone]]:
        """End of the streams: enough silence to close every open press."""
        pad = (-self.leftover.shape[1]) % self.sub
        closing = int(math.ceil((self.settings.bridge_ms / 1000 + 0.03) * self.rate / self.sub)) * self.sub
        return self.feed(np.zeros((self.streams, pad + closing)))


def _phase_period(sub: int, rate: int) -> int:
    """Sub-blocks after which every keypad frequency's phase at a sub-block start repeats."""
    period = 1
    for f in FREQUENCIES:
        step = (f * sub) % rate
        period = math.lcm(period, rate // math.gcd(step, rate) if step else 1)
    return period


class DtmfDetector:
    """One stream. ``feed`` takes int16 or float samples (any chunk size) at ``sample_rate``."""

    def __init__(self, sample_rate: int = 8000, settings: DtmfSettings | None = None) -> None:
        self.sample_rate = sample_rate
        self.settings = settings or DtmfSettings()
        native = sample_rate if sample_rate in NATIVE_RATES else 8000
        self._core = _Core(native, 1, self.settings)
        self._resampler = None
        if native != sample_rate:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, native, 1, dtype="float64", quality="HQ")

    def feed(self, samples: np.ndarray | Sequence[float]) -> list[KeyTone]:
        x = as_float(samples)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        return [self._to_input_rate(t) for t in self._core.feed(x[None, :])[0]]

    def flush(self) -> list[KeyTone]:
        """No more audio: report a press still open at the end."""
        if self._resampler is not None:
            rest = self._resampler.resample_chunk(np.zeros(0), last=True)
            found = self._core.feed(rest[None, :])[0] if rest.size else []
            return [self._to_input_rate(t) for t in found + self._core.flush()[0]]
        return [self._to_input_rate(t) for t in self._core.flush()[0]]

    def _to_input_rate(self, tone: KeyTone) -> KeyTone:
        if tone.sample_rate == self.sample_rate:
            return tone
        ratio = self.sample_rate / tone.sample_rate
        return KeyTone(tone.key, int(round(tone.start_sample * ratio)), int(round(tone.end_sample * ratio)),
                       self.sample_rate, tone.low_dbm0, tone.high_dbm0)


class MultiStreamDtmfDetector:
    """Many calls' streams at one native rate, fed together as a (streams, samples) array."""

    def __init__(self, streams: int, sample_rate: int = 8000, settings: DtmfSettings | None = None) -> None:
        self._core = _Core(sample_rate, streams, settings or DtmfSettings())

    def feed(self, samples: np.ndarray) -> list[list[KeyTone]]:
        x = as_float(samples)
        if x.ndim != 2 or x.shape[0] != self._core.streams:
            raise ValueError(f"expected an array of shape ({self._core.streams}, n)")
        return self._core.feed(x)

    def flush(self) -> list[list[KeyTone]]:
        return self._core.flush()


def detect(samples: np.ndarray, sample_rate: int = 8000, settings: DtmfSettings | None = None) -> list[KeyTone]:
    """The whole of a recording at once (the batch path: every block in one operation)."""
    detector = DtmfDetector(sample_rate, settings)
    return detector.feed(samples) + detector.flush()


def as_float(samples: np.ndarray | Sequence[float]) -> np.ndarray:
    """int16 (full scale 32768) or float (full scale 1.0) as float64."""
    x = np.asarray(samples)
    if x.dtype == np.int16:
        return x.astype(np.float64) / 32768.0
    if x.dtype.kind in "iu":
        raise TypeError(f"integer samples must be int16, not {x.dtype}")
    return x.astype(np.float64, copy=False)
