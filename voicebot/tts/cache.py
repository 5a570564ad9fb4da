"""Finished clips on disk, and the most used ones in memory.

A clip is named by what made it: the text, the voice, the speech rate, the sample rate and
the level (:class:`ClipKey`). Its file is ``<folder>/<sample rate>/<voice>-<wpm>-<hash>.wav``
(16-bit PCM, playable by any tool), written to a temporary name and renamed into place, so
several processes may fill one folder. A text whose key changes (an edited prompt, a new
voice or level) simply gets a new file; delete the folder to drop old ones.

A hit costs a dictionary look-up (memory) or one small file read (disk); a miss is the
caller's to render and :meth:`PromptCache.put`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from .errors import PromptCacheError

FORMAT = 1  # bump when finishing changes in a way the key does not show


@dataclass(frozen=True)
class ClipKey:
    text: str = field(repr=False)  # a digit of a secret may be one: kept out of reprs
    voice: str
    wpm: int
    sample_rate: int
    level: str  # Level.tag()

    def digest(self) -> str:
        fields = [FORMAT, self.text, self.voice, self.wpm, self.sample_rate, self.level]
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()

    def filename(self) -> str:
        voice = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.voice)
        return f"{self.sample_rate}/{voice}-{self.wpm}-{self.digest()[:24]}.wav"


@dataclass
class CacheStats:
    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    writes: int = 0


class PromptCache:
    """Clips on disk under ``folder``, the last ``memory_bytes`` of them also in memory (LRU).

    Arrays handed out are read-only: they are shared by every call that plays them.
    """

    def __init__(self, folder: str | Path, memory_bytes: int = 64 * 2**20) -> None:
        self.folder = Path(folder)
        self.memory_bytes = memory_bytes
        self.stats = CacheStats()
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def path(self, key: ClipKey) -> Path:
        return self.folder / key.filename()

    def __contains__(self, key: ClipKey) -> bool:
        """Whether the clip is cached (in memory or on disk), without reading it."""
        with self._lock:
            if key.digest() in self._memory:
                return True
        return self.path(key).is_file()

    def get(self, key: ClipKey) -> np.ndarray | None:
        digest = key.digest()
        with self._lock:
            clip = self._memory.get(digest)
            if clip is not None:
                self._memory.move_to_end(digest)
                self.stats.memory_hits += 1
                return clip
        try:
            samples, rate = soundfile.read(str(self.path(key)), dtype="float32", always_2d=False)
        except (OSError, RuntimeError, soundfile.LibsndfileError):
            with self._lock:
                self.stats.misses += 1
            return None
        if rate != key.sample_rate or samples.ndim != 1:
            with self._lock:
                self.stats.misses += 1
            return None  # not a file this cache wrote: rendered again and replaced
        with self._lock:
            self.stats.disk_hits += 1
        return self._remember(digest, samples)

    def put(self, key: ClipKey, samples: np.ndarray, memory_only: bool = False) -> np.ndarray:
        """Keep ``samples`` for ``key``; the shared read-only copy is returned.

        A :class:`PromptCacheError` says the folder cannot be written (the clip is still
        kept in memory, so the caller may carry on).
        """
        clip = self._remember(key.digest(), np.array(samples, dtype=np.float32))  # a copy the caller cannot change
        if memory_only:
            return clip
        path = self.path(key)
        temporary = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(temporary), clip, key.sample_rate, subtype="PCM_16", format="WAV")
            os.replace(temporary, path)
        except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise PromptCacheError(
                f"cannot write the prompt cache in {self.folder}: {reason}; set tts.cache_dir "
                f"(or VOICEBOT__TTS__CACHE_DIR) to a folder this user can write"
            ) from None
        with self._lock:
            self.stats.writes += 1
        return clip

    def _remember(self, digest: str, samples: np.ndarray) -> np.ndarray:
        clip = samples
        clip.flags.writeable = False
        with self._lock:
            old = self._memory.pop(digest, None)
            if old is not None:
                self._held -= old.nbytes
            self._memory[digest] = clip
            self._held += clip.nbytes
            while self._held > self.memory_bytes and len(self._memory) > 1:
                _, dropped = self._memory.popitem(last=False)
                self._held -= dropped.nbytes
        return clip
