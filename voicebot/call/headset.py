"""A call on a headset, or any sound device PortAudio sees: the computer is the caller's phone.

Threads, and why:

- PortAudio's input callback only copies each block into a queue, and its output callback
  only takes samples from a buffer: neither may block, or the device drops audio.
- The session runs in the thread that called :meth:`HeadsetCall.run` (the main thread for
  ``voicebot call --device``, where Ctrl-C hangs up between two frames). It resamples the input
  to the call's rate (16 kHz for a headset, or 8 kHz), steps the session every 20 ms of it,
  and resamples the bot's frames back to the output device's rate.
- Backend actions run on the session's own worker (``virtual=False``).

The call's clock is the input device's: 20 ms of audio heard is 20 ms of call. Input and
output are two streams at each device's native rate (one duplex stream across two
PulseAudio devices was measured silent). Keys typed on the computer keyboard (0-9 * #)
are pressed as DTMF when standard input is a terminal: a headset has no keypad.

Errors, all :class:`~voicebot.errors.VoicebotError` with a message a user can act on::

    AudioDeviceError
    ├── AudioUnavailable   no PortAudio library, or the sounddevice package is missing
    ├── DeviceNotFound     no device of that name or index for that direction
    └── DeviceFailed       the device could not be opened (busy, gone) or stopped mid-call
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..app import CallMeta, Line
from ..asr.speech import LineSpeech
from ..errors import VoicebotError
from .file import TRANSCRIPT_SCHEMA
from .session import (
    FRAME_SECONDS,
    LINE_RATES,
    CallSession,
    PromptRenderer,
    TranscriptEntry,
)

log = logging.getLogger(__name__)

HEADSET_RATE = 16000  # a headset carries wideband speech: the session's best rate
KEYBOARD_KEYS = frozenset("0123456789*#")  # a phone's keypad (A-D are on no caller's phone)
HANG_UP_CHARACTERS = frozenset("\x04")  # Ctrl-D at the terminal; Ctrl-C hangs up too
DEVICES_HINT = "`voicebot devices` lists them"


class AudioDeviceError(VoicebotError):
    """A sound device could not be used for a call."""


class AudioUnavailable(AudioDeviceError):
    """PortAudio, or the sounddevice package that binds it, is not installed."""


class DeviceNotFound(AudioDeviceError):
    """No device of that name or index for the direction asked."""


class DeviceFailed(AudioDeviceError):
    """The device exists but could not be opened, or stopped during the call.

    Raised after the call was ended and saved: ``record`` is its call record then."""

    def __init__(self, message: str, record: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.record = record


def _sounddevice() -> Any:
    """The sounddevice module, or why it cannot be had."""
    try:
        import sounddevice
    except ImportError as exc:
        raise AudioUnavailable("headset calls need the Python package sounddevice "
                               "(`.venv/bin/pip install -e .` installs it)") from exc
    except OSError as exc:  # sounddevice raises this when it cannot load libportaudio
        raise AudioUnavailable(f"headset calls need the PortAudio library ({exc}); on Debian/Ubuntu: "
                               "apt-get install libportaudio2") from exc
    return sounddevice


# ---------------------------------------------------------------------- devices


@dataclass(frozen=True)
class AudioDevice:
    index: int
    name: str
    host_api: str
    input_channels: int
    output_channels: int
    default_rate: int
    default_input: bool = False
    default_output: bool = False

    def channels(self, kind: str) -> int:
        return self.input_channels if kind == "input" else self.output_channels


def list_devices() -> list[AudioDevice]:
    """Every device PortAudio sees, the default input and output marked."""
    sd = _sounddevice()
    try:
        raw = sd.query_devices()
        host_apis = [api["name"] for api in sd.query_hostapis()]
        default_in, default_out = (int(i) for i in sd.default.device)
    except sd.PortAudioError as exc:
        raise AudioUnavailable(f"PortAudio could not list the sound devices: {exc}") from exc
    return [AudioDevice(index=int(d["index"]), name=str(d["name"]), host_api=host_apis[int(d["hostapi"])],
                        input_channels=int(d["max_input_channels"]), output_channels=int(d["max_output_channels"]),
                        default_rate=round(d["default_samplerate"]),
                        default_input=int(d["index"]) == default_in, default_output=int(d["index"]) == default_out)
            for d in raw]


HEADSET_WORDS = ("headset", "headphone", "usb", "jabra", "plantronics", "poly", "sennheiser", "epos", "logitech")
SOUND_SERVER_DEVICES = frozenset({"default", "sysdefault", "pulse", "pipewire", "jack"})


def find_headset(devices: list[AudioDevice] | None = None) -> AudioDevice | None:
    """A headset plugged in, if any: a device with a microphone and an earpiece whose name
    says so (USB audio devices name themselves). A sound server's own devices (default,
    pulse) and analog jacks are not taken for one: they may be a laptop's speakers."""
    try:
        devices = list_devices() if devices is None else devices
    except AudioDeviceError:
        return None
    for device in devices:
        name = device.name.lower()
        if (device.input_channels and device.output_channels and name not in SOUND_SERVER_DEVICES
                and any(word in name for word in HEADSET_WORDS)):
            return device
    return None


def format_devices(devices: list[AudioDevice]) -> str:
    """``voicebot devices``: one line a device; > marks the default input, < the default output."""
    if not devices:
        return "No sound devices (PortAudio sees none: is a sound server or card there?)."
    lines = [" idx  in out      rate  name"]
    for d in devices:
        mark = (">" if d.default_input else " ") + ("<" if d.default_output else " ")
        lines.append(f"{mark}{d.index:3d} {d.input_channels:3d} {d.output_channels:3d} {d.default_rate:9d}  "
                     f"{d.name} ({d.host_api})")
    lines.append("> default input, < default output. `voicebot call --device NAME` uses one for both ways "
                 "(a part of its name or its index).")
    return "\n".join(lines)


def devices_json(devices: list[AudioDevice]) -> str:
    return json.dumps([asdict(d) for d in devices], ensure_ascii=False, indent=2)


def find_device(name: str | int | None, kind: str, devices: list[AudioDevice] | None = None) -> AudioDevice:
    """The device for one direction (``kind`` is "input" or "output").

    ``name``: None for the system's default, an index, or a name: exactly (any case), else
    the one device whose name contains it."""
    devices = list_devices() if devices is None else devices
    usable = [d for d in devices if d.channels(kind) > 0]
    if name is None:
        for d in usable:
            if d.default_input if kind == "input" else d.default_output:
                return d
        raise DeviceNotFound(f"there is no default {kind} device; name one with --device ({DEVICES_HINT})")
    if isinstance(name, int) or str(name).strip().isdigit():
        index = int(name)
        for d in devices:
            if d.index == index:
                if d.channels(kind) == 0:
                    raise DeviceNotFound(f"device {index} ({d.name}) has no {kind}; {DEVICES_HINT}")
                return d
        raise DeviceNotFound(f"no {kind} device number {index}; {DEVICES_HINT}")
    wanted = str(name).strip().lower()
    exact = [d for d in usable if d.name.lower() == wanted]
    if len(exact) == 1:
        return exact[0]
    matches = exact or [d for d in usable if wanted in d.name.lower()]
    if not matches:
        raise DeviceNotFound(f"no {kind} device named {name!r}; {DEVICES_HINT}")
    if len(matches) > 1:
        names = ", ".join(f"{d.index} {d.name!r}" for d in matches)
        raise DeviceNotFound(f"{len(matches)} {kind} devices match {name!r} ({names}): name one exactly or by its number")
    return matches[0]


# ---------------------------------------------------------------------- audio plumbing


class _OutputBuffer:
    """The bot's audio between the session thread and PortAudio's output callback.

    The callback never waits: what is missing plays as silence. If the session ever runs
    ahead (a slow prompt render, then a burst of frames), audio older than ``max_seconds``
    is dropped so the line's latency does not grow for the rest of the call."""

    def __init__(self, rate: int, max_seconds: float = 0.5, cushion_seconds: float = 0.02) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self._size = 0
        self._cushion = int(rate * cushion_seconds)
        self._max = int(rate * max_seconds)
        self._lock = threading.Lock()
        self._primed = False
        self.closing = False  # the call is over: an empty buffer is no longer a gap
        self.underruns = 0
        self.dropped = 0

    def push(self, samples: np.ndarray) -> None:
        with self._lock:
            if not self._primed:
                # The first frame waits behind one block of silence: the session pushes a
                # frame per input block and the output callback pulls on its own beat; the
                # slack keeps the two from meeting as a gap, for 20 ms of latency.
                self._chunks.append(np.zeros(self._cushion, dtype=np.float32))
                self._size += self._cushion
                self._primed = True
            self._chunks.append(samples)
            self._size += len(samples)
            while self._size > self._max:
                extra = self._size - self._max
                head = self._chunks[0]
                if len(head) <= extra:
                    self._chunks.popleft()
                    self._size -= len(head)
                    self.dropped += len(head)
                else:
                    self._chunks[0] = head[extra:]
                    self._size -= extra
                    self.dropped += extra

    def pull(self, out: np.ndarray) -> None:
        """Fill ``out`` (one channel) with the oldest samples, silence where there are none."""
        wanted = len(out)
        filled = 0
        with self._lock:
            while filled < wanted and self._chunks:
                head = self._chunks[0]
                take = min(len(head), wanted - filled)
                out[filled:filled + take] = head[:take]
                filled += take
                if take == len(head):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = head[take:]
                self._size -= take
            if filled < wanted and self._primed and not self.closing:
                self.underruns += 1
        out[filled:] = 0.0

    def empty(self) -> bool:
        return self._size == 0


class KeyboardKeys:
    """Keypad keys typed at a terminal, without Enter: the terminal is put in cbreak mode
    (no echo, no line editing; Ctrl-C still interrupts) and restored on exit."""

    def __init__(self, stream: TextIO | int) -> None:
        self.fd = stream if isinstance(stream, int) else stream.fileno()
        self._saved: Any = None

    def __enter__(self) -> KeyboardKeys:
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        import termios

        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self) -> tuple[list[str], bool]:
        """Keys typed since the last read (never waits), and whether the caller hung up (Ctrl-D)."""
        keys: list[str] = []
        hung_up = False
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 64)
            if not data:
                return keys, True  # the terminal went away
            for char in data.decode("ascii", "ignore"):
                if char in KEYBOARD_KEYS:
                    keys.append(char)
                elif char in HANG_UP_CHARACTERS:
                    hung_up = True
        return keys, hung_up


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError, AttributeError):
        return False


# ---------------------------------------------------------------------- the call


@dataclass
class HeadsetStats:
    """What the devices did during the call (for the transcript and the logs)."""

    input_device: str = ""
    output_device: str = ""
    input_rate: int = 0
    output_rate: int = 0
    input_latency: float = 0.0  # seconds, as PortAudio reports the opened streams
    output_latency: float = 0.0
    input_overflows: int = 0
    output_underruns: int = 0  # callbacks that found less bot audio than they needed
    output_dropped_seconds: float = 0.0
    steps: int = 0
    slowest_step_ms: float = 0.0


class HeadsetCall:
    """One call on sound devices: ``HeadsetCall(...).run()`` returns the call record.

    ``device`` names the device for both ways (None: the system's defaults);
    ``input_device``/``output_device`` name one way each, where a headset shows as two.
    ``hang_up()`` and ``press()`` may be called from any thread."""

    def __init__(self, line: Line, renderer: PromptRenderer, speech: LineSpeech | None, *,
                 device: str | int | None = None, input_device: str | int | None = None,
                 output_device: str | int | None = None, caller_id: str | None = None,
                 dialed: str | None = None, language: str | None = None, sample_rate: int = HEADSET_RATE,
                 keyboard: bool | None = None, out: TextIO | None = None, max_seconds: float | None = None,
                 latency: str | float = "low", record_to: str | Path | None = None) -> None:
        if sample_rate not in LINE_RATES:
            raise ValueError(f"a headset call runs at {LINE_RATES} Hz, not {sample_rate}")
        self.line = line
        self.renderer = renderer
        self.speech = speech
        self.input_name = input_device if input_device is not None else device
        self.output_name = output_device if output_device is not None else device
        self.rate = sample_rate
        self.keyboard = _stdin_is_terminal() if keyboard is None else keyboard
        self.out = out
        self.max_seconds = max_seconds
        self.latency = latency
        self.meta = CallMeta(transport="headset", caller_id=caller_id, dialed=dialed)
        self.session = CallSession(line, self.meta, renderer, speech, sample_rate, language=language, virtual=False,
                                   record_to=record_to)
        self.stats = HeadsetStats()
        self._heard: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self._hang_up = threading.Event()
        self._printed = 0
        self.started = threading.Event()  # set when the call is live: its first audio was heard and answered
        # Seconds without input before the device counts as stopped (the first block gets
        # more: a PulseAudio source was seen to take up to 1.9 s), and for the streams to stop.
        self.stall_seconds = 2.0
        self.first_block_seconds = 5.0
        self.close_seconds = 3.0

    # ------------------------------------------------------------------ any thread

    def press(self, key: str) -> None:
        self.session.press(key)

    def hang_up(self) -> None:
        self._hang_up.set()

    # ------------------------------------------------------------------ the session thread

    def run(self) -> dict[str, Any]:
        sd = _sounddevice()
        devices = list_devices()
        source = find_device(self.input_name, "input", devices)
        sink = find_device(self.output_name, "output", devices)
        self.stats.input_device, self.stats.output_device = source.name, sink.name
        self.stats.input_rate, self.stats.output_rate = source.default_rate, sink.default_rate
        output = _OutputBuffer(sink.default_rate)

        def heard(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            if status.input_overflow:
                self.stats.input_overflows += 1
            self._heard.put(indata[:, 0].copy())

        def speak(outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            output.pull(outdata[:, 0])
            if outdata.shape[1] > 1:
                outdata[:, 1:] = outdata[:, :1]

        with self._ctrl_c_hangs_up(), self._streams(sd, source, sink, heard, speak) as (instream, outstream):
            self.stats.input_latency, self.stats.output_latency = float(instream.latency), float(outstream.latency)
            log.info("headset call %s: in %r at %d Hz (%.0f ms), out %r at %d Hz (%.0f ms), call at %d Hz",
                     self.meta.call_id, source.name, source.default_rate, instream.latency * 1000, sink.name,
                     sink.default_rate, outstream.latency * 1000, self.rate)
            failure = self._talk(instream, output, source, sink)
            self.stats.output_underruns, self.stats.output_dropped_seconds = (
                output.underruns, round(output.dropped / sink.default_rate, 3))
        record = self.session.finish()
        self._print_new()
        if failure is not None:
            raise DeviceFailed(f"{failure} (the call was ended and saved: {record['call_id']})", record)
        return record

    @contextmanager
    def _ctrl_c_hangs_up(self) -> Iterator[None]:
        """Ctrl-C hangs up between two frames, never in the middle of one (main thread only:
        elsewhere signals are not ours to catch). Restored before the call is saved, so a
        backend that hangs there can still be interrupted."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, lambda signum, frame: self.hang_up())
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextmanager
    def _streams(self, sd: Any, source: AudioDevice, sink: AudioDevice, heard: Any,
                 speak: Any) -> Iterator[tuple[Any, Any]]:
        outstream = self._open(sd, sd.OutputStream, sink, "output", speak)
        try:
            instream = self._open(sd, sd.InputStream, source, "input", heard)
        except BaseException:
            outstream.close()
            raise
        try:
            outstream.start()
            instream.start()
        except sd.PortAudioError as exc:
            instream.close()
            outstream.close()
            raise DeviceFailed(f"the sound devices would not start ({exc}); {DEVICES_HINT}") from exc
        try:
            yield instream, outstream
        finally:
            self._close(sd, instream, outstream)

    def _close(self, sd: Any, *streams: Any) -> None:
        """Stops the streams, waiting at most ``close_seconds``: PortAudio's stop waits for
        the device, and a source that stalled (seen with a suspended PulseAudio sink) never
        answers; the call must end all the same."""
        seconds = self.close_seconds

        def close() -> None:
            for stream in streams:
                try:
                    stream.stop()
                    stream.close()
                except sd.PortAudioError as exc:  # a device that vanished mid-call
                    log.warning("closing %s: %s", stream, exc)

        closer = threading.Thread(target=close, name="headset-close", daemon=True)
        closer.start()
        closer.join(seconds)
        if closer.is_alive():
            log.warning("headset call %s: the sound device did not stop within %.0f s; left to close on its own",
                        self.meta.call_id, seconds)

    def _open(self, sd: Any, kind_class: Any, device: AudioDevice, kind: str, callback: Any) -> Any:
        blocksize = round(device.default_rate * FRAME_SECONDS)
        # Mono where the device allows it; some hardware opens only in stereo (its first channel is used).
        channel_counts = [1] + ([2] if device.channels(kind) >= 2 else [])
        problem: Exception | None = None
        for channels in channel_counts:
            try:
                return kind_class(device=device.index, samplerate=device.default_rate, channels=channels,
                                  dtype="float32", blocksize=blocksize, latency=self.latency, callback=callback)
            except sd.PortAudioError as exc:
                problem = exc
            except ValueError as exc:  # sounddevice's own checks (the device list changed since)
                raise DeviceNotFound(f"the {kind} device {device.name!r} is gone ({exc}); {DEVICES_HINT}") from exc
        raise DeviceFailed(f"the {kind} device {device.name!r} could not be opened at {device.default_rate} Hz "
                           f"({problem}): is it busy, in use by another program, or unplugged?")

    def _talk(self, instream: Any, output: _OutputBuffer, source: AudioDevice, sink: AudioDevice) -> str | None:
        """The call, until it ends; what went wrong with a device, if anything."""
        import soxr

        # LQ hands out about 20 ms for every 20 ms block, both ways (measured); MQ handed out
        # 36-54 ms bursts with nothing in between (the session stepped 2-3 frames at once and
        # the output cushion ran dry at the start of a call), HQ held up to 145 ms back.
        down = soxr.ResampleStream(source.default_rate, self.rate, 1, dtype="float32", quality="LQ")
        up = soxr.ResampleStream(self.rate, sink.default_rate, 1, dtype="float32", quality="LQ")
        session = self.session
        frame_len = session.frame_len
        pending = np.zeros(0, dtype=np.float32)
        stalled_since: float | None = None
        failure: str | None = None
        started_at = time.monotonic()
        with ExitStack() as stack:
            keyboard = stack.enter_context(KeyboardKeys(sys.stdin)) if self.keyboard else None
            session.start()
            self._print_new()
            while not session.finished:
                if self._hang_up.is_set():
                    session.hang_up()
                    break
                if keyboard is not None:
                    keys, hung_up = keyboard.read()
                    for key in keys:
                        session.press(key)
                    if hung_up:
                        session.hang_up()
                        break
                try:
                    block = self._heard.get(timeout=0.1)
                except queue.Empty:
                    now = time.monotonic()
                    stalled_since = stalled_since or now
                    patience = self.stall_seconds if self.stats.steps else self.first_block_seconds
                    if not instream.active or now - stalled_since > patience:
                        failure = f"the input device {source.name!r} " + (
                            "stopped sending audio" if self.stats.steps else "sent no audio")
                        session.hang_up()
                        break
                    continue
                stalled_since = None
                pending = np.concatenate([pending, down.resample_chunk(block)])
                while len(pending) >= frame_len and not session.finished:
                    frame, pending = pending[:frame_len], pending[frame_len:]
                    began = time.perf_counter()
                    bot = session.step(frame)
                    took = (time.perf_counter() - began) * 1000
                    self.stats.steps += 1
                    self.stats.slowest_step_ms = max(self.stats.slowest_step_ms, round(took, 2))
                    output.push(up.resample_chunk(np.asarray(bot, dtype=np.float32)))
                    self.started.set()
                self._print_new()
                if self.max_seconds is not None and time.monotonic() - started_at > self.max_seconds:
                    session.hang_up()
                    break
        # Let the last words out before the streams close (bounded: a dead device never drains).
        output.closing = True
        deadline = time.monotonic() + 1.0
        output.push(up.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        while not output.empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        return failure

    # ------------------------------------------------------------------ what the caller sees

    def _print_new(self) -> None:
        entries = self.session.transcript
        while self._printed < len(entries):
            entry = entries[self._printed]
            self._printed += 1
            if self.out is not None:
                text = describe(entry)
                if text:
                    print(text, file=self.out, flush=True)

    def transcript(self) -> dict[str, Any]:
        """The call as a document: the file calls' schema, with the devices in place of the input file."""
        return {
            "schema": TRANSCRIPT_SCHEMA,
            "call_id": self.meta.call_id,
            "input": f"device:{self.stats.input_device}",
            "output": f"device:{self.stats.output_device}",
            "sample_rate": self.rate,
            "caller_id": self.meta.caller_id,
            "dialed": self.meta.dialed,
            "duration": round(self.session.now, 3),
            "devices": asdict(self.stats),
            "entries": [entry.as_dict() for entry in self.session.transcript],
            "recording": self.session.recording_note,
        }


def describe(entry: TranscriptEntry) -> str | None:
    """One line of the live call for the person at the headset (None: not worth a line)."""
    d = entry.detail
    if entry.kind == "call":
        return f"  call › from {d.get('caller_id') or '-'} to {d.get('dialed') or '-'} at {d.get('rate')} Hz"
    if entry.kind == "prompt":
        return f"   IVR › {d.get('text')}"
    if entry.kind == "key":
        return f"caller › key {d.get('key')}" + (" (keyboard)" if d.get("source") == "keyboard" else "")
    if entry.kind == "speech":
        return f"caller › “{d.get('text')}” ({d.get('confidence')})" if d.get("text") else "caller › (not understood)"
    if entry.kind == "timer" and d.get("timer") == "no_input":
        return "caller › (silence)"
    if entry.kind == "transfer":
        return f"  call › transferred to {d.get('target')}"
    if entry.kind == "hangup":
        return f"  call › ended: {d.get('outcome')}"
    if entry.kind == "caller_hung_up":
        return "  call › you hung up"
    return None


def call_on_device(line: Line, renderer: PromptRenderer, speech: LineSpeech | None, device: str | int | None = None,
                   *, transcript: str | Path | None = None, out: TextIO | None = sys.stdout,
                   **options: Any) -> dict[str, Any]:
    """``voicebot call --device``: a headset call from start to end, the conversation shown
    on ``out`` as it goes and, with ``transcript``, written there as JSON (also when a
    device fails mid-call); the call record. :class:`HeadsetCall` lists the other options.
    A ``recording.folder`` that cannot be written is a ConfigError before the call starts."""
    from .recording import check_recording_folder

    check_recording_folder(line.config)
    call = HeadsetCall(line, renderer, speech, device=device, out=out, **options)
    if out is not None:
        print("Headset call: speak, or type keys (0-9 * #) here; Ctrl-C or Ctrl-D hangs up.", file=out, flush=True)
    try:
        return call.run()
    finally:
        if transcript is not None and call.session.transcript:
            Path(transcript).write_text(json.dumps(call.transcript(), ensure_ascii=False, indent=2) + "\n")


def print_devices(as_json: bool = False, out: TextIO | None = None) -> int:
    """``voicebot devices [--json]``."""
    devices = list_devices()
    print(devices_json(devices) if as_json else format_devices(devices), file=out or sys.stdout)
    return 0
