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
from ..dtmf.files import AudioFileError, checked_info
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
                   sample_rate: int = 8000, hold_on: float = 60.0,
                   record_to: str | Path | None = None) -> FileCallResult:
    """The call a recording of a caller makes (any format soundfile reads; channel 0).

    ``record_to``: keep the call's two-channel recording there (secret steps silent), in
    place of the one ``recording.folder`` would keep.

    The recording is read a second at a time and only as far as the call goes: three hours
    of silence end with the line's no-input escalation, after a minute or so, not with
    three hours read into memory.
    """
    import soundfile

    if sample_rate not in LINE_RATES:
        raise ValueError(f"a file call runs at {LINE_RATES} Hz, not {sample_rate}")
    info = checked_info(path, 0)
    resampler = None
    if info.samplerate != sample_rate:
        import soxr

        resampler = soxr.ResampleStream(info.samplerate, sample_rate, 1, dtype="float64")
    meta = CallMeta(transport="file", caller_id=caller_id, dialed=dialed)
    session = CallSession(line, meta, renderer, speech, sample_rate, language=language, virtual=True,
                          record_to=record_to)
    frame = session.frame_len
    out: list[np.ndarray] = []
    pending = np.zeros(0)
    heard = 0  # samples of the recording (at the line's rate) the line has heard
    read_all = False
    session.start()
    blocks = soundfile.blocks(str(path), blocksize=info.samplerate, dtype="float64", always_2d=True)
    try:
        while not session.finished:
            if len(pending) < frame and not read_all:
                try:
                    block = next(blocks, None)
                except (RuntimeError, soundfile.LibsndfileError) as exc:
                    raise AudioFileError(f"{path}: the audio stops being readable after "
                                         f"{heard / sample_rate:.1f} s ({exc})") from None
                if block is None:
                    read_all = True
                    tail = resampler.resample_chunk(np.zeros(0), last=True) if resampler else np.zeros(0)
                else:
                    tail = resampler.resample_chunk(block[:, 0]) if resampler else block[:, 0]
                pending = np.concatenate([pending, tail])
                continue
            if not len(pending):
                break
            chunk, pending = pending[:frame], pending[frame:]
            heard += len(chunk)
            if len(chunk) < frame:
                chunk = np.concatenate([chunk, np.zeros(frame - len(chunk))])
            out.append(session.step(chunk))
    except BaseException:
        session.finish()  # the record is saved and the recognisers closed, whatever stopped the call
        raise
    silence = np.zeros(frame)
    held = 0
    while not session.finished and held * FRAME_SECONDS < hold_on:
        out.append(session.step(silence))
        held += 1
    record = session.finish()
    transcript = {
        "schema": TRANSCRIPT_SCHEMA,
        "call_id": meta.call_id,
        "input": str(path),
        "sample_rate": sample_rate,
        "caller_id": caller_id,
        "dialed": dialed,
        "input_seconds": round(info.frames / info.samplerate, 3),
        "input_used_seconds": round(heard / sample_rate, 3),
        "input_ended_first": read_all and not len(pending),
        "duration": round(session.now, 3),
        "outcome": record["outcome"],
        "outcome_reason": record["outcome_reason"],
        "entries": [entry.as_dict() for entry in session.transcript],
        "inputs": record.get("inputs", []),
        "recording": record.get("recording"),
    }
    bot = np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
    return FileCallResult(record, transcript, bot, sample_rate)


def write_results(result: FileCallResult, output: str | Path | None, transcript: str | Path | None) -> None:
    if output is not None:
        import soundfile

        soundfile.write(str(output), result.bot_audio, result.sample_rate, subtype="PCM_16")
    if transcript is not None:
        Path(transcript).write_text(json.dumps(result.transcript, ensure_ascii=False, indent=2) + "\n")
