"""Several ``voicebot serve`` behind Kamailio on one machine: ``scripts/cluster`` (``make cluster``),
and what the tests and the bench start.

    scripts/cluster                       # Kamailio on 127.0.0.1:5080, three lines on 5081-5083; Ctrl-C stops all
    scripts/cluster --instances 2 --no-speech --database postgresql://ivr@db.example:5432/ivr
    scripts/cluster status                # from another terminal: the processes, Kamailio's view of each line
    scripts/cluster restart               # a rolling restart: each line drained, started again, back in rotation
    scripts/cluster stop                  # everything it started, whatever state it is in

Kamailio (``deploy/kamailio/kamailio.cfg``) receives the calls, gives each to the line with the
fewest calls in progress, probes the lines with OPTIONS and fails over to the next line when one
does not answer. Media does not pass through it: each line's SDP carries its own address and RTP
port range, and RTP flows between the caller and that line.

The run folder (default ``var/cluster``) holds what a start writes and what a stop needs: each
line's configuration (YAML), log and output; Kamailio's dispatcher list, log, control socket;
and a pid file per process. Every process is started in its own process group, so a stop
sweeps whatever a process left behind; ``stop`` from another terminal finds them by their pid
files (checked against their command line before any signal is sent).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import yaml

from .config import PACKAGE_DIR, load_config, masked_database
from .errors import ConfigError, VoicebotError

KAMAILIO_CONFIG = PACKAGE_DIR.parent / "deploy" / "kamailio" / "kamailio.cfg"
DEFAULT_RUN_DIR = Path("var/cluster")
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")  # Debian puts kamailio there, often off a user's PATH
READY_MARKER = "answering SIP"  # what `voicebot serve` prints once it takes calls
DISPATCHER_SET = 1
# Settings the cluster gives each line; the same names in the environment would beat the files.
OWN_ENVIRONMENT = ("VOICEBOT_CONFIG", "VOICEBOT__DATABASE", "VOICEBOT__LOGGING__FILE", "VOICEBOT__SIP__LISTEN",
                   "VOICEBOT__SIP__RTP_PORTS", "VOICEBOT__SIP__MAX_CALLS_PER_SOURCE")


class ClusterError(VoicebotError):
    """The cluster cannot start or stop as asked (a tool missing, a port taken, a line that did not start)."""


@dataclass(frozen=True)
class Probes:
    """How Kamailio watches the lines (see deploy/kamailio/kamailio.cfg)."""

    interval: int = 2  # seconds between two OPTIONS to each line
    failures: int = 1  # failed probes before a line is out of rotation
    successes: int = 2  # probes answered 200 before it is back
    no_answer_ms: int = 2000  # a line's first reply to an INVITE or a probe, before it counts as not answering

    def defines(self) -> dict[str, str]:
        return {"PROBE_INTERVAL": str(self.interval), "PROBE_FAILURES": str(self.failures),
                "PROBE_SUCCESSES": str(self.successes), "NO_ANSWER_MS": str(self.no_answer_ms)}


@dataclass(frozen=True)
class LinePlan:
    """Where one line listens."""

    name: str
    sip_port: int
    rtp_ports: tuple[int, int]
    ops_port: int | None


@dataclass(frozen=True)
class ClusterPlan:
    """What to start. Ports left empty follow the Kamailio port: lines on sip_port+1, +2, ..."""

    run_dir: Path = DEFAULT_RUN_DIR
    instances: int = 3
    host: str = "127.0.0.1"
    sip_port: int = 5080
    line_ports: tuple[int, ...] = ()
    # line i takes rtp_base + i*rtp_span .. + rtp_span - 1; below the kernel's ephemeral ports (32768-60999),
    # which any program's sockets may hold when a call wants them
    rtp_base: int = 20000
    rtp_span: int = 1000
    ops_base: int = 9101  # line i's /healthz and /metrics on ops_base + i, when `voicebot serve` has --ops
    database: str | None = None  # a SQLite path or a postgresql:// URL, as is; default: one SQLite file in run_dir
    base_config: Path | None = None  # a voicebot YAML every line starts from
    speech: bool = True
    seed: bool = False  # load the demo customers even into an existing database
    probes: Probes = field(default_factory=Probes)
    kamailio_config: Path = KAMAILIO_CONFIG
    kamailio_shm_mb: int = 32
    kamailio_defines: tuple[tuple[str, str], ...] = ()  # more -A NAME=value

    def check(self) -> None:
        problems = []
        if not 1 <= self.instances <= 64:
            problems.append(f"--instances {self.instances}: between 1 and 64")
        if self.line_ports and len(self.line_ports) != self.instances:
            problems.append(f"{len(self.line_ports)} line ports for {self.instances} instances")
        ports = [self.sip_port, *self.line_port_numbers()]
        if any(not 0 < p < 65536 for p in ports):
            problems.append(f"SIP ports out of range: {ports}")
        elif len(set(ports)) != len(ports):
            problems.append(f"SIP ports used twice: {ports}")
        if self.rtp_span < 20 or not 1024 <= self.rtp_base or self.rtp_base + self.instances * self.rtp_span > 65536:
            problems.append(f"RTP ports {self.rtp_base}+{self.instances}x{self.rtp_span}: past 65535 or below 1024 "
                            "(each line needs at least 20)")
        if self.ops_base and not 0 < self.ops_base + self.instances <= 65536:
            problems.append(f"ops ports from {self.ops_base}: out of range")
        if self.probes.interval < 1 or self.probes.failures < 1 or self.probes.successes < 1:
            problems.append("probe interval (seconds), failures and successes are at least 1")
        if self.probes.no_answer_ms < 100:
            problems.append("the no-answer time is at least 100 ms")
        try:
            socket.inet_pton(socket.AF_INET, self.host)
        except OSError:
            problems.append(f"--host {self.host!r}: an IPv4 address (Kamailio and the lines listen on it)")
        if '"' in str(self.run_dir.resolve()):
            problems.append(f"{self.run_dir}: a run folder without double quotes in its path")
        if len(str(self.control_socket)) > 100:  # sun_path holds 108 bytes
            problems.append(f"{self.run_dir}: a shorter run folder path (Kamailio's control socket must fit 100 bytes)")
        if problems:
            raise ClusterError("; ".join(problems))

    def line_port_numbers(self) -> tuple[int, ...]:
        return self.line_ports or tuple(self.sip_port + 1 + i for i in range(self.instances))

    def lines(self, with_ops: bool) -> list[LinePlan]:
        return [LinePlan(f"line{i + 1}", port, (self.rtp_base + i * self.rtp_span, self.rtp_base + (i + 1) * self.rtp_span - 1),
                         self.ops_base + i if with_ops and self.ops_base else None)
                for i, port in enumerate(self.line_port_numbers())]

    @property
    def control_socket(self) -> Path:
        return self.run_dir.resolve() / "kamailio_ctl"

    @property
    def database_value(self) -> str:
        return self.database or str((self.run_dir / "voicebot.sqlite3").resolve())


# ---------------------------------------------------------------------- one process


@dataclass
class Instance:
    """One `voicebot serve` of the cluster."""

    plan: LinePlan
    config: Path
    log: Path  # the line's own log (logging.file)
    output: Path  # its stdout and stderr
    pid_file: Path
    sip: str  # host:port
    ops: str | None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # time.time() of the last start
    starts: int = 0
    output_offset: int = 0  # where the last start's output begins in ``output``

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def uri(self) -> str:
        """How Kamailio's dispatcher list names it."""
        return f"sip:{self.sip}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _kamailio_binary(name: str = "kamailio") -> str:
    found = shutil.which(name) or next((f"{d}/{name}" for d in SBIN if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        raise ClusterError(f"{name} is not installed (apt-get install kamailio; scripts/apt-packages.txt lists it)")
    return found


def _port_free(host: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        if kind == socket.SOCK_STREAM:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _ours(pid: int, marker: str) -> bool:
    """Whether process ``pid`` is alive and one this cluster started (its command line names the run folder)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def sip_options(host: str, port: int, timeout: float = 2.0) -> int | None:
    """Send one SIP OPTIONS to ``host:port`` over UDP; the reply's status code, or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1" if host.startswith("127.") else "0.0.0.0", 0))
        local = sock.getsockname()
        tag = secrets.token_hex(6)
        request = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{tag};rport\r\n"
                   "Max-Forwards: 70\r\n"
                   f"From: <sip:cluster@{local[0]}>;tag={tag}\r\n"
                   f"To: <sip:{host}:{port}>\r\n"
                   f"Call-ID: {tag}@voicebot-cluster\r\n"
                   "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        sock.sendto(request.encode(), (host, port))
        while time.monotonic() < deadline:
            try:
                data, _ = sock.recvfrom(65535)
            except (socket.timeout, ConnectionRefusedError):
                return None
            found = re.match(rb"SIP/2\.0 (\d{3})", data)
            if found and int(found.group(1)) >= 200:
                return int(found.group(1))
    return None


# ---------------------------------------------------------------------- the cluster


class Cluster:
    """Kamailio and N lines, started and stopped together. Not thread-safe: one owner."""

    def __init__(self, plan: ClusterPlan, python: str = sys.executable,
                 say: Callable[[str], None] | None = None) -> None:
        plan.check()
        self.plan = plan
        self.python = python
        self.say = say or (lambda text: None)
        self.run_dir = plan.run_dir.resolve()
        self.marker = str(self.run_dir)  # in every child's command line: how `stop` knows its processes
        self.instances: list[Instance] = []
        self.kamailio: subprocess.Popen[bytes] | None = None
        self.kamailio_log = self.run_dir / "kamailio.log"
        self.dispatcher_list = self.run_dir / "dispatcher.list"
        self.environment = {k: v for k, v in os.environ.items() if k not in OWN_ENVIRONMENT}
        self.environment["PYTHONUNBUFFERED"] = "1"
        self._swept: list[subprocess.Popen[bytes]] = []  # processes whose group was killed (pids get reused)

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        """Start the lines, then Kamailio in front of them; return once Kamailio answers.
        On any failure, whatever was started is stopped again and ClusterError says why."""
        kamailio = _kamailio_binary()
        self.refuse_second_run()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with_ops = self._serve_has_ops()
        self._check_ports(with_ops)
        self.instances = [self._write_line(line, with_ops) for line in self.plan.lines(with_ops)]
        self._write_dispatcher_list()
        try:
            self._prepare_database()
            for index in range(len(self.instances)):
                self.start_line(index, wait=False)
            for index in range(len(self.instances)):
                self.wait_line_ready(index)
            self._start_kamailio(kamailio)
        except BaseException:
            self.stop()
            raise

    def refuse_second_run(self) -> None:
        for pid_file in self.run_dir.glob("*.pid") if self.run_dir.exists() else []:
            pid = _read_pid(pid_file)
            if pid is not None and pid != os.getpid() and _ours(pid, self.marker):
                raise ClusterError(f"a cluster is already running from {self.run_dir} ({pid_file.stem}, pid {pid}): "
                                   f"scripts/cluster stop --run-dir {self.plan.run_dir}")

    def _serve_has_ops(self) -> bool:
        """Whether this `voicebot serve` takes --ops HOST:PORT (/healthz, /metrics): asked, not assumed."""
        done = subprocess.run([self.python, "-m", "voicebot", "serve", "--help"], capture_output=True, text=True,
                              timeout=60, env=self.environment, check=False)
        return "--ops" in done.stdout

    def _check_ports(self, with_ops: bool) -> None:
        host = self.plan.host
        taken = [f"{port}/udp" for port in (self.plan.sip_port, *self.plan.line_port_numbers())
                 if not _port_free(host, port, socket.SOCK_DGRAM)]
        taken += [f"{line.ops_port}/tcp" for line in self.plan.lines(with_ops)
                  if line.ops_port is not None and not _port_free(host, line.ops_port, socket.SOCK_STREAM)]
        if taken:
            raise ClusterError(f"port(s) {', '.join(taken)} on {host} in use (another cluster? scripts/cluster stop; "
                               "or choose others: --sip-port, --line-port, --ops-port)")

    def _write_line(self, line: LinePlan, with_ops: bool) -> Instance:
        """The line's configuration: the base file, with this line's ports, log and the shared database."""
        base: dict[str, Any] = {}
        if self.plan.base_config is not None:
            try:
                loaded = yaml.safe_load(self.plan.base_config.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ClusterError(f"--config {self.plan.base_config}: {exc}") from None
            if not isinstance(loaded, dict):
                raise ClusterError(f"--config {self.plan.base_config}: a mapping of settings is expected")
            base = loaded
        sip = dict(base.get("sip") or {})
        allow = list(sip.get("allow", ["127.0.0.0/8", "::1/128"]))
        if allow and not any(_covers(network, self.plan.host) for network in allow):
            allow.append(f"{self.plan.host}/32")  # every call comes from Kamailio's address
        max_calls = int(sip.get("max_calls", 100))
        sip.update({
            "listen": f"{self.plan.host}:{line.sip_port}",
            "rtp_ports": list(line.rtp_ports),
            "allow": allow,
            # Every call comes from Kamailio: the per-source limit would cap a line below max_calls.
            "max_calls_per_source": max_calls,
        })
        logging_settings = dict(base.get("logging") or {})
        logging_settings["file"] = str(self.run_dir / f"{line.name}.log")
        data = {**base, "database": self.plan.database_value, "logging": logging_settings, "sip": sip}
        if with_ops:
            # Its own /healthz and /metrics port, or none: the default one would be taken by the first line.
            data["ops"] = {**(base.get("ops") or {}),
                           "listen": f"{self.plan.host}:{line.ops_port}" if line.ops_port else None}
        path = self.run_dir / f"{line.name}.yaml"
        path.write_text(f"# Written by scripts/cluster for {line.name}: edit the base file (--config), not this one.\n"
                        + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        try:
            load_config(path, environ=self.environment)  # a mistake in the base file, said once and clearly
        except ConfigError as exc:
            raise ClusterError(f"{line.name}'s configuration {path}:\n  " + "\n  ".join(exc.problems)) from None
        host = self.plan.host
        return Instance(line, path, self.run_dir / f"{line.name}.log", self.run_dir / f"{line.name}.out",
                        self.run_dir / f"{line.name}.pid", f"{host}:{line.sip_port}",
                        f"{host}:{line.ops_port}" if line.ops_port else None)

    def max_calls(self, instance: Instance) -> int:
        return load_config(instance.config, environ=self.environment).sip.max_calls

    def _write_dispatcher_list(self) -> None:
        # setid uri flags priority attrs: duid names the line for call-load accounting, maxload is its
        # sip.max_calls (Kamailio sends no more to a full line).
        lines = ["# Written by scripts/cluster: the lines Kamailio dispatches to (set 1).",
                 "# setid destination flags priority attributes"]
        lines += [f"{DISPATCHER_SET} {i.uri} 0 0 duid={i.name};maxload={self.max_calls(i)}" for i in self.instances]
        self.dispatcher_list.write_text("\n".join(lines) + "\n")

    def _voicebot(self, instance: Instance, *args: str) -> list[str]:
        return [self.python, "-m", "voicebot", "--config", str(instance.config), *args]

    def _prepare_database(self) -> None:
        """Demo customers in a fresh default database (or when asked), and the prompts rendered once
        rather than by every line at its first call."""
        first = self.instances[0]
        fresh_default = self.plan.database is None and not Path(self.plan.database_value).exists()
        steps = [("prompts", self._voicebot(first, "prompts", "build", "--quiet"))]
        if fresh_default or self.plan.seed:
            steps.insert(0, ("demo customers", self._voicebot(first, "bank", "seed")))
        for what, command in steps:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=self.environment,
                                  check=False)
            if done.returncode != 0:
                raise ClusterError(f"{what}: {' '.join(command[2:])} failed:\n{(done.stderr or done.stdout).strip()}")

    def start_line(self, index: int, wait: bool = True) -> Instance:
        """Start line ``index`` (again); with ``wait``, return once it takes calls."""
        instance = self.instances[index]
        if instance.running:
            raise ClusterError(f"{instance.name} is already running (pid {instance.process and instance.process.pid})")
        command = self._voicebot(instance, "serve", "--sip", instance.sip)
        if not self.plan.speech:
            command.append("--no-speech")
        if instance.ops:
            command += ["--ops", instance.ops]
        with instance.output.open("ab") as output:
            instance.output_offset = output.tell()
            output.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            output.flush()
            instance.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=self.environment,
                                                start_new_session=True)  # its own group: swept at stop
        instance.started_at, instance.starts = time.time(), instance.starts + 1
        instance.pid_file.write_text(f"{instance.process.pid}\n")
        if wait:
            self.wait_line_ready(index)
        return instance

    def wait_line_ready(self, index: int, timeout: float = 180.0) -> None:
        instance = self.instances[index]
        process = instance.process
        assert process is not None
        deadline = time.monotonic() + timeout
        while True:
            with instance.output.open("rb") as output:
                output.seek(instance.output_offset)
                if READY_MARKER.encode() in output.read():
                    return
            if process.poll() is not None:
                raise ClusterError(f"{instance.name} stopped at start (exit {process.returncode}):\n"
                                   f"{_tail(instance.output)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{instance.name} did not start within {timeout:.0f} s:\n{_tail(instance.output)}")
            time.sleep(0.1)

    def _start_kamailio(self, binary: str) -> None:
        defines = {
            "LISTEN": f"udp:{self.plan.host}:{self.plan.sip_port}",
            "DISPATCHER_LIST": f'"{self.dispatcher_list}"',
            "CTL_SOCKET": f'"unix:{self.plan.control_socket}"',
            **self.plan.probes.defines(),
            **dict(self.plan.kamailio_defines),
        }
        command = [binary, "-DD", "-E", "-f", str(self.plan.kamailio_config.resolve()), "-Y", str(self.run_dir),
                   "-P", str(self.run_dir / "kamailio.pid"), "-w", str(self.run_dir),
                   "-m", str(self.plan.kamailio_shm_mb), "-M", "4"]
        for name, value in defines.items():
            command += ["-A", f"{name}={value}"]
        with self.kamailio_log.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            self.kamailio = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        deadline = time.monotonic() + 20
        while sip_options(self.plan.host, self.plan.sip_port, timeout=0.5) is None:
            if self.kamailio.poll() is not None:
                raise ClusterError(f"kamailio stopped at start (exit {self.kamailio.returncode}):\n"
                                   f"{_tail(self.kamailio_log)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"kamailio did not answer on {self.plan.host}:{self.plan.sip_port}:\n"
                                   f"{_tail(self.kamailio_log)}")

    # ------------------------------------------------------------------ while it runs

    def summary(self) -> str:
        rows = [f"Kamailio   sip:{self.plan.host}:{self.plan.sip_port}  (calls go here; log {self.kamailio_log})"]
        for instance in self.instances:
            ops = f"  ops http://{instance.ops}/healthz /metrics" if instance.ops else ""
            low, high = instance.plan.rtp_ports
            pid = instance.process.pid if instance.process else "-"
            rows.append(f"{instance.name:<10} {instance.uri}  rtp {low}-{high}{ops}  pid {pid}  log {instance.log}")
        rows.append(f"database   {masked_database(self.plan.database_value)}")
        return "\n".join(rows)

    def dispatcher_states(self) -> dict[str, str]:
        """Kamailio's view of each line, by URI: "AP" active and probed, "IP" inactive (out of
        rotation), "TP" failing (trying), "DX" disabled (kamcmd dispatcher.list)."""
        done = subprocess.run([_kamailio_binary("kamcmd"), "-s", f"unix:{self.plan.control_socket}", "dispatcher.list"],
                              capture_output=True, text=True, timeout=10, check=False)
        states, uri = {}, None
        for line in done.stdout.splitlines():
            found = re.match(r"\s*URI:\s*(\S+)", line)
            if found:
                uri = found.group(1)
            found = re.match(r"\s*FLAGS:\s*(\S+)", line)
            if found and uri:
                states[uri] = found.group(1)
        return states

    def wait_in_rotation(self, index: int, timeout: float = 60.0) -> None:
        """Until Kamailio sends calls to line ``index`` again (its probes answered 200)."""
        instance = self.instances[index]
        deadline = time.monotonic() + timeout
        while not self.dispatcher_states().get(instance.uri, "").startswith("A"):
            if time.monotonic() > deadline:
                raise ClusterError(f"{instance.name} is not back in rotation after {timeout:.0f} s "
                                   f"(Kamailio: {self.dispatcher_states()})")
            time.sleep(0.2)

    def drain_line(self, index: int, timeout: float | None = None) -> int:
        """SIGTERM: the line takes no new call, its calls finish, it exits. Returns its exit code."""
        instance = self.instances[index]
        if not instance.running or instance.process is None:
            return instance.process.returncode if instance.process else 0
        instance.process.send_signal(signal.SIGTERM)
        if timeout is None:
            timeout = load_config(instance.config, environ=self.environment).sip.drain_seconds + 30
        try:
            return instance.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._end_group(instance.process, 5.0)
            return instance.process.wait()

    def rolling_restart(self) -> None:
        """Each line in turn: drained (its calls finish, Kamailio sees 503 and sends it nothing new),
        started again, and back in rotation before the next one goes. No call is dropped."""
        for index, instance in enumerate(self.instances):
            self.say(f"{instance.name}: draining (SIGTERM)")
            code = self.drain_line(index)
            self.say(f"{instance.name}: exited ({code}); starting again")
            self.start_line(index)
            self.wait_in_rotation(index)
            self.say(f"{instance.name}: back in rotation")

    # ------------------------------------------------------------------ stop

    def stop(self, grace: float = 20.0) -> None:
        """The lines first (SIGINT: each ends its calls now, with a BYE that goes out through
        Kamailio, and writes their records), then Kamailio; anything left is killed."""
        running = [i.process for i in self.instances if i.running and i.process is not None]
        for process in running:
            process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        for process in running:
            self._end_group(process, max(0.1, deadline - time.monotonic()))
        for instance in self.instances:
            if instance.process is not None:
                self._end_group(instance.process, 0.0)  # a line's leftovers, if any
        if self.kamailio is not None:
            if self.kamailio.poll() is None:
                os.killpg(self.kamailio.pid, signal.SIGTERM)
            self._end_group(self.kamailio, 10.0)
        for pid_file in [self.run_dir / "kamailio.pid", *(i.pid_file for i in self.instances)]:
            pid_file.unlink(missing_ok=True)

    def _end_group(self, process: subprocess.Popen[bytes], wait: float) -> None:
        """Wait up to ``wait`` seconds for ``process``, then kill it and its process group."""
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            pass
        if not any(swept is process for swept in self._swept):
            self._swept.append(process)
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever is still in its group (or itself)
            except (ProcessLookupError, PermissionError):
                pass
        process.wait()


def _covers(network: str, host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


# ---------------------------------------------------------------------- another terminal


def stop_running(run_dir: Path, out: TextIO = sys.stdout, timeout: float = 60.0) -> int:
    """`scripts/cluster stop`: ask the supervisor to stop everything; if it is gone, stop what
    its pid files name (each checked against its command line first). Returns how many
    processes were signalled."""
    run_dir = run_dir.resolve()
    marker = str(run_dir)
    signalled = 0
    supervisor = _read_pid(run_dir / "cluster.pid")
    if supervisor is not None and _ours(supervisor, "cluster"):
        os.kill(supervisor, signal.SIGTERM)
        signalled += 1
        deadline = time.monotonic() + timeout
        while _alive(supervisor) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(supervisor):
            print(f"the cluster's supervisor (pid {supervisor}) did not stop in {timeout:.0f} s: killing it", file=out)
            os.kill(supervisor, signal.SIGKILL)
    (run_dir / "cluster.pid").unlink(missing_ok=True)
    for pid_file in sorted(run_dir.glob("*.pid")) if run_dir.exists() else []:
        pid = _read_pid(pid_file)
        if pid is not None and _ours(pid, marker):
            print(f"{pid_file.stem} (pid {pid}) was left running: stopping it", file=out)
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        break
                signalled += 1
                deadline = time.monotonic() + wait
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not _alive(pid):
                    break
        pid_file.unlink(missing_ok=True)
    return signalled


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


# ---------------------------------------------------------------------- scripts/cluster


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description="Kamailio and several `voicebot serve` on this machine (loopback by default). "
                    "Ctrl-C or SIGTERM stops everything; so does `scripts/cluster stop` from another terminal.")
    parser.add_argument("action", nargs="?", default="start", choices=["start", "stop", "status", "restart"],
                        help="start (default, in the foreground), stop, status, or restart (rolling: one line at a time)")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                        help=f"configurations, logs, pid files and the default database (default: {DEFAULT_RUN_DIR})")
    parser.add_argument("--instances", type=int, default=3, help="voicebot serve processes (default: 3)")
    parser.add_argument("--host", default="127.0.0.1", help="address Kamailio and the lines listen on (default: 127.0.0.1)")
    parser.add_argument("--sip-port", type=int, default=5080, help="Kamailio's SIP port: where calls go (default: 5080)")
    parser.add_argument("--line-port", type=int, help="the first line's SIP port; the others follow (default: sip-port + 1)")
    parser.add_argument("--rtp-port", type=int, default=20000,
                        help="the first line's RTP ports start here; each line gets --rtp-span of its own (default: 20000)")
    parser.add_argument("--rtp-span", type=int, default=1000, help="RTP ports per line (default: 1000: 500 calls)")
    parser.add_argument("--ops-port", type=int, default=9101,
                        help="the first line's /healthz and /metrics port, if `voicebot serve` has --ops (default: 9101; 0: none)")
    parser.add_argument("--database", help="shared by the lines, as is: a SQLite file or postgresql://user@host:port/db "
                                           "(default: voicebot.sqlite3 in the run folder, WAL mode)")
    parser.add_argument("--seed", action="store_true", help="load the demo customers (done anyway into a new default database)")
    parser.add_argument("--config", type=Path, help="a voicebot configuration every line starts from")
    parser.add_argument("--no-speech", action="store_true", help="keys only: no speech models loaded (light lines)")
    parser.add_argument("--probe-interval", type=int, default=2, help="seconds between Kamailio's OPTIONS probes (default: 2)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.action == "stop":
            count = stop_running(args.run_dir)
            print("cluster stopped" if count else f"no cluster running from {args.run_dir}")
            return 0
        if args.action == "status":
            return _status(args.run_dir)
        if args.action == "restart":
            supervisor = _read_pid(args.run_dir / "cluster.pid")
            if supervisor is None or not _ours(supervisor, "cluster"):
                print(f"no cluster running from {args.run_dir}", file=sys.stderr)
                return 1
            os.kill(supervisor, signal.SIGHUP)
            print(f"rolling restart asked of the cluster (pid {supervisor}); its terminal shows the progress")
            return 0
        line_ports = tuple(args.line_port + i for i in range(args.instances)) if args.line_port else ()
        plan = ClusterPlan(run_dir=args.run_dir, instances=args.instances, host=args.host, sip_port=args.sip_port,
                           line_ports=line_ports, rtp_base=args.rtp_port, rtp_span=args.rtp_span,
                           ops_base=args.ops_port, database=args.database, base_config=args.config,
                           speech=not args.no_speech, seed=args.seed, probes=Probes(interval=args.probe_interval))
        return _run_foreground(plan)
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1


def _status(run_dir: Path) -> int:
    run_dir = run_dir.resolve()
    found = False
    for pid_file in sorted(run_dir.glob("*.pid")) if run_dir.exists() else []:
        pid = _read_pid(pid_file)
        alive = pid is not None and _ours(pid, "cluster" if pid_file.stem == "cluster" else str(run_dir))
        found = found or alive
        print(f"{pid_file.stem:<10} pid {pid}  {'running' if alive else 'not running'}")
    if not found:
        print(f"no cluster running from {run_dir}")
        return 1
    socket_path = run_dir / "kamailio_ctl"
    if socket_path.exists():
        done = subprocess.run([_kamailio_binary("kamcmd"), "-s", f"unix:{socket_path}", "dispatcher.list"],
                              capture_output=True, text=True, timeout=10, check=False)
        uri = None
        for line in done.stdout.splitlines():
            if "URI:" in line:
                uri = line.split("URI:", 1)[1].strip()
            elif "FLAGS:" in line and uri:
                flags = line.split("FLAGS:", 1)[1].strip()
                meaning = {"A": "in rotation", "I": "out of rotation", "T": "failing probes", "D": "disabled"}
                print(f"kamailio: {uri}  {flags} ({meaning.get(flags[:1], '?')})")
    return 0


def _run_foreground(plan: ClusterPlan) -> int:
    cluster = Cluster(plan, say=lambda text: print(f"cluster: {text}", flush=True))
    restart_asked = False

    def stop_now(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    def restart(signum: int, frame: Any) -> None:
        nonlocal restart_asked
        restart_asked = True

    signal.signal(signal.SIGTERM, stop_now)
    signal.signal(signal.SIGINT, stop_now)
    signal.signal(signal.SIGHUP, restart)
    pid_file = cluster.run_dir / "cluster.pid"
    try:
        print(f"cluster: starting Kamailio and {plan.instances} line(s) in {cluster.run_dir}", flush=True)
        cluster.run_dir.mkdir(parents=True, exist_ok=True)
        cluster.refuse_second_run()
        pid_file.write_text(f"{os.getpid()}\n")  # from now on `scripts/cluster stop` asks this process
        cluster.start()
        print(cluster.summary(), flush=True)
        print("cluster: ready. Ctrl-C (or scripts/cluster stop) stops everything; scripts/cluster restart "
              "restarts the lines one at a time.", flush=True)
        while True:
            time.sleep(0.5)
            if restart_asked:
                restart_asked = False
                cluster.rolling_restart()
                print("cluster: rolling restart done", flush=True)
            if cluster.kamailio is None or cluster.kamailio.poll() is not None:
                print(f"cluster: kamailio stopped (exit {cluster.kamailio and cluster.kamailio.returncode}):\n"
                      f"{_tail(cluster.kamailio_log)}", file=sys.stderr, flush=True)
                return 1
            for index, instance in enumerate(cluster.instances):
                code = instance.process.poll() if instance.process else None
                if code is not None and code != 0:
                    # As systemd's Restart=on-failure would: a line that crashed (or was killed) comes back;
                    # starting it marks the calls it was holding as interrupted.
                    print(f"cluster: {instance.name} exited ({code}): starting it again", flush=True)
                    cluster.start_line(index)
    except KeyboardInterrupt:
        print("\ncluster: stopping", flush=True)
        return 0
    finally:
        cluster.stop()
        pid_file.unlink(missing_ok=True)
        print("cluster: stopped", flush=True)
