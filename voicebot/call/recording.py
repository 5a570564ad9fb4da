"""Call recordings: one two-channel WAV per call (left the caller as the line heard them,
right the line), with every secret step silent on the caller's side.

``recording.folder`` (or ``voicebot call --record FILE``) turns them on. The session hands
each 20 ms to :class:`CallRecording` with what it knew then: whether a secret step was
listening (:class:`Privacy`), the keys the DTMF muter found and the step each went to, and
the muter's own output (which says where it silenced a tone). The file is written a second
at a time, its header brought up to date after each write, so a process that dies leaves
a WAV any reader opens, up to its last second; memory stays bounded however long the call.

What is silent on the caller's channel, and why (a secret must never leak, even partially):

- **Secret time.** Every frame in which a secret step listened, at its start or its end or
  in between (keys typed ahead can open and close a step inside one frame). Voice and tones
  alike: a caller may say the PIN.
- **No step listening** (a message, an action): the line keeps keys typed there for the next
  step, which may be the PIN. That audio is held back until a step listens, and takes its
  fate: silent if the step is secret. Held past ``MAX_PENDING_SECONDS``, it is written
  silent (memory stays bounded; nobody could say whose it was). When the call ends first,
  the voice is kept and the keys are not (nobody took them).
- **Every tone by default.** The caller's audio waits ``HOLD_SECONDS`` before it is
  written; by then the muter has marked where its tones were (30 ms late) and reported the
  press (when its tone ends). A tone is written only if it is wholly inside a key that a
  non-secret step took, and touches no secret time. So the first 30 ms of
  the first PIN tone, a PIN key pressed just before its step began (type-ahead), the tail
  of the last PIN tone after the step ended, a tone the muter heard but never reported, a
  press still unreported when its start is written (one longer than the hold) are all
  silent. Keys the line took at a secret step are silenced over their whole extent, with
  a margin, whatever the muter marked.

The line's channel is as the caller heard it, except prompts that carry a secret (an SMS
signature key read out), which are silent: a recording is kept longer than the key lives.

Keys reported out of band (RFC 4733, SIP INFO) carry no audio: only the time rule applies
to whatever the carrier left in the audio.
"""

from __future__ import annotations

import enum
import logging
import os
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..dtmf.detector import SUB_BLOCK_SECONDS, KeyTone
from ..errors import ConfigError

log = logging.getLogger(__name__)

HOLD_SECONDS = 1.0  # the caller's audio waits this long: a press (up to ~0.9 s) is reported by then
FLUSH_SECONDS = 1.0  # audio written (and the WAV header updated) at least this often
MAX_PENDING_SECONDS = 60.0  # audio no step listened to, held for the next step's verdict at most this long
CLEAR_KEY_MARGIN = 0.025  # seconds around a key's tone: the muter's marks reach a sub-block or two past it
SECRET_KEY_MARGIN = 0.04  # seconds silenced around a key a secret step took, beyond its measured tone
KEEP_SPANS_SECONDS = 10.0  # secret spans kept after they are written: a tone written later is checked against them
SFC_UPDATE_HEADER_NOW = 0x1060  # libsndfile's sf_command: rewrite the header for the frames written so far
FILE_MODE = 0o600


class Privacy(enum.Enum):
    """What the caller's audio is, at one moment of the call."""

    CLEAR = "clear"  # a step that is not secret listens: kept
    SECRET = "secret"  # a secret step listens (card digits, PIN): silence
    PENDING = "pending"  # no step listens (a message, an action): the next step that does decides


def check_recording_folder(config: Config) -> None:
    """At start-up: ``recording.folder`` exists (made if missing) and takes files, or a
    :class:`ConfigError` that says which folder and why.

    Why here and not only per call: a folder that cannot be written is the operator's to fix
    (like a wrong menu path), and the operator is there when the line starts; a line that
    quietly kept no recordings would break the bank's record keeping unnoticed. A failure
    later (the disk fills, the folder is removed) never drops a caller: that call goes on
    without (the rest of) its recording, and the log and the call record say so
    (:meth:`CallRecording.create` failing, :attr:`CallRecording.error`)."""
    folder = config.recording.folder
    if folder is None:
        return
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".voicebot-check-", suffix=".wav"):
            pass
    except OSError as exc:
        raise ConfigError(f"recording.folder: {folder}: call recordings cannot be written there "
                          f"({exc.strerror or exc}); fix the folder or its permissions, or unset "
                          "recording.folder (no recordings)") from None


def recording_path(config: Config, call_id: str) -> Path | None:
    """Where a call keeps its recording: named by its call id only (never by the caller)."""
    folder = config.recording.folder
    return None if folder is None else Path(folder) / f"{call_id}.wav"


class CallRecording:
    """One call's two-channel WAV, written as the call goes. Not thread-safe: one call's thread.

    ``delay``: the DTMF muter's delay in samples (its output is its input that much later)."""

    def __init__(self, sound: Any, path: Path, sample_rate: int, delay: int) -> None:
        self._sound = sound
        self.path = path
        self.rate = sample_rate
        self.delay = delay
        self.error: str | None = None
        self._sub = int(round(sample_rate * SUB_BLOCK_SECONDS))
        self._hold = int(HOLD_SECONDS * sample_rate)
        self._flush = int(FLUSH_SECONDS * sample_rate)
        self._max_pending = int(MAX_PENDING_SECONDS * sample_rate)
        self._pos = 0  # caller samples received
        self._written = 0  # samples (of both channels) decided and passed on
        self._in_file = 0  # frames in the file (less than written once a write failed)
        self._caller: deque[np.ndarray] = deque()  # positions written..pos
        self._line: deque[np.ndarray] = deque()
        # The muter's output is compared with its input once a second, not every frame: the
        # steps' (input, output) since, and the input's last `delay` samples before them.
        self._to_mark: list[tuple[np.ndarray, np.ndarray]] = []
        self._marked = 0  # input position the comparison has reached
        self._lag = np.zeros(delay)
        self._pending_from: int | None = None  # where audio no step listened to begins, while undecided
        self._tones: list[list[int]] = []  # [start, end) where the muter silenced a tone (widened a sub-block)
        self._spans: list[list[Any]] = []  # [start, end, Privacy] of the caller's audio, in order
        self._keys: list[list[Any]] = []  # [start, end, Privacy]: a key's tone with its margin, and its step
        self._closed = False

    @classmethod
    def create(cls, path: str | Path, sample_rate: int, delay: int, *, exclusive: bool = True) -> CallRecording:
        """A new file at ``path``, mode 0600 (``exclusive``: never over another file). Raises
        OSError (or soundfile's error) when it cannot be made."""
        import soundfile

        path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
        fd = os.open(path, flags, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # (an existing file keeps its mode through O_CREAT)
            sound = soundfile.SoundFile(fd, "w", samplerate=sample_rate, channels=2, subtype="PCM_16",
                                        format="WAV", closefd=True)
        except BaseException:
            os.close(fd)
            raise
        recording = cls(sound, path, sample_rate, delay)
        recording._update_header()  # a valid, empty WAV from the first moment
        return recording

    @property
    def seconds(self) -> float:
        return self._in_file / self.rate

    def summary(self) -> dict[str, Any]:
        """For the call record and the transcript: where, how long, what went wrong (never a secret)."""
        note: dict[str, Any] = {"path": str(self.path), "seconds": round(self.seconds, 3)}
        if self.error:
            note["error"] = self.error
        return note

    # ------------------------------------------------------------------ the session's side

    def add(self, caller: np.ndarray, muted: np.ndarray, line: np.ndarray, *, before: Privacy, after: Privacy,
            secret_seen: bool, keys: list[tuple[KeyTone, Privacy]]) -> None:
        """One step of the call: the caller's audio as the line got it, the muter's output for
        it (``delay`` samples late), what the line played; the privacy when the step began
        and when it ended, whether a secret step listened at any moment of it, and each tone
        key the muter reported with the privacy of the step it went to."""
        if self._closed:
            return
        x = np.array(caller, dtype=np.float64)  # (a copy: a transport may reuse its buffer)
        n = len(x)
        start, end = self._pos, self._pos + n
        self._to_mark.append((x, np.asarray(muted, dtype=np.float64)))
        if secret_seen or Privacy.SECRET in (before, after):
            frame = Privacy.SECRET
        elif Privacy.PENDING in (before, after):
            frame = Privacy.PENDING
        else:
            frame = Privacy.CLEAR
        self._add_span(start, end, frame)
        for tone, privacy in keys:
            self._add_key(tone, privacy)
        # Audio no step listened to belongs to the next step that does (keys typed ahead).
        if self._pending_from is not None:
            if secret_seen:
                self._resolve(Privacy.SECRET, Privacy.SECRET)
            elif after is not Privacy.PENDING:
                self._resolve(after, after)
        self._caller.append(x.astype(np.float32))
        line_out = np.asarray(line, dtype=np.float32)
        if len(line_out) != n:
            line_out = np.concatenate([line_out[:n], np.zeros(max(n - len(line_out), 0), dtype=np.float32)])
        self._line.append(line_out)
        self._pos = end
        if end - self._marked >= self._flush:
            self._mark_tones()  # (also while nothing can be written: memory stays bounded)
        pending = self._pending_from
        if pending is not None and end - pending > self._max_pending:
            # Nobody could say yet whose audio this is, and memory is bounded: silence.
            log.debug("recording %s: %.0f s without a listening step written silent", self.path.name,
                      (end - pending) / self.rate)
            self._resolve(Privacy.SECRET, Privacy.SECRET)
            pending = None
        upto = end - self._hold if pending is None else min(end - self._hold, pending)
        if upto - self._written >= self._flush:
            self._write(upto)

    def close(self, muted_tail: np.ndarray, closing_keys: list[KeyTone]) -> None:
        """The call is over: the muter's last output (its held-back ``delay`` samples) and the
        presses still open at the end; everything is written and the file closed."""
        if self._closed:
            return
        self._to_mark.append((np.zeros(0), np.asarray(muted_tail, dtype=np.float64)[:self.delay]))
        self._mark_tones()
        for tone in closing_keys:  # a press the line never took
            self._add_key(tone, Privacy.SECRET)
        # No step came: the voice is kept; keys typed for a step that never came are not.
        self._resolve(Privacy.CLEAR, Privacy.SECRET)
        self._write(self._pos)
        self._closed = True
        try:
            self._sound.close()
        except (OSError, RuntimeError) as exc:
            self._fail(exc)

    def abandon(self) -> None:
        """Close what was written so far (the call failed to finish properly)."""
        if not self._closed:
            self._closed = True
            try:
                self._sound.close()
            except (OSError, RuntimeError):
                pass

    # ------------------------------------------------------------------ bookkeeping

    def _mark_tones(self) -> None:
        """Where the muter silenced a tone: its output is its input ``delay`` samples late,
        unchanged elsewhere, so a sample that differs was silenced. Widened to whole
        sub-blocks (the muter silences whole ones; a zero sample of the tone would split it)
        plus one on each side."""
        if not self._to_mark:
            return
        lagged = np.concatenate([self._lag, *(x for x, _ in self._to_mark)])
        muted = np.concatenate([m for _, m in self._to_mark])
        self._to_mark = []
        m = len(muted)
        base = self._marked - self.delay  # the position of muted[0] and lagged[0]
        self._lag = lagged[m:]
        self._marked += m
        changed = np.flatnonzero(muted != lagged[:m])
        if not changed.size:
            return
        sub = self._sub
        blocks = np.unique((changed + base) // sub)
        breaks = np.flatnonzero(np.diff(blocks) > 1)
        firsts = np.concatenate([blocks[:1], blocks[breaks + 1]])
        lasts = np.concatenate([blocks[breaks], blocks[-1:]])
        for first, last in zip(firsts.tolist(), lasts.tolist()):
            lo, hi = (first - 1) * sub, (last + 2) * sub
            if self._tones and lo <= self._tones[-1][1]:
                self._tones[-1][1] = max(self._tones[-1][1], hi)
            else:
                self._tones.append([lo, hi])

    def _add_span(self, start: int, end: int, privacy: Privacy) -> None:
        if privacy is Privacy.PENDING and self._pending_from is None:
            self._pending_from = start
        last = self._spans[-1] if self._spans else None
        if last is not None and last[2] is privacy and last[1] == start:
            last[1] = end
        else:
            self._spans.append([start, end, privacy])

    def _add_key(self, tone: KeyTone, privacy: Privacy) -> None:
        margin = (SECRET_KEY_MARGIN if privacy is Privacy.SECRET else CLEAR_KEY_MARGIN) * self.rate
        start = int(tone.start_sample - margin)
        if privacy is Privacy.PENDING and self._pending_from is None:
            self._pending_from = start
        self._keys.append([start, int(tone.end_sample + margin), privacy])

    def _resolve(self, spans: Privacy, keys: Privacy) -> None:
        self._pending_from = None
        for span in self._spans:
            if span[2] is Privacy.PENDING:
                span[2] = spans
        for key in self._keys:
            if key[2] is Privacy.PENDING:
                key[2] = keys
        merged: list[list[Any]] = []
        for span in self._spans:
            if merged and merged[-1][2] is span[2] and merged[-1][1] == span[0]:
                merged[-1][1] = span[1]
            else:
                merged.append(span)
        self._spans = merged

    def _touches_secret(self, lo: int, hi: int) -> bool:
        return any(s[2] is Privacy.SECRET and s[0] < hi and lo < s[1] for s in self._spans)

    # ------------------------------------------------------------------ the file

    def _take(self, chunks: deque[np.ndarray], count: int) -> np.ndarray:
        parts: list[np.ndarray] = []
        while count > 0 and chunks:
            chunk = chunks[0]
            if len(chunk) <= count:
                parts.append(chunks.popleft())
                count -= len(chunk)
            else:
                parts.append(chunk[:count])
                chunks[0] = chunk[count:]
                count = 0
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def _write(self, upto: int) -> None:
        self._mark_tones()
        while self._written < upto:  # a second at a time: a long stretch decided at once is no bigger in memory
            self._write_piece(min(upto, self._written + self._flush))

    def _write_piece(self, upto: int) -> None:
        lo = self._written
        count = upto - lo
        caller = self._take(self._caller, count)
        line = self._take(self._line, count)
        silent = np.zeros(count, dtype=bool)

        def silence(start: int, end: int) -> None:
            a, b = max(start - lo, 0), min(end - lo, count)
            if a < b:
                silent[a:b] = True

        for start, end, privacy in self._spans:
            if privacy is not Privacy.CLEAR:  # (PENDING is never written before it is decided)
                silence(start, end)
        clear_keys = [(s, e) for s, e, p in self._keys if p is Privacy.CLEAR]
        for start, end, privacy in self._keys:
            if privacy is not Privacy.CLEAR:
                silence(start, end)
        for start, end in self._tones:
            if self._touches_secret(start, end) or not any(ks <= start and end <= ke for ks, ke in clear_keys):
                silence(start, end)
        caller[silent] = 0.0
        self._written = upto
        # Done with: what ends before the written part (secret spans a while longer: the rest
        # of a long tone is checked against them).
        keep_spans = upto - int(KEEP_SPANS_SECONDS * self.rate)
        self._spans = [s for s in self._spans if s[1] > keep_spans]
        self._keys = [k for k in self._keys if k[1] > upto]
        self._tones = [t for t in self._tones if t[1] > upto]
        if self.error is not None:
            return
        try:
            self._sound.write(np.stack([caller, line], axis=1))
            self._in_file += count
            self._update_header()
        except (OSError, RuntimeError) as exc:  # (soundfile's LibsndfileError is a RuntimeError)
            self._fail(exc)

    def _update_header(self) -> None:
        """The WAV header counts the frames written so far (libsndfile writes it at close
        otherwise), so a file cut short by a crash opens in any reader."""
        try:
            import soundfile

            soundfile._snd.sf_command(self._sound._file, SFC_UPDATE_HEADER_NOW, soundfile._ffi.NULL, 0)
        except AttributeError:  # a soundfile without these internals: libsndfile still reads such a file
            pass

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            self.error = f"recording stopped after {self.seconds:.1f} s: {reason}"
            log.warning("recording %s: %s; the call goes on without the rest", self.path, self.error)
