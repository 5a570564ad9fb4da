"""Operations (issue 10): `voicebot serve`'s /healthz and /metrics, JSON logs with secrets
masked, the systemd unit and the example configuration.

The end-to-end test runs the real `voicebot serve --ops 127.0.0.1:0` with JSON logs and a
bank holding planted secrets, places two keyed SIPp calls at once (keys by RFC 4733, and as
tones in the audio), drains it with SIGTERM while they are up, and reads what /healthz,
/metrics and the log said. The rest are unit tests of the pieces.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_config
from voicebot.app import CallMeta, Line
from voicebot.asr.recognizer import FinalTranscript, Transcript
from voicebot.call.session import CallSession
from voicebot.config import Config, Ops, Sip, load_config
from voicebot.dialog import PlayPrompt
from voicebot.dtmf import generator
from voicebot.logs import call_context, configure_logging
from voicebot.masking import Secret
from voicebot.ops import DatabaseProbe, LineHealth, Metrics, MeteredSpeech, OpsError, OpsListener

REPO = Path(__file__).resolve().parents[1]
VOICEBOT = [sys.executable, "-m", "voicebot"]
UNIT = REPO / "deploy" / "systemd" / "voicebot@.service"
EXAMPLE = REPO / "deploy" / "voicebot.example.yaml"

# Planted in the bank of the end-to-end test, keyed by the caller, never to be seen in a log.
PIN, CARD, DNI = "8642", "9753", "24681357"


def value(text: str, name: str, **labels: str) -> float:
    """One sample of a /metrics text (0 if absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def get(url: str, method: str = "GET") -> tuple[int, str, dict[str, str]]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as reply:
            return reply.status, reply.read().decode(), dict(reply.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


# ---------------------------------------------------------------------- the Metrics object


def test_metrics_labels_are_closed_sets_whatever_they_are_given() -> None:
    metrics = Metrics()
    metrics.call_ended("credentials_sent")
    metrics.call_ended("+34600000001")  # never a label: counted as other
    metrics.input_taken("key")
    metrics.input_taken("speech")
    metrics.input_taken("4567")
    metrics.action_recorded({"action": "verify_card", "result": "error",
                             "detail": "BackendUnavailable: db.example:5432: connection refused"})
    metrics.action_recorded({"action": "send_credentials", "result": "error", "detail": "no answer in time"})
    metrics.action_recorded({"action": "verify_card", "result": "mismatch"})  # an answer, not a fault
    metrics.action_recorded({"action": "Card 9753!", "result": "error", "detail": "whatever 1234"})
    metrics.refused(503, "Service Unavailable (line full)")
    metrics.refused(403, "Forbidden")
    metrics.refused(699, "Weird 12345")
    metrics.key_latency("rfc4733", 0.02)
    metrics.key_latency("telepathy", 0.02)
    metrics.speech_latency("es", 0.7)
    metrics.speech_latency("+34 600", 0.7)
    body, content_type = metrics.exposition()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert value(text, "voicebot_calls_ended_total", outcome="credentials_sent") == 1
    assert value(text, "voicebot_calls_ended_total", outcome="other") == 1
    assert value(text, "voicebot_inputs_total", mode="dtmf") == 1
    assert value(text, "voicebot_inputs_total", mode="speech") == 1
    assert value(text, "voicebot_inputs_total", mode="other") == 1
    assert value(text, "voicebot_backend_errors_total", step="verify_card", kind="unavailable") == 1
    assert value(text, "voicebot_backend_errors_total", step="send_credentials", kind="timeout") == 1
    assert value(text, "voicebot_backend_errors_total", step="other", kind="other") == 1
    assert value(text, "voicebot_sip_refused_total", status="503", reason="max_calls") == 1
    assert value(text, "voicebot_sip_refused_total", status="403", reason="forbidden") == 1
    assert value(text, "voicebot_sip_refused_total", status="other", reason="other") == 1
    assert value(text, "voicebot_dtmf_latency_seconds_count", source="other") == 1
    assert value(text, "voicebot_asr_latency_seconds_count", language="other") == 1
    # Nothing that came from outside is in the exposition: only the closed sets.
    for outside in ("+346", "4567", "9753", "1234", "12345", "db.example", "Card", "telepathy", "Weird"):
        assert outside not in text
    # Every label value is a word of the closed sets, the histograms' le aside.
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, label in sample.labels.items():
                assert name == "le" or re.fullmatch(r"[a-z][a-z0-9_-]*|[0-9]{3}", label), (sample, name, label)


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.call_ended("transferred")
    assert value(first.exposition()[0].decode(), "voicebot_calls_ended_total", outcome="transferred") == 1
    assert value(second.exposition()[0].decode(), "voicebot_calls_ended_total", outcome="transferred") == 0
    first.track_server(lambda: 3, lambda: True)
    text = first.exposition()[0].decode()
    assert value(text, "voicebot_calls_in_progress") == 3 and value(text, "voicebot_draining") == 1
    assert "process_resident_memory_bytes" in text
    # OpenMetrics when the scraper asks for it.
    assert first.exposition("application/openmetrics-text; version=1.0.0")[1].startswith("application/openmetrics")


class SilentRenderer:
    def render(self, play: PlayPrompt, sample_rate: int) -> np.ndarray:
        return np.zeros(int(0.5 * sample_rate), dtype=np.float32)


def test_a_key_in_the_audio_and_an_rfc4733_key_are_timed_and_counted(line: Line) -> None:
    metrics = Metrics()
    session = CallSession(line, CallMeta(transport="sip", caller_id="+34600000001", dialed="950183313"),
                          SilentRenderer(), None, 8000)
    meter = metrics.meter_call(session)
    meter.start()
    tones, _ = generator.sequence("1", on=0.08, off=0.1, lead=0.3, tail=0.3, level_dbm0=-10.0,
                                  rng=np.random.default_rng(3))
    for start in range(0, len(tones) - 159, 160):
        meter.step(tones[start:start + 160])
    meter.press("1", "rfc4733")  # the same press reported again (in the audio and by RFC 4733): dropped
    for _ in range(3):
        meter.step(np.zeros(160))
    meter.press("2", "rfc4733")  # a main menu option, by RFC 4733
    for _ in range(3):
        meter.step(np.zeros(160))
    text = metrics.exposition()[0].decode()
    assert value(text, "voicebot_dtmf_latency_seconds_count", source="tone") == 1
    assert 0.0 < value(text, "voicebot_dtmf_latency_seconds_sum", source="tone") < 0.2
    assert value(text, "voicebot_dtmf_latency_seconds_count", source="rfc4733") == 1
    assert value(text, "voicebot_dtmf_latency_seconds_sum", source="rfc4733") < 0.5
    assert value(text, "voicebot_inputs_total", mode="dtmf") == 2
    record = meter.finish()
    text = metrics.exposition()[0].decode()
    assert value(text, "voicebot_calls_ended_total", outcome=record["outcome"]) == 1


class FakeRecognizer:
    """Says "uno" after two seconds of audio, ending at the first second."""

    in_utterance = False

    def __init__(self) -> None:
        self.fed = 0

    def feed(self, samples: np.ndarray) -> list[Any]:
        self.fed += len(samples)
        if self.fed == 16000:
            return [FinalTranscript(1, Transcript("uno"), 2000, 8000, 10000)]
        return []


class FakeSpeech:
    languages = ("es", "en")

    def new_recognizer(self, language: str, sample_rate: int) -> Any:
        return FakeRecognizer() if language == "es" else None


def test_asr_latency_is_the_audio_heard_since_the_end_of_speech() -> None:
    metrics = Metrics()
    speech: Any = MeteredSpeech(FakeSpeech(), metrics)  # type: ignore[arg-type]
    assert speech.languages == ("es", "en") and speech.new_recognizer("en", 8000) is None
    recognizer = speech.new_recognizer("es", 8000)
    assert recognizer.in_utterance is False
    finals = [event for _ in range(100) for event in recognizer.feed(np.zeros(160, dtype=np.int16))]
    assert [f.transcript.text for f in finals] == ["uno"]
    text = metrics.exposition()[0].decode()
    assert value(text, "voicebot_asr_latency_seconds_count", language="es") == 1
    assert 1.0 <= value(text, "voicebot_asr_latency_seconds_sum", language="es") < 1.1


# ---------------------------------------------------------------------- JSON logs


@contextmanager
def json_logging(tmp_path: Path, target: str) -> Iterator[None]:
    configure_logging(make_config(tmp_path, logging={"file": target, "format": "json", "level": "DEBUG"}))
    try:
        yield
    finally:
        configure_logging(make_config(tmp_path))  # plain text again, nothing of ours left on the root logger


def test_json_log_lines_hold_no_digit_run_by_any_field(tmp_path: Path) -> None:
    log_file = tmp_path / "voicebot.json.log"
    logger = logging.getLogger("voicebot.test_ops")
    with json_logging(tmp_path, str(log_file)):
        with call_context("qkxwhbtrmzpnjfda"):
            logger.info("PIN %s typed on card %s", PIN, CARD)
            logger.warning("extras", extra={"card": CARD, "count": 3, "pin": Secret(PIN), "late": True,
                                            "amount": 98642, "what": {"pin": PIN}})
            try:
                raise ValueError(f"bad PIN {PIN}")
            except ValueError:
                logger.exception("the check failed for %s", CARD)
            logger.info("where from", stack_info=True)
        logger.info("a call's line, said by extra", extra={"call_id": "zyxwvutsrqpnmkjh"})
        logger.info("no call")
        logging.getLogger("asyncio").warning("a library's warning about %s", PIN)
        logging.getLogger("asyncio").info("a library's chatter")
    raw = log_file.read_text()
    assert PIN not in raw and CARD not in raw
    lines = [json.loads(line) for line in raw.splitlines()]
    assert [line["message"] for line in lines] == [
        "PIN #### typed on card ####", "extras", "the check failed for ####", "where from",
        "a call's line, said by extra", "no call", "a library's warning about ####"]
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()
        assert line["time"].endswith("Z") and datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert [line.get("call_id") for line in lines] == ["qkxwhbtrmzpnjfda"] * 4 + ["zyxwvutsrqpnmkjh", None, None]
    extras = lines[1]
    assert (extras["card"], extras["count"], extras["pin"], extras["late"], extras["amount"]) == (
        "####", 3, "****", True, "#####")
    assert "ValueError: bad PIN ####" in lines[2]["exception"] and lines[2]["level"] == "ERROR"
    assert "test_ops.py" in lines[3]["stack"]
    assert lines[-1]["logger"] == "asyncio" and lines[-1]["level"] == "WARNING"


def test_a_calls_backend_work_logs_with_its_call_id(tmp_path: Path) -> None:
    from voicebot.logs import ContextThreadPoolExecutor

    log_file = tmp_path / "voicebot.json.log"
    with json_logging(tmp_path, str(log_file)), ContextThreadPoolExecutor(max_workers=1) as pool:
        with call_context("abcdefghjkmnpqrs"):
            pool.submit(logging.getLogger("voicebot.rasa_actions").warning, "verify_card failed").result()
        pool.submit(logging.getLogger("voicebot.rasa_actions").warning, "outside a call").result()
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(line["message"], line.get("call_id")) for line in lines] == [
        ("verify_card failed", "abcdefghjkmnpqrs"), ("outside a call", None)]


def test_logging_file_dash_is_standard_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with json_logging(tmp_path, "-"):
        logging.getLogger("voicebot.test_ops").info("to the journal, card %s", CARD)
    err = capsys.readouterr().err
    [line] = [json.loads(text) for text in err.splitlines() if text.startswith("{")]
    assert line["message"] == "to the journal, card ####" and line["logger"] == "voicebot.test_ops"
    assert not (tmp_path / "-").exists()


# ---------------------------------------------------------------------- configuration


def test_ops_and_logging_settings_are_validated() -> None:
    assert Config.model_validate({}).ops.listen == "127.0.0.1:9464"
    assert Config.model_validate({"ops": {"listen": "127.0.0.1:0"}}).ops.listen == "127.0.0.1:0"
    assert Config.model_validate({"ops": {"listen": "[::1]:9464"}}).ops.listen == "[::1]:9464"
    assert Config.model_validate({"ops": {"listen": None}}).ops.listen is None
    assert Config.model_validate({}).logging.format == "text"
    for bad in ({"ops": {"listen": "9464"}}, {"ops": {"listen": "127.0.0.1:70000"}}, {"ops": {"listen": ":80"}},
                {"ops": {"database_timeout": 0}}, {"logging": {"format": "xml"}}):
        with pytest.raises(ValueError):
            Config.model_validate(bad)


def test_serve_refuses_a_bad_ops_address_and_an_ops_port_taken(tmp_path: Path) -> None:
    config = tmp_path / "voicebot.yaml"
    config.write_text(yaml.safe_dump({"database": str(tmp_path / "db.sqlite3"),
                                      "logging": {"file": str(tmp_path / "voicebot.log")}}))
    bad = subprocess.run([*VOICEBOT, "--config", str(config), "serve", "--no-speech", "--ops", "9464"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and "--ops" in bad.stderr and "expected host:port" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*VOICEBOT, "--config", str(config), "serve", "--no-speech",
                               "--ops", f"127.0.0.1:{port}"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_default_ops_port_taken_is_a_warning_a_chosen_one_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    from voicebot.cli import _ops_listener

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        assert _ops_listener(listen, Metrics(), LineHealth(), required=False) is None
        assert "no /healthz or /metrics" in capsys.readouterr().out
        with pytest.raises(OpsError, match="cannot listen"):
            _ops_listener(listen, Metrics(), LineHealth(), required=True)
    assert _ops_listener(None, Metrics(), LineHealth(), required=True) is None


# ---------------------------------------------------------------------- health over HTTP


class FakeServer:
    def __init__(self) -> None:
        self.accepting = True
        self.calls = 2

    def calls_in_progress(self) -> int:
        return self.calls


def test_healthz_and_metrics_over_http(tmp_path: Path) -> None:
    from voicebot.backends.sqlite import open_database

    db = open_database(tmp_path / "db.sqlite3")
    server, health, metrics = FakeServer(), LineHealth(database_timeout=1.0), Metrics()
    listener = OpsListener("127.0.0.1:0", metrics, health).start()
    url = listener.url
    try:
        status, body, _ = get(f"{url}/healthz")
        assert (status, json.loads(body)["status"]) == (503, "starting")
        health.attach(server, db)
        health.ready = True
        status, body, headers = get(f"{url}/healthz")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"status": "ok", "calls_in_progress": 2, "draining": False, "database": "ok"}
        assert get(f"{url}/healthz", "HEAD")[:2] == (200, "")
        status, body, headers = get(f"{url}/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert "# HELP voicebot_dtmf_latency_seconds From the end of a key" in body
        for path in ("/", "/healthz/", "/metrics/x", "/favicon.ico"):
            assert get(f"{url}{path}")[0] == 404
        server.accepting = False  # SIGTERM: the drain
        status, body, _ = get(f"{url}/healthz")
        assert status == 503 and json.loads(body) == {"status": "draining", "calls_in_progress": 2,
                                                      "draining": True, "database": "ok"}
        server.accepting = True
        db.close()  # the database is gone
        status, body, _ = get(f"{url}/healthz")
        assert status == 503 and json.loads(body)["status"] == "database_unreachable"
        assert json.loads(body)["database"] == "error"
    finally:
        listener.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/healthz", timeout=2)


def test_the_listener_takes_ipv6_and_tells_systemd_when_ready(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from voicebot.ops import sd_notify

    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        listener = OpsListener("[::1]:0", Metrics(), lambda: (200, {"status": "ok"})).start()
    except OpsError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert listener.url.startswith("http://[::1]:")
        assert get(f"{listener.url}/healthz")[:2] == (200, '{"status": "ok"}\n')
    finally:
        listener.close()
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False  # not under systemd: nothing to tell
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(tmp_path / "notify"))
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        assert sd_notify("READY=1\nSTATUS=answering SIP") is True
        assert systemd.recv(100) == b"READY=1\nSTATUS=answering SIP"


class HungDatabase:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = 0

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Any]:
        self.entered += 1
        self.release.wait(10)
        yield sqlite_memory()


def sqlite_memory() -> Any:
    import sqlite3

    return sqlite3.connect(":memory:")


def test_a_hung_database_is_503_within_the_bound_with_one_probe_at_a_time() -> None:
    db = HungDatabase()
    probe = DatabaseProbe(db, timeout=0.3)
    began = time.monotonic()
    assert probe.check() == "timeout"
    assert probe.check() == "timeout"
    assert time.monotonic() - began < 2.0
    assert db.entered == 1  # the second check waited on the first probe, it did not start another
    db.release.set()
    deadline = time.monotonic() + 5
    while probe.check() != "ok":
        assert time.monotonic() < deadline
        time.sleep(0.05)


# ---------------------------------------------------------------------- the unit file, the example config


def unit_entries(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file's [Section] Key=Value entries, every value of a key repeated (Environment=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, sep, rest = line.partition("=")
        assert sep, f"not Key=Value: {line!r}"
        current.setdefault(key.strip(), []).append(rest.strip())
    return sections


def test_the_systemd_unit_runs_a_real_serve_command_and_drains(tmp_path: Path) -> None:
    from voicebot.cli import build_parser, cmd_serve

    text = UNIT.read_text()
    unit = unit_entries(text)
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # SIGTERM to the line only
    assert float(service["TimeoutStopSec"]) > Sip().drain_seconds
    assert float(service["TimeoutStopSec"]) > load_config(EXAMPLE, environ={}).sip.drain_seconds
    assert service["User"] == "voicebot" and service["Type"] == "notify"
    assert (service["NoNewPrivileges"], service["ProtectSystem"], service["PrivateTmp"]) == ("yes", "strict", "yes")
    assert service["ReadWritePaths"] == "/var/lib/voicebot" and service["StateDirectory"] == "voicebot"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    # ExecStart as systemd would run voicebot@5061: %i, then the environment.
    environment = dict(item.split("=", 1) for item in unit["Service"]["Environment"])
    environment = {k: v.replace("%i", "5061") for k, v in environment.items()}
    command = re.sub(r"\$\{(\w+)\}", lambda m: environment[m.group(1)], service["ExecStart"].replace("%i", "5061"))
    argv = shlex.split(command)
    assert argv[0] == "/opt/voicebot/.venv/bin/voicebot"
    args = build_parser().parse_args(argv[1:])
    assert args.handler is cmd_serve and args.config == "/etc/voicebot/voicebot.yaml"
    assert (args.sip, args.ops) == ("127.0.0.1:5061", "127.0.0.1:15061")
    Sip(listen=args.sip)
    Ops(listen=args.ops)
    # systemd's own check, where systemd is: the unit as installed, the real voicebot in place of /opt's.
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed: checked the keys and the command only")
    voicebot = Path(sys.executable).parent / "voicebot"
    assert voicebot.exists()
    (tmp_path / UNIT.name).write_text(text.replace("/opt/voicebot/.venv/bin/voicebot", str(voicebot)))
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "voicebot@5061.service")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr + done.stdout


def test_the_example_config_loads_and_checks() -> None:
    config = load_config(EXAMPLE, environ={})
    assert str(config.database) == "postgresql://voicebot@db.example/voicebot"
    assert (config.logging.file, config.logging.format) == (Path("-"), "json")
    assert config.ops.listen == "127.0.0.1:9464" and config.sip.listen == "10.0.0.11:5060"
    assert config.sip.max_calls_per_source == config.sip.max_calls  # behind Kamailio: one source
    done = subprocess.run([*VOICEBOT, "config", "check", str(EXAMPLE)], capture_output=True, text=True, cwd=REPO,
                          timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout and "postgresql://voicebot@db.example/voicebot" in done.stdout


# ---------------------------------------------------------------------- the real thing


@pytest.fixture(scope="module")
def prompts_built() -> None:
    subprocess.run([*VOICEBOT, "prompts", "build", "--quiet"], cwd=REPO, check=True, timeout=600)


def free_udp_blocks(count: int, size: int) -> list[int]:
    """``count`` first ports of ``size`` consecutive UDP ports free on 127.0.0.1 now, apart."""
    import random

    found: list[int] = []
    while len(found) < count:
        first = random.randrange(40000, 60000, size)
        sockets = []
        try:
            for offset in range(size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", first + offset))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        if all(abs(first - other) >= size for other in found):
            found.append(first)
    return found


def planted_bank(path: Path) -> None:
    """The demo customers (the in-band pcaps key Ana's digits) and one with planted secrets."""
    from voicebot.backends.seed import DEMO_SEED

    seed = yaml.safe_load(Path(DEMO_SEED).read_text())
    seed["customers"].append({
        "id": "T001", "name": "Prueba Secretos", "document": {"type": "dni", "number": f"{DNI}B"},
        "language": "es", "email": "prueba@example.com", "mobile": "+34611111111", "phones": ["+34611111111"],
        "cards": [{"last4": CARD, "pin": PIN}], "users": {"ebanking": "psecretos", "phone": "psecretos.tel"},
    })
    path.write_text(yaml.safe_dump(seed, allow_unicode=True))


def test_serve_reports_health_and_metrics_drains_and_logs_json_without_secrets(
        tmp_path: Path, prompts_built: None) -> None:
    from tests import sipp

    sipp.skip_unless_sipp()
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is needed (apt-get install espeak-ng)")
    port = sipp.free_udp_port()
    log_file = tmp_path / "voicebot.log"
    config = tmp_path / "voicebot.yaml"
    config.write_text(yaml.safe_dump({
        "database": str(tmp_path / "voicebot.sqlite3"),
        "logging": {"file": str(log_file), "format": "json", "level": "DEBUG"},
        "security": {"scrypt_n": 1024},
        "sip": {"listen": f"127.0.0.1:{port}", "rtp_timeout": 4.0, "drain_seconds": 60.0,
                "rtp_ports": [21000 + port % 500 * 16, 21000 + port % 500 * 16 + 2000]},
    }))
    planted_bank(tmp_path / "seed.yaml")
    seeded = subprocess.run([*VOICEBOT, "--config", str(config), "bank", "seed", str(tmp_path / "seed.yaml")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    process = subprocess.Popen([*VOICEBOT, "--config", str(config), "serve", "--no-speech", "--ops", "127.0.0.1:0"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True).start()
    try:
        deadline = time.monotonic() + 90
        while not any("/healthz" in line for line in output):
            assert process.poll() is None and time.monotonic() < deadline, "".join(output)
            time.sleep(0.1)
        found = re.search(r"health on (http://127\.0\.0\.1:\d+)/healthz, metrics on \1/metrics", "".join(output))
        assert found, "".join(output)
        ops = found.group(1)
        status, body, _ = get(f"{ops}/healthz")
        assert status == 200, body
        assert json.loads(body) == {"status": "ok", "calls_in_progress": 0, "draining": False, "database": "ok"}

        # Two keyed calls at once: the planted customer by RFC 4733, Ana's recovery as tones.
        planted = sipp.write_scenario(tmp_path, "rfc4733", groups=("1", "1", "1", "1", DNI, CARD, PIN))
        results: dict[str, sipp.SippResult] = {}
        calls = [
            ("rfc4733", planted, "+34611111111"),
            ("tones", "uac_inband_pcmu_recover_user.xml", "+34600000001"),
        ]

        def place(name: str, scenario: Any, caller: str) -> None:
            # SIPp binds its media port and the next three (audio and video RTP, RTCP): two of
            # them at once must not pick overlapping ones. The Call-ID is ours (SIPp's holds its pid).
            results[name] = sipp.run_sipp(scenario, f"127.0.0.1:{port}", caller=caller, workdir=tmp_path / name,
                                          timeout=90, media_port=media_ports[name],
                                          extra_args=("-cid_str", f"ops-{name}-%u"))

        media_ports = dict(zip([name for name, _, _ in calls], free_udp_blocks(2, 4), strict=True))

        callers = [threading.Thread(target=place, args=call) for call in calls]
        for caller in callers:
            caller.start()
        deadline = time.monotonic() + 20
        while value(get(f"{ops}/metrics")[1], "voicebot_calls_in_progress") < 2:
            assert time.monotonic() < deadline and process.poll() is None, "".join(output)
            time.sleep(0.2)
        status, body, _ = get(f"{ops}/healthz")
        assert status == 200 and json.loads(body)["calls_in_progress"] == 2

        # SIGTERM while both are up: out of rotation at once, the calls go on.
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while (status := get(f"{ops}/healthz")[0]) == 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status, body, _ = get(f"{ops}/healthz")
        assert status == 503 and json.loads(body)["status"] == "draining" and json.loads(body)["draining"] is True
        assert json.loads(body)["calls_in_progress"] >= 1

        # Scrape until the process is gone: the last scrape saw at least one call end.
        last = ""
        while process.poll() is None:
            try:
                last = get(f"{ops}/metrics")[1]
            except (urllib.error.URLError, ConnectionError):
                break
            time.sleep(0.1)
        assert process.wait(60) == 0, "".join(output)
        for caller in callers:
            caller.join(60)
        for name, result in results.items():
            # A scenario that waits for the line's BYE in one-second turns sometimes gets it between
            # two turns, and SIPp then calls it "unexpected": the call is over all the same (its
            # record says how it ended, below).
            assert result.ok or "unexpected BYE" in result.errors, f"{name}: {result.describe()}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert value(last, "voicebot_draining") == 1
    assert value(last, "voicebot_calls_ended_total", outcome="credentials_sent") >= 1
    assert value(last, "voicebot_inputs_total", mode="dtmf") >= 7  # one whole recovery's entries, at least
    assert value(last, "voicebot_dtmf_latency_seconds_count", source="rfc4733") >= 20  # every key of its call
    assert value(last, "voicebot_dtmf_latency_seconds_count", source="tone") >= 20
    tone_mean = (value(last, "voicebot_dtmf_latency_seconds_sum", source="tone")
                 / value(last, "voicebot_dtmf_latency_seconds_count", source="tone"))
    assert 0.0 < tone_mean < 0.2
    assert value(last, "voicebot_backend_errors_total") == 0

    # The calls' records: both recoveries done.
    done = subprocess.run([*VOICEBOT, "--config", str(config), "calls", "--json"], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert sorted(r["outcome"] for r in json.loads(done.stdout)) == ["credentials_sent", "credentials_sent"]

    # The log: JSON on every line, a call id on the calls' lines, no planted secret anywhere.
    raw = log_file.read_text()
    lines = [json.loads(line) for line in raw.splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert PIN not in raw and CARD not in raw
    ids = {r["call_id"] for r in json.loads(done.stdout)}
    for said in ("answered", "ended"):
        assert {line.get("call_id") for line in lines if f" {said}" in line["message"]} == ids, said
    assert any("draining 2 call(s)" in line["message"] for line in lines)


def test_a_restarted_serve_counts_the_calls_its_killed_predecessor_left(tmp_path: Path, prompts_built: None) -> None:
    """A line killed mid-call leaves its calls in progress; the instance started in its place
    (systemd's Restart=on-failure) records them interrupted and counts them in /metrics."""
    from tests import sipp
    from voicebot.backends.sqlite import SqliteCallLog, open_database

    dead_pid = subprocess.Popen(["true"])  # a process id that is no longer running
    dead_pid.wait()
    config = tmp_path / "voicebot.yaml"
    config.write_text(yaml.safe_dump({
        "database": str(tmp_path / "voicebot.sqlite3"), "logging": {"file": str(tmp_path / "voicebot.log")},
        "sip": {"listen": f"127.0.0.1:{sipp.free_udp_port()}"},
    }))
    with open_database(tmp_path / "voicebot.sqlite3") as db:
        for call_id in ("cutoffcallaaaaaa", "cutoffcallbbbbbb"):
            SqliteCallLog(db).save({"call_id": call_id, "outcome": "in_progress",
                                    "process": {"host": socket.gethostname(), "pid": dead_pid.pid}})
    process = subprocess.Popen([*VOICEBOT, "--config", str(config), "serve", "--no-speech", "--ops", "127.0.0.1:0"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True).start()
    try:
        deadline = time.monotonic() + 90
        while not (found := re.search(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", "".join(output))):
            assert process.poll() is None and time.monotonic() < deadline, "".join(output)
            time.sleep(0.1)
        metrics = get(f"{found.group(1)}/metrics")[1]
        assert value(metrics, "voicebot_calls_ended_total", outcome="interrupted") == 2
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    with open_database(tmp_path / "voicebot.sqlite3") as db:
        assert {r["outcome"] for r in SqliteCallLog(db).recent()} == {"interrupted"}
