"""Kamailio (deploy/kamailio/kamailio.cfg) in front of three real `voicebot serve` on loopback,
called by SIPp: calls spread over the lines, a line killed or drained in the middle of a run,
a call sent to a line that has just died, and `scripts/cluster` itself.

Every cluster is the one `scripts/cluster` runs (voicebot/cluster.py): free ports, one shared
SQLite file, keys only, Kamailio probing each line every second (tests/cluster.py). The callers
follow the Record-Route of the answer, so their ACK and BYE go through Kamailio too.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import sipp
from tests.cluster import (
    PROBES,
    _free_ports,
    answered_by,
    call_records,
    kamailio_events,
    kamailio_missing,
    place_calls,
    routed_through_kamailio,
    skip_unless_cluster,
    start_cluster,
    stored_calls,
    wait_until,
)
from voicebot.cluster import Cluster

pytestmark = pytest.mark.skipif(kamailio_missing() is not None, reason=str(kamailio_missing()))

REPO = Path(__file__).resolve().parents[1]
SCRIPT = [sys.executable, str(REPO / "scripts" / "cluster")]
# A line that dies is out of rotation after at most one probe interval plus the probe's own time-out.
OUT_OF_ROTATION = PROBES.interval + PROBES.no_answer_ms / 1000
# Calls the caller ends: four menu keys then a BYE (about 6 s), or one key (about 3 s).
SHORT: dict[str, Any] = {"kind": "bye_mid_flow", "groups": ("1", "3", "1", "2")}
SHORTEST: dict[str, Any] = {"kind": "bye_mid_flow", "groups": ("1",)}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    skip_unless_cluster()
    subprocess.run([sys.executable, "-m", "voicebot", "prompts", "build", "--quiet"], cwd=REPO, check=True, timeout=600)
    running = start_cluster(tmp_path / "cluster")
    try:
        yield running
    finally:
        running.stop()


def in_progress(cluster: Cluster, pid: int | None = None) -> list[dict[str, Any]]:
    return [r for r in stored_calls(cluster) if r["outcome"] == "in_progress"
            and (pid is None or (r.get("process") or {}).get("pid") == pid)]


def finished(cluster: Cluster, count: int) -> list[dict[str, Any]]:
    """The finished call records, once there are ``count`` (each is written a moment after its BYE)."""
    def enough() -> list[dict[str, Any]] | None:
        found = [r for r in call_records(cluster) if r["outcome"] != "in_progress"]
        return found if len(found) >= count else None

    records: list[dict[str, Any]] = wait_until(enough, 30, f"{count} finished call records", step=0.5)
    return records


def in_thread(target: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, sipp.SippResult]]:
    out: dict[str, sipp.SippResult] = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", target(*args, **kwargs)), daemon=True)
    thread.start()
    return thread, out


# ---------------------------------------------------------------------- spreading


def test_sixty_calls_thirty_at_a_time_all_complete_spread_over_every_line(cluster: Cluster, tmp_path: Path) -> None:
    result = place_calls(cluster, tmp_path / "calls", calls=60, at_once=30, timeout=240)
    assert result.ok and result.successful == 60, result.describe()
    assert routed_through_kamailio(result, cluster.plan.sip_port), "an ACK bypassed Kamailio"

    answered = answered_by(result)
    assert len(answered) == 60
    per_line = Counter(answered.values())
    assert set(per_line) == {i.plan.sip_port for i in cluster.instances}, per_line
    assert min(per_line.values()) >= 10, per_line  # by call load: about 20 each

    sent, rotation, refused = kamailio_events(cluster)
    assert {d.call_id for d in sent} >= set(answered) and not refused and not rotation
    for instance in cluster.instances:  # each line's own log names the calls it answered, and only those
        named = set(re.findall(r"[\w.-]+@[\w.-]+", instance.log.read_text(errors="replace")))
        mine = {call_id for call_id, port in answered.items() if port == instance.plan.sip_port}
        assert named & set(answered) == mine, instance.name
    assert Counter(r["outcome"] for r in finished(cluster, 60)) == {"signature_unlocked": 60}


# ---------------------------------------------------------------------- a line dies


def test_a_killed_line_loses_its_calls_and_new_calls_go_to_the_others(cluster: Cluster, tmp_path: Path) -> None:
    victim, survivors = cluster.instances[1], [cluster.instances[0], cluster.instances[2]]
    assert victim.process is not None
    # Short calls (about 6 s: four keys, then the caller hangs up). The cut ones never get an
    # answer to their BYE: SIPp gives up on them at its time-out, the others are long done.
    thread, first = in_thread(place_calls, cluster, tmp_path / "first", calls=12, timeout=20, **SHORT)
    wait_until(lambda: len(in_progress(cluster)) == 12, 30, "12 calls answered")
    held = {r["call_id"] for r in in_progress(cluster, victim.process.pid)}
    assert held, "the victim holds no call"

    victim.process.send_signal(signal.SIGKILL)
    killed_at = time.time()
    victim.process.wait(10)
    time.sleep(OUT_OF_ROTATION + 1.0)
    after = place_calls(cluster, tmp_path / "after", calls=6, timeout=60, **SHORT)
    assert after.ok and after.successful == 6, after.describe()

    sent, rotation, refused = kamailio_events(cluster)
    placed_after = set(answered_by(after))
    assert set(answered_by(after).values()) == {s.plan.sip_port for s in survivors}
    assert not [d for d in sent if d.call_id in placed_after and d.line == victim.uri], "a new call was tried on the dead line"
    down = [r for r in rotation if r.line == victim.uri and not r.up and r.at >= killed_at]
    assert down and down[0].at < min(d.at for d in sent if d.call_id in placed_after)

    thread.join(60)
    result = first["result"]
    on_victim = {c for c, port in answered_by(result).items() if port == victim.plan.sip_port}
    assert len(on_victim) == len(held)
    assert result.successful == 12 - len(held), result.describe()  # the cut calls are lost, no other

    # Nobody has looked yet: the cut calls still read in progress ...
    assert {r["call_id"] for r in in_progress(cluster)} == held
    cluster.start_line(1)  # ... until the line starts again (systemd's Restart=on-failure)
    records = {r["call_id"]: r for r in stored_calls(cluster)}
    assert {(records[c]["outcome"], records[c]["outcome_reason"]) for c in held} == {
        ("interrupted", "the line's process stopped during the call")}
    others = Counter(r["outcome"] for r in finished(cluster, 12 + 6) if r["call_id"] not in held)
    assert others == {"caller_hung_up": 12 - len(held) + 6}
    cluster.wait_in_rotation(1)


def test_a_call_sent_to_a_line_that_just_died_is_answered_by_the_next(cluster: Cluster, tmp_path: Path) -> None:
    # With no call anywhere, call load picks the first line; it dies just before three calls come.
    dead = cluster.instances[0]
    assert dead.process is not None
    dead.process.send_signal(signal.SIGKILL)
    dead.process.wait(10)
    result = place_calls(cluster, tmp_path / "calls", calls=3, timeout=60, **SHORTEST)
    assert result.ok and result.successful == 3, result.describe()  # no caller heard the failure

    sent, rotation, refused = kamailio_events(cluster)
    assert [(r.line, r.call_id in answered_by(result)) for r in refused] == [(dead.uri, True)]
    retried = refused[0].call_id
    assert [d.line for d in sent if d.call_id == retried][0] == dead.uri
    assert answered_by(result)[retried] != dead.plan.sip_port
    assert [r.line for r in rotation if not r.up] == [dead.uri]
    assert Counter(r["outcome"] for r in finished(cluster, 3)) == {"caller_hung_up": 3}


# ---------------------------------------------------------------------- a line is drained


def test_a_drained_line_finishes_its_calls_takes_no_new_one_and_exits(cluster: Cluster, tmp_path: Path) -> None:
    target = cluster.instances[1]
    assert target.process is not None
    thread, first = in_thread(place_calls, cluster, tmp_path / "first", calls=12, timeout=120)
    wait_until(lambda: len(in_progress(cluster)) == 12, 30, "12 calls answered")
    held = {r["call_id"] for r in in_progress(cluster, target.process.pid)}
    assert held, "the line to drain holds no call"

    target.process.send_signal(signal.SIGTERM)
    drained_at = time.time()
    # New calls keep coming while it drains, two a second.
    second_thread, second = in_thread(place_calls, cluster, tmp_path / "second", calls=6, rate=2, timeout=120)
    time.sleep(1.0)
    assert target.process.poll() is None, "it left before its calls ended"
    assert target.process.wait(90) == 0
    exited_at = time.time()
    thread.join(120)
    second_thread.join(120)

    for result, calls in ((first["result"], 12), (second["result"], 6)):
        assert result.ok and result.successful == calls, result.describe()
    records = {r["call_id"]: r for r in finished(cluster, 18)}
    assert Counter(r["outcome"] for r in records.values()) == {"signature_unlocked": 18}  # no call dropped
    assert all(records[c]["outcome"] == "signature_unlocked" for c in held)

    sent, rotation, refused = kamailio_events(cluster)
    down = [r.at for r in rotation if r.line == target.uri and not r.up and r.at >= drained_at]
    assert down and down[0] < exited_at
    # After SIGTERM, an INVITE that still reached it (before a probe saw its 503) was refused and
    # retried on another line; after the probe, none reached it.
    after_term = [d for d in sent if d.line == target.uri and d.at >= drained_at]
    assert {d.call_id for d in after_term} <= {r.call_id for r in refused if r.line == target.uri}
    assert not [d for d in after_term if d.at > down[0]]
    assert target.plan.sip_port not in answered_by(second["result"]).values()


def test_a_rolling_restart_drops_no_call(cluster: Cluster, tmp_path: Path) -> None:
    first_pids = [i.process.pid for i in cluster.instances if i.process is not None]
    # Three calls a second, for longer than the restart takes.
    thread, calls = in_thread(place_calls, cluster, tmp_path / "calls", calls=75, at_once=20, rate=3, timeout=120,
                              **SHORTEST)
    time.sleep(2.0)
    cluster.rolling_restart()
    assert all(i.running and i.starts == 2 and i.process.pid not in first_pids
               for i in cluster.instances if i.process is not None)
    thread.join(150)
    result = calls["result"]
    assert result.ok and result.successful == 75, result.describe()

    sent, rotation, refused = kamailio_events(cluster)
    assert [(r.line, r.up) for r in rotation] == [(i.uri, up) for i in cluster.instances for up in (False, True)]
    restarted_at = {r.line: r.at for r in rotation if r.up}
    assert all(any(d.line == line and d.at > at for d in sent) for line, at in restarted_at.items() if
               at < max(d.at for d in sent)), "a restarted line took no call again"
    assert Counter(r["outcome"] for r in finished(cluster, 75)) == {"caller_hung_up": 75}


# ---------------------------------------------------------------------- scripts/cluster


def _consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive UDP ports free on 127.0.0.1."""
    for _ in range(50):
        first = _free_ports(1)[0]
        if first + count > 65535:
            continue
        taken = []
        try:
            for port in range(first, first + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                taken.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in taken:
                s.close()
    raise AssertionError("no consecutive free UDP ports")


def _start_script(run_dir: Path) -> tuple[subprocess.Popen[str], list[str]]:
    first = _consecutive_free_ports(3)
    process = subprocess.Popen([*SCRIPT, "--instances", "2", "--no-speech", "--run-dir", str(run_dir),
                                "--sip-port", str(first), "--ops-port", "0", "--rtp-port", "64000", "--rtp-span", "100"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True).start()
    wait_until(lambda: any("cluster: ready" in line for line in output) or process.poll() is not None, 120,
               "scripts/cluster ready")
    assert process.poll() is None, "".join(output)
    return process, output


def _pids(run_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text().split()[0]) for p in run_dir.glob("*.pid")}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_the_script_starts_everything_and_stop_leaves_nothing_running(tmp_path: Path) -> None:
    skip_unless_cluster()
    run_dir = tmp_path / "run"
    process, output = _start_script(run_dir)
    pids = _pids(run_dir)
    assert set(pids) == {"cluster", "kamailio", "line1", "line2"}, pids
    text = "".join(output)
    assert "Kamailio   sip:127.0.0.1:" in text and "line2" in text and "voicebot.sqlite3" in text
    status = subprocess.run([*SCRIPT, "status", "--run-dir", str(run_dir)], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert status.returncode == 0 and status.stdout.count("(in rotation)") == 2, status.stdout

    stopped = subprocess.run([*SCRIPT, "stop", "--run-dir", str(run_dir)], cwd=REPO, capture_output=True, text=True,
                             timeout=120)
    assert stopped.returncode == 0 and "cluster stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert process.wait(30) == 0
    assert not [name for name, pid in pids.items() if _alive(pid)]
    assert not list(run_dir.glob("*.pid"))

    # The supervisor itself killed outright: `stop` finds what it left by the pid files.
    process, output = _start_script(run_dir)
    pids = _pids(run_dir)
    os.kill(pids["cluster"], signal.SIGKILL)
    process.wait(10)
    assert sorted(name for name, pid in pids.items() if _alive(pid)) == ["kamailio", "line1", "line2"]
    stopped = subprocess.run([*SCRIPT, "stop", "--run-dir", str(run_dir)], cwd=REPO, capture_output=True, text=True,
                             timeout=120)
    assert stopped.returncode == 0 and "was left running" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not [name for name, pid in pids.items() if _alive(pid)]


def test_bad_input_gets_a_clear_message(tmp_path: Path) -> None:
    done = subprocess.run([*SCRIPT, "--instances", "0", "--run-dir", str(tmp_path / "run")], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "--instances 0: between 1 and 64" in done.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        done = subprocess.run([*SCRIPT, "--sip-port", str(port), "--ops-port", "0", "--run-dir", str(tmp_path / "run")],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"port(s) {port}/udp on 127.0.0.1 in use" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not list((tmp_path / "run").glob("*.pid"))
