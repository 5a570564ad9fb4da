"""`voicebot serve` against real SIP peers on loopback: SIPp (keys by RFC 4733, by tones in
the audio, by SIP INFO; CANCEL; BYE mid-PIN; hold; REFER; a vanished caller; 50 at once;
refused sources) and baresip (a softphone completing a flow).

Each server is the real command in its own process, keys only (no speech model), its own
SQLite file; a test reads the call records it left with `voicebot calls --json`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import sipp
from tests.sip.flows import FLOWS

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("sipp", "espeak-ng")),
    reason="SIPp (apt-get install sip-tester) and espeak-ng are needed")

REPO = Path(__file__).resolve().parents[1]
VOICEBOT = [sys.executable, "-m", "voicebot"]


@dataclass
class Server:
    port: int
    config: Path
    process: subprocess.Popen[str]
    output: list[str]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def records(self, last: int = 200, finished: bool = True) -> list[dict[str, Any]]:
        """The SIP calls' records; ``finished``: not those still in progress."""
        done = subprocess.run([*VOICEBOT, "--config", str(self.config), "calls", "--json", "--last", str(last)],
                              capture_output=True, text=True, cwd=REPO, timeout=60)
        assert done.returncode == 0, done.stderr
        return [r for r in json.loads(done.stdout) if r.get("transport") == "sip"
                and not (finished and r["outcome"] == "in_progress")]

    def outbox(self) -> list[dict[str, Any]]:
        done = subprocess.run([*VOICEBOT, "--config", str(self.config), "outbox", "--json", "--last", "200"],
                              capture_output=True, text=True, cwd=REPO, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def wait_for_records(self, count: int, seconds: float = 20) -> list[dict[str, Any]]:
        """The records are written as each call closes, a moment after its BYE."""
        deadline = time.monotonic() + seconds
        while True:
            found = self.records()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.3)

    def log(self) -> str:
        return "".join(self.output)


def start_server(folder: Path, **sip: Any) -> Server:
    port = sipp.free_udp_port()
    settings = {"listen": f"127.0.0.1:{port}", "rtp_timeout": 4.0, "drain_seconds": 60.0,
                "rtp_ports": [21000 + port % 500 * 16, 21000 + port % 500 * 16 + 2000], **sip}
    config = folder / "voicebot.yaml"
    config.write_text(yaml.safe_dump({
        "database": str(folder / "voicebot.sqlite3"),
        "logging": {"file": str(folder / "voicebot.log"), "level": "INFO"},
        "security": {"scrypt_n": 1024},
        "agent": {"target": "sip:agents@127.0.0.1:5999", "phone_number": "950 210 191"},
        "sip": settings,
    }))
    seeded = subprocess.run([*VOICEBOT, "--config", str(config), "bank", "seed"], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    process = subprocess.Popen([*VOICEBOT, "--config", str(config), "serve", "--no-speech"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 90
    while not any("answering SIP" in line for line in output):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("voicebot serve did not start:\n" + "".join(output))
        time.sleep(0.1)
    return Server(port, config, process, output)


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="module")
def prompts_built() -> None:
    # The server renders a prompt the first time it needs it; built ahead, no call waits for it.
    subprocess.run([*VOICEBOT, "prompts", "build", "--quiet"], cwd=REPO, check=True, timeout=600)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, prompts_built: None) -> Iterator[Server]:
    sipp.skip_unless_sipp()
    running = start_server(tmp_path_factory.mktemp("sip-line"))
    yield running
    stop_server(running)


def call(server: Server, scenario: str, flow: str, tmp_path: Path, **options: Any) -> sipp.SippResult:
    return sipp.run_sipp(scenario, server.target, caller=FLOWS[flow].caller, dialed=FLOWS[flow].dialed,
                         workdir=tmp_path / "sipp", timeout=options.pop("timeout", 120), **options)


def new_records(server: Server, before: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    known = {r["call_id"] for r in before}
    deadline = time.monotonic() + 20
    while True:
        fresh = [r for r in server.records() if r["call_id"] not in known]
        if len(fresh) >= count or time.monotonic() > deadline:
            return fresh
        time.sleep(0.3)


# ---------------------------------------------------------------------- the three key sources


@pytest.mark.parametrize("scenario, flow", [
    ("uac_rfc4733_signature_unlock.xml", "signature_unlock"),
    ("uac_inband_pcmu_recover_user.xml", "recover_user"),
    ("uac_inband_pcma_signature_unlock.xml", "signature_unlock"),
    ("uac_info_operation_unlock.xml", "operation_unlock"),
], ids=["rfc4733", "inband-pcmu", "inband-pcma", "sip-info"])
def test_a_keyed_flow_completes_whatever_carries_the_keys(server: Server, tmp_path: Path, scenario: str,
                                                          flow: str) -> None:
    before = server.records()
    result = call(server, scenario, flow, tmp_path)
    assert result.ok, result.describe()
    [record] = new_records(server, before, 1)
    assert record["outcome"] == FLOWS[flow].outcome, json.dumps(record, indent=1)
    assert record["caller_id"] == FLOWS[flow].caller and record["dialed"] == FLOWS[flow].dialed
    keyed = "".join(i["value"] for i in record["inputs"] if i["mode"] == "key")
    assert FLOWS[flow].groups[0] in keyed
    for secret in ("5555", "1234", "4567"):  # card digits and PINs never in a record
        assert secret not in json.dumps(record)


def test_hold_and_resume_in_the_middle_of_a_flow(server: Server, tmp_path: Path) -> None:
    before = server.records()
    result = call(server, "uac_hold_signature_unlock.xml", "signature_unlock", tmp_path)
    assert result.ok, result.describe()
    [record] = new_records(server, before, 1)
    assert record["outcome"] == "signature_unlocked"
    assert "a=recvonly" in result.messages  # our answer to the caller's sendonly (hold)


# ---------------------------------------------------------------------- the ends of a call


def test_a_caller_hanging_up_mid_pin_changes_nothing(server: Server, tmp_path: Path) -> None:
    before, outbox_before = server.records(), server.outbox()
    result = call(server, "uac_bye_mid_pin.xml", "bye_mid_pin", tmp_path)
    assert result.ok, result.describe()
    [record] = new_records(server, before, 1)
    assert record["outcome"] == "caller_hung_up" and not record["actions"]
    assert len(server.outbox()) == len(outbox_before)


def test_a_cancel_before_the_answer_is_487(server: Server, tmp_path: Path) -> None:
    result = call(server, "uac_cancel.xml", "signature_unlock", tmp_path)
    assert result.ok, result.describe()
    assert "cancel: 487" in result.logs or "cancel: answered first" in result.logs


def test_a_caller_who_vanishes_is_hung_up_after_the_rtp_timeout(server: Server, tmp_path: Path) -> None:
    before = server.records()
    started = time.monotonic()
    result = call(server, "uac_vanish.xml", "signature_unlock", tmp_path)
    assert result.ok, result.describe()
    assert time.monotonic() - started < 60
    [record] = new_records(server, before, 1)
    assert record["outcome"] in ("caller_hung_up", "failed"), json.dumps(record)
    assert "RTP" in server.log() or "no RTP" in (Path(server.config).parent / "voicebot.log").read_text()


def test_options_ping_is_answered(server: Server, tmp_path: Path) -> None:
    result = call(server, "uac_options.xml", "signature_unlock", tmp_path)
    assert result.ok, result.describe()


# ---------------------------------------------------------------------- transfer


def test_the_agent_transfer_is_a_refer_with_the_ticket_and_no_secret(server: Server, tmp_path: Path) -> None:
    before = server.records()
    result = call(server, "uac_refer_accept_agent.xml", "agent_request", tmp_path)
    assert result.ok, result.describe()
    [record] = new_records(server, before, 1)
    assert record["outcome"] == "transferred" and record["outcome_reason"] == "caller_request"
    refer = result.messages[result.messages.index("REFER sip:"):]
    refer = refer[:refer.index("\n\n") if "\n\n" in refer else len(refer)]
    assert "Refer-To: <sip:agents@127.0.0.1:5999>" in refer
    context = next(line for line in refer.splitlines() if line.startswith("X-Voicebot-Context:"))
    assert '"reason":"caller_request"' in context and '"ticket":"handoff-' in context


def test_a_refused_transfer_leaves_the_caller_with_the_agents_number(server: Server, tmp_path: Path) -> None:
    before = server.records()
    result = call(server, "uac_refer_decline_agent.xml", "agent_request", tmp_path)
    assert result.ok, result.describe()  # the line hangs up itself after saying the number
    [record] = new_records(server, before, 1)
    assert record["outcome"] != "transferred"
    assert "transfer_failed" in (record["outcome_reason"] or "")


# ---------------------------------------------------------------------- many at once


def test_fifty_simultaneous_keyed_calls_all_complete(server: Server, tmp_path: Path) -> None:
    before = server.records()
    result = call(server, "uac_rfc4733_signature_unlock.xml", "signature_unlock", tmp_path, calls=50, limit=50,
                  rate=25, timeout=180)
    assert result.ok and result.successful == 50, result.describe()
    fresh = new_records(server, before, 50)
    assert Counter(r["outcome"] for r in fresh) == {"signature_unlocked": 50}


# ---------------------------------------------------------------------- a softphone


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip is not installed (apt-get install baresip-core)")
def test_a_softphone_completes_a_signature_unlock(server: Server, tmp_path: Path) -> None:
    before = server.records()
    flow = FLOWS["signature_unlock"]
    softphone = sipp.run_baresip_call(f"sip:{flow.dialed}@{server.target}", flow.groups, caller=flow.caller,
                                      timeout=90, folder=tmp_path / "baresip")
    assert softphone.established and softphone.ended_by_peer, softphone.output[-3000:]
    [record] = new_records(server, before, 1)
    assert record["outcome"] == "signature_unlocked", json.dumps(record)


# ---------------------------------------------------------------------- access, limits, shutdown


def test_a_source_outside_the_allow_list_gets_403(tmp_path: Path, prompts_built: None) -> None:
    sipp.skip_unless_sipp()
    line = start_server(tmp_path, allow=["192.0.2.0/24"])
    try:
        result = call(line, "uac_rejected_403.xml", "signature_unlock", tmp_path)
        assert result.ok, result.describe()
        assert "SIP/2.0 403" in result.messages and not line.records()
    finally:
        stop_server(line)


def test_a_trunk_must_authenticate_when_users_are_configured(tmp_path: Path, prompts_built: None) -> None:
    sipp.skip_unless_sipp()
    line = start_server(tmp_path, users={"trunk": "s3cret-trunk"})
    try:
        result = call(line, "uac_unauthorized.xml", "signature_unlock", tmp_path)
        assert result.ok, result.describe()
        assert 'WWW-Authenticate: Digest realm="voicebot"' in result.messages and not line.records()
        assert "s3cret-trunk" not in line.log()
    finally:
        stop_server(line)


def test_calls_past_the_limit_get_503_and_the_line_carries_on(tmp_path: Path, prompts_built: None) -> None:
    sipp.skip_unless_sipp()
    line = start_server(tmp_path, max_calls=2)
    try:
        result = call(line, "uac_rfc4733_signature_unlock.xml", "signature_unlock", tmp_path, calls=5, limit=5,
                      rate=5)
        assert result.successful == 2 and result.failed == 3, result.describe()
        assert result.messages.count("SIP/2.0 503") >= 3  # (logged again for each unacknowledged resend)
        assert Counter(r["outcome"] for r in line.wait_for_records(2)) == {"signature_unlocked": 2}
        again = call(line, "uac_options.xml", "signature_unlock", tmp_path / "again")
        assert again.ok, again.describe()
    finally:
        stop_server(line)


def test_sigterm_lets_the_call_in_progress_finish_and_takes_no_new_one(tmp_path: Path, prompts_built: None) -> None:
    sipp.skip_unless_sipp()
    line = start_server(tmp_path)
    outcome: dict[str, sipp.SippResult] = {}
    caller = threading.Thread(target=lambda: outcome.setdefault(
        "call", call(line, "uac_rfc4733_signature_unlock.xml", "signature_unlock", tmp_path / "first")))
    caller.start()
    log_file = tmp_path / "voicebot.log"
    deadline = time.monotonic() + 20
    while not (log_file.exists() and "answered" in log_file.read_text()):
        assert time.monotonic() < deadline, line.log()
        time.sleep(0.1)
    line.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    refused = call(line, "uac_options.xml", "signature_unlock", tmp_path / "while-draining")
    assert not refused.ok and "SIP/2.0 503" in refused.messages  # a balancer's probe sees it draining
    caller.join(120)
    assert outcome["call"].ok, outcome["call"].describe()
    assert line.process.wait(30) == 0
    assert [r["outcome"] for r in line.records()] == ["signature_unlocked"]


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = tmp_path / "voicebot.yaml"
        config.write_text(yaml.safe_dump({"database": str(tmp_path / "db.sqlite3"),
                                          "logging": {"file": str(tmp_path / "voicebot.log")}}))
        done = subprocess.run([*VOICEBOT, "--config", str(config), "serve", "--no-speech", "--sip",
                               f"127.0.0.1:{port}"], capture_output=True, text=True, cwd=REPO, timeout=120,
                              env={**os.environ})
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_a_trunk_with_the_right_password_is_answered_and_a_wrong_one_refused(tmp_path: Path,
                                                                            prompts_built: None) -> None:
    sipp.skip_unless_sipp()
    line = start_server(tmp_path, users={"trunk": "s3cret-trunk"})
    try:
        good = call(line, "uac_digest_auth.xml", "signature_unlock", tmp_path / "good",
                    extra_args=("-au", "trunk", "-ap", "s3cret-trunk"))
        assert good.ok and "auth: answered" in good.logs, good.describe()
        assert "Authorization: Digest" in good.messages
        bad = call(line, "uac_digest_auth.xml", "signature_unlock", tmp_path / "bad",
                   extra_args=("-au", "trunk", "-ap", "guess"))
        assert "auth: refused" in bad.logs and "SIP/2.0 403" in bad.messages, bad.describe()
        assert [r["outcome"] for r in line.wait_for_records(1)] == ["caller_hung_up"]
    finally:
        stop_server(line)


def test_a_g722_offer_gets_wideband_and_the_flow_completes(server: Server, tmp_path: Path) -> None:
    source = (sipp.SCENARIOS / "uac_rfc4733_signature_unlock.xml").read_text()
    assert "RTP/AVP 8 0 101" in source
    wideband = source.replace("RTP/AVP 8 0 101", "RTP/AVP 9 8 101").replace(
        "a=rtpmap:8 PCMA/8000", "a=rtpmap:9 G722/8000\n      a=rtpmap:8 PCMA/8000")
    scenario = tmp_path / "uac_g722.xml"
    scenario.write_text(wideband.replace('"../pcaps/', f'"{sipp.SIP_DIR}/pcaps/'))
    before = server.records()
    result = call(server, scenario, "signature_unlock", tmp_path)
    assert result.ok, result.describe()
    answer = result.messages[result.messages.index("SIP/2.0 200 OK"):]
    assert "m=audio" in answer and "RTP/AVP 9 101" in answer
    [record] = new_records(server, before, 1)
    assert record["outcome"] == "signature_unlocked"


def test_a_number_this_line_does_not_serve_gets_404(server: Server, tmp_path: Path) -> None:
    source = (sipp.SCENARIOS / "uac_rejected_403.xml").read_text()
    scenario = tmp_path / "uac_rejected_404.xml"
    scenario.write_text(source.replace('<recv response="403"/>', '<recv response="404"/>'))
    before = server.records()
    result = sipp.run_sipp(scenario, server.target, caller="+34600000001", dialed="600123123",
                           workdir=tmp_path / "sipp", timeout=60)
    assert result.ok and "SIP/2.0 404" in result.messages, result.describe()
    assert server.records() == before


def test_a_killed_line_leaves_its_calls_recorded_as_interrupted(tmp_path: Path, prompts_built: None) -> None:
    sipp.skip_unless_sipp()
    line = start_server(tmp_path)
    caller = threading.Thread(target=lambda: call(line, "uac_rfc4733_signature_unlock.xml", "signature_unlock",
                                                  tmp_path / "cut", timeout=30))
    caller.start()
    deadline = time.monotonic() + 20
    while not line.records(finished=False):
        assert time.monotonic() < deadline, line.log()
        time.sleep(0.1)
    assert [r["outcome"] for r in line.records(finished=False)] == ["in_progress"]
    line.process.send_signal(signal.SIGKILL)  # no chance to finish anything
    line.process.wait(10)
    records = line.records(finished=False)  # `voicebot calls` notices the process is gone
    assert [(r["outcome"], r["outcome_reason"]) for r in records] == [
        ("interrupted", "the line's process stopped during the call")]
    database = sqlite3.connect(tmp_path / "voicebot.sqlite3")
    try:
        assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        database.close()
    caller.join(60)


def test_a_call_keyed_in_band_is_recorded_without_its_card_and_pin_tones(tmp_path: Path, prompts_built: None,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import soundfile

    from voicebot.dtmf.detector import detect

    sipp.skip_unless_sipp()
    monkeypatch.setenv("VOICEBOT__RECORDING__FOLDER", str(tmp_path / "recordings"))  # (the server inherits it)
    line = start_server(tmp_path)
    try:
        result = call(line, "uac_inband_pcmu_recover_user.xml", "recover_user", tmp_path)
        assert result.ok, result.describe()
        [record] = line.wait_for_records(1)
    finally:
        stop_server(line)
    assert record["outcome"] == "credentials_sent"
    path = Path(record["recording"]["path"])
    assert path == tmp_path / "recordings" / f"{record['call_id']}.wav" and os.stat(path).st_mode & 0o777 == 0o600
    audio, rate = soundfile.read(str(path))
    assert audio.shape[1] == 2 and rate == 8000
    # The caller's channel: the menu keys and the DNI as they came in the audio; the card
    # digits and the PIN, keyed the same way, are not there.
    flow = FLOWS["recover_user"]
    assert "".join(k.key for k in detect(audio[:, 0], rate)) == "".join(flow.groups[:5])
    assert np.sqrt(np.mean(audio[:, 1] ** 2)) > 0.01  # the line's prompts
