"""Headset calls: a real PortAudio device path end to end, with no sound card.

The live tests start their own PulseAudio server with two null sinks (``tests/pulse.py``).
The test caller plays keypad tones into the sink the IVR records from, with ``paplay``,
and records what the IVR plays from the other sink's monitor, with ``parec``; the IVR is
``HeadsetCall`` on the ALSA device ``ivr_headset``, through sounddevice, at 16 kHz.
Each prompt is a tone of its own pitch, so the recording shows which prompts reached it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from voicebot.app import Line
from voicebot.call import headset
from voicebot.call.headset import (
    AudioDevice,
    AudioUnavailable,
    DeviceFailed,
    DeviceNotFound,
    HeadsetCall,
    KeyboardKeys,
    call_on_device,
    find_device,
    find_headset,
    format_devices,
    list_devices,
    print_devices,
)
from voicebot.dialog import PlayPrompt
from voicebot.dtmf import generator

from . import pulse as pulse_harness
from .conftest import UNLOCK_LINE

PROMPT_PITCH = {"language.prompt": 300.0, "main.prompt": 500.0, "user_channel.prompt": 1100.0}
OTHER_PITCH = 1500.0
WORDS_PER_SECOND = 3.0


class PitchedRenderer:
    """Each prompt as a tone of its own pitch, as long as its words would take to say."""

    def render(self, play: PlayPrompt, sample_rate: int) -> np.ndarray:
        seconds = max(0.3, len(play.masked_text().split()) / WORDS_PER_SECOND)
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        pitch = PROMPT_PITCH.get(play.prompt_id, OTHER_PITCH)
        return (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


# ---------------------------------------------------------------------- the harness


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pulse_harness.PulseServer]:
    reason = pulse_harness.missing()
    if reason:
        pytest.skip(reason)
    server = pulse_harness.PulseServer(tmp_path_factory.mktemp("pulse"))
    with server:
        yield server
    assert server.process is not None and server.process.poll() is not None, "pulseaudio is still running"


@contextmanager
def running(call: HeadsetCall) -> Iterator[dict[str, Any]]:
    """The call in a thread of its own (the test is the caller); hung up and joined on the way out."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["record"] = call.run()
        except BaseException as exc:  # noqa: BLE001 -- handed to the test thread below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="headset-call")
    thread.start()
    try:
        yield outcome
    finally:
        call.hang_up()
        thread.join(timeout=15)
    assert not thread.is_alive(), "the call did not end after hang_up()"
    if "error" in outcome:
        raise outcome["error"]


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.02)


def prompts(call: HeadsetCall) -> list[str]:
    return [e.detail["prompt"] for e in list(call.session.transcript) if e.kind == "prompt"]


def pitches(audio: np.ndarray, rate: int, window: float = 0.05, floor: float = 0.05) -> list[tuple[float, float]]:
    """(pitch, seconds) of each run of one dominant pitch louder than ``floor`` RMS."""
    n = int(rate * window)
    runs: list[list[float]] = []
    for start in range(0, len(audio) - n, n):
        chunk = audio[start:start + n]
        if np.sqrt(np.mean(chunk ** 2)) < floor:
            continue
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(n)))
        pitch = float(np.argmax(spectrum) * rate / n)
        if runs and abs(runs[-1][0] - pitch) <= 2 * rate / n:
            runs[-1][1] += window
        else:
            runs.append([pitch, window])
    return [(pitch, seconds) for pitch, seconds in runs if seconds >= 2 * window]


# ---------------------------------------------------------------------- live calls


def test_a_headset_call_hears_keypad_tones_and_plays_the_prompts(pulse: pulse_harness.PulseServer, line: Line,
                                                                  tmp_path: Path) -> None:
    heard_by_caller = pulse.record("ivr.monitor")
    call = HeadsetCall(line, PitchedRenderer(), None, device="ivr_headset", dialed=UNLOCK_LINE,
                       keyboard=False, max_seconds=40)
    with running(call) as result:
        assert call.started.wait(10), f"no audio reached the IVR\n{pulse.log()}"
        # Spanish (1), then the main menu's user option (1): two presses a second apart.
        tones, _ = generator.sequence("11", on=0.1, off=1.0, sample_rate=8000, lead=0.2, tail=0.2,
                                      level_dbm0=-10.0, rng=np.random.default_rng(5))
        soundfile.write(tmp_path / "keys.wav", tones, 8000)
        assert pulse.play("caller", tmp_path / "keys.wav").wait(timeout=15) == 0
        wait_for(lambda: "user_channel.prompt" in prompts(call), 10, "user menu prompt")
        time.sleep(1.0)  # the caller listens to some of it, then hangs up
    record = result["record"]
    heard = heard_by_caller.stop()

    entries = [e.as_dict() for e in call.session.transcript]
    keys = [(e["key"], e["source"]) for e in entries if e["kind"] == "key"]
    assert keys == [("1", "tone"), ("1", "tone")], entries
    assert prompts(call)[:3] == ["language.prompt", "main.prompt", "user_channel.prompt"]
    assert [e["by"] for e in entries if e["kind"] == "prompt_stopped"] == ["key", "key"]  # each key cut its prompt
    assert record["outcome"] == "caller_hung_up" and "user_channel" in record["path"]
    assert record["transport"] == "headset"

    # What came out of the IVR's output stream: the three prompts, in order, loud and long.
    runs = pitches(heard, 16000)
    assert [pitch for pitch, _ in runs] == pytest.approx([300.0, 500.0, 1100.0], abs=25), runs
    assert runs[2][1] >= 0.8  # the user menu, until the caller hung up
    loudest = np.abs(heard).max()
    assert 0.2 < loudest < 0.4  # the prompts' level came through (0.3), neither clipped nor lost

    stats = call.stats
    assert (stats.input_device, stats.output_device) == ("ivr_headset", "ivr_headset")
    assert stats.input_rate == stats.output_rate == 44100
    assert stats.input_overflows == 0  # the input callback never waited for the session
    print(f"\nheadset call: {stats.steps * 0.02:.1f} s of call, steps up to {stats.slowest_step_ms} ms, "
          f"{stats.output_underruns} output gaps, latency in {stats.input_latency * 1000:.0f} ms "
          f"out {stats.output_latency * 1000:.0f} ms; prompts heard {runs}")
    transcript = call.transcript()
    assert transcript["input"] == "device:ivr_headset" and transcript["entries"][0]["kind"] == "call"


def test_keys_typed_on_the_computer_keyboard_are_pressed_on_the_default_device(
        pulse: pulse_harness.PulseServer, line: Line) -> None:
    call = HeadsetCall(line, PitchedRenderer(), None, dialed=UNLOCK_LINE, keyboard=False, max_seconds=40,
                       sample_rate=8000)
    with running(call):
        assert call.started.wait(10)
        call.press("2")  # English, from the keyboard (what KeyboardKeys hands over)
        wait_for(lambda: "main.prompt" in prompts(call), 10, "main menu prompt")
    entries = [e.as_dict() for e in call.session.transcript]
    assert [(e["key"], e["source"]) for e in entries if e["kind"] == "key"] == [("2", "keyboard")]
    assert [e["language"] for e in entries if e["kind"] == "prompt"][-1] == "en"
    # The server's defaults are the IVR's two ways: PortAudio's "default" device is the headset.
    assert call.stats.input_device == call.stats.output_device == "default"
    assert call.rate == 8000


def test_a_device_that_stops_mid_call_ends_it_with_a_clear_error_and_the_call_is_saved(
        tmp_path: Path, line: Line) -> None:
    if reason := pulse_harness.missing():
        pytest.skip(reason)
    # A server of its own: the stalled stream is only freed when its server goes.
    with pulse_harness.PulseServer(tmp_path / "pulse") as server:
        call = HeadsetCall(line, PitchedRenderer(), None, device="ivr_headset", dialed=UNLOCK_LINE,
                           keyboard=False, max_seconds=40)
        call.stall_seconds, call.close_seconds = 0.5, 0.5
        stopped = r"^the input device 'ivr_headset' stopped sending audio \(the call was ended and saved: [a-z]{16}\)$"
        with pytest.raises(DeviceFailed, match=stopped) as failed, running(call):
            assert call.started.wait(10)
            server.pactl("suspend-sink", "caller", "1")  # the microphone's source goes silent for good
            wait_for(lambda: call.session.finished, 10, "end of the call")
    # Its server gone, the stream that would not stop is freed: no thread is left behind.
    wait_for(lambda: not any(t.name == "headset-close" for t in threading.enumerate()), 5, "stream closed")
    assert failed.value.record is not None and failed.value.record["outcome"] == "caller_hung_up"
    assert line.call_log.recent(1)[0]["call_id"] == failed.value.record["call_id"]


# ---------------------------------------------------------------------- devices and their errors


def test_call_on_device_shows_the_call_and_writes_its_transcript(pulse: pulse_harness.PulseServer, line: Line,
                                                                 tmp_path: Path) -> None:
    shown = io.StringIO()
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT))  # Ctrl-C, as at the terminal
    timer.start()
    try:
        record = call_on_device(line, PitchedRenderer(), None, "ivr_headset", transcript=tmp_path / "call.json",
                                dialed=UNLOCK_LINE, out=shown, keyboard=False, max_seconds=20)
    finally:
        timer.cancel()
    assert record["outcome"] == "caller_hung_up" and record["duration_s"] < 10  # Ctrl-C, not max_seconds
    lines = shown.getvalue().splitlines()
    assert lines[0].startswith("Headset call:") and lines[1] == "  call › from - to 950183313 at 16000 Hz"
    assert lines[2].startswith("   IVR › Servicio de desbloqueo") and lines[-1] == "  call › you hung up"
    written = json.loads((tmp_path / "call.json").read_text())
    assert written["call_id"] == record["call_id"] and written["devices"]["input_device"] == "ivr_headset"


def test_devices_lists_what_portaudio_sees_and_marks_the_defaults(pulse: pulse_harness.PulseServer) -> None:
    devices = list_devices()
    by_name = {d.name: d for d in devices}
    assert {"ivr_headset", "ivr_mic", "ivr_speaker", "default"} <= set(by_name)
    assert by_name["default"].default_input and by_name["default"].default_output
    assert by_name["ivr_headset"].input_channels > 0 and by_name["ivr_headset"].output_channels > 0
    text = format_devices(devices)
    assert "ivr_headset (ALSA)" in text and "><" in text
    shown = io.StringIO()
    assert print_devices(as_json=True, out=shown) == 0
    assert {"ivr_headset", "default"} <= {d["name"] for d in json.loads(shown.getvalue())}


def test_a_device_that_is_not_there_is_named_in_the_error(pulse: pulse_harness.PulseServer, line: Line) -> None:
    call = HeadsetCall(line, PitchedRenderer(), None, device="no such headset", keyboard=False)
    with pytest.raises(DeviceNotFound, match=r"^no input device named 'no such headset'; `voicebot devices` lists them$"):
        call.run()


def test_a_device_that_will_not_open_is_a_clear_error(pulse: pulse_harness.PulseServer, line: Line) -> None:
    # An ALSA device whose PulseAudio sink does not exist: listed, but it cannot be opened.
    call = HeadsetCall(line, PitchedRenderer(), None, device="broken_headset", keyboard=False)
    with pytest.raises(DeviceFailed, match=r"device 'broken_headset' could not be opened at 44100 Hz .*busy"):
        call.run()


DEVICES = [
    AudioDevice(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "ALSA", 2, 2, 48000),
    AudioDevice(1, "Jabra EVOLVE 20 MS: USB Audio (hw:1,0)", "ALSA", 1, 2, 48000),
    AudioDevice(2, "HDMI 0 (hw:0,3)", "ALSA", 0, 8, 48000),
    AudioDevice(3, "default", "ALSA", 32, 32, 44100, default_input=True, default_output=True),
]


def test_a_device_is_named_by_number_by_its_whole_name_or_by_a_part_of_it() -> None:
    assert find_device("jabra", "input", DEVICES).index == 1
    assert find_device(1, "output", DEVICES).index == 1
    assert find_device("3", "input", DEVICES).name == "default"
    assert find_device(None, "output", DEVICES).name == "default"
    assert find_device("DEFAULT", "input", DEVICES).index == 3
    with pytest.raises(DeviceNotFound, match=r"2 input devices match 'hw:' \(0 .*, 1 .*\): name one exactly"):
        find_device("hw:", "input", DEVICES)
    with pytest.raises(DeviceNotFound, match=r"device 2 \(HDMI 0 \(hw:0,3\)\) has no input"):
        find_device(2, "input", DEVICES)
    with pytest.raises(DeviceNotFound, match=r"no output device number 9"):
        find_device(9, "output", DEVICES)
    with pytest.raises(DeviceNotFound, match=r"there is no default input device"):
        find_device(None, "input", DEVICES[:3])


def test_a_headset_is_a_usb_or_headset_device_with_both_ways_never_the_sound_servers_own() -> None:
    assert find_headset(DEVICES) == DEVICES[1]
    assert find_headset([DEVICES[0], DEVICES[2], DEVICES[3]]) is None
    speakers_only = AudioDevice(4, "USB Audio Speakers (hw:2,0)", "ALSA", 0, 2, 48000)
    assert find_headset([speakers_only, DEVICES[3]]) is None


def test_without_sounddevice_a_headset_call_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(AudioUnavailable, match="need the Python package sounddevice"):
        headset.list_devices()


def test_without_portaudio_a_headset_call_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoPortAudio:
        """What sounddevice's import does where libportaudio is absent."""

        def find_spec(self, name: str, *args: object) -> None:
            if name == "sounddevice":
                raise OSError("PortAudio library not found")

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    with pytest.raises(AudioUnavailable, match=r"PortAudio library \(PortAudio library not found\); .*libportaudio2"):
        headset.list_devices()


# ---------------------------------------------------------------------- the keyboard and the output buffer


def test_keys_typed_at_a_terminal_are_read_without_enter_and_the_terminal_is_restored() -> None:
    termios = pytest.importorskip("termios")
    master, terminal = os.openpty()
    try:
        before = termios.tcgetattr(terminal)
        with KeyboardKeys(terminal) as keyboard:
            assert not termios.tcgetattr(terminal)[3] & termios.ICANON  # no Enter needed
            os.write(master, b"1x#*a9")
            typed: list[str] = []

            def typed_four() -> bool:
                typed.extend(keyboard.read()[0])
                return len(typed) >= 4

            wait_for(typed_four, 2, "typed keys")
            assert typed == ["1", "#", "*", "9"]
            os.write(master, b"\x04")  # Ctrl-D hangs up
            wait_for(lambda: keyboard.read()[1], 2, "hang-up")
        assert termios.tcgetattr(terminal) == before
    finally:
        os.close(master)
        os.close(terminal)


def test_the_output_buffer_plays_silence_when_empty_and_drops_what_is_too_late() -> None:
    buffer = headset._OutputBuffer(1000, max_seconds=0.1, cushion_seconds=0.02)
    out = np.ones(10, dtype=np.float32)
    buffer.pull(out)
    assert not out.any() and buffer.underruns == 0  # nothing played yet is no gap
    buffer.push(np.full(30, 0.5, dtype=np.float32))
    buffer.pull(out := np.ones(40, dtype=np.float32))
    assert list(out[:20]) == [0.0] * 20 and list(out[20:40]) == [0.5] * 20  # the cushion first
    buffer.pull(out := np.ones(20, dtype=np.float32))
    assert list(out) == [0.5] * 10 + [0.0] * 10 and buffer.underruns == 1
    buffer.push(np.arange(150, dtype=np.float32))  # more than 0.1 s behind: the oldest goes
    assert buffer.dropped == 50
    buffer.pull(out := np.zeros(100, dtype=np.float32))
    assert out[0] == 50.0 and out[-1] == 149.0 and buffer.empty()
