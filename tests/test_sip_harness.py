"""The SIP test harness (tests/sipp.py, tests/sip/) checked against the lab prototype UAS.

The pcap and scenario checks need nothing but Python. The calls need SIPp (Debian
sip-tester; root, for play_pcap_audio's raw socket), baresip (baresip-core) for its test, and
the aiosipua prototype named by VOICEBOT_SIP_PROTO (default /tmp/siplab/proto_uas.py, run by
the python of VOICEBOT_SIP_PROTO_PYTHON, default /tmp/siplab/venv/bin/python): they skip
when any of these is missing. The prototype hangs up on "#" and transfers on "9", where the
real line hangs up after its closing message and transfers on "0": the flows get a "#" (or
a "9") added here, which the real server's tests do not need.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests import sipp
from tests.sip import make_pcaps, make_scenarios
from tests.sip.flows import FLOWS
from voicebot.dtmf.detector import DtmfDetector

PROTO = Path(os.environ.get("VOICEBOT_SIP_PROTO", "/tmp/siplab/proto_uas.py"))
PROTO_PYTHON = Path(os.environ.get("VOICEBOT_SIP_PROTO_PYTHON", "/tmp/siplab/venv/bin/python"))


# ------------------------------------------------------------------ files, no peers

FLOW_PCAPS = [make_pcaps.OUT / f"{flow}_{codec}.pcap" for flow in make_pcaps.INBAND_FLOWS for codec in make_pcaps.CODECS]


@pytest.mark.parametrize("pcap", FLOW_PCAPS, ids=lambda p: p.name)
def test_inband_pcaps_carry_the_flow_keys_in_20ms_g711_rtp(pcap: Path) -> None:
    packets = make_pcaps.read_rtp_pcap(pcap)
    payload_type = 8 if pcap.stem.endswith("pcma") else 0
    assert all(rtp[1] & 0x7F == payload_type and len(rtp) == 12 + 160 for _, rtp in packets)
    seqs = [int.from_bytes(rtp[2:4], "big") for _, rtp in packets]
    stamps = [int.from_bytes(rtp[4:8], "big") for _, rtp in packets]
    assert np.all(np.diff(seqs) == 1) and np.all(np.diff(stamps) == 160)
    assert np.allclose(np.diff([t for t, _ in packets]), 0.02, atol=1e-5)
    decode = make_pcaps.audioop.alaw2lin if payload_type == 8 else make_pcaps.audioop.ulaw2lin
    audio = np.frombuffer(b"".join(decode(rtp[12:], 2) for _, rtp in packets), np.int16)
    detector = DtmfDetector()
    keys = "".join(t.key for t in detector.feed(audio) + detector.flush())
    assert keys == FLOWS[pcap.stem.rsplit("_", 1)[0]].keys


def test_committed_scenarios_and_pcaps_are_what_the_generators_write(tmp_path: Path) -> None:
    for name, xml in make_scenarios.committed().items():
        assert (make_scenarios.SCENARIOS / name).read_text() == xml, f"run python -m tests.sip.make_scenarios ({name})"
    for name in make_pcaps.INBAND_FLOWS:
        flow = FLOWS[name]
        seed = make_pcaps.zlib.crc32(name.encode())
        pcm = make_pcaps.flow_audio(flow.groups, seed).tobytes()
        for codec, (payload_type, encode) in make_pcaps.CODECS.items():
            fresh = make_pcaps.rtp_pcap(encode(pcm, 2), payload_type, ssrc=seed ^ payload_type)
            assert (make_pcaps.OUT / f"{name}_{codec}.pcap").read_bytes() == fresh, "run python -m tests.sip.make_pcaps"


# ------------------------------------------------------------------ calls to the prototype

class Prototype:
    """One prototype UAS on a free port, writing a JSON record per call."""

    def __init__(self, folder: Path, *args: str) -> None:
        self.port = sipp.free_udp_port()
        self.records = folder / f"records-{self.port}.jsonl"
        self.records.touch()
        self.log = (folder / f"proto-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [str(PROTO_PYTHON), str(PROTO), "--port", str(self.port), "--records", str(self.records), *args],
            stdout=self.log, stderr=subprocess.STDOUT)
        time.sleep(1.5)  # it listens within a second
        assert self.process.poll() is None, (folder / f"proto-{self.port}.log").read_text()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def records_of(self, call_ids: list[str], wait: float = 5.0) -> list[dict]:
        """The records of these calls (written half a second after each call ends)."""
        end = time.monotonic() + wait
        while True:
            records = {r["call_id"]: r for r in map(json.loads, self.records.read_text().splitlines())}
            if all(c in records for c in call_ids) or time.monotonic() > end:
                return [records[c] for c in call_ids if c in records]
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def prototypes(tmp_path_factory: pytest.TempPathFactory):
    """prototypes("--ring", "2") -> a running Prototype, one per set of arguments."""
    sipp.skip_unless_sipp()
    if not (PROTO.exists() and PROTO_PYTHON.exists()):
        pytest.skip(f"no SIP prototype at {PROTO} (VOICEBOT_SIP_PROTO) run by {PROTO_PYTHON}")
    folder = tmp_path_factory.mktemp("proto")
    running: dict[tuple[str, ...], Prototype] = {}

    def get(*args: str) -> Prototype:
        if args not in running:
            running[args] = Prototype(folder, *args)
        return running[args]

    yield get
    for proto in running.values():
        proto.stop()


def call(proto: Prototype, scenario: str | Path, **kwargs) -> tuple[sipp.SippResult, list[dict]]:
    """Run the scenario against the prototype; return SIPp's result and the calls' records."""
    result = sipp.run_sipp(scenario, proto.target, timeout=90, **kwargs)
    assert result.ok, result.describe()
    records = proto.records_of(result.call_ids)
    assert len(records) == len(result.call_ids), result.describe()
    return result, records


KEYED = [  # (kind, flow, inband codec)
    ("rfc4733", "signature_unlock", ""),
    ("inband", "signature_unlock", "pcma"),
    ("inband", "recover_user", "pcmu"),
    ("info", "recover_user", ""),  # not operation_unlock: the prototype REFERs on its "9", ends on its "#"
    ("hold", "signature_unlock", ""),
]


@pytest.mark.parametrize("kind,flow,inband", KEYED, ids=[f"{k}-{f}{'-' + c if c else ''}" for k, f, c in KEYED])
def test_keyed_flow_reaches_the_prototype_and_ends_on_its_bye(prototypes, tmp_path, kind, flow, inband) -> None:
    proto = prototypes()
    scenario = sipp.write_scenario(tmp_path, kind, flow, extra_rfc4733=("#",), inband=inband)
    _, (record,) = call(proto, scenario, caller=FLOWS[flow].caller)
    assert record["from"].startswith(f"sip:{FLOWS[flow].caller}@") and "950183313@" in record["to"]
    assert record["ended"] == "local-bye" and "bye-200" in record["events"]
    # the prototype has no in-band detector: it hears the tones' RTP and the RFC 4733 "#"
    assert record["digits"] == ("#" if inband else FLOWS[flow].keys + "#")
    assert record["codec"] == {"pcma": "PCMA", "pcmu": "PCMU"}.get(inband, "PCMA")
    if inband:
        assert record["frames_in"] >= 0.95 * make_scenarios.pcap_ms(make_pcaps.OUT / f"{flow}_{inband}.pcap") / 20
    if kind == "hold":
        assert record["events"][:3] == ["answered", "hold", "resume"]


def test_caller_hangs_up_mid_pin(prototypes) -> None:
    _, (record,) = call(prototypes(), "uac_bye_mid_pin.xml", caller=FLOWS["bye_mid_pin"].caller)
    assert record["ended"] == "remote-bye" and record["digits"] == FLOWS["bye_mid_pin"].keys


@pytest.mark.parametrize("answer", ["accept", "decline"])
def test_transfer_refer_answered_then_the_line_hangs_up(prototypes, tmp_path, answer) -> None:
    scenario = sipp.write_scenario(tmp_path, f"refer_{answer}", groups=("1", "9"))  # the prototype REFERs on 9
    _, (record,) = call(prototypes(), scenario)
    assert record["ended"] == ("transferred-200" if answer == "accept" else "refer-refused-603")
    assert "bye-200" in record["events"]


def test_cancel_while_ringing_gets_487(prototypes) -> None:
    result, (record,) = call(prototypes("--ring", "2"), "uac_cancel.xml")
    assert result.logs.strip() == "cancel: 487" and record["ended"] == "cancelled"


def test_options_ping(prototypes) -> None:
    result = sipp.run_sipp("uac_options.xml", prototypes().target, timeout=30)
    assert result.ok and "SIP/2.0 200 OK" in result.messages, result.describe()


def test_source_not_allowed_gets_403(prototypes) -> None:
    _, (record,) = call(prototypes("--allow", "10.9.9.9"), "uac_rejected_403.xml")
    assert record["ended"] == "rejected-403"


def test_digest_required_without_credentials_gets_401(prototypes) -> None:
    result = sipp.run_sipp("uac_unauthorized.xml", prototypes("--auth", "bob:secret").target, timeout=30)
    assert result.ok and "SIP/2.0 401" in result.messages, result.describe()


def test_vanished_caller_gets_the_line_bye_after_rtp_timeout(prototypes) -> None:
    _, (record,) = call(prototypes(), "uac_vanish.xml")
    assert record["ended"] == "rtp-timeout" and "bye-200" in record["events"]


def test_fifty_simultaneous_rfc4733_flows(prototypes, tmp_path) -> None:
    scenario = sipp.write_scenario(tmp_path, "rfc4733", "signature_unlock", extra_rfc4733=("#",))
    result, records = call(prototypes(), scenario, calls=50, limit=50)
    assert result.successful == 50
    assert len(records) == 50 and all(r["digits"] == FLOWS["signature_unlock"].keys + "#" for r in records)


def test_baresip_keys_a_flow(prototypes) -> None:
    sipp.skip_unless_sipp("sipp", "baresip")
    proto = prototypes()
    result = sipp.run_baresip_call(f"sip:950183313@{proto.target}", ["1", "3", "#"], caller="+34600000005", timeout=40)
    assert result.established and result.ended_by_peer, result.output[-3000:]
    time.sleep(1)  # the prototype writes its record half a second after the call
    record = json.loads(proto.records.read_text().splitlines()[-1])
    assert record["digits"] == "13#" and record["from"].startswith("sip:+34600000005@")
