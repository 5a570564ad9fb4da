"""Kamailio and several real `voicebot serve` on loopback, for tests/test_cluster.py and bench/cluster.py.

    cluster = start_cluster(tmp_path, instances=3)          # free ports, 1 s probes, keys only
    result = place_calls(cluster, tmp_path / "calls", calls=60, at_once=30)
    assert result.ok and spread(cluster, result) == {...}
    cluster.stop()

Everything here is the real thing: the cluster of voicebot/cluster.py (what `scripts/cluster`
runs), SIPp callers (tests/sipp.py) that follow the Record-Route of the answer, as a phone
does, so their ACK, BYE and INFO go through Kamailio; Kamailio's log says where each call went
and when a line left or rejoined the rotation.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import sipp
from tests.sip.flows import FLOWS
from tests.sip.make_scenarios import BYE_TIMEOUT_MS, scenario
from voicebot.cluster import SBIN, Cluster, ClusterPlan, Probes

REPO = Path(__file__).resolve().parents[1]
FLOW = FLOWS["signature_unlock"]  # a whole keyed flow (about 20 s), repeatable on one card at once
# Quick probes for the tests: a line that dies is out within PROBE.interval + no_answer_ms/1000 s.
PROBES = Probes(interval=1, failures=1, successes=1, no_answer_ms=2000)


def kamailio_missing() -> str | None:
    """Why the cluster cannot run here, or None."""
    if not (shutil.which("kamailio") or any(Path(d, "kamailio").exists() for d in SBIN)):
        return "kamailio is not installed (apt-get install kamailio)"
    if shutil.which("sipp") is None:
        return "SIPp is not installed (apt-get install sip-tester)"
    return None


def skip_unless_cluster() -> None:
    reason = kamailio_missing()
    if reason:
        pytest.skip(reason)
    sipp.skip_unless_sipp()


def _free_ports(count: int) -> list[int]:
    """``count`` different UDP ports free on 127.0.0.1 now (held open together, so no two are the same)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_cluster(folder: Path, instances: int = 3, probes: Probes = PROBES, rtp_block: int = 0,
                  rtp_span: int = 300, max_calls: int = 100, scrypt_n: int = 1024, **plan: Any) -> Cluster:
    """Kamailio and ``instances`` keys-only lines on free loopback ports, sharing one SQLite file.

    RTP: each line has ``rtp_span`` ports above the kernel's ephemeral range (61000-64999), from
    61000 + 1000 x ``rtp_block``, so SIPp's and the other suites' ports never collide with them.
    scrypt_n: the PIN hashes' cost (cheap by default: the tests are not about it).
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / "base.yaml"
    base.write_text(yaml.safe_dump({
        "security": {"scrypt_n": scrypt_n},
        "logging": {"level": "INFO"},
        # the callers send no audio after their keys (routed_scenario): longer than the closing prompts
        "sip": {"rtp_timeout": 60.0, "drain_seconds": 90.0, "max_calls": max_calls},
    }))
    kamailio_port, *line_ports = _free_ports(instances + 1)
    cluster = Cluster(ClusterPlan(run_dir=folder / "run", instances=instances, sip_port=kamailio_port,
                                  line_ports=tuple(line_ports), rtp_base=61000 + 1000 * rtp_block, rtp_span=rtp_span,
                                  ops_base=0, base_config=base, speech=False, probes=probes, **plan))
    cluster.start()
    return cluster


def routed_scenario(folder: Path, kind: str = "rfc4733", groups: tuple[str, ...] = FLOW.groups) -> Path:
    """A scenario of tests/sip/make_scenarios.py (default: the RFC 4733 keyed flow, waiting for
    the line's BYE; "bye_mid_flow": the caller hangs up after ``groups``) that follows the route
    set: the answer's Record-Route is kept (rrs) and every request of ours in the dialog carries
    it as Route ([routes]), as a phone that honours RFC 3261 does."""
    name = f"uac_{kind}_routed"
    xml = scenario(kind, groups, name=name, silence_dir=str(sipp.SIP_DIR / "pcaps"))
    answered = '<recv response="200" rtd="true">'
    assert answered in xml
    xml = xml.replace(answered, '<recv response="200" rtd="true" rrs="true">')
    # in_dialog() requests are the ones naming the line's tag: add the Route after Max-Forwards
    xml, count = re.subn(r"(\[peer_tag_param\]\n(?:.*\n)*?\s*Max-Forwards: 70\n)",
                         lambda m: m.group(1) + "      [routes]\n", xml)
    assert count >= 1
    # While the line says its last prompts, the caller sends no audio (a phone with silence
    # suppression) and simply waits for the BYE: SIPp's replay loop (wait, play 1 s of silence,
    # wait again) calls a BYE that lands between its two steps "unexpected" and fails a call the
    # line completed (seen about once in 300 calls under load). The lines' RTP time-out is set
    # longer than their closing prompts (start_cluster).
    xml, count = re.subn(r'  <recv request="BYE" timeout="\d+" ontimeout="idle_bye" next="got_bye"/>\n'
                         r'(?:.*\n)*?  <label id="got_bye"/>\n',
                         f'  <recv request="BYE" timeout="{BYE_TIMEOUT_MS}"/>\n', xml)
    assert count == (1 if kind == "rfc4733" else 0)
    path = folder / f"{name}.xml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(xml)
    return path


def place_calls(cluster: Cluster, folder: Path, calls: int, at_once: int | None = None, rate: int | None = None,
                timeout: float = 150, kind: str = "rfc4733", groups: tuple[str, ...] = FLOW.groups) -> sipp.SippResult:
    """SIPp calls through Kamailio (default: each the whole signature unlock); returns when they have ended."""
    return sipp.run_sipp(routed_scenario(folder, kind, groups), f"{cluster.plan.host}:{cluster.plan.sip_port}",
                         caller=FLOW.caller,
                         dialed=FLOW.dialed, calls=calls, limit=at_once or calls, rate=rate, timeout=timeout,
                         workdir=folder / "sipp")


# ---------------------------------------------------------------------- what happened


def answered_by(result: sipp.SippResult) -> dict[str, int]:
    """SIP Call-ID -> the SIP port of the line whose 200 OK answered the INVITE (its Contact)."""
    found: dict[str, int] = {}
    for message in result.messages.split("\n\n"):
        if not message.lstrip().startswith("SIP/2.0 200") or not re.search(r"^CSeq:\s*1 INVITE", message, re.M):
            continue
        call_id = re.search(r"^Call-ID:\s*(\S+)", message, re.M | re.I)
        contact = re.search(r"^Contact:\s*<sip:[^>]*:(\d+)[;>]", message, re.M | re.I)
        if call_id and contact:
            found[call_id.group(1)] = int(contact.group(1))
    return found


def caller_call_lengths(result: sipp.SippResult) -> dict[str, float]:
    """SIP Call-ID -> seconds from the caller's INVITE to the line's BYE, as SIPp saw them."""
    invited: dict[str, float] = {}
    ended: dict[str, float] = {}
    for block in result.messages.split("----------------------------------------------- ")[1:]:
        stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)\nUDP message (sent|received)", block)
        call_id = re.search(r"^Call-ID:\s*(\S+)", block, re.M | re.I)
        if not stamp or not call_id:
            continue
        at = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S")) + float(stamp.group(2))
        if stamp.group(3) == "sent" and re.search(r"^INVITE ", block, re.M):
            invited.setdefault(call_id.group(1), at)
        elif stamp.group(3) == "received" and re.search(r"^BYE ", block, re.M):
            ended.setdefault(call_id.group(1), at)
    return {c: ended[c] - invited[c] for c in ended if c in invited}


def routed_through_kamailio(result: sipp.SippResult, port: int) -> bool:
    """Every ACK the callers sent carried Kamailio's Route (the dialog follows the record-route)."""
    acks = [m for m in result.messages.split("\n\n") if m.lstrip().startswith("ACK ")]
    return bool(acks) and all(f"Route: <sip:127.0.0.1:{port};lr>" in m for m in acks)


@dataclass(frozen=True)
class Dispatch:
    at: float  # Kamailio's clock (time.time() scale)
    call_id: str
    line: str  # sip:host:port


@dataclass(frozen=True)
class Rotation:
    at: float
    line: str
    up: bool


def kamailio_events(cluster: Cluster) -> tuple[list[Dispatch], list[Rotation], list[Dispatch]]:
    """From Kamailio's log: every INVITE sent to a line; every line leaving or rejoining the
    rotation; every INVITE a line did not take (no answer in time, or 5xx)."""
    text = cluster.kamailio_log.read_text(errors="replace")
    sent = [Dispatch(float(at), call_id, line)
            for call_id, line, at in re.findall(r"call (\S+) to (sip:\S+) at ([\d.]+)", text)]
    rotation = [Rotation(float(at), line, what == "up")
                for what, line, at in re.findall(r"instance (up|down): (sip:\S+) at ([\d.]+)", text)]
    refused = [Dispatch(float(at), call_id, line)
               for call_id, line, at in re.findall(r"call (\S+) not taken by (sip:\S+) \(\d+\) at ([\d.]+)", text)]
    return sent, rotation, refused


def call_records(cluster: Cluster) -> list[dict[str, Any]]:
    """Every call record of the shared database, as `voicebot calls --json` gives them."""
    config = cluster.instances[0].config
    done = subprocess.run([sys.executable, "-m", "voicebot", "--config", str(config), "calls", "--json", "--last",
                           "1000"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    return [r for r in json.loads(done.stdout) if r.get("transport") == "sip"]


def stored_calls(cluster: Cluster) -> list[dict[str, Any]]:
    """The `calls` table as it stands, read without `voicebot calls` (which would itself mark the
    calls of dead processes interrupted): what the lines themselves wrote."""
    database = sqlite3.connect(f"file:{cluster.plan.database_value}?mode=ro", uri=True, timeout=30)
    try:
        return [json.loads(row[0]) for row in database.execute("SELECT record FROM calls")]
    finally:
        database.close()


def wait_until(condition: Any, timeout: float, what: str, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(step)
