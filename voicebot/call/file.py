"""A call from a recording: the caller's side read from a sound file, the bot's side written.

It runs on the audio's clock, as fast as the CPU allows, and replays the same on any
machine. After the recording ends the line hears silence (the caller holding on), for at
most ``hold_on`` seconds, so its timers can still run out and the call can end as it would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..app import CallMeta, Line
from ..asr.speech import LineSpeech
from ..dtmf.files import read_channel
from .session import FRAME_SECONDS, LINE_RATES, CallSession, PromptRenderer

TRANSCRIPT_SCHEMA = "voicebot.call-transcript/1"


@dataclass
class FileCallResult:
    record: dict[str, Any]
    transcript: dict[str, Any]
    bot_audio: np.ndarray
    sample_rate: int


def call_from_file(line: Line, renderer: PromptRenderer, speech: LineSpeech | None, path: str | Path, *,
                   caller_id: str | None = None, dialed: str | None = None, language: str | None = None,
                   sample_rate: int = 8000, hold_on: float = 60.0) -> FileCallResult:
    """The call a recording of a caller makes (any format soundfile reads; channel 0)."""
    samples, rate = read_channel(path, 0)
    if rate != sample_rate:
        import soxr

        samples = soxr.resample(samples, rate, sample_rate)
    if sample_rate not in LINE_RATES:
        raise ValueError(f"a file call runs at {LINE_RATES} Hz, not {sample_rate}")
    meta = CallMeta(transport="file", caller_id=caller_id, dialed=dialed)
    session = CallSession(line, meta, renderer, speech, sample_rate, language=language, virtual=True)
    frame = session.frame_len
    out: list[np.ndarray] = []
    session.start()
    heard = 0
    for start in range(0, len(samples), frame):
        if session.finished:
            break
        chunk = samples[start:start + frame]
        if len(chunk) < frame:
            chunk = np.concatenate([chunk, np.zeros(frame - len(chunk))])
        out.append(session.step(chunk))
        heard = start + frame
    silence = np.zeros(frame)
    held = 0
    while not session.finished and held * FRAME_SECONDS < hold_on:
        out.append(session.step(silence))
        held += 1
    ended_with_audio = heard >= len(samples)
    record = session.finish()
    transcript = {
        "schema": TRANSCRIPT_SCHEMA,
        "call_id": meta.call_id,
        "input": str(path),
        "sample_rate": sample_rate,
        "caller_id": caller_id,
        "dialed": dialed,
        "input_seconds": round(len(samples) / sample_rate, 3),
        "input_used_seconds": round(min(heard, len(samples)) / sample_rate, 3),
        "input_ended_first": ended_with_audio,
        "duration": round(session.now, 3),
        "outcome": record["outcome"],
        "outcome_reason": record["outcome_reason"],
        "entries": [entry.as_dict() for entry in session.transcript],
        "inputs": record.get("inputs", []),
    }
    bot = np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
    return FileCallResult(record, transcript, bot, sample_rate)


def write_results(result: FileCallResult, output: str | Path | None, transcript: str | Path | None) -> None:
    if output is not None:
        import soundfile

        soundfile.write(str(output), result.bot_audio, result.sample_rate, subtype="PCM_16")
    if transcript is not None:
        Path(transcript).write_text(json.dumps(result.transcript, ensure_ascii=False, indent=2) + "\n")
