"""Write the in-band DTMF pcaps SIPp plays (``play_pcap_audio``) for the SIP tests.

    .venv/bin/python -m tests.sip.make_pcaps          # from the repo root: (re)writes tests/sip/pcaps/

One pcap per flow and codec: ``<flow>_pcma.pcap`` (payload type 8) and ``<flow>_pcmu.pcap``
(payload type 0), 20 ms packets of 160 samples at 8 kHz, one RTP stream with continuous
sequence numbers and timestamps (SIPp sends the RTP headers as they are in the file, so one
file per flow avoids the sequence going back between plays). The audio is silence with the
flow's key groups made by ``voicebot.dtmf.generator.sequence`` (80 ms tones, 80 ms gaps,
-10 dBm0 per tone), GROUP_GAP seconds of silence between groups. Deterministic: fixed seed,
fixed SSRC, fixed capture times, so the files only change when this script does.

SIPp replaces the UDP ports and IP addresses; it keeps the capture's packet timing and the
UDP payload (the RTP packet).
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

with warnings.catch_warnings():  # deprecated (removed in 3.13) but present on 3.11: G.711 in C
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

from tests.sip.flows import FLOWS
from voicebot.dtmf.generator import sequence, to_int16

OUT = Path(__file__).resolve().parent / "pcaps"
RATE = 8000
FRAME = 160  # 20 ms
ON, OFF = 0.08, 0.08  # each tone and the gap between the keys of a group
GROUP_GAP = 1.0  # silence between key groups: "one group per second"
LEAD, TAIL = 0.5, 0.5
LEVEL_DBM0 = -10.0
INBAND_FLOWS = ("signature_unlock", "recover_user", "operation_unlock")
CODECS = {"pcma": (8, audioop.lin2alaw), "pcmu": (0, audioop.lin2ulaw)}
EPOCH = 1_700_000_000  # capture time of the first packet (any fixed value)
SRC, DST = ("127.0.0.1", 6000), ("127.0.0.1", 6002)  # rewritten by SIPp


def flow_audio(groups: tuple[str, ...], seed: int) -> np.ndarray:
    """The flow's keys as int16 samples: lead, group, gap, group, ..., tail."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(LEAD * RATE))]
    for i, group in enumerate(groups):
        if i:
            parts.append(np.zeros(int(GROUP_GAP * RATE)))
        samples, _ = sequence(group, on=ON, off=OFF, lead=0.0, tail=0.0, level_dbm0=LEVEL_DBM0, rng=rng)
        parts.append(samples)
    parts.append(np.zeros(int(TAIL * RATE)))
    audio = to_int16(np.concatenate(parts))
    pad = (-len(audio)) % FRAME  # whole packets
    return np.concatenate([audio, np.zeros(pad, np.int16)])


def ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(payload: bytes, ident: int) -> bytes:
    """Ethernet + IPv4 + UDP around ``payload`` (valid checksums)."""
    src_ip, dst_ip = (bytes(map(int, a.split("."))) for a in (SRC[0], DST[0]))
    udp_len = 8 + len(payload)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", SRC[1], DST[1], udp_len, 0) + payload
    csum = ip_checksum(pseudo + udp + (b"\0" if len(udp) % 2 else b"")) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ident & 0xFFFF, 0x4000, 64, 17, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
    ether = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
    return ether + ip + udp


def rtp_pcap(encoded: bytes, payload_type: int, ssrc: int) -> bytes:
    """A classic pcap (link type Ethernet) of 20 ms RTP packets of ``encoded`` G.711 bytes."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for n in range(len(encoded) // FRAME):
        marker = 0x80 if n == 0 else 0
        rtp = struct.pack("!BBHII", 0x80, marker | payload_type, (1000 + n) & 0xFFFF, n * FRAME, ssrc)
        frame = udp_frame(rtp + encoded[n * FRAME:(n + 1) * FRAME], n)
        usec = n * 20_000
        out.append(struct.pack("<IIII", EPOCH + usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)


def read_rtp_pcap(path: Path) -> list[tuple[float, bytes]]:
    """(capture time, RTP packet) of each packet of a pcap written by this script (for checks)."""
    data = path.read_bytes()
    packets, off = [], 24
    while off < len(data):
        sec, usec, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        packets.append((sec + usec / 1e6, frame[14 + 20 + 8:]))
        off += 16 + incl
    return packets


def main() -> None:
    OUT.mkdir(exist_ok=True)
    # 1 s of A-law silence, raw: SIPp's rtp_stream loops it (the SIP INFO scenarios' audio)
    (OUT / "silence_8k.alaw").write_bytes(audioop.lin2alaw(bytes(2 * RATE), 2))
    # 1 s of silence as RTP, replayed each second after the keys until the line hangs up, so
    # that the line does not take the caller for gone (RTP timeout) during its closing message
    for codec, (payload_type, encode) in CODECS.items():
        (OUT / f"silence_{codec}.pcap").write_bytes(rtp_pcap(encode(bytes(2 * RATE), 2), payload_type, ssrc=0x51E9CE00 + payload_type))
    for name in INBAND_FLOWS:
        flow = FLOWS[name]
        seed = zlib.crc32(name.encode())
        pcm = flow_audio(flow.groups, seed).tobytes()
        for codec, (payload_type, encode) in CODECS.items():
            path = OUT / f"{name}_{codec}.pcap"
            path.write_bytes(rtp_pcap(encode(pcm, 2), payload_type, ssrc=seed ^ payload_type))
            print(f"{path.relative_to(OUT.parents[2])}: {len(pcm) // 2 / RATE:.2f} s, "
                  f"keys {flow.keys}, {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
