"""Real SIP peers for the tests: SIPp (Debian sip-tester) and baresip (Debian baresip-core).

    result = run_sipp("uac_rfc4733_signature_unlock.xml", target=f"127.0.0.1:{port}",
                      caller="+34600000005", dialed="950183313", calls=50, limit=50)
    assert result.ok, result.describe()

    call = run_baresip_call(f"sip:950183313@127.0.0.1:{port}", ["1", "3", "1", "2", "17654321"],
                            caller="+34600000005")
    assert call.ended_by_peer, call.output

Scenarios live in tests/sip/scenarios/ (see tests/sip/README.md); ``write_scenario`` writes a
variant with other keys into a folder of the test's. Every run is bounded (``timeout``):
SIPp gets ``-timeout``/``-timeout_error`` and is killed past it, never ``-bg`` (which returns
at once and leaves SIPp running); baresip is told to quit and killed past its timeout.
"""

from __future__ import annotations

import csv
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

import pytest

from tests.sip.flows import FLOWS, UNLOCK_LINE
from tests.sip.make_scenarios import SCENARIOS, scenario

SIP_DIR = Path(__file__).resolve().parent / "sip"
BARESIP_TEMPLATES = SIP_DIR / "baresip"
SIP_TESTER_PCAPS = Path("/usr/share/sip-tester")
APT_PACKAGES = {"sipp": "sip-tester", "baresip": "baresip-core"}


def skip_unless_sipp(*tools: str) -> None:
    """Skip the calling test, saying which Debian package to install, unless every tool is here.
    Default: sipp only. Also needs root for SIPp's play_pcap_audio (raw socket)."""
    missing = [t for t in (tools or ("sipp",)) if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed "
                    f"(apt-get install {' '.join(APT_PACKAGES.get(t, t) for t in missing)})")
    if "sipp" in (tools or ("sipp",)) and not (SIP_TESTER_PCAPS / "dtmf_2833_1.pcap").exists():
        pytest.skip(f"{SIP_TESTER_PCAPS} has no RFC 4733 pcaps (Debian sip-tester ships them)")


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 now (the OS's pick; a race with other processes is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_scenario(folder: Path, kind: str, flow: str = "", groups: tuple[str, ...] = (),
                   extra_rfc4733: tuple[str, ...] = (), inband: str = "") -> Path:
    """Write a scenario variant into ``folder`` and return its path.

    kind: see tests.sip.make_scenarios.scenario; flow names tests.sip.flows.FLOWS (or give
    groups); inband: "pcma" or "pcmu" (the flow's pcap in tests/sip/pcaps/, named absolutely).
    """
    groups = groups or (FLOWS[flow].groups if flow else ())
    name = f"uac_{kind}_{flow or 'custom'}" + (f"_{inband}" if inband else "")
    pcap = str(SIP_DIR / "pcaps" / f"{flow}_{inband}.pcap") if inband else ""
    path = Path(folder) / f"{name}.xml"
    path.write_text(scenario(kind, groups, extra_rfc4733=extra_rfc4733, inband_pcap=pcap, name=name,
                             silence_dir=str(SIP_DIR / "pcaps")))
    return path


@dataclass
class SippResult:
    command: list[str]
    returncode: int  # 0: every call succeeded; 1: some failed; 97/99/-1/-2: see `man sipp`; -9: killed
    successful: int  # calls that reached the end of the scenario
    failed: int
    workdir: Path  # all of SIPp's files for this run
    output: str  # SIPp's stdout+stderr (screens)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.successful > 0

    def file(self, suffix: str) -> str:
        path = self.workdir / suffix
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def messages(self) -> str:
        """Every SIP message sent and received (-trace_msg)."""
        return self.file("messages.log")

    @property
    def errors(self) -> str:
        """Unexpected messages and SIPp's own errors (-trace_err)."""
        return self.file("errors.log")

    @property
    def logs(self) -> str:
        """The scenario's <log> actions (-trace_logs), e.g. "cancel: 487"."""
        return self.file("logs.log")

    @property
    def call_ids(self) -> list[str]:
        """The Call-IDs of the run's calls, in order of first appearance (to find their records)."""
        found = re.findall(r"^Call-ID: *(\S+)", self.messages, re.MULTILINE | re.IGNORECASE)
        return list(dict.fromkeys(found))

    def describe(self) -> str:
        """What a failing assertion should show."""
        return (f"sipp exit {self.returncode}, {self.successful} successful, {self.failed} failed\n"
                f"command: {' '.join(self.command)}\nfiles: {self.workdir}\n"
                f"--- errors ---\n{self.errors[-3000:]}\n--- last messages ---\n{self.messages[-4000:]}")


def run_sipp(scenario_file: str | Path, target: str, *, caller: str = FLOWS["signature_unlock"].caller,
             dialed: str = UNLOCK_LINE, calls: int = 1, limit: int | None = None, rate: int | None = None,
             keys: dict[str, str] | None = None, timeout: float = 180, local_port: int | None = None,
             media_port: int | None = None, workdir: Path | None = None,
             extra_args: tuple[str, ...] = ()) -> SippResult:
    """Run a SIPp UAC scenario to its end and return its counts.

    scenario_file: a path, or a file name in tests/sip/scenarios/.
    target: "host:port" of the server. caller: From user (-key caller); dialed: Request-URI
    user (-s). calls (-m) calls in all, at most limit (-l, default: all) at once, started at
    rate (-r) per second (default: all in the first second). keys: more -key values.
    timeout: seconds for the whole run (SIPp's -timeout; the process is killed 15 s later).
    """
    path = Path(scenario_file)
    if not path.is_absolute() and not path.exists():
        path = SCENARIOS / path
    workdir = Path(workdir or tempfile.mkdtemp(prefix="sipp-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # SIPp opens rtp_stream files relative to its working directory: the INFO scenarios name
    # pcaps/silence_8k.alaw
    if not (workdir / "pcaps").exists():
        (workdir / "pcaps").symlink_to(SIP_DIR / "pcaps")
    limit = limit or calls
    command = [
        "sipp", "-sf", str(path), target, "-s", dialed, "-key", "caller", caller,
        "-i", "127.0.0.1", "-p", str(local_port or free_udp_port()),
        "-mp", str(media_port or free_udp_port()),
        "-m", str(calls), "-l", str(limit), "-r", str(rate or limit), "-rp", "1000",
        # -aa: answer 200 to in-dialog INFO/NOTIFY/OPTIONS/UPDATE the line may send at any time
        "-aa", "-nostdin",
        "-timeout", f"{int(timeout)}s", "-timeout_error",
        "-trace_msg", "-message_file", str(workdir / "messages.log"),
        "-trace_err", "-error_file", str(workdir / "errors.log"),
        "-trace_logs", "-log_file", str(workdir / "logs.log"),
        "-trace_stat", "-stf", str(workdir / "stat.csv"), "-fd", "1",
        "-trace_screen", "-screen_file", str(workdir / "screen.log"),
    ]
    for name, value in (keys or {}).items():
        command += ["-key", name, value]
    command += list(extra_args)
    try:
        proc = subprocess.run(command, check=False, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout + 15)
        returncode, output = proc.returncode, proc.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:  # run() has killed it
        returncode, output = -9, (e.stdout or b"").decode(errors="replace")
    successful, failed = _call_counts(workdir / "stat.csv", output)
    return SippResult(command, returncode, successful, failed, workdir, output)


def _call_counts(stat_file: Path, output: str) -> tuple[int, int]:
    """Cumulative successful and failed calls: the last row of the -trace_stat CSV."""
    try:
        rows = list(csv.DictReader(stat_file.open(), delimiter=";"))
        last = rows[-1]
        return int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])
    except (OSError, IndexError, KeyError, ValueError):
        pass
    counts = {}
    for line in output.splitlines():  # the final screen: "Successful call | 0 | 1"
        for label in ("Successful call", "Failed call"):
            if line.strip().startswith(label):
                counts[label] = int(line.split("|")[-1].strip() or 0)
    return counts.get("Successful call", 0), counts.get("Failed call", 0)


# ------------------------------------------------------------------ baresip

@dataclass
class BaresipCall:
    command: list[str]
    established: bool  # the line answered
    ended_by_peer: bool  # the line hung up (its BYE), not us, not the timeout
    keys_sent: str
    output: str  # baresip's console output
    folder: Path  # its config folder
    duration: float = 0.0


def _silence_wav(path: Path, seconds: float) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * int(seconds * 8000))


def run_baresip_call(target_uri: str, groups: list[str] | tuple[str, ...], *,
                     caller: str = FLOWS["signature_unlock"].caller, audio_file: Path | None = None,
                     sine_hz: int | None = None, lead: float = 2.0, key_gap: float = 0.25,
                     group_gap: float = 1.0, timeout: float = 90, hang_up_after_keys: bool = False,
                     folder: Path | None = None) -> BaresipCall:
    """Dial ``target_uri`` with baresip, key ``groups`` (RFC 4733, baresip's default) once the
    call is established, and return when the call ends (or after ``timeout`` seconds).

    Audio sent: ``audio_file`` (a wav, via aufile), else a sine (``sine_hz``, via ausine), else
    silence (a generated wav as long as the timeout: aufile stops at the end of its file).
    Keys go through baresip's UDP console (module cons): one datagram per key, then "\\x04"
    (key release: without it baresip keeps the tone on and sends no further key).
    """
    folder = Path(folder or tempfile.mkdtemp(prefix="baresip-"))
    folder.mkdir(parents=True, exist_ok=True)
    if audio_file is None and sine_hz is None:
        audio_file = folder / "silence.wav"
        _silence_wav(audio_file, timeout + 10)
    cons_port = free_udp_port()
    rtp_low = 30000 + free_udp_port() % 15000 * 2  # an even port, somewhere in 30000-59998
    values = {
        "sip_port": free_udp_port(), "cons_port": cons_port, "caller": caller,
        "audio_source": f"aufile,{audio_file}" if audio_file else f"ausine,{sine_hz}",
        # aufile sends the file's own format; ausine makes 48 kHz stereo (resampled by baresip)
        "ausrc_srate": 8000 if audio_file else 48000, "ausrc_channels": 1 if audio_file else 2,
        "rtp_low": rtp_low, "rtp_high": rtp_low + 20,
    }
    for name in ("config", "accounts"):
        text = Template((BARESIP_TEMPLATES / f"{name}.template").read_text()).substitute(values)
        (folder / name).write_text(text)
    (folder / "contacts").write_text("")
    command = ["baresip", "-f", str(folder)]
    log_path = folder / "baresip.out"
    started = time.monotonic()
    with log_path.open("wb") as log, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as console:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def send(text: str) -> None:
            console.sendto(text.encode(), ("127.0.0.1", cons_port))

        def wait_for(marker: str, seconds: float) -> bool:
            end = time.monotonic() + seconds
            while time.monotonic() < end and proc.poll() is None:
                if marker in log_path.read_text(errors="replace"):
                    return True
                time.sleep(0.05)
            return False

        sent, established, ended_by_peer = "", False, False
        try:
            ready = wait_for("baresip is ready", 10)
            if ready:
                send(f"/dial {target_uri}\n")
            established = ready and wait_for("Call established", 15)
            if established:
                time.sleep(lead)
                for g, group in enumerate(groups):
                    if g:
                        time.sleep(group_gap)
                    for k, key in enumerate(group):
                        if k:
                            time.sleep(key_gap)
                        send(key)
                        time.sleep(0.12)  # tone length
                        send("\x04")  # release
                        sent += key
                if hang_up_after_keys:
                    time.sleep(1.0)
                    send("/hangup\n")
                remaining = timeout - (time.monotonic() - started)
                ended = wait_for("terminated", max(remaining, 1))
                # baresip 1.0 says so when the peer's BYE closes the session
                ended_by_peer = ended and "Connection reset by peer" in log_path.read_text(errors="replace")
        finally:
            if proc.poll() is None:
                send("/quit\n")
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    output = log_path.read_text(errors="replace")
    return BaresipCall(command, established, ended_by_peer, sent, output, folder,
                       round(time.monotonic() - started, 2))
