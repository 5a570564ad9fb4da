"""Streaming DTMF detection with numpy: ``DtmfDetector.feed(samples) -> list[KeyTone]``.

How it decides (every threshold is a :class:`DtmfSettings` field):

1. The audio is cut into 5 ms sub-blocks on a fixed grid from the stream's first sample,
   so any chunking gives identical results. One matrix product gives every sub-block's
   DFT at the eight keypad frequencies (the single-bin DFTs of a Goertzel filter bank,
   for many blocks at once), its phase turned to a time base common to all sub-blocks; a
   20 ms window's DFT is then the plain sum of four of them.
2. Every 5 ms a 20 ms window is screened, loosely: the strongest tone of each group, its
   level, and its share of the window's power. Silence never gets this far: a chunk whose
   energy could not hold a key costs one dot product.
3. A window that passes is checked strictly, all candidates of all streams at once. Each
   tone must be as strong in both 10 ms halves (Hann-windowed): a tone starting or
   stopping inside the window, or gliding speech, is not steady. Its true frequency comes
   from the phase turn between the halves (the turn between 5 ms sub-blocks resolves the
   ambiguity); it must lie within ``frequency_tolerance`` of the key's (Q.24: accept
   ±1.5 % ±2 Hz, reject ±3.5 %). Over the whole window, corrected for that offset, the
   two tones must pass level and twist and carry ``min_purity`` of the window's power:
   speech and noise spread theirs.
4. A press is a run of such windows for one key. Its real extent comes from the two
   tones' amplitudes in each 5 ms sub-block against the press's own level: that gives the
   on-time (Q.24: accept 40 ms, reject 23 ms) and the length of a gap (a 10 ms drop-out is
   bridged, a 40 ms pause separates two presses), whatever the level.

Several calls' streams can be fed together (``MultiStreamDtmfDetector``): the DFTs, the
screening and the strict check of all of them are single numpy operations. Rates other
than 8 and 16 kHz are resampled to 8 kHz with soxr.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .tones import FREQUENCIES, KEY_AT, power_to_dbm0, dbm0_to_amplitude

NATIVE_RATES = (8000, 16000)
SUB_BLOCK_SECONDS = 0.005
WINDOW_SUB_BLOCKS = 4  # 20 ms
PASS_SUB_BLOCKS = 12000  # 60 s: how much of a long chunk is analysed at once
SEGMENT_SUB_BLOCKS = 1600  # 8 s: the share of a pass whose DFTs are worked on at once (cache-sized)
PHASE_PERIOD = 200  # sub-blocks: every keypad frequency (a whole number of Hz) turns a whole number of cycles in 1 s
HISTORY_SUB_BLOCKS = 4  # sub-blocks kept from one feed to the next: a window and a ragged edge


@dataclass(frozen=True)
class DtmfSettings:
    """What counts as a key. Defaults sit between Q.24's accept and reject limits."""

    min_level_dbm0: float = -36.0  # per tone; Q.24 asks for -25 dBm0
    max_normal_twist_db: float = 10.0  # high tone weaker than the low one by at most this (Q.24: 8)
    max_reverse_twist_db: float = 6.0  # high tone stronger by at most this (Q.24: 4)
    frequency_tolerance: float = 0.025  # relative, plus frequency_tolerance_hz (accept 1.5 %+2 Hz, reject 3.5 %)
    frequency_tolerance_hz: float = 1.0
    min_purity: float = 0.85  # share of the window's power the two tones must carry (0.75 let talk-off through)
    min_steadiness: float = 0.7  # a tone's weaker 10 ms half of the window against its stronger one
    min_on_ms: float = 31.5  # accept 40 ms, reject 23 ms
    bridge_ms: float = 25.0  # a gap shorter than this inside a press is a drop-out (10 ms), longer a pause (40 ms)
    analysis_ms: float = 100.0  # sound waits for this much before a pass (CPU against latency); silence never waits


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
    """A press being followed in one stream (positions are sub-block numbers).

    Plain Python floats: a press is a few dozen sub-blocks, where numpy's per-call cost
    would outweigh the arithmetic.
    """

    row: int
    col: int
    last_hit: int
    first_sub: int  # the sub-block amps[0] belongs to
    amps: list[tuple[float, float]]  # each sub-block's low and high tone amplitude (full scale = 1)
    power_low: float = 0.0  # sums over the press's windows, for its mean level
    power_high: float = 0.0
    windows: int = 0
    gap: float = 0.0  # sub-blocks' worth of missing tone since the last window that had the key
    refs: tuple[float, float] = (1.0, 1.0)

    @property
    def key(self) -> str:
        return KEY_AT[(self.row, self.col)]

    def add_windows(self, last: int, powers: list[tuple[float, float]]) -> None:
        """Windows that had this press's key, the last of them ending at sub-block ``last``."""
        self.last_hit = last
        self.windows += len(powers)
        self.power_low += sum(p[0] for p in powers)
        self.power_high += sum(p[1] for p in powers)
        # The press's own amplitudes: what each sub-block is measured against.
        self.refs = (math.sqrt(2 * self.power_low / self.windows), math.sqrt(2 * self.power_high / self.windows))
        self.gap = 0.0

    def extend(self, rows: list[list[float]]) -> None:
        """The next sub-blocks, from their amplitudes at the eight frequencies."""
        low, high = self.row, 4 + self.col
        self.amps.extend((row[low], row[high]) for row in rows)

    def coverage(self, k: int) -> float:
        """How much of sub-block ``k`` the press's two tones fill."""
        low, high = self.amps[k - self.first_sub]
        value = (low / self.refs[0] + high / self.refs[1]) / 2
        # Inside a tone the measure wavers around 1 (leakage, noise); clipping it at 1 alone
        # would bias every press short. A sub-block three-quarters full counts as full.
        return 1.0 if value >= 0.75 else value


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
        # One matrix product gives each sub-block's DFT at the eight frequencies, its phase
        # measured from the sub-block's own start (columns cos, -sin interleaved per
        # frequency: the rows read as complex numbers through a free view). Turned by
        # `rotation` to the stream's first sample, consecutive sub-blocks share a time base
        # and a window's DFT is their plain sum. The turn of sub-block j repeats every
        # PHASE_PERIOD sub-blocks, so it is exact however long the stream and wherever a
        # chunk starts.
        angle = 2 * np.pi * np.outer(n, freqs) / sample_rate
        self.basis = np.empty((self.sub, 16))
        self.basis[:, 0::2], self.basis[:, 1::2] = np.cos(angle), -np.sin(angle)
        j = np.arange(PHASE_PERIOD + SEGMENT_SUB_BLOCKS + HISTORY_SUB_BLOCKS)[:, None]
        turns = (j * self.sub * freqs[None, :].astype(np.int64)) % sample_rate  # whole cycles dropped exactly
        self.rotation = np.exp(-2j * np.pi * turns / sample_rate)
        self.window_len = WINDOW_SUB_BLOCKS * self.sub
        self.half_len = self.window_len // 2
        # For the strict check: Hann-windowed DFTs of the window's two halves, whose low
        # side lobes keep the other group's tone out of each tone's phase.
        m = np.arange(self.half_len)
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * (m + 0.5) / self.half_len)
        half_angle = 2 * np.pi * np.outer(m, freqs) / sample_rate
        self.half_basis = np.empty((self.half_len, 16))
        self.half_basis[:, 0::2] = hann[:, None] * np.cos(half_angle)
        self.half_basis[:, 1::2] = -hann[:, None] * np.sin(half_angle)
        self.half_turn = np.exp(-2j * np.pi * freqs * self.half_len / sample_rate)
        self.hann_sum = float(hann.sum())
        self.amp_scale = 2.0 / self.sub
        self.min_power = dbm0_to_amplitude(settings.min_level_dbm0) ** 2 / 2
        # A window with a key holds at least 2 * min_power in its four sub-blocks, so one of
        # them holds half that; a chunk whose whole energy is less (with a 6 dB margin)
        # cannot hold a key: silence and line noise cost one dot product.
        self.quiet_energy = 0.25 * self.min_power * self.sub
        self.tolerance = settings.frequency_tolerance * freqs + settings.frequency_tolerance_hz
        self.min_pass = int(round(settings.analysis_ms / 1000 / SUB_BLOCK_SECONDS)) * self.sub
        self.held: list[np.ndarray] = []  # sound gathered for the next pass
        self.held_len = 0
        self.flushing = False
        # Per stream: samples not yet a whole sub-block, the last HISTORY_SUB_BLOCKS sub-blocks'
        # samples (the next windows reach back into them), and the press being followed.
        self.leftover = np.zeros((streams, 0))
        self.history = np.zeros((streams, HISTORY_SUB_BLOCKS * self.sub))
        # The history's DFTs and energies as the last pass left them (None after a skip).
        self.history_z: np.ndarray | None = None
        self.history_e: np.ndarray | None = None
        self.loud_until = -1  # last sub-block whose energy could belong to a key, any stream
        self.count = 0  # sub-blocks seen (the same for every stream)
        self.presses: list[_Press | None] = [None] * streams
        # Sub-block ranges where a dual tone was heard, for muting (only when asked for).
        self.record_tones = record_tones
        self.tone_spans: list[list[tuple[int, int]]] = [[] for _ in range(streams)]

    # -------------------------------------------------------------- feeding

    def feed(self, samples: np.ndarray) -> list[list[KeyTone]]:
        """``samples``: float64 array (streams, n). Returns the presses that ended, per stream."""
        if samples.shape[1] <= PASS_SUB_BLOCKS * self.sub:
            return self._feed(samples)
        return self._feed_long(samples)

    def _feed_long(self, samples: np.ndarray) -> list[list[KeyTone]]:
        """A long recording: quiet stretches skipped at once, the rest in cache-sized passes.

        Results do not depend on where a chunk ends, nor on skipping audio that cannot hold
        a key (the same rule as the streaming gate), so this changes nothing but the speed.
        """
        found: list[list[KeyTone]] = [[] for _ in range(self.streams)]

        def add(tones: list[list[KeyTone]]) -> None:
            for stream, more in enumerate(tones):
                found[stream] += more

        pending = self.held or ([self.leftover] if self.leftover.shape[1] else [])
        if pending:
            samples = np.concatenate([*pending, samples], axis=1)
            self.held, self.held_len = [], 0
            self.leftover = np.zeros((self.streams, 0))
        sub = self.sub
        count = samples.shape[1] // sub
        blocks = samples[:, :count * sub].reshape(self.streams, count, sub)
        energies = np.einsum("sbn,sbn->sb", blocks, blocks)
        loud = (energies > self.quiet_energy).any(axis=0)
        # Sub-blocks that matter: loud ones, and enough after each for the windows that still
        # reach back to it and for a press to close (its bridge), with room to spare.
        tail = WINDOW_SUB_BLOCKS + int(math.ceil(self.settings.bridge_ms / 1000 / SUB_BLOCK_SECONDS)) + 4
        marks = np.zeros(count + tail + 1, dtype=np.int64)
        starts = np.flatnonzero(loud)
        np.add.at(marks, starts, 1)
        np.add.at(marks, starts + tail, -1)
        needed = np.cumsum(marks)[:count] > 0
        # Where `needed` changes: the runs to analyse and the runs to skip. A quiet run
        # shorter than 5 s is analysed all the same: a pass of its own costs more than that
        # (measured on the bench's call-like signal: 0.5 s lost 10 %, 10 s lost 15 %).
        edges = [0, *(np.flatnonzero(np.diff(needed.astype(np.int8))) + 1).tolist(), count]
        for first, last in zip(edges[:-1], edges[1:]):
            if not needed[first] and last - first < 1000:
                needed[first:last] = True
        edges = [0, *(np.flatnonzero(np.diff(needed.astype(np.int8))) + 1).tolist(), count]
        for first, last in zip(edges[:-1], edges[1:]):
            piece = samples[:, first * sub:last * sub]
            if needed[first] or any(self.presses):
                step = PASS_SUB_BLOCKS * sub
                for start in range(0, piece.shape[1], step):
                    part = piece[:, start:start + step]
                    known = energies[:, first + start // sub:first + start // sub + part.shape[1] // sub]
                    add(self._feed(part, whole=True, energies=known))
            else:
                self._remember(piece, last - first)
        rest = samples[:, count * sub:]
        if rest.shape[1]:
            add(self._feed(rest))
        return found

    def _feed(self, samples: np.ndarray, whole: bool = False, energies: np.ndarray | None = None) -> list[list[KeyTone]]:
        """One pass. ``whole``: analyse now, however short; ``energies``: the sub-blocks' energies, when known."""
        if self.held:
            # Sound is being gathered for a pass: keep the piece (a copy: a sound card
            # reuses its buffers), join them all once, later.
            self.held.append(samples.copy())
            self.held_len += samples.shape[1]
            if self.held_len < self.min_pass and not (self.flushing or whole):
                return [[] for _ in range(self.streams)]
            samples = np.concatenate(self.held, axis=1)
            self.held, self.held_len = [], 0
        elif self.leftover.shape[1]:
            samples = np.concatenate([self.leftover, samples], axis=1)
        usable = samples.shape[1] // self.sub * self.sub
        found: list[list[KeyTone]] = [[] for _ in range(self.streams)]
        if not usable:
            self.leftover = samples.copy()
            return found
        self.leftover = samples[:, usable:].copy()
        fresh = samples[:, :usable]
        count = usable // self.sub
        quiet = self.loud_until < self.count - WINDOW_SUB_BLOCKS + 1 and not any(self.presses)
        if quiet and (float(np.vdot(fresh, fresh)) if energies is None else float(energies.sum())) < self.quiet_energy:
            # Silence or line noise, and the last loud sub-block is out of every window this
            # chunk ends: no key can be here. One dot product is all it costs.
            self._remember(fresh, count)
            return found
        if usable < self.min_pass and not (self.flushing or whole):
            # Sound is analysed in passes of at least `analysis_ms`: a 20 ms frame would
            # mostly pay numpy's per-call cost, and a key's report waits at most that long.
            self.held, self.held_len = [samples.copy()], samples.shape[1]
            self.leftover = np.zeros((self.streams, 0))
            return found
        h = HISTORY_SUB_BLOCKS
        # The windows ending in the first new sub-blocks reach back into the history's.
        old_blocks = self.history.reshape(self.streams, h, self.sub)
        new_blocks = fresh.reshape(self.streams, count, self.sub)
        e_all = np.empty((self.streams, h + count))
        z_all = np.empty((self.streams, h + count, 8), dtype=np.complex128)
        z_parts = z_all.view(np.float64)
        if self.history_z is None or self.history_e is None:
            np.einsum("sbn,sbn->sb", old_blocks, old_blocks, out=e_all[:, :h])
            np.matmul(old_blocks, self.basis, out=z_parts[:, :h])
            z_all[:, :h] *= self.rotation[(self.count - h) % PHASE_PERIOD:][:h]
        else:
            e_all[:, :h] = self.history_e
            z_all[:, :h] = self.history_z
        if energies is None:
            np.einsum("sbn,sbn->sb", new_blocks, new_blocks, out=e_all[:, h:])
        else:  # known already (a pass of a long chunk)
            e_all[:, h:] = energies
        if e_all[:, h:].max() > self.quiet_energy:
            self.loud_until = self.count + count - 1  # (as if its last sub-block were loud: the gate waits a little longer)
        total = (e_all[:, h - 3:h - 3 + count] + e_all[:, h - 2:h - 2 + count]
                 + e_all[:, h - 1:h - 1 + count] + e_all[:, h:h + count]) / self.window_len
        # Each sub-block's DFT on the common time base, and each window's tone powers, a
        # cache-sized segment at a time. The windows' sums keep a fixed order, so the result
        # does not depend on how audio was chunked.
        power = np.empty((self.streams, count, 8))
        for first in range(0, count, SEGMENT_SUB_BLOCKS):
            last = min(first + SEGMENT_SUB_BLOCKS, count)
            np.matmul(new_blocks[:, first:last], self.basis, out=z_parts[:, h + first:h + last])
            phase = (self.count + first) % PHASE_PERIOD
            z_all[:, h + first:h + last] *= self.rotation[phase:phase + last - first]
            pairs = z_all[:, first + h - 3:last + h - 1] + z_all[:, first + h - 2:last + h]  # sub-blocks j-1 and j
            window = pairs[:, :-2] + pairs[:, 2:]  # (j-3 + j-2) + (j-1 + j)
            segment_power = power[:, first:last]
            if window.size <= 4096:  # a streaming frame: fewest numpy calls
                np.abs(window, out=segment_power)
                np.square(segment_power, out=segment_power)
            else:  # a long chunk: squares of the parts beat a square root and a square
                parts = window.view(np.float64)
                np.square(parts[..., 0::2], out=segment_power)
                segment_power += parts[..., 1::2] ** 2
        power *= 2 / self.window_len ** 2
        streams, offsets = np.nonzero(self._screen(power, total))
        good_streams = np.zeros(0, dtype=np.intp)
        if offsets.size:
            # The strict check of every stream's candidate windows in one go.
            good, rows, cols, p_lows, p_highs = self._check(streams, offsets, power, total, z_all, old_blocks, new_blocks)
            good_streams = streams[good]
            hit_offsets, hit_keys = offsets[good], rows[good] * 4 + cols[good]
            hit_powers = np.stack([p_lows[good], p_highs[good]], axis=1)
        for stream in range(self.streams):
            mine = good_streams == stream if good_streams.size else None
            if mine is not None and mine.any():
                found[stream] = self._follow(stream, hit_offsets[mine], hit_keys[mine], hit_powers[mine],
                                             count, z_all[stream])
            elif self.presses[stream] is not None:
                empty = np.zeros(0, dtype=np.intp)
                found[stream] = self._follow(stream, empty, empty, np.zeros((0, 2)), count, z_all[stream])
        self._remember(fresh, count, z_all[:, -h:].copy(), e_all[:, -h:].copy())
        return found

    def _remember(self, fresh: np.ndarray, count: int,
                  history_z: np.ndarray | None = None, history_e: np.ndarray | None = None) -> None:
        """The last sub-blocks' samples (and, after a pass, their DFTs and energies) for the next pass."""
        keep = self.history.shape[1]
        if fresh.shape[1] >= keep:
            self.history = fresh[:, -keep:].copy()  # a copy: the caller may reuse its buffer
        else:
            self.history = np.concatenate([self.history[:, fresh.shape[1]:], fresh], axis=1)
        self.history_z, self.history_e = history_z, history_e
        self.count += count

    def _screen(self, power: np.ndarray, total: np.ndarray) -> np.ndarray:
        """Windows worth the strict check: loose versions of level and purity."""
        if power.size <= 4096:  # a streaming frame: fewest numpy calls
            strongest = power.reshape(*power.shape[:-1], 2, 4).max(axis=-1)
            low, high = strongest[..., 0], strongest[..., 1]
        else:  # a long chunk: pairwise maxima beat a reduction over an axis of four
            low = np.maximum(np.maximum(power[..., 0], power[..., 1]), np.maximum(power[..., 2], power[..., 3]))
            high = np.maximum(np.maximum(power[..., 4], power[..., 5]), np.maximum(power[..., 6], power[..., 7]))
        loose = self.min_power * 0.25  # room for an offset's loss, which the strict check undoes
        return (np.minimum(low, high) > loose) & (low + high > 0.4 * total)

    # -------------------------------------------------------------- one stream

    def _follow(self, stream: int, hit_offsets: np.ndarray, hit_keys: np.ndarray, hit_powers: np.ndarray,
                count: int, z_all: np.ndarray) -> list[KeyTone]:
        """Run the stream's presses through this pass's windows, a run of windows at a time.

        Windows with the same key one after another extend a press together; windows
        without a key add up the missing tone until ``bridge_ms`` ends the press. Only the
        runs and the gaps are visited, not every 5 ms window.
        """
        found: list[KeyTone] = []
        h = HISTORY_SUB_BLOCKS

        def rows(first: int, last: int) -> list[list[float]]:
            """Tone amplitudes of the pass's sub-blocks first..last-1 (offsets, may be negative)."""
            return (np.abs(z_all[h + first:h + last]) * self.amp_scale).tolist()

        offsets, keys, powers = hit_offsets.tolist(), hit_keys.tolist(), hit_powers.tolist()
        # Runs of consecutive windows with one key: (first, last + 1, key, powers).
        runs: list[tuple[int, int, int, list[tuple[float, float]]]] = []
        for offset, key, power in zip(offsets, keys, powers):
            if runs and runs[-1][1] == offset and runs[-1][2] == key:
                first, _, _, run_powers = runs[-1]
                run_powers.append(power)
                runs[-1] = (first, offset + 1, key, run_powers)
            else:
                runs.append((offset, offset + 1, key, [power]))
        bridge = self.settings.bridge_ms / (SUB_BLOCK_SECONDS * 1000)  # in sub-blocks
        offset = 0
        run_index = 0
        while True:
            press = self.presses[stream]
            run = runs[run_index] if run_index < len(runs) else None
            if press is not None:
                # Windows without a key until the next run (or the end of the pass).
                stop = run[0] if run is not None else count
                ended = False
                # A few sub-blocks at a time: a press usually ends within its bridge, and
                # the next run may be a whole pass away.
                for start in range(offset, stop, 8):
                    for at, row_amps in enumerate(rows(start, min(start + 8, stop)), start=start):
                        j = self.count + at
                        press.extend([row_amps])
                        press.gap += 1.0 - press.coverage(j)
                        if press.gap >= bridge:
                            found += self._end(stream, press, j)
                            offset, ended = at + 1, True
                            break
                    if ended:
                        break
                if ended:
                    continue
                offset = max(offset, stop)
            if run is None:
                break
            first, last, key, run_powers = run
            row, col = divmod(key, 4)
            if press is not None and (press.row, press.col) != (row, col):
                found += self._end(stream, press, self.count + first - 1)
                press = None
            if press is None:
                j = self.count + first
                # From one sub-block before the window (a ragged start) to its last one.
                press = _Press(row, col, j, j - WINDOW_SUB_BLOCKS, [])
                press.extend(rows(first - WINDOW_SUB_BLOCKS, last))
                self.presses[stream] = press
            else:
                press.extend(rows(first, last))
            press.add_windows(self.count + last - 1, run_powers)
            if self.record_tones:
                self.tone_spans[stream].append((self.count + first - WINDOW_SUB_BLOCKS, self.count + last))
            offset = last
            run_index += 1
        return found

    def _check(self, streams: np.ndarray, offsets: np.ndarray, power: np.ndarray, total: np.ndarray,
               z_all: np.ndarray, old_blocks: np.ndarray, new_blocks: np.ndarray) -> tuple[np.ndarray, ...]:
        """The strict check of the windows ending at (``streams``, ``offsets``), all at once.

        Returns (good, row, col, low power, high power), one entry per window.
        """
        h, n = HISTORY_SUB_BLOCKS, offsets.shape[0]
        p = power[streams, offsets]
        rows = p[:, :4].argmax(axis=1)
        cols = p[:, 4:].argmax(axis=1)
        pair = np.empty((n, 2), dtype=np.intp)  # (n, 2): the low tone's bin, the high tone's
        pair[:, 0], pair[:, 1] = rows, cols + 4
        pick = np.arange(n)[:, None]
        # The window's samples as two 10 ms halves, each through a Hann-windowed DFT.
        first = h + offsets - WINDOW_SUB_BLOCKS + 1  # the window's first sub-block in z_all
        at = first[:, None] + np.arange(WINDOW_SUB_BLOCKS)  # (n, 4), numbered as in z_all
        samples = new_blocks[streams[:, None], np.maximum(at - h, 0)]
        if first.min() < h:  # some windows reach back into the history
            early = at < h
            samples[early] = old_blocks[np.broadcast_to(streams[:, None], at.shape)[early], at[early]]
        samples = samples.reshape(n, 2, self.half_len)
        halves = (samples @ self.half_basis).view(np.complex128)  # (n, 2, 8)
        halves = halves[pick[:, :, None], np.arange(2)[None, :, None], pair[:, None, :]]  # (n, 2, 2)
        amps = np.abs(halves)
        first_half, second_half = amps[:, 0], amps[:, 1]
        # A tone that starts or stops inside the window would bias its phase (and speech
        # seldom holds still for 20 ms): each tone must be as strong in both halves.
        steady_tones = np.minimum(first_half, second_half) >= self.settings.min_steadiness * np.maximum(first_half, second_half)
        steady = steady_tones[:, 0] & steady_tones[:, 1]
        # The phase turn between the window's two 10 ms halves gives each tone's offset from
        # nominal, precisely but modulo `alias` (100 Hz); the turn from one 5 ms sub-block to
        # the next is rougher but unambiguous to ±100 Hz: it picks the alias.
        turns = halves[:, 1] * np.conj(halves[:, 0]) * self.half_turn[pair]
        places = np.arange(WINDOW_SUB_BLOCKS)[None, :, None]
        subs = z_all[streams[:, None, None], first[:, None, None] + places, pair[:, None, :]]  # (n, 4, 2)
        turned = subs[:, 1:] * np.conj(subs[:, :-1])
        steps = turned[:, 0] + turned[:, 1] + turned[:, 2]
        alias = self.rate / self.half_len
        fine = np.angle(turns) * self.rate / (2 * np.pi * self.half_len)
        rough = np.angle(steps) * self.rate / (2 * np.pi * self.sub)
        offset = fine + alias * np.round((rough - fine) / alias)
        within = np.abs(offset) <= self.tolerance[pair]
        in_tolerance = within[:, 0] & within[:, 1]
        # The decisions use each tone's power over the whole 20 ms window, coherently: a
        # harmonic of speech that glides loses power there, a keypad tone does not. It is
        # corrected for the rectangular window's loss at that offset (the Dirichlet kernel).
        gain = np.abs(np.sinc(offset * self.window_len / self.rate) / np.sinc(offset / self.rate))
        true_power = p[pick, pair] / np.maximum(gain, 1e-3) ** 2
        p_low, p_high = true_power[:, 0], true_power[:, 1]
        loud = (p_low >= self.min_power) & (p_high >= self.min_power)
        twist = 10 * np.log10(np.maximum(p_high, 1e-30) / np.maximum(p_low, 1e-30))
        settings = self.settings
        twist_ok = (twist <= settings.max_reverse_twist_db) & (-twist <= settings.max_normal_twist_db)
        pure = p_low + p_high >= settings.min_purity * total[streams, offsets]
        good = steady & in_tolerance & loud & twist_ok & pure
        # The levels reported come from the Hann halves: their low side lobes keep one
        # tone's leakage out of the other's level (the 20 ms window's cost up to 1.3 dB).
        bins = offset * self.half_len / self.rate
        with np.errstate(divide="ignore", invalid="ignore"):
            hann_gain = np.abs(np.where(np.abs(bins) < 0.999, np.sinc(bins) / (1 - bins ** 2), 0.5))
        level = (first_half ** 2 + second_half ** 2) / (self.hann_sum * np.maximum(hann_gain, 1e-3)) ** 2
        return good, rows, cols, level[:, 0], level[:, 1]

    def _end(self, stream: int, press: _Press, j: int) -> list[KeyTone]:
        """Close ``press`` at sub-block ``j``; a key only if its tones lasted ``min_on_ms``."""
        self.presses[stream] = None
        last = min(j, press.last_hit + 1, press.first_sub + len(press.amps) - 1)
        cover = [press.coverage(k) for k in range(press.first_sub, last + 1)]
        if sum(cover) * SUB_BLOCK_SECONDS * 1000 < self.settings.min_on_ms:
            return []
        inside = [i for i, c in enumerate(cover) if c >= 0.15]
        k_start, k_end = inside[0], inside[-1]
        start = int(round((press.first_sub + k_start + 1 - cover[k_start]) * self.sub))
        end = int(round((press.first_sub + k_end + cover[k_end]) * self.sub))
        p_low, p_high = press.power_low / press.windows, press.power_high / press.windows
        # Levels to 0.01 dB: below that, the last bits differ with how BLAS splits the work.
        return [KeyTone(press.key, start, end, self.rate,
                        round(power_to_dbm0(p_low), 2), round(power_to_dbm0(p_high), 2))]

    def flush(self) -> list[list[KeyTone]]:
        """End of the streams: enough silence to close every open press."""
        pad = (-(self.held_len or self.leftover.shape[1])) % self.sub
        closing = int(math.ceil((self.settings.bridge_ms / 1000 + 0.03) * self.rate / self.sub)) * self.sub
        self.flushing = True
        try:
            return self.feed(np.zeros((self.streams, pad + closing)))
        finally:
            self.flushing = False


class DtmfDetector:
    """One stream. ``feed`` takes int16 or float samples (any chunk size) at ``sample_rate``."""

    def __init__(self, sample_rate: int = 8000, settings: DtmfSettings | None = None) -> None:
        self.sample_rate = sample_rate
        self.settings = settings or DtmfSettings()
        native = sample_rate if sample_rate in NATIVE_RATES else 8000
        self._core = _Core(native, 1, self.settings)
        self._flushed = False
        self._resampler = None
        if native != sample_rate:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, native, 1, dtype="float64", quality="HQ")

    def feed(self, samples: np.ndarray | Sequence[float]) -> list[KeyTone]:
        if self._flushed:
            raise ValueError("this stream has ended (flush() was called): start a new DtmfDetector")
        x = as_float(samples)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        found = self._core.feed(x[None, :])[0]
        return [self._to_input_rate(t) for t in found] if found else found

    def flush(self) -> list[KeyTone]:
        """No more audio: report a press still open at the end. Later calls return nothing."""
        if self._flushed:
            return []
        self._flushed = True
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
    if type(samples) is np.ndarray and samples.dtype == np.float64:
        return samples  # the common case, checked first: this runs for every 20 ms frame
    x = np.asarray(samples)
    if x.dtype == np.int16:
        return x.astype(np.float64) / 32768.0
    if x.dtype.kind in "iu":
        raise TypeError(f"integer samples must be int16, not {x.dtype}")
    return x.astype(np.float64, copy=False)
