"""The SIP test peers' files (tests/sip/): the in-band pcaps carry the flows' keys, and the
committed scenarios and pcaps are what their generators write. (The harness drives the real
server in test_sip.py; it was first proven against the research prototype, which is not
kept in the repository.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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
