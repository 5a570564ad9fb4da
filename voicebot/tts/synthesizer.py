"""Text to samples with pyttsx3 (the eSpeak NG driver on Linux).

pyttsx3 is a thin, stateful layer over one process-wide engine, and these are the traps
this module steps around (measured with pyttsx3 2.99 and eSpeak NG 1.51):

- ``pyttsx3.init(driver)`` returns a cached engine, shared by everything in the process;
  its voice and rate are whatever the last user set. So every synthesis sets both, and
  one module-level lock serialises all use of the engine (it is not thread-safe).
- ``setProperty`` is queued and only runs inside ``runAndWait``; a voice id eSpeak NG does
  not know is ignored silently (the previous voice keeps speaking). Voice ids are checked
  against the engine's list here instead.
- The driver runs eSpeak NG asynchronously: audio arrives on eSpeak's own thread. Setting
  the voice resets the rate to the voice's own (175 words per minute), and "voice, then
  rate" still lost the rate in about half of the syntheses that followed a change of voice;
  "rate, voice, rate" held it in all but the first synthesis of a process. About one run in
  600 (more often with threads waiting) wrote a WAV with no samples at all. So after each
  run the engine's rate and voice are read back and the file checked, and a run that
  missed is run again.
- The engine is held weakly by pyttsx3's cache, and its driver sits in a reference cycle
  whose clean-up unregisters eSpeak's audio callback, whichever engine registered it last.
  A synthesizer dropped and garbage-collected later would silence a newer one; so the
  engine is kept here, one per driver, for the life of the process.
- ``runAndWait`` with nothing to say never returns, and the driver keeps the last text and
  file: a later ``say()`` rewrote the last saved WAV as empty. So each run queues exactly
  one ``save_to_file`` into a fresh temporary folder, and ``say()`` is never called.
- The driver prints "Audio saved to …" on every save. Its module's ``print`` is replaced
  with a no-op (swapping ``sys.stdout`` instead would swallow other threads' output).
- Output is a 22,050 Hz mono WAV whatever the line's rate; the file's own rate is read back.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError
from .audio import Level, finish_clip
from .errors import TtsError, TtsUnavailable

log = logging.getLogger(__name__)

# One engine per process, whatever the number of synthesizers: one lock for all of them.
_ENGINE_LOCK = threading.Lock()
_ENGINES: dict[str | None, Any] = {}  # driver -> engine, never released (see above)

RUNS_PER_TEXT = 4  # a run that lost its rate or its audio is run again (see the module's notes)
SILENCE = 1e-4  # a WAV whose peak is below this holds no speech
INSTALL_HINT = "apt-get install espeak-ng (it brings libespeak-ng1, the library pyttsx3 loads)"


class Synthesizer(Protocol):
    """What the prompt renderer needs from a speech engine."""

    def voice(self, language: str) -> str:
        """The voice id configured for ``language`` (part of every cache key)."""
        ...

    def synthesize(self, text: str, language: str, wpm: int) -> tuple[np.ndarray, int]:
        """``text`` spoken in ``language``'s voice at ``wpm`` words per minute: (float32 samples, their rate)."""
        ...


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    name: str
    language: str


def _no_print(*_args: Any, **_kwargs: Any) -> None:
    return None


class Pyttsx3Synthesizer:
    """pyttsx3 (eSpeak NG on Linux) with one voice per language.

    ``voices`` maps a language to a voice id as the engine lists it (``roa/es``,
    ``gmw/en-us``; ``voicebot prompts voices`` shows them). The engine is loaded on first
    use, so a process whose prompts are all cached never starts it. ``calls`` counts the
    texts synthesised (each ≈ 10 ms, whatever its length).
    """

    def __init__(self, voices: Mapping[str, str], driver: str | None = None) -> None:
        self.voices = {language.lower(): voice for language, voice in voices.items()}
        self.driver = driver if driver is not None else ("espeak" if sys.platform.startswith("linux") else None)
        self.calls = 0  # texts synthesised
        self.runs = 0  # engine runs (a run that lost its rate is run again)
        self._engine: Any = None
        self._checked = False

    # ------------------------------------------------------------------ voices

    def voice(self, language: str) -> str:
        try:
            return self.voices[language.lower()]
        except KeyError:
            raise ConfigError(
                f"tts.voices: no voice for language {language!r} (configured: "
                f"{', '.join(f'{k}: {v}' for k, v in sorted(self.voices.items())) or 'none'}); "
                f"add one, e.g. tts.voices.{language}: <id from `voicebot prompts voices`>"
            ) from None

    def available_voices(self) -> list[VoiceInfo]:
        with _ENGINE_LOCK:
            engine = self._load()
            voices = engine.getProperty("voices")
        return [VoiceInfo(str(v.id), str(v.name), str((v.languages or [""])[0])) for v in voices]

    def check(self) -> None:
        """Load the engine and make sure every configured voice exists (a :class:`ConfigError` if not)."""
        if self._checked:
            return
        available = self.available_voices()
        ids = {v.id for v in available}
        problems = []
        for language, voice in sorted(self.voices.items()):
            if voice in ids:
                continue
            same_language = sorted(v.id for v in available if v.language.split("-")[0] == language)
            hint = f"voices for {language!r}: {', '.join(same_language)}" if same_language else (
                f"no voice lists language {language!r}")
            problems.append(f"tts.voices.{language}: unknown voice id {voice!r} ({hint}; "
                            f"all {len(ids)}: {', '.join(sorted(ids))})")
        if problems:
            raise ConfigError(problems)
        self._checked = True

    # ------------------------------------------------------------------ synthesis

    def synthesize(self, text: str, language: str, wpm: int) -> tuple[np.ndarray, int]:
        voice = self.voice(language)
        if not text.strip():
            raise TtsError(f"nothing to say in {voice} (an empty text)")
        self.check()
        with _ENGINE_LOCK, tempfile.TemporaryDirectory(prefix="voicebot-tts-") as folder:
            path = Path(folder) / "clip.wav"
            engine = self._load()
            self.calls += 1
            for _attempt in range(RUNS_PER_TEXT):
                path.unlink(missing_ok=True)
                if self._run(engine, text, voice, int(wpm), path):
                    samples, rate = self._read(path)
                    if len(samples) and float(np.max(np.abs(samples))) > SILENCE:
                        return samples, rate
            raise TtsError(f"pyttsx3 gave no audio in {voice} at {wpm} words per minute for a "
                           f"{len(text)}-character text ({RUNS_PER_TEXT} attempts)")

    @staticmethod
    def _read(path: Path) -> tuple[np.ndarray, int]:
        import soundfile

        try:
            samples, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
        except (RuntimeError, soundfile.LibsndfileError):
            return np.zeros(0, dtype=np.float32), 0
        if samples.ndim > 1:
            samples = samples[:, 0]
        return np.ascontiguousarray(samples, dtype=np.float32), int(rate)

    def _run(self, engine: Any, text: str, voice: str, wpm: int, path: Path) -> bool:
        """One engine run into ``path`` (lock held); true if it spoke with the voice and rate asked."""
        try:
            engine.setProperty("rate", wpm)
            engine.setProperty("voice", voice)
            engine.setProperty("rate", wpm)
            engine.save_to_file(text, str(path))
            engine.runAndWait()
            return bool(engine.getProperty("voice") == voice and engine.getProperty("rate") == wpm)
        except Exception as exc:  # the driver raises bare RuntimeError/ValueError
            raise TtsError(f"pyttsx3 failed to speak a {len(text)}-character text in {voice}: "
                           f"{type(exc).__name__}") from None
        finally:
            self.runs += 1

    def render(self, text: str, language: str, sample_rate: int, wpm: int = 160, level: Level = Level()) -> np.ndarray:
        """``text`` as a finished clip: at ``sample_rate``, trimmed, at ``level`` (no cache)."""
        raw, rate = self.synthesize(text, language, wpm)
        return finish_clip(raw, rate, sample_rate, level)

    def _load(self) -> Any:
        """The engine (called with the lock held)."""
        if self._engine is not None:
            return self._engine
        if self.driver in _ENGINES:
            self._engine = _ENGINES[self.driver]
            return self._engine
        try:
            import pyttsx3
        except ImportError:
            raise TtsUnavailable("prompts need pyttsx3, which is not installed: pip install pyttsx3 "
                                 "(or `make run`, which installs the project's dependencies)") from None
        try:
            engine = pyttsx3.init(self.driver)
        except Exception as exc:  # the espeak driver raises RuntimeError when libespeak-ng is missing
            raise TtsUnavailable(f"pyttsx3 could not start its {self.driver or 'default'} speech engine "
                                 f"({type(exc).__name__}: {exc}); install it: {INSTALL_HINT}") from None
        driver_module = sys.modules.get(f"pyttsx3.drivers.{self.driver}")
        if driver_module is not None:
            driver_module.print = _no_print  # type: ignore[attr-defined]
        _ENGINES[self.driver] = self._engine = engine
        return engine
