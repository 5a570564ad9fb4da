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
   bridged, a 40 ms pause separates two presses), whatever the level. Runs are found by
   comparing neighbouring windows, and the presses of a long chunk or of many streams
   are followed with array operations over all of them: Python visits presses, not
   windows or sub-blocks.

Several calls' streams can be fed together (``MultiStreamDtmfDetector``): the DFTs, the
screening, the strict check and the presses of all of them are single numpy operations.
Rates other than 8 and 16 kHz are resampled to 8 kHz with soxr.
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
SHORT_QUIET_SUB_BLOCKS = 1000  # a quiet stretch of a long chunk shorter than this is analysed, not skipped
MANY_WINDOWS = 256  # candidate windows in a pass from which the Hann halves are made per sub-block (see _check)
FEW_RUNS = 8  # runs and open presses in a pass up to which plain Python follows them faster than numpy...
FEW_RUNS_ROWS = 256  # ...if the pass is short (it takes every sub-block's amplitudes as Python floats)


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


KEY_NAMES = [KEY_AT[divmod(key, 4)] for key in range(16)]  # key number (row * 4 + column) to its name
KEY_BINS = np.array([(key // 4, key % 4 + 4) for key in range(16)])  # key number to its two tones' DFT bins


def _ranges(begin: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranges ``begin[i] .. begin[i] + length[i] - 1`` laid end to end, with the range each element is from.

    ``length`` must be positive. Built with a cumulative sum instead of a Python loop over ranges.
    """
    total = int(length.sum())
    starts = np.zeros(length.shape[0], dtype=np.int64)
    np.cumsum(length[:-1], out=starts[1:])
    owner = np.repeat(np.arange(length.shape[0]), length)
    # Each element's position in its own range, added to that range's first value.
    return begin[owner] + (np.arange(total) - starts[owner]), owner


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
        # The same as two parts, one per sub-block: row r of a sub-block's product with
        # part_basis is its share of a half it starts (r < 8) or ends (r >= 8).
        self.part_basis = np.concatenate([self.half_basis[:self.sub], self.half_basis[self.sub:]], axis=1)
        self.part_rows = np.array([0, 8, 0, 8])[None, :, None]
        self.half_turn = np.exp(-2j * np.pi * freqs * self.half_len / sample_rate)
        self.hann_sum = float(hann.sum())
        self.amp_scale = 2.0 / self.sub
        self.min_power = dbm0_to_amplitude(settings.min_level_dbm0) ** 2 / 2
        # A window with a key holds at least 2 * min_power in its four sub-blocks, so one of
        # them holds half that; a chunk whose whole energy is less (with a 6 dB margin)
        # cannot hold a key: silence and line noise cost one dot product.
        self.quiet_energy = 0.25 * self.min_power * self.sub
        self.tolerance = settings.frequency_tolerance * freqs + settings.frequency_tolerance_hz
        self.max_reverse_twist = 10 ** (settings.max_reverse_twist_db / 10)  # as power ratios
        self.max_normal_twist = 10 ** (settings.max_normal_twist_db / 10)
        self.bridge = settings.bridge_ms / (SUB_BLOCK_SECONDS * 1000)  # in sub-blocks
        # A window's |DFT|² at a tone's frequency times power_scale is the tone's mean power;
        # its energy over window_len is the window's mean power. The screen compares the
        # unscaled figures, its thresholds scaled instead: a tone at a quarter of the minimum
        # level (room for an offset's loss, which the strict check undoes), and the two
        # tones' with 40 % of the window's power.
        self.power_scale = 2 / self.window_len ** 2
        self.screen_level = self.min_power * 0.25 / self.power_scale
        self.screen_purity = 0.4 / self.window_len / self.power_scale
        self.min_pass = int(round(settings.analysis_ms / 1000 / SUB_BLOCK_SECONDS)) * self.sub
        # Index patterns for the strict check's gathers (see _check).
        self.window_blocks = np.arange(1, WINDOW_SUB_BLOCKS + 1)  # a window's sub-blocks in the pass's samples, from its end
        self.half_rows = np.array([0, 8])[None, :, None]
        self.sub_rows = (np.arange(WINDOW_SUB_BLOCKS) * 8)[None, :, None]
        self.sinc_lengths = np.array([self.window_len, 1])  # the window's and one sample's, for the gain
        self.no_windows = (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros((0, 2)))
        # The samples: per stream, before `start` the last HISTORY_SUB_BLOCKS sub-blocks
        # already analysed or skipped (the next windows reach back into them), from it the
        # sound gathered since, up to `fill`. Feeds are copied in (a sound card reuses its
        # buffers); a pass reads it in place. Room for two passes: it is compacted (history
        # and sound moved to the front) only when full, about every other pass.
        self.history_len = HISTORY_SUB_BLOCKS * self.sub
        self.buffer = np.zeros((streams, self.history_len + 2 * (self.min_pass + self.sub)))
        self.start = self.fill = self.history_len
        self.holding = False  # sound is being gathered for a pass
        self.flushing = False
        # The DFTs of the latest sub-blocks as the last pass left them, back to the first
        # sub-block of the earliest press still open (at least HISTORY_SUB_BLOCKS of them),
        # and the energies of the last HISTORY_SUB_BLOCKS; None after a skip.
        self.history_z: np.ndarray | None = None
        self.history_e: np.ndarray | None = None
        self.loud_until = -1  # last sub-block whose energy could belong to a key, any stream
        self.count = 0  # sub-blocks seen (the same for every stream)
        # The press each stream is following, if any (sub-block numbers are the stream's own).
        self.open = np.zeros(streams, dtype=bool)
        self.open_count = 0
        self.press_key = np.zeros(streams, dtype=np.int64)  # row * 4 + column
        self.press_first = np.zeros(streams, dtype=np.int64)  # its first sub-block (one before its first window)
        self.press_last_hit = np.zeros(streams, dtype=np.int64)  # the last sub-block of its last window
        self.press_sums = np.zeros((streams, 2))  # sums of its windows' low and high tone powers (level, amplitudes)
        self.press_windows = np.zeros(streams, dtype=np.int64)
        self.press_gap = np.zeros(streams)  # sub-blocks' worth of missing tone since its last window
        # Sub-block ranges where a dual tone was heard, for muting (only when asked for).
        self.record_tones = record_tones
        self.tone_spans: list[list[tuple[int, int]]] = [[] for _ in range(streams)]

    # -------------------------------------------------------------- feeding

    def feed(self, samples: np.ndarray) -> list[list[KeyTone]]:
        """``samples``: float64 array (streams, n). Returns the presses that ended, per stream."""
        n = samples.shape[1]
        fill = self.fill + n
        if fill <= self.buffer.shape[1] and n <= PASS_SUB_BLOCKS * self.sub:
            # A frame, most often: written in place; while sound is gathered for a pass, no more.
            self.buffer[:, self.fill:fill] = samples
            self.fill = fill
            if self.holding and fill - self.start < self.min_pass and not self.flushing:
                return [[] for _ in range(self.streams)]
        elif n > PASS_SUB_BLOCKS * self.sub:
            return self._feed_long(samples)
        else:
            self._append(samples)
        return self._advance()

    def _append(self, samples: np.ndarray) -> None:
        n = samples.shape[1]
        if self.fill + n > self.buffer.shape[1]:
            kept = self.fill - self.start + self.history_len
            target = self.buffer if kept + n <= self.buffer.shape[1] else np.zeros((self.streams, 2 * (kept + n)))
            target[:, :kept] = self.buffer[:, self.start - self.history_len:self.fill]
            self.buffer, self.start, self.fill = target, self.history_len, kept
        self.buffer[:, self.fill:self.fill + n] = samples
        self.fill += n

    def _advance(self, whole: bool = False) -> list[list[KeyTone]]:
        """Skip or analyse the whole sub-blocks gathered. ``whole``: analyse now, however short."""
        sub = self.sub
        start = self.start
        count = (self.fill - start) // sub
        if not count:
            return [[] for _ in range(self.streams)]
        if not self.holding:
            if not self.open_count and self.loud_until < self.count - WINDOW_SUB_BLOCKS + 1:
                fresh = self.buffer[:, start:start + count * sub]
                if float(np.vdot(fresh, fresh)) < self.quiet_energy:
                    # Silence or line noise, and the last loud sub-block is out of every window
                    # this chunk ends: no key can be here. One dot product is all it costs.
                    self._skip(count)
                    self.start += count * sub
                    return [[] for _ in range(self.streams)]
            self.holding = True
        if self.fill - start < self.min_pass and not (self.flushing or whole):
            # Sound is analysed in passes of at least `analysis_ms`: a 20 ms frame would
            # mostly pay numpy's per-call cost, and a key's report waits at most that long.
            return [[] for _ in range(self.streams)]
        self.holding = False
        found = self._analyse(self.buffer[:, start - self.history_len:start + count * sub], count)
        self.start += count * sub
        return found

    def _skip(self, count: int) -> None:
        """``count`` sub-blocks that cannot hold a key, with no press open, go by unanalysed."""
        self.count += count
        self.history_z = self.history_e = None

    def _feed_long(self, samples: np.ndarray) -> list[list[KeyTone]]:
        """A long recording: quiet stretches skipped at once, the rest in cache-sized passes.

        Results do not depend on where a chunk ends, nor on skipping audio that cannot hold
        a key (the same rule as the streaming gate), so this changes nothing but the speed.
        """
        found: list[list[KeyTone]] = [[] for _ in range(self.streams)]

        def add(tones: list[list[KeyTone]]) -> None:
            for stream, more in enumerate(tones):
                if more:
                    found[stream] = found[stream] + more

        sub, h = self.sub, HISTORY_SUB_BLOCKS
        # The sound gathered so far, made whole sub-blocks, and the first HISTORY_SUB_BLOCKS
        # sub-blocks go through the buffer; every later pass then finds its history in
        # `samples` itself, which is analysed in place, never copied.
        lead = (-(self.fill - self.start)) % sub + h * sub
        self._append(samples[:, :lead])
        add(self._advance(whole=True))
        samples = samples[:, lead - h * sub:]  # from the history the buffer now holds
        count = samples.shape[1] // sub - h  # sub-blocks after that history
        blocks = samples[:, :(h + count) * sub].reshape(self.streams, h + count, sub)[:, h:]
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
            if not needed[first] and last - first < SHORT_QUIET_SUB_BLOCKS:
                needed[first:last] = True
        edges = [0, *(np.flatnonzero(np.diff(needed.astype(np.int8))) + 1).tolist(), count]
        for first, last in zip(edges[:-1], edges[1:]):
            if needed[first] or self.open_count:
                for start in range(first, last, PASS_SUB_BLOCKS):
                    stop = min(start + PASS_SUB_BLOCKS, last)
                    # Sub-block k of `blocks` is sub-block h + k of `samples`.
                    add(self._analyse(samples[:, start * sub:(h + stop) * sub], stop - start, energies[:, start:stop]))
            else:
                self._skip(last - first)
        # The buffer takes the last history and the ragged end.
        rest = samples[:, (h + count) * sub - self.history_len:]
        self.buffer[:, :rest.shape[1]] = rest
        self.start, self.fill = self.history_len, rest.shape[1]
        self.holding = False
        return found

    # -------------------------------------------------------------- one pass

    def _analyse(self, samples: np.ndarray, count: int, energies: np.ndarray | None = None) -> list[list[KeyTone]]:
        """One pass over ``count`` new sub-blocks: ``samples`` holds the history's before them.

        ``energies``: the new sub-blocks' energies, when known.
        """
        h, sub = HISTORY_SUB_BLOCKS, self.sub
        blocks = samples.reshape(self.streams, h + count, sub)
        history_z = self.history_z
        back = h if history_z is None else history_z.shape[1]  # sub-blocks of DFTs before the new ones
        rows = back + count
        z_all = np.empty((self.streams, rows, 8), dtype=np.complex128)
        z_parts = z_all.view(np.float64)
        e_all = np.empty((self.streams, h + count))
        if history_z is None or self.history_e is None:
            old = blocks[:, :h]
            np.einsum("sbn,sbn->sb", old, old, out=e_all[:, :h])
            np.matmul(old, self.basis, out=z_parts[:, :h])
            z_all[:, :h] *= self.rotation[(self.count - h) % PHASE_PERIOD:][:h]
        else:
            e_all[:, :h] = self.history_e
            z_all[:, :back] = history_z
        new_blocks = blocks[:, h:]
        if energies is None:
            np.einsum("sbn,sbn->sb", new_blocks, new_blocks, out=e_all[:, h:])
        else:
            e_all[:, h:] = energies
        if e_all[:, h:].max() > self.quiet_energy:
            self.loud_until = self.count + count - 1  # (as if its last sub-block were loud: the gate waits a little longer)
        # Each window's energy, summed in a fixed order as the DFTs are below.
        pairs = e_all[:, h - 3:h + count - 1] + e_all[:, h - 2:h + count]
        energy = pairs[:, :-2] + pairs[:, 2:]
        # Each sub-block's DFT on the common time base, and each window's tone powers, a
        # cache-sized segment at a time. The windows' sums keep a fixed order, so the result
        # does not depend on how audio was chunked.
        power = np.empty((self.streams, count, 8))  # |DFT|², times power_scale for a tone's mean power
        for first in range(0, count, SEGMENT_SUB_BLOCKS):
            last = min(first + SEGMENT_SUB_BLOCKS, count)
            np.matmul(new_blocks[:, first:last], self.basis, out=z_parts[:, back + first:back + last])
            phase = (self.count + first) % PHASE_PERIOD
            z_all[:, back + first:back + last] *= self.rotation[phase:phase + last - first]
            pairs = z_all[:, first + back - 3:last + back - 1] + z_all[:, first + back - 2:last + back]  # sub-blocks j-1 and j
            window = pairs[:, :-2] + pairs[:, 2:]  # (j-3 + j-2) + (j-1 + j)
            segment_power = power[:, first:last]
            if window.size <= 4096:  # a streaming frame: fewest numpy calls
                np.abs(window, out=segment_power)
                np.square(segment_power, out=segment_power)
            else:  # a long chunk: squares of the parts beat a square root and a square
                parts = window.view(np.float64)
                np.square(parts[..., 0::2], out=segment_power)
                segment_power += parts[..., 1::2] ** 2
        streams, offsets = np.nonzero(self._screen(power, energy))
        found: list[list[KeyTone]] = [[] for _ in range(self.streams)]
        keys, levels = offsets, np.zeros((0, 2))
        if offsets.size:
            # The strict check of every stream's candidate windows in one go.
            good, keys, levels = self._check(streams, offsets, power, energy, z_all, back, blocks)
            streams, offsets = streams[good], offsets[good]
        if offsets.size or self.open_count:
            self._follow(streams, offsets, keys, levels, z_all, back, count, found)
        # DFTs kept: back to the first sub-block of the earliest press still open.
        keep = h
        if self.open_count:
            keep = max(h, int(self.count + count - self.press_first[self.open].min()))
        self.history_z = z_all[:, -keep:]  # views: each pass makes new arrays
        self.history_e = e_all[:, -h:]
        self.count += count
        return found

    def _screen(self, power: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """Windows worth the strict check: loose versions of level and purity (constants in __init__)."""
        low = np.maximum(np.maximum(power[..., 0], power[..., 1]), np.maximum(power[..., 2], power[..., 3]))
        high = np.maximum(np.maximum(power[..., 4], power[..., 5]), np.maximum(power[..., 6], power[..., 7]))
        return (np.minimum(low, high) > self.screen_level) & (low + high > self.screen_purity * energy)

    def _check(self, streams: np.ndarray, offsets: np.ndarray, power: np.ndarray, energy: np.ndarray,
               z_all: np.ndarray, back: int, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The strict check of the windows ending at (``streams``, ``offsets``), all at once.

        Returns (good, keys, levels): the windows with a key (indices into ``offsets``),
        which (row * 4 + column), and the low and high tone's power (good, 2).
        """
        n = offsets.shape[0]
        p = power[streams, offsets]  # unscaled
        pair = np.empty((n, 2), dtype=np.intp)  # (n, 2): the low tone's bin, the high tone's
        np.argmax(p[:, :4], axis=1, out=pair[:, 0])
        np.argmax(p[:, 4:], axis=1, out=pair[:, 1])
        keys = pair[:, 0] * 4 + pair[:, 1]
        pair[:, 1] += 4
        each = np.arange(n)
        # The window's samples (its four sub-blocks) as two 10 ms halves, each through a
        # Hann-windowed DFT; the two tones' bins picked out of the flattened result.
        if n < MANY_WINDOWS:
            samples = blocks[streams[:, None], offsets[:, None] + self.window_blocks]
            halves = (samples.reshape(n, 2, self.half_len) @ self.half_basis).view(np.complex128).reshape(-1)
            halves = halves[(each * 16)[:, None, None] + self.half_rows + pair[:, None, :]]  # (n, 2 halves, 2 tones)
        else:
            # Many windows overlap: each sub-block they cover goes once through the Hann
            # basis's first and second half (a half is then the sum of two such parts),
            # instead of every window's 160 samples gathered and multiplied.
            covered = (streams * blocks.shape[1] + offsets)[:, None] + self.window_blocks  # (n, 4), flattened
            needed = np.zeros(blocks.shape[0] * blocks.shape[1], dtype=bool)
            needed[covered] = True
            row_of = np.cumsum(needed) - 1  # a sub-block's row among those needed
            parts = (blocks[needed.reshape(blocks.shape[:2])] @ self.part_basis).view(np.complex128).reshape(-1)
            parts = parts[(row_of[covered] * 16)[:, :, None] + self.part_rows + pair[:, None, :]]  # (n, 4, 2 tones)
            halves = parts[:, 0::2] + parts[:, 1::2]
        amps = np.abs(halves)
        first_half, second_half = amps[:, 0], amps[:, 1]
        # A tone that starts or stops inside the window would bias its phase (and speech
        # seldom holds still for 20 ms): each tone must be as strong in both halves.
        steady_tones = np.minimum(first_half, second_half) >= self.settings.min_steadiness * np.maximum(first_half, second_half)
        # The phase turn between the window's two 10 ms halves gives each tone's offset from
        # nominal, precisely but modulo `alias` (100 Hz); the turn from one 5 ms sub-block to
        # the next is rougher but unambiguous to ±100 Hz: it picks the alias.
        turns = halves[:, 1] * np.conj(halves[:, 0]) * self.half_turn[pair]
        first = (streams * z_all.shape[1] + back + offsets - WINDOW_SUB_BLOCKS + 1) * 8  # the window's first DFT, flattened
        subs = z_all.reshape(-1)[first[:, None, None] + self.sub_rows + pair[:, None, :]]  # (n, 4 sub-blocks, 2 tones)
        turned = subs[:, 1:] * np.conj(subs[:, :-1])
        steps = turned[:, 0] + turned[:, 1] + turned[:, 2]
        alias = self.rate / self.half_len
        fine = np.arctan2(turns.imag, turns.real) * self.rate / (2 * np.pi * self.half_len)
        rough = np.arctan2(steps.imag, steps.real) * self.rate / (2 * np.pi * self.sub)
        offset = fine + alias * np.rint((rough - fine) / alias)
        within = (np.abs(offset) <= self.tolerance[pair]) & steady_tones
        within = within[:, 0] & within[:, 1]
        if not within.any():  # speech, mostly: the rest would be numpy calls for nothing
            return self.no_windows
        # The decisions use each tone's power over the whole 20 ms window, coherently: a
        # harmonic of speech that glides loses power there, a keypad tone does not. It is
        # corrected for the rectangular window's loss at that offset (the Dirichlet kernel,
        # sinc(offset * window) / sinc(offset), written out: np.sinc costs 3 µs a call).
        # Both sincs at once; 1e-300 changes no angle but an exact 0, whose sinc is the limit, 1.
        x = np.pi * (offset[:, :, None] * self.sinc_lengths / self.rate) + 1e-300
        sincs = np.sin(x) / x
        gain = np.abs(sincs[..., 0] / sincs[..., 1])
        true_power = p.reshape(-1)[(each * 8)[:, None] + pair] * self.power_scale / np.maximum(gain, 1e-3) ** 2
        p_low, p_high = true_power[:, 0], true_power[:, 1]
        settings = self.settings
        good = np.flatnonzero(
            within & (np.minimum(p_low, p_high) >= self.min_power)
                & (p_high <= self.max_reverse_twist * p_low) & (p_low <= self.max_normal_twist * p_high)
            & (p_low + p_high >= settings.min_purity / self.window_len * energy[streams, offsets]))
        if not good.size:
            return self.no_windows
        # The levels reported come from the Hann halves: their low side lobes keep one
        # tone's leakage out of the other's level (the 20 ms window's cost up to 1.3 dB).
        # Only windows within tolerance are used, so |bins| < 0.5 and the kernel (even) has
        # no pole.
        bins = np.minimum(np.abs(offset[good]) * self.half_len / self.rate, 0.5)
        x_bins = np.pi * bins + 1e-300
        hann_gain = np.abs((np.sin(x_bins) / x_bins) / (1 - bins ** 2))
        amps = amps[good]
        level = (amps[:, 0] ** 2 + amps[:, 1] ** 2) / (self.hann_sum * np.maximum(hann_gain, 1e-3)) ** 2
        return good, keys[good], level

    # -------------------------------------------------------------- presses

    def _walk(self, z_flat: np.ndarray, rows: np.ndarray, bins: np.ndarray, refs: np.ndarray,
              begin: np.ndarray, stop: np.ndarray, gap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The missing tone after several presses' last windows, all at once.

        Press i's sub-blocks ``begin[i]`` .. ``stop[i] - 1`` (rows ``rows[i] + k`` of the
        flattened DFTs, its tones at ``bins[i]``, its amplitudes ``refs[i]``) each add
        1 - coverage to ``gap[i]``, in order, as a loop over them would; the press ends
        where the sum reaches the bridge. Returns (ended, where, the gap at ``stop`` for
        those that did not end). The sub-blocks are taken a few at a time (a press usually
        ends within its bridge), more each round.
        """
        m = begin.shape[0]
        ended = np.zeros(m, dtype=bool)
        where = np.zeros(m, dtype=np.int64)
        gap = gap.copy()
        # A sub-block adds at most 1: a gap shorter than the bridge cannot end a press.
        active = np.flatnonzero(stop - begin + gap >= self.bridge - 1e-9)
        width = 8
        while active.size:
            steps = np.arange(width)
            at = begin[active, None] + steps
            valid = at < stop[active, None]
            index = (rows[active, None] + np.minimum(at, stop[active, None] - 1)) * 8
            amp_low = np.abs(z_flat[index + bins[active, 0:1]]) * self.amp_scale
            amp_high = np.abs(z_flat[index + bins[active, 1:2]]) * self.amp_scale
            value = (amp_low / refs[active, 0:1] + amp_high / refs[active, 1:2]) / 2
            # Inside a tone the measure wavers around 1 (leakage, noise); clipping it at 1 alone
            # would bias every press short. A sub-block three-quarters full counts as full.
            missing = np.where(valid & (value < 0.75), 1.0 - value, 0.0)
            missing[:, 0] += gap[active]  # the running sum continues the gap, in the loop's order
            sums = np.cumsum(missing, axis=1)
            reached = sums >= self.bridge
            done = reached.any(axis=1)
            ended[active[done]] = True
            where[active[done]] = begin[active[done]] + reached[done].argmax(axis=1)
            gap[active] = sums[:, -1]
            begin = begin.copy()
            begin[active] += width
            active = active[~done & (begin[active] < stop[active])]
            width *= 2
        return ended, where, gap

    def _follow(self, streams: np.ndarray, offsets: np.ndarray, keys: np.ndarray, levels: np.ndarray,
                z_all: np.ndarray, back: int, count: int, found: list[list[KeyTone]]) -> None:
        """Presses from this pass's windows with a key; ended ones into ``found``.

        Windows in a row with one key form a run: found by comparing neighbouring windows,
        never visiting them one by one. A press is a run, or several of one key whose gaps
        were bridged, or one still open from an earlier pass continued. A short pass with
        a few runs (a stream fed in frames) follows them in plain Python, where numpy's cost
        per call would outweigh the arithmetic; many runs (a long chunk, many streams) go
        through array operations over all of them together. Both do the same arithmetic
        (a sum of three or more terms may differ in its last bit, far below the 0.01 dB and
        the sample the results are given in). Positions here are sub-blocks counted from
        the pass's first new one.
        """
        n = offsets.shape[0]
        if n:
            # Runs: a window that does not continue its predecessor's (same stream, next
            # sub-block, same key) starts one.
            starts = np.ones(n, dtype=bool)
            starts[1:] = (offsets[1:] != offsets[:-1] + 1) | (keys[1:] != keys[:-1]) | (streams[1:] != streams[:-1])
            first_window = np.flatnonzero(starts)
            ends = np.empty_like(first_window)
            ends[:-1] = first_window[1:]
            ends[-1] = n
            run_sums = np.add.reduceat(levels, first_window, axis=0)
            run_stream, run_key = streams[first_window], keys[first_window]
            run_first, run_last = offsets[first_window], offsets[ends - 1] + 1
            run_windows = ends - first_window
            if self.record_tones:
                for stream, first, last in zip(run_stream.tolist(), run_first.tolist(), run_last.tolist()):
                    self.tone_spans[stream].append((self.count + first - WINDOW_SUB_BLOCKS, self.count + last))
        else:
            run_stream = run_key = run_first = run_last = run_windows = np.zeros(0, dtype=np.int64)
            run_sums = np.zeros((0, 2))
        if run_first.shape[0] + self.open_count <= FEW_RUNS and z_all.shape[1] <= FEW_RUNS_ROWS:
            self._follow_few(run_stream, run_key, run_first, run_last, run_sums, run_windows, z_all, back, count, found)
        else:
            self._follow_many(run_stream, run_key, run_first, run_last, run_sums, run_windows, z_all, back, count, found)

    def _follow_few(self, run_stream: np.ndarray, run_key: np.ndarray, run_first: np.ndarray, run_last: np.ndarray,
                    run_sums: np.ndarray, run_windows: np.ndarray, z_all: np.ndarray, back: int, count: int,
                    found: list[list[KeyTone]]) -> None:
        """:meth:`_follow_many`'s work for a few runs, one sub-block at a time in plain Python."""
        runs = list(zip(run_stream.tolist(), run_key.tolist(), run_first.tolist(), run_last.tolist(),
                        run_sums.tolist(), run_windows.tolist()))
        for stream in sorted({run[0] for run in runs} | set(np.flatnonzero(self.open).tolist())):
            # Tone amplitudes of every sub-block the pass holds: row back + k is sub-block k.
            amps = (np.abs(z_all[stream]) * self.amp_scale).tolist()
            press: list | None = None  # key, first sub-block, last window's end, low and high sums, windows, gap
            if self.open[stream]:
                press = [int(self.press_key[stream]), int(self.press_first[stream]) - self.count,
                         int(self.press_last_hit[stream]) - self.count, float(self.press_sums[stream, 0]),
                         float(self.press_sums[stream, 1]), int(self.press_windows[stream]), float(self.press_gap[stream])]
            walk_from = 0
            for _, key, first, last, (low, high), windows in (run for run in runs if run[0] == stream):
                if press is not None:
                    ended = self._walk_one(press, amps, back, walk_from, first)
                    if ended is None and press[0] != key:
                        ended = first - 1
                    if ended is not None:
                        self._end_one(stream, press, ended, amps, back, found)
                        press = None
                if press is None:
                    press = [key, first - WINDOW_SUB_BLOCKS, 0, 0.0, 0.0, 0, 0.0]
                press[2], press[3], press[4], press[5], press[6] = last - 1, press[3] + low, press[4] + high, press[5] + windows, 0.0
                walk_from = last
            if press is not None:
                ended = self._walk_one(press, amps, back, walk_from, count)
                if ended is not None:
                    self._end_one(stream, press, ended, amps, back, found)
                    press = None
            if press is None:
                self.open[stream] = False
            else:
                self.open[stream] = True
                self.press_key[stream], self.press_first[stream] = press[0], press[1] + self.count
                self.press_last_hit[stream] = press[2] + self.count
                self.press_sums[stream] = press[3], press[4]
                self.press_windows[stream], self.press_gap[stream] = press[5], press[6]
        self.open_count = int(np.count_nonzero(self.open))

    def _walk_one(self, press: list, amps: list[list[float]], back: int, begin: int, stop: int) -> int | None:
        """:meth:`_walk` for one press: the sub-block where its gap reaches the bridge, if any."""
        low, high = press[0] // 4, press[0] % 4 + 4
        ref_low, ref_high = math.sqrt(2 * press[3] / press[5]), math.sqrt(2 * press[4] / press[5])
        gap, bridge = press[6], self.bridge
        for k in range(begin, stop):
            row = amps[back + k]
            value = (row[low] / ref_low + row[high] / ref_high) / 2
            if value < 0.75:  # (a sub-block three-quarters full counts as full: see _walk)
                gap += 1.0 - value
                if gap >= bridge:
                    press[6] = gap
                    return k
        press[6] = gap
        return None

    def _end_one(self, stream: int, press: list, ended: int, amps: list[list[float]], back: int,
                 found: list[list[KeyTone]]) -> None:
        """:meth:`_end` for one press, ended at sub-block ``ended``."""
        key, first = press[0], press[1]
        low, high = key // 4, key % 4 + 4
        ref_low, ref_high = math.sqrt(2 * press[3] / press[5]), math.sqrt(2 * press[4] / press[5])
        cover = []
        for row in amps[back + first:back + min(ended, press[2] + 1) + 1]:
            value = (row[low] / ref_low + row[high] / ref_high) / 2
            cover.append(1.0 if value >= 0.75 else value)
        if sum(cover) * SUB_BLOCK_SECONDS * 1000 < self.settings.min_on_ms:
            return
        inside = [k for k, c in enumerate(cover) if c >= 0.15]
        if not inside:
            return
        k_start, k_end = inside[0], inside[-1]
        start = int(round((self.count + first + k_start + 1 - cover[k_start]) * self.sub))
        end = int(round((self.count + first + k_end + cover[k_end]) * self.sub))
        found[stream].append(KeyTone(KEY_NAMES[key], start, end, self.rate, round(power_to_dbm0(press[3] / press[5]), 2),
                                     round(power_to_dbm0(press[4] / press[5]), 2)))

    def _follow_many(self, run_stream: np.ndarray, run_key: np.ndarray, run_first: np.ndarray, run_last: np.ndarray,
                     run_sums: np.ndarray, run_windows: np.ndarray, z_all: np.ndarray, back: int, count: int,
                     found: list[list[KeyTone]]) -> None:
        """Presses from many runs at once: Python visits presses, never windows or sub-blocks.

        The sub-block walks (how long a gap is, how much of each sub-block a press's tones
        fill) are array operations over all presses together.
        """
        n = run_first.shape[0]
        # Items: each stream's open press (as if a run ending where this pass starts), then its runs.
        carried = np.flatnonzero(self.open)
        item_stream = np.concatenate([carried, run_stream])
        item_key = np.concatenate([self.press_key[carried], run_key])
        item_first = np.concatenate([np.full(carried.shape[0], -1), run_first])  # for ordering only
        walk_from = np.concatenate([np.zeros(carried.shape[0], dtype=np.int64), run_last])
        gap0 = np.concatenate([self.press_gap[carried], np.zeros(run_first.shape[0])])
        sums = np.concatenate([self.press_sums[carried], run_sums])
        windows = np.concatenate([self.press_windows[carried], run_windows])
        press_first = np.concatenate([self.press_first[carried] - self.count, run_first - WINDOW_SUB_BLOCKS])
        last_hit = np.concatenate([self.press_last_hit[carried] - self.count, run_last - 1])
        if carried.size and n:
            order = np.argsort(item_stream * (count + 2) + item_first, kind="stable")
            item_stream, item_key, item_first, walk_from, gap0, sums, windows, press_first, last_hit = (
                a[order] for a in (item_stream, item_key, item_first, walk_from, gap0, sums, windows, press_first, last_hit))
        m = item_stream.shape[0]
        if not m:
            return
        # Each item's gap runs to the next item of its stream, or to the end of the pass.
        has_next = np.zeros(m, dtype=bool)
        has_next[:-1] = item_stream[1:] == item_stream[:-1]
        stop = np.full(m, count, dtype=np.int64)
        stop[:-1] = np.where(has_next[:-1], item_first[1:], count)
        same_next = np.zeros(m, dtype=bool)
        same_next[:-1] = has_next[:-1] & (item_key[1:] == item_key[:-1])
        bins = KEY_BINS[item_key]
        rows = item_stream * z_all.shape[1] + back  # flattened DFT row of the pass's sub-block 0
        z_flat = z_all.reshape(-1)
        # Between two items of one key the press goes on unless the gap reaches the bridge,
        # which depends on the press's amplitudes so far, and those on where it began: a
        # chain of decisions. Each item's mean amplitudes bound the press's (a mean of
        # means), and more amplitude means less coverage: a gap that ends the press with the
        # chain's smallest amplitudes ends it whatever they are, one that does not with the
        # largest never does. Only a gap between the two is followed in order.
        split = np.zeros(m, dtype=bool)
        joined = np.flatnonzero(same_next)
        if joined.size:
            means = sums / windows[:, None]
            chain_start = np.ones(m, dtype=bool)
            chain_start[1:] = ~same_next[:-1]
            chain_first = np.flatnonzero(chain_start)
            chain_of = np.cumsum(chain_start) - 1
            lowest = np.sqrt(2 * np.minimum.reduceat(means, chain_first, axis=0))[chain_of] * (1 - 1e-9)
            highest = np.sqrt(2 * np.maximum.reduceat(means, chain_first, axis=0))[chain_of] * (1 + 1e-9)
            args = (rows[joined], bins[joined])
            walk = (walk_from[joined], stop[joined], gap0[joined])
            surely, _, _ = self._walk(z_flat, *args, lowest[joined], *walk)
            maybe, _, _ = self._walk(z_flat, *args, highest[joined], *walk)
            split[joined] = surely
            for item in joined[maybe & ~surely].tolist():
                begun = item
                while begun > 0 and same_next[begun - 1] and not split[begun - 1]:
                    begun -= 1
                low = high = 0.0
                for k in range(begun, item + 1):
                    low, high = low + float(sums[k, 0]), high + float(sums[k, 1])
                count_windows = int(windows[begun:item + 1].sum())
                refs = np.sqrt(2 * np.array([[low, high]]) / count_windows)
                one = slice(item, item + 1)
                split[item] = self._walk(z_flat, rows[one], bins[one], refs, walk_from[one], stop[one], gap0[one])[0][0]
        # Presses: an item starts one unless it continues the previous item's.
        begins = np.ones(m, dtype=bool)
        begins[1:] = ~same_next[:-1] | split[:-1]
        press_items = np.flatnonzero(begins)
        final = np.empty_like(press_items)  # each press's last item
        final[:-1] = press_items[1:] - 1
        final[-1] = m - 1
        totals = np.add.reduceat(sums, press_items, axis=0)
        total_windows = np.add.reduceat(windows, press_items)
        refs = np.sqrt(2 * totals / total_windows[:, None])  # each press's own tone amplitudes
        ended, where, gap = self._walk(z_flat, rows[final], bins[final], refs, walk_from[final], stop[final], gap0[final])
        # Not ended by its gap: by the next item (another key), or still open at the end of the pass.
        closing = ended | has_next[final]
        where = np.where(ended, where, stop[final] - 1)
        stream_of = item_stream[final]
        still_open = ~closing
        self.open[stream_of[closing]] = False
        self.open[stream_of[still_open]] = True
        self.open_count = int(np.count_nonzero(self.open))
        if still_open.any():
            kept = stream_of[still_open]
            self.press_key[kept] = item_key[final][still_open]
            self.press_first[kept] = press_first[press_items][still_open] + self.count
            self.press_last_hit[kept] = last_hit[final][still_open] + self.count
            self.press_sums[kept] = totals[still_open]
            self.press_windows[kept] = total_windows[still_open]
            self.press_gap[kept] = gap[still_open]
        done = np.flatnonzero(closing)
        if done.size:
            self._end(done, stream_of, item_key[final], press_first[press_items], np.minimum(where, last_hit[final] + 1),
                      bins[final], refs, totals, total_windows, rows[final], z_flat, found)

    def _end(self, done: np.ndarray, stream_of: np.ndarray, key_of: np.ndarray, first_of: np.ndarray,
             last_of: np.ndarray, bins: np.ndarray, refs: np.ndarray, totals: np.ndarray, windows: np.ndarray,
             rows: np.ndarray, z_flat: np.ndarray, found: list[list[KeyTone]]) -> None:
        """Close the presses ``done``: keys for those whose tones lasted ``min_on_ms``.

        Each press's sub-blocks ``first_of`` .. ``last_of`` (inclusive) are measured against
        its own amplitudes: how much of each its two tones fill gives its on-time and its
        edges, whatever the level. All presses' sub-blocks are laid end to end and summed
        per press.
        """
        first, last = first_of[done], last_of[done]
        length = last - first + 1
        at, owner = _ranges(first, length)
        index = (rows[done][owner] + at) * 8
        amp_low = np.abs(z_flat[index + bins[done, 0][owner]]) * self.amp_scale
        amp_high = np.abs(z_flat[index + bins[done, 1][owner]]) * self.amp_scale
        value = (amp_low / refs[done, 0][owner] + amp_high / refs[done, 1][owner]) / 2
        cover = np.where(value >= 0.75, 1.0, value)  # as in _walk
        offsets = np.zeros(done.shape[0], dtype=np.int64)
        np.cumsum(length[:-1], out=offsets[1:])
        on = np.add.reduceat(cover, offsets) * SUB_BLOCK_SECONDS * 1000 >= self.settings.min_on_ms
        # The first and last sub-block the tones fill noticeably: the press's edges.
        position = np.arange(at.shape[0])
        inside = cover >= 0.15
        edge_first = np.minimum.reduceat(np.where(inside, position, at.shape[0]), offsets)
        edge_last = np.maximum.reduceat(np.where(inside, position, -1), offsets)
        on &= edge_last >= 0
        if not on.any():
            return
        keep = np.flatnonzero(on)
        edge_first, edge_last = edge_first[keep], edge_last[keep]
        base = first[keep] + self.count
        starts = np.rint((base + (edge_first - offsets[keep]) + 1 - cover[edge_first]) * self.sub).astype(np.int64)
        ends = np.rint((base + (edge_last - offsets[keep]) + cover[edge_last]) * self.sub).astype(np.int64)
        powers = (totals[done][keep] / windows[done][keep, None]).tolist()
        for stream, key, start, end, (p_low, p_high) in zip(stream_of[done][keep].tolist(), key_of[done][keep].tolist(),
                                                            starts.tolist(), ends.tolist(), powers):
            # Levels to 0.01 dB: below that, the last bits differ with how BLAS splits the work.
            found[stream].append(KeyTone(KEY_NAMES[key], start, end, self.rate,
                                         round(power_to_dbm0(p_low), 2), round(power_to_dbm0(p_high), 2)))

    def flush(self) -> list[list[KeyTone]]:
        """End of the streams: enough silence to close every open press."""
        pad = (-(self.fill - self.start)) % self.sub
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
