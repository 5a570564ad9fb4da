"""Sound files: keys found in one (what ``voicebot dtmf FILE`` runs), and reading one safely."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VoicebotError
from .detector import DtmfDetector, DtmfSettings, KeyTone

BLOCK_SECONDS = 10  # read long recordings in pieces: memory stays flat


class AudioFileError(VoicebotError):
    """A file that cannot be read as audio, or that holds none."""


@dataclass(frozen=True)
class FileKeys:
    path: Path
    sample_rate: int
    channels: int
    channel: int
    seconds: float
    tones: list[KeyTone]

    @property
    def keys(self) -> str:
        return "".join(tone.key for tone in self.tones)

    def as_dict(self) -> dict[str, object]:
        return {
            "file": str(self.path),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "channel": self.channel,
            "seconds": round(self.seconds, 3),
            "keys": self.keys,
            "tones": [tone.as_dict() for tone in self.tones],
        }


def checked_info(path: str | Path, channel: int = 0) -> Any:
    """soundfile's description of ``path``, after the checks every reader needs (a clear
    ``AudioFileError`` for a missing, unreadable or empty file, or a missing channel)."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioFileError(f"{path}: cannot read it as audio ({_reason(exc)})") from None
    if info.frames == 0:
        raise AudioFileError(f"{path}: the file holds no audio")
    if not 0 <= channel < info.channels:
        raise AudioFileError(f"{path}: there is no channel {channel} (the file has {info.channels}, numbered from 0)")
    return info


def read_channel(path: str | Path, channel: int = 0) -> tuple[np.ndarray, int]:
    """One channel of a whole (short) recording as float samples, and its rate."""
    import soundfile

    info = checked_info(path, channel)
    try:
        samples, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioFileError(f"{path}: the audio is not readable to its end ({_reason(exc)})") from None
    return samples[:, channel], int(rate or info.samplerate)


def keys_in_file(path: str | Path, channel: int = 0, settings: DtmfSettings | None = None) -> FileKeys:
    """Every key in one channel of ``path`` (any format and rate libsndfile reads)."""
    import soundfile

    path = Path(path)
    info = checked_info(path, channel)
    detector = DtmfDetector(info.samplerate, settings)
    tones: list[KeyTone] = []
    frames = 0
    try:
        for block in soundfile.blocks(str(path), blocksize=info.samplerate * BLOCK_SECONDS, dtype="float64",
                                      always_2d=True):
            frames += block.shape[0]
            tones += detector.feed(block[:, channel])
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioFileError(f"{path}: the audio stops being readable after {frames} frames ({_reason(exc)})") from None
    tones += detector.flush()
    return FileKeys(path, info.samplerate, info.channels, channel, frames / info.samplerate, tones)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    # libsndfile's messages start with the path again; keep what follows.
    return text.split(": ", 1)[-1] if ": " in text else text
