"""Live audio with no sound card: a private PulseAudio server with two null sinks.

One user-space ``pulseaudio`` started for the test (not daemonised, so its process is ours
to end), listening only on a socket in a temporary folder, with one null sink per
direction of a call:

    the test caller ──paplay──▶ sink "caller" ──monitor──▶ ALSA "ivr_headset" (capture) ─┐
                                                                                          IVR
    the test caller ◀──parec─── sink "ivr" ◀───────────── ALSA "ivr_headset" (playback) ─┘

PortAudio (Debian's is built without PulseAudio) sees the sinks through ALSA's pulse
plugin: ``.asoundrc`` in a temporary HOME names them, one device per way
(``ivr_speaker`` plays into "ivr", ``ivr_mic`` records "caller.monitor") and
``ivr_headset`` both ways in one name, as a real headset shows. The server's defaults are
the IVR's two ways too, so the system's default device is the IVR's headset.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

RATE = 48000
TOOLS = ("pulseaudio", "pactl", "paplay", "parec")
ALSA_PULSE_PLUGIN = "/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"
APT_PACKAGES = "pulseaudio pulseaudio-utils libasound2-plugins libportaudio2"

ASOUNDRC = """\
pcm.ivr_speaker { type pulse; device "ivr" }
pcm.ivr_mic { type pulse; device "caller.monitor" }
pcm.ivr_headset { type asym; playback.pcm "ivr_speaker"; capture.pcm "ivr_mic" }
pcm.broken_headset { type pulse; device "no_such_sink" }
"""


def missing() -> str | None:
    """Why a live-audio test cannot run here (None: it can)."""
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not glob.glob(ALSA_PULSE_PLUGIN):
        absent.append("ALSA's pulse plugin")
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as exc:
        absent.append(f"sounddevice/PortAudio ({exc})")
    if absent:
        return f"live audio needs {', '.join(absent)} (apt-get install {APT_PACKAGES})"
    return None


class PulseServer:
    """``with PulseServer(folder) as pulse:`` — the server runs, its environment is set in
    ``os.environ`` (PortAudio reads it), and everything is undone on the way out."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "pa.sock"
        self.home = folder / "home"
        self.runtime = folder / "run"
        self.log_path = folder / "pulseaudio.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._saved_env: dict[str, str | None] = {}
        self._children: list[subprocess.Popen[bytes]] = []

    @property
    def server(self) -> str:
        return f"unix:{self.socket}"

    def environment(self) -> dict[str, str]:
        return {
            "PULSE_SERVER": self.server,
            "HOME": str(self.home),  # ALSA reads ~/.asoundrc; the server keeps its state here
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "PULSE_RUNTIME_PATH": str(self.runtime / "pulse"),
            "PULSE_STATE_PATH": str(self.home / "state"),
        }

    def __enter__(self) -> PulseServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self.runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.home / ".asoundrc").write_text(ASOUNDRC)
        env = {**os.environ, **self.environment()}
        env.pop("PULSE_SERVER")  # the server itself listens there; it must not try to reach it
        command = [
            "pulseaudio", "-n", "--daemonize=no", "--use-pid-file=no", "--exit-idle-time=-1",
            "--disable-shm=yes", "--realtime=no", "--high-priority=no", "--no-cpu-limit=yes",
            "--log-target=stderr",
            f"--load=module-native-protocol-unix socket={self.socket} auth-anonymous=1",
            f"--load=module-null-sink sink_name=caller rate={RATE} channels=1",
            f"--load=module-null-sink sink_name=ivr rate={RATE} channels=1",
        ]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        try:
            self._wait_ready()
            self.pactl("set-default-sink", "ivr")
            self.pactl("set-default-source", "caller.monitor")
            for key, value in self.environment().items():
                self._saved_env[key] = os.environ.get(key)
                os.environ[key] = value
            reload_portaudio()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with {self.process.returncode}:\n{self.log()}")
            if self.socket.exists() and self.pactl("list", "short", "sinks", check=False).count("null-sink") >= 2:
                return
            time.sleep(0.05)
        raise RuntimeError(f"pulseaudio was not ready after {timeout} s:\n{self.log()}")

    def __exit__(self, *exc: object) -> None:
        for child in self._children:
            _end(child)
        self._children.clear()
        if self.process is not None:
            _end(self.process)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self._saved_env:
            reload_portaudio()  # forget the devices of a server that is gone
        self._saved_env.clear()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _client_env(self) -> dict[str, str]:
        return {**os.environ, **self.environment()}

    def pactl(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["pactl", f"--server={self.server}", *args], env=self._client_env(),
                              capture_output=True, text=True, timeout=10, check=False)
        if check and done.returncode:
            raise RuntimeError(f"pactl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def play(self, sink: str, wav: Path) -> subprocess.Popen[bytes]:
        """Plays a sound file into a sink (returns at once; ``wait()`` on the process)."""
        child = subprocess.Popen(["paplay", f"--server={self.server}", f"--device={sink}", str(wav)],
                                 env=self._client_env(), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._children.append(child)
        return child

    def record(self, source: str, rate: int = 16000) -> Recording:
        return Recording(self, source, rate)


class Recording:
    """What a source carries (a sink's monitor), as 16-bit mono, from now until ``stop()``."""

    def __init__(self, pulse: PulseServer, source: str, rate: int) -> None:
        self.rate = rate
        self.path = pulse.folder / f"{source}.raw"
        self._file = self.path.open("wb")
        self.process = subprocess.Popen(
            ["parec", f"--server={pulse.server}", f"--device={source}", f"--rate={rate}", "--channels=1",
             "--format=s16le", "--latency-msec=20"],
            env=pulse._client_env(), stdin=subprocess.DEVNULL, stdout=self._file, stderr=subprocess.PIPE)
        pulse._children.append(self.process)

    def stop(self) -> np.ndarray:
        _end(self.process)
        self._file.close()
        return np.frombuffer(self.path.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def reload_portaudio() -> None:
    """PortAudio lists devices once, when it starts, and ALSA reads ~/.asoundrc once: start
    both again so a server (or its absence) is seen."""
    try:
        import sounddevice
    except (ImportError, OSError):
        return
    sounddevice._terminate()
    sounddevice._initialize()
