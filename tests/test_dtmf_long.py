"""Long recordings: the batch path skips quiet stretches and analyses the rest in big passes.

Whatever it skips, it must find exactly what the streaming path finds, keys at the edges
of quiet stretches included.
"""

from __future__ import annotations

import numpy as np

from voicebot.dtmf import DtmfDetector, detect
from voicebot.dtmf import generator


def long_recording(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    parts, keys = [], ""
    for _ in range(12):
        # Quiet stretches of every length around the skip threshold, noise, keys.
        parts.append(generator.white_noise(float(rng.uniform(0.05, 2.5)), -60.0, rng=rng))
        burst = "".join(rng.choice(list("0123456789*#ABCD"), int(rng.integers(1, 5))))
        signal, _ = generator.sequence(burst, on=float(rng.uniform(0.045, 0.12)), off=float(rng.uniform(0.045, 0.2)),
                                       lead=0.0, tail=0.0, rng=rng, level_dbm0=float(rng.uniform(-25, -3)))
        parts.append(generator.add_white_noise(signal, 25.0, rng))
        keys += burst
        parts.append(generator.white_noise(float(rng.uniform(0.5, 1.5)), -15.0, rng=rng))  # loud, not a key
    return np.concatenate(parts), keys


def streamed(signal: np.ndarray, frame: int) -> list:
    detector = DtmfDetector(8000)
    found = []
    for start in range(0, len(signal), frame):
        found += detector.feed(signal[start:start + frame])
    return found + detector.flush()


def test_batch_equals_streaming_on_a_long_recording() -> None:
    rng = np.random.default_rng(42)
    signal, keys = long_recording(rng)
    assert len(signal) > 30 * 8000  # longer than one analysis pass of a long chunk
    batch = detect(signal)
    assert "".join(tone.key for tone in batch) == keys
    assert batch == streamed(signal, 160)
    assert batch == streamed(signal, 8000 * 7 + 13)  # long chunks that are not whole passes


def test_a_long_chunk_after_short_frames_takes_the_sound_held_for_a_pass() -> None:
    rng = np.random.default_rng(43)
    signal, keys = long_recording(rng)
    detector = DtmfDetector(8000)
    found = []
    # 20 ms frames into the first burst of keys (some sound is held for the next pass)...
    first_keys = detect(signal)[0]
    split = first_keys.start_sample + 400
    for start in range(0, split, 160):
        found += detector.feed(signal[start:min(start + 160, split)])
    assert detector._core.holding  # the case under test: sound waiting for its pass
    # ...then everything else at once, through the long-recording path.
    found += detector.feed(signal[split:])
    found += detector.flush()
    assert found == detect(signal)
    assert "".join(tone.key for tone in found) == keys


def test_a_reused_input_buffer_does_not_change_what_is_found() -> None:
    """A sound card hands over the same buffer every time; what the detector keeps must be its own."""
    rng = np.random.default_rng(44)
    signal, _ = long_recording(rng)
    signal = signal[:len(signal) // 160 * 160]
    detector = DtmfDetector(8000)
    buffer = np.empty(160)
    found = []
    for start in range(0, len(signal), 160):
        buffer[:] = signal[start:start + 160]
        found += detector.feed(buffer)
        buffer[:] = np.nan  # the card scribbles over it before the next frame
    found += detector.flush()
    assert found == detect(signal)
