"""The DTMF detector on generated signals: the Q.24 battery, times, levels, streaming.

Every signal is made by ``voicebot.dtmf.generator`` with a fixed seed, so each test knows
where every press really is and at what level; nothing here measures wall-clock speed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pytest

from voicebot.dtmf import generator
from voicebot.dtmf.battery import FAMILIES, Case, battery
from voicebot.dtmf.detector import (
    DtmfDetector,
    DtmfSettings,
    KeyTone,
    MultiStreamDtmfDetector,
    detect,
)
from voicebot.dtmf.tones import KEY_FREQUENCIES

KEYS = "123A456B789C*0#D"
SEED = 24
SECOND_SEED = 2024
# Levels are reported to 0.01 dB; a value on a rounding edge may land on either side of it
# depending on how BLAS splits a product, so "equal levels" allows that one step.
LEVEL_STEP = 0.01 + 1e-9


# ------------------------------------------------------------------ helpers


def sub_block(rate: int) -> int:
    """Samples in one 5 ms sub-block at ``rate``."""
    return rate // 200


def keys_of(tones: Iterable[KeyTone]) -> str:
    return "".join(t.key for t in tones)


def run_stream(detector: DtmfDetector, signal: np.ndarray, chunk: int | None) -> list[KeyTone]:
    """``signal`` through ``detector`` in chunks of ``chunk`` samples (None: all at once), then flush."""
    found: list[KeyTone] = []
    if chunk is None:
        found += detector.feed(signal)
    else:
        for start in range(0, len(signal), chunk):
            found += detector.feed(signal[start:start + chunk])
    return found + detector.flush()


def describe(tones: Sequence[KeyTone]) -> str:
    return ", ".join(f"{t.key}@{t.start_sample}-{t.end_sample} ({t.low_dbm0}/{t.high_dbm0} dBm0)" for t in tones)


def assert_same_tones(got: Sequence[KeyTone], want: Sequence[KeyTone], label: str) -> None:
    """Keys, sample positions and rate equal; levels equal to the reported 0.01 dB."""
    assert [(t.key, t.start_sample, t.end_sample, t.sample_rate) for t in got] == \
           [(t.key, t.start_sample, t.end_sample, t.sample_rate) for t in want], \
        f"{label}: got [{describe(got)}], want [{describe(want)}]"
    for g, w in zip(got, want):
        assert abs(g.low_dbm0 - w.low_dbm0) <= LEVEL_STEP and abs(g.high_dbm0 - w.high_dbm0) <= LEVEL_STEP, \
            f"{label}: levels of {g.key}@{g.start_sample} differ: {g.low_dbm0}/{g.high_dbm0} vs {w.low_dbm0}/{w.high_dbm0}"


def assert_at_presses(found: Sequence[KeyTone], presses: Sequence[generator.Press], rate: int,
                      tolerance: int, label: str = "") -> None:
    """The keys found are the generated presses, each start and end within ``tolerance`` samples."""
    assert keys_of(found) == "".join(p.key for p in presses), \
        f"{label} keys: got {keys_of(found)!r}, generated {''.join(p.key for p in presses)!r}: [{describe(found)}]"
    for tone, press in zip(found, presses):
        assert tone.sample_rate == rate
        assert abs(tone.start_sample - press.start) <= tolerance and abs(tone.end_sample - press.end) <= tolerance, \
            (f"{label} key {press.key}: reported {tone.start_sample}-{tone.end_sample}, generated "
             f"{press.start}-{press.end} (tolerance {tolerance} samples at {rate} Hz)")


def noisy_multi_key_signal(rate: int = 8000, seed: int = 11) -> tuple[np.ndarray, list[generator.Press]]:
    """Several keys at several levels and lengths in white noise, a repeated key and a drop-out."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    presses: list[generator.Press] = []
    position = 0
    layout = [("1", 0.05, -5.0, 0.0), ("5", 0.1, -12.0, -4.0), ("5", 0.045, -20.0, 2.0), ("9", 0.3, -8.0, 0.0),
              ("#", 0.07, -24.0, -6.0), ("D", 0.04, -3.0, 3.0), ("0", 0.12, -15.0, -2.0), ("*", 0.2, -18.0, 1.0)]
    for key, on, level, twist in layout:
        gap = np.zeros(round(rng.uniform(0.06, 0.2) * rate))
        samples = generator.tone(key, on, rate, level_dbm0=level, twist_db=twist, rng=rng)
        parts += [gap, samples]
        position += len(gap)
        presses.append(generator.Press(key, position, position + len(samples)))
        position += len(samples)
    parts.append(np.zeros(int(0.15 * rate)))
    signal = np.concatenate(parts)
    # A 10 ms drop-out in the middle of the long "9", which must be bridged.
    nine = presses[3]
    signal = generator.with_dropout(signal, (nine.start + nine.end) // 2, int(0.01 * rate))
    # Noise at a fixed level (about 20 dB under the -12 dBm0 key), everywhere, gaps included.
    signal = signal + generator.white_noise(len(signal) / rate, -32.0, rate, rng)
    return signal, presses


# ------------------------------------------------------------------ the Q.24 battery


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return battery(SEED)


def battery_failures(selected: Sequence[Case]) -> list[str]:
    failures = []
    for case in selected:
        got = keys_of(detect(case.samples, case.sample_rate))
        if got != case.expect:
            failures.append(f"{case.family}: {case.name}: reported {got!r}, expected {case.expect!r}")
    return failures


@pytest.mark.parametrize("family", list(FAMILIES))
def test_q24_battery_family(cases: list[Case], family: str) -> None:
    selected = [case for case in cases if case.family == family]
    assert selected, f"the battery has no {family!r} cases"
    failures = battery_failures(selected)
    assert not failures, f"{len(failures)} of {len(selected)} {family!r} cases failed:\n" + "\n".join(failures)


def test_q24_battery_has_accept_and_reject_cases(cases: list[Case]) -> None:
    families = {case.family for case in cases}
    assert families == set(FAMILIES)
    # Reject cases exist (otherwise a detector that reports every key everywhere would pass).
    for family in ("offset", "duration", "noise"):
        assert any(not case.accept for case in cases if case.family == family), family


def test_q24_battery_with_a_second_seed() -> None:
    selected = battery(SECOND_SEED)
    failures = battery_failures(selected)
    assert not failures, f"seed {SECOND_SEED}: {len(failures)} of {len(selected)} cases failed:\n" + "\n".join(failures)


# ------------------------------------------------------------------ each key, native rates


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("key", list(KEYS))
def test_every_key_alone(key: str, rate: int) -> None:
    rng = np.random.default_rng([SEED, KEYS.index(key), rate])
    signal, presses = generator.sequence(key, on=0.08, lead=rng.uniform(0.05, 0.1), sample_rate=rate, rng=rng)
    found = detect(signal, rate)
    assert_at_presses(found, presses, rate, sub_block(rate), f"{key} at {rate} Hz")


# ------------------------------------------------------------------ times, levels, twist


@pytest.mark.parametrize("on", [0.04, 0.1])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_times_and_levels(rate: int, on: float) -> None:
    """Start/end within one 5 ms sub-block; each tone's level within 1 dB; twist signed."""
    rng = np.random.default_rng([SEED, rate, int(on * 1000)])
    problems = []
    for level, twist in itertools.product((0.0, -10.0, -20.0, -25.0), (-8.0, -4.0, 0.0, 4.0)):
        keys = "".join(rng.permutation(list(KEYS)))
        signal, presses = generator.sequence(keys, on=on, off=0.06, lead=rng.uniform(0.05, 0.1), sample_rate=rate,
                                             rng=rng, level_dbm0=level, twist_db=twist)
        found = detect(signal, rate)
        label = f"{level:+.0f} dBm0, twist {twist:+.0f} dB, {on * 1000:.0f} ms at {rate} Hz"
        assert_at_presses(found, presses, rate, sub_block(rate), label)
        for tone in found:
            low_error = tone.low_dbm0 - level
            high_error = tone.high_dbm0 - (level + twist)
            if abs(low_error) > 1.0 or abs(high_error) > 1.0:
                problems.append(f"{label}: {tone.key} reported {tone.low_dbm0}/{tone.high_dbm0} dBm0, "
                                f"generated {level}/{level + twist}")
            reported_twist = tone.high_dbm0 - tone.low_dbm0
            if twist and np.sign(reported_twist) != np.sign(twist):
                problems.append(f"{label}: {tone.key} twist reported {reported_twist:+.2f} dB")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("twist", [-6.0, -2.0, 2.0, 3.5])
def test_twist_is_reported_high_minus_low(twist: float) -> None:
    rng = np.random.default_rng([SEED, int(twist * 10) + 100])
    signal, _ = generator.sequence("8", on=0.1, rng=rng, level_dbm0=-12.0, twist_db=twist)
    (tone,) = detect(signal)
    assert tone.high_dbm0 - tone.low_dbm0 == pytest.approx(twist, abs=0.5)
    assert (tone.high_dbm0 > tone.low_dbm0) == (twist > 0)


@pytest.mark.parametrize("key", list(KEYS))
def test_levels_and_times_at_the_q24_offset_and_twist_limits(key: str) -> None:
    """Both tones ±1.5 % ±2 Hz off, twist -8 or +4 dB, over a grid of phases: still within 1 dB and a sub-block."""
    low, high = KEY_FREQUENCIES[key]
    level = -15.0
    phases = np.arange(4) * np.pi / 2
    problems = []
    for s_low, s_high, twist, p_low, p_high in itertools.product((1, -1), (1, -1), (-8.0, 4.0), phases, phases):
        samples = generator.tone(key, 0.1, level_dbm0=level, twist_db=twist,
                                 low_offset=s_low * (0.015 + 2 / low), high_offset=s_high * (0.015 + 2 / high),
                                 phase=(p_low, p_high))
        signal = np.concatenate([np.zeros(400), samples, np.zeros(800)])
        found = detect(signal)
        label = f"{key} offsets {s_low:+d}/{s_high:+d} twist {twist:+.0f} phases {p_low:.2f}/{p_high:.2f}"
        if keys_of(found) != key:
            problems.append(f"{label}: reported {keys_of(found)!r}")
            continue
        (tone,) = found
        if abs(tone.start_sample - 400) > 40 or abs(tone.end_sample - 1200) > 40:
            problems.append(f"{label}: reported {tone.start_sample}-{tone.end_sample}, generated 400-1200")
        if abs(tone.low_dbm0 - level) > 1.0 or abs(tone.high_dbm0 - (level + twist)) > 1.0:
            problems.append(f"{label}: reported {tone.low_dbm0}/{tone.high_dbm0} dBm0, generated {level}/{level + twist}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


# ------------------------------------------------------------------ chunking


@pytest.fixture(scope="module")
def noisy_8k() -> tuple[np.ndarray, list[generator.Press], list[KeyTone]]:
    signal, presses = noisy_multi_key_signal(8000)
    return signal, presses, detect(signal, 8000)


def test_noisy_multi_key_signal_is_detected(noisy_8k: tuple[np.ndarray, list[generator.Press], list[KeyTone]]) -> None:
    _, presses, found = noisy_8k
    assert_at_presses(found, presses, 8000, sub_block(8000), "noisy multi-key")


@pytest.mark.parametrize("chunk", [1, 7, 80, 160, 333, 4000, None], ids=lambda c: "whole" if c is None else str(c))
def test_any_chunk_size_gives_identical_results(
        chunk: int | None, noisy_8k: tuple[np.ndarray, list[generator.Press], list[KeyTone]]) -> None:
    signal, _, reference = noisy_8k
    found = run_stream(DtmfDetector(8000), signal, chunk)
    assert_same_tones(found, reference, f"chunks of {chunk}")


def test_irregular_and_empty_chunks_give_identical_results(
        noisy_8k: tuple[np.ndarray, list[generator.Press], list[KeyTone]]) -> None:
    signal, _, reference = noisy_8k
    rng = np.random.default_rng(3)
    detector = DtmfDetector(8000)
    found: list[KeyTone] = []
    position = 0
    while position < len(signal):
        size = int(rng.choice([0, 1, 2, 39, 40, 41, 159, 161, 1000, 2501]))
        found += detector.feed(signal[position:position + size])
        position += size
    found += detector.flush()
    assert_same_tones(found, reference, "irregular chunks")


@pytest.mark.parametrize("chunk", [1, 13, 320, 5000])
def test_any_chunk_size_gives_identical_results_at_16k(chunk: int) -> None:
    signal, presses = noisy_multi_key_signal(16000, seed=12)
    reference = detect(signal, 16000)
    assert_at_presses(reference, presses, 16000, sub_block(16000), "noisy multi-key at 16 kHz")
    assert_same_tones(run_stream(DtmfDetector(16000), signal, chunk), reference, f"16 kHz, chunks of {chunk}")


# ------------------------------------------------------------------ sample types


def test_int16_input_equals_scaled_float_input() -> None:
    signal, presses = noisy_multi_key_signal(8000, seed=13)
    pcm = generator.to_int16(signal)
    from_int16 = detect(pcm)
    from_float = detect(pcm.astype(np.float64) / 32768.0)
    assert_at_presses(from_int16, presses, 8000, sub_block(8000), "int16")
    assert_same_tones(from_int16, from_float, "int16 vs float / 32768")
    # Streaming int16 in telephone frames gives the same too.
    assert_same_tones(run_stream(DtmfDetector(8000), pcm, 160), from_float, "int16 in 160-sample frames")


def test_float32_and_lists_are_accepted() -> None:
    signal, presses = noisy_multi_key_signal(8000, seed=14)
    assert_at_presses(detect(signal.astype(np.float32)), presses, 8000, sub_block(8000), "float32")
    assert keys_of(detect(signal[:8000].tolist())) == keys_of(detect(signal[:8000]))


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint16, np.uint32])
def test_other_integer_types_are_refused(dtype: type) -> None:
    samples: np.ndarray = np.zeros(800, dtype=dtype)
    name = np.dtype(dtype).name
    with pytest.raises(TypeError, match=rf"int16.*{name}|{name}.*int16"):
        DtmfDetector(8000).feed(samples)
    with pytest.raises(TypeError, match="int16"):
        detect(samples)
    with pytest.raises(TypeError, match="int16"):
        MultiStreamDtmfDetector(2).feed(np.zeros((2, 800), dtype=dtype))


# ------------------------------------------------------------------ other rates


@pytest.mark.parametrize("rate", [11025, 22050, 44100, 48000])
def test_other_rates_through_resampling(rate: int) -> None:
    rng = np.random.default_rng([SEED, rate])
    keys = "".join(rng.permutation(list(KEYS)))
    signal, presses = generator.sequence(keys, on=0.07, off=0.06, lead=rng.uniform(0.05, 0.1), sample_rate=rate,
                                         rng=rng, level_dbm0=-12.0, twist_db=-2.0)
    tolerance = int(0.002 * rate)
    batch = detect(signal, rate)
    assert_at_presses(batch, presses, rate, tolerance, f"batch at {rate} Hz")
    # Streamed in 20 ms frames at the input rate: the same keys at the same times.
    streamed = run_stream(DtmfDetector(rate), signal, int(0.02 * rate))
    assert_at_presses(streamed, presses, rate, tolerance, f"20 ms frames at {rate} Hz")
    for tone in batch:
        assert tone.low_dbm0 == pytest.approx(-12.0, abs=1.0) and tone.high_dbm0 == pytest.approx(-14.0, abs=1.0)


# ------------------------------------------------------------------ many streams


def multi_stream_signals(rate: int, seed: int) -> tuple[np.ndarray, list[list[generator.Press]]]:
    """Five streams of equal length: keys at different (overlapping) times, one silent, one noisy."""
    rng = np.random.default_rng(seed)
    length = int(2.5 * rate)
    streams = np.zeros((5, length))
    presses: list[list[generator.Press]] = []
    layouts = ["147*", "", "2580", "D", "369#"]
    for index, keys in enumerate(layouts):
        found: list[generator.Press] = []
        if keys:
            signal, found = generator.sequence(keys, on=rng.uniform(0.045, 0.12), off=rng.uniform(0.05, 0.25),
                                               lead=rng.uniform(0.0, 0.6), tail=0.0, sample_rate=rate, rng=rng,
                                               level_dbm0=rng.uniform(-22, -3), twist_db=rng.uniform(-6, 3))
            streams[index, :len(signal)] = signal
        presses.append(found)
    streams[4] += generator.white_noise(length / rate, -30.0, rate, rng)
    return streams, presses


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("chunk", [160, 999, None], ids=lambda c: "whole" if c is None else str(c))
def test_multi_stream_equals_each_stream_alone(rate: int, chunk: int | None) -> None:
    signals, presses = multi_stream_signals(rate, seed=rate + 1)
    multi = MultiStreamDtmfDetector(len(signals), rate)
    together: list[list[KeyTone]] = [[] for _ in signals]
    step = chunk or signals.shape[1]
    for start in range(0, signals.shape[1], step):
        for index, tones in enumerate(multi.feed(signals[:, start:start + step])):
            together[index] += tones
    for index, tones in enumerate(multi.flush()):
        together[index] += tones
    for index, signal in enumerate(signals):
        alone = detect(signal, rate)
        assert_same_tones(together[index], alone, f"stream {index} at {rate} Hz")
        assert_at_presses(together[index], presses[index], rate, sub_block(rate), f"stream {index}")


def test_multi_stream_streams_do_not_interfere() -> None:
    """One stream's key never shows up in, hides, or shifts another's, even when they overlap in time."""
    rate = 8000
    rng = np.random.default_rng(77)
    length = rate  # 1 s
    streams = np.zeros((3, length))
    a = generator.tone("1", 0.3, level_dbm0=-3.0, rng=rng)  # loud, long
    b = generator.tone("9", 0.05, level_dbm0=-24.0, rng=rng)  # weak, short, inside a's time
    c = generator.tone("1", 0.1, level_dbm0=-10.0, rng=rng)  # same key as a, after it
    streams[0, 1000:1000 + len(a)] = a
    streams[1, 2000:2000 + len(b)] = b
    streams[2, 5000:5000 + len(c)] = c
    detector = MultiStreamDtmfDetector(3, rate)
    found = [x + y for x, y in zip(detector.feed(streams), detector.flush())]
    want = [[generator.Press("1", 1000, 1000 + len(a))], [generator.Press("9", 2000, 2000 + len(b))],
            [generator.Press("1", 5000, 5000 + len(c))]]
    for index in range(3):
        assert_at_presses(found[index], want[index], rate, sub_block(rate), f"stream {index}")
        assert_same_tones(found[index], detect(streams[index]), f"stream {index} alone")


@pytest.mark.parametrize("shape", [(800,), (2, 800), (4, 800), (3, 4, 800), (800, 3)])
def test_multi_stream_wrong_shape_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"shape \(3, n\)"):
        MultiStreamDtmfDetector(3, 8000).feed(np.zeros(shape))


def test_multi_stream_empty_feed() -> None:
    detector = MultiStreamDtmfDetector(4, 8000)
    assert detector.feed(np.zeros((4, 0))) == [[], [], [], []]
    assert detector.flush() == [[], [], [], []]


# ------------------------------------------------------------------ flush, silence, noise


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
@pytest.mark.parametrize("tail", [0.0, 0.01])
def test_flush_reports_a_press_still_open(rate: int, tail: float) -> None:
    rng = np.random.default_rng([SEED, rate, int(tail * 1000)])
    signal, presses = generator.sequence("3", on=0.2, lead=0.1, tail=tail, sample_rate=rate, rng=rng)
    detector = DtmfDetector(rate)
    before = detector.feed(signal)
    assert before == [], f"the press was reported before the end of the audio: {describe(before)}"
    after = detector.flush()
    tolerance = sub_block(rate) if rate in (8000, 16000) else int(0.002 * rate)
    assert_at_presses(after, presses, rate, tolerance, f"flushed at {rate} Hz")
    assert after[0].end_sample <= len(signal) + tolerance


@pytest.mark.parametrize("rate", [8000, 16000, 11025, 44100])
def test_a_second_flush_gives_nothing(rate: int) -> None:
    signal, _ = generator.sequence("6", on=0.1, sample_rate=rate, rng=np.random.default_rng(rate))
    detector = DtmfDetector(rate)
    assert keys_of(detector.feed(signal) + detector.flush()) == "6"
    assert detector.flush() == []
    with pytest.raises(ValueError, match="start a new DtmfDetector"):
        detector.feed(signal)


def test_flush_after_a_finished_press_and_on_a_fresh_detector() -> None:
    signal, presses = generator.sequence("7", on=0.1, tail=0.2, rng=np.random.default_rng(1))
    detector = DtmfDetector(8000)
    found = detector.feed(signal) + detector.flush()
    assert_at_presses(found, presses, 8000, 40)
    assert DtmfDetector(8000).flush() == []
    assert DtmfDetector(16000).flush() == []
    assert DtmfDetector(44100).flush() == []


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_silence_and_empty_input_give_nothing(rate: int) -> None:
    assert detect(np.zeros(0), rate) == []
    assert detect(np.zeros(0, dtype=np.int16), rate) == []
    assert detect(np.zeros(3 * rate), rate) == []
    assert detect(np.zeros(3 * rate, dtype=np.int16), rate) == []
    detector = DtmfDetector(rate)
    assert detector.feed([]) == []
    assert detector.feed(np.zeros(0)) == []
    assert detector.flush() == []


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("level", [0.0, -10.0, -20.0, -30.0, -40.0])
def test_noise_alone_gives_nothing(rate: int, level: float) -> None:
    noise = generator.white_noise(10.0, level, rate, np.random.default_rng([SEED, rate, int(-level)]))
    found = detect(noise, rate)
    assert found == [], f"keys in white noise at {level} dBm0: {describe(found)}"
    assert run_stream(DtmfDetector(rate), noise, 160) == []


def test_single_tones_give_nothing() -> None:
    """One group's tone alone (a dial tone, a beep) is not a key."""
    rng = np.random.default_rng(5)
    t = np.arange(8000) / 8000
    for freq in (350, 440, 697, 941, 1000, 1209, 1633):
        for amplitude in (0.05, 0.5):
            tone = amplitude * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
            assert detect(tone) == [], f"{freq} Hz"


# ------------------------------------------------------------------ settings


def found_keys(on_ms: float, settings: DtmfSettings | None, seed: int, **tone: Any) -> list[str]:
    """For each of the 16 keys, what is reported for one press of ``on_ms``."""
    rng = np.random.default_rng(seed)
    reports = []
    for key in KEYS:
        signal, _ = generator.sequence(key, on=on_ms / 1000, lead=rng.uniform(0.05, 0.1), rng=rng, **tone)
        reports.append(keys_of(detect(signal, 8000, settings)))
    return reports


def test_min_level_setting() -> None:
    strict = DtmfSettings(min_level_dbm0=-20.0)
    assert found_keys(100, None, 1, level_dbm0=-25.0) == list(KEYS)  # the default accepts -25 dBm0
    assert found_keys(100, strict, 1, level_dbm0=-25.0) == [""] * 16
    assert found_keys(100, strict, 2, level_dbm0=-15.0) == list(KEYS)
    # The level is per tone: the weaker one decides.
    assert found_keys(100, strict, 3, level_dbm0=-15.0, twist_db=-8.0) == [""] * 16


def test_min_on_ms_setting() -> None:
    longer = DtmfSettings(min_on_ms=60.0)
    shorter = DtmfSettings(min_on_ms=20.0)
    assert found_keys(50, None, 4) == list(KEYS)
    assert found_keys(50, longer, 4) == [""] * 16
    assert found_keys(70, longer, 5) == list(KEYS)
    assert found_keys(28, None, 6) == [""] * 16
    assert found_keys(28, shorter, 6) == list(KEYS)


def test_twist_settings() -> None:
    assert found_keys(100, DtmfSettings(max_reverse_twist_db=2.0), 7, twist_db=4.0) == [""] * 16
    assert found_keys(100, DtmfSettings(max_reverse_twist_db=2.0), 7, twist_db=0.5) == list(KEYS)
    assert found_keys(100, DtmfSettings(max_normal_twist_db=4.0), 8, twist_db=-8.0) == [""] * 16
    assert found_keys(100, DtmfSettings(max_normal_twist_db=4.0), 8, twist_db=-2.5) == list(KEYS)


def test_frequency_tolerance_setting() -> None:
    tight = DtmfSettings(frequency_tolerance=0.01, frequency_tolerance_hz=0.0)
    assert found_keys(100, None, 9, low_offset=0.02) == list(KEYS)
    assert found_keys(100, tight, 9, low_offset=0.02) == [""] * 16
    assert found_keys(100, tight, 9, high_offset=-0.02) == [""] * 16
    assert found_keys(100, tight, 10, low_offset=0.004, high_offset=-0.004) == list(KEYS)


def test_bridge_setting() -> None:
    """A 20 ms drop-out is bridged by default (25 ms) and splits the press with bridge_ms=10."""
    rng = np.random.default_rng(12)
    for key in KEYS:
        signal, presses = generator.sequence(key, on=0.2, rng=rng)
        cut = generator.with_dropout(signal, presses[0].start + 800, 160)
        assert keys_of(detect(cut)) == key
        assert keys_of(detect(cut, 8000, DtmfSettings(bridge_ms=10.0))) == key + key
