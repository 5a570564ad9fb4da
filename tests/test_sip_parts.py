"""The SIP front's parts that need no SIP peer: caller IDs, RFC 4733 events, one press from
two sources, and the session's side of a transfer by REFER. (SIPp and baresip drive the
real server in test_sip.py.)"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from voicebot.app import CallMeta, Line
from voicebot.call.session import CallSession
from voicebot.config import Sip
from voicebot.dtmf import generator
from voicebot.transports.sip import _DtmfEvents, user_part

from .test_call_session import WordsTimedRenderer

RATE = 8000


@pytest.mark.parametrize("uri, user", [
    ('"Ana" <sip:+34600000001@10.0.0.7;user=phone>;tag=abc', "+34600000001"),
    ("<sip:950183313@127.0.0.1:5060>", "950183313"),
    ("sip:950183313@voicebot.example", "950183313"),
    ("<tel:+34600000005>", "+34600000005"),
    ('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1', None),
    ("", None),
    (None, None),
])
def test_the_user_part_is_the_caller_id_or_the_number_dialled(uri: str | None, user: str | None) -> None:
    assert user_part(uri) == user


# ---------------------------------------------------------------------- RFC 4733


@dataclass
class Packet:
    timestamp: int
    payload: bytes


def event(key: int, end: bool, duration: int) -> bytes:
    return bytes([key, (0x80 if end else 0) | 10]) + duration.to_bytes(2, "big")


def test_each_rfc4733_event_is_one_key_even_when_a_sender_reuses_the_timestamp() -> None:
    import aiortp

    keys: list[str] = []
    receiver = _DtmfEvents(keys.append, aiortp)
    # "1" with its three end packets (retransmitted, as RFC 4733 asks), then "1" again on
    # the same timestamp (SIPp replaying one pcap twice), then "#" whose end was lost,
    # reported when "2" starts.
    for packet in [Packet(160, event(1, False, 160)), Packet(160, event(1, True, 640)),
                   Packet(160, event(1, True, 640)), Packet(160, event(1, True, 640))]:
        receiver.handle_packet(packet)
    import time
    time.sleep(0.05)
    for packet in [Packet(160, event(1, False, 160)), Packet(160, event(1, True, 640)),
                   Packet(8000, event(11, False, 160)), Packet(8000, event(11, False, 320)),
                   Packet(16000, event(2, False, 160)), Packet(16000, event(2, True, 480))]:
        receiver.handle_packet(packet)
    assert keys == ["1", "1", "#", "2"]


# ---------------------------------------------------------------------- the session's side


def tone(key: str) -> np.ndarray:
    audio, _ = generator.sequence(key, on=0.08, off=0.08, lead=0.0, tail=0.2, level_dbm0=-10.0,
                                  rng=np.random.default_rng(3))
    return audio


def run(session: CallSession, audio: np.ndarray) -> None:
    for start in range(0, len(audio), 160):
        frame = audio[start:start + 160]
        session.step(np.pad(frame, (0, 160 - len(frame))))


def test_a_key_reported_as_an_event_and_heard_as_a_tone_counts_once(line: Line) -> None:
    session = CallSession(line, CallMeta("sip", "+34600000001", "950183313"), WordsTimedRenderer(), None, RATE,
                          virtual=True)
    session.start()
    run(session, np.zeros(RATE))
    session.press("2", "rfc4733")  # the PBX sent the event and left the tone in the audio
    run(session, tone("2"))
    run(session, np.zeros(RATE))
    keys = [e.as_dict() for e in session.transcript if e.kind == "key"]
    assert [(k["key"], k["source"]) for k in keys] == [("2", "rfc4733")]
    assert session.engine.language == "en"
    # The same key twice from one source is two presses, however close ("00").
    session.press("0", "sip-info")
    run(session, np.zeros(RATE // 5))
    session.press("0", "sip-info")
    run(session, np.zeros(RATE // 5))
    assert [e.detail["key"] for e in session.transcript if e.kind == "key"] == ["2", "0", "0"]
    session.finish()


def transfer_call(line: Line, accepted: bool) -> tuple[CallSession, list[tuple[str, str]]]:
    session = CallSession(line, CallMeta("sip", "+34600000001", "950183313"), WordsTimedRenderer(), None, RATE,
                          virtual=True)
    asked: list[tuple[str, str]] = []
    session.on_transfer = lambda command, ticket: asked.append((command.reason, ticket))
    session.start()
    session.press("1")
    session.press("0")  # Spanish, then an agent
    for _ in range(1000):
        session.step(np.zeros(160))
        if asked:
            break
    assert asked and not session.finished  # the transport has the transfer; the call waits for its answer
    session.transfer_answered(accepted)
    for _ in range(1500):
        session.step(np.zeros(160))
        if session.finished:
            break
    return session, asked


def test_a_transfer_the_agent_side_accepts_ends_the_call_as_transferred(line: Line) -> None:
    session, asked = transfer_call(line, accepted=True)
    record = session.finish()
    assert asked[0][0] == "caller_request" and asked[0][1].startswith("handoff-")
    assert record["outcome"] == "transferred"
    assert [e.kind for e in session.transcript][-2:] == ["transfer", "transferred"]


def test_a_refused_transfer_gives_the_caller_the_agents_number(line: Line) -> None:
    session, _ = transfer_call(line, accepted=False)
    record = session.finish()
    played = [e.detail["prompt"] for e in session.transcript if e.kind == "prompt"]
    assert "texts.transfer_failed" in played
    text = next(e.detail["text"] for e in session.transcript if e.kind == "prompt"
                and e.detail["prompt"] == "texts.transfer_failed")
    assert "Llame al" in text
    assert record["outcome"] != "transferred", json.dumps(record)


# ---------------------------------------------------------------------- settings


def test_sip_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="host:port"):
        Sip(listen="5060")
    with pytest.raises(ValueError, match="not an IP network"):
        Sip(allow=("the office",))
    with pytest.raises(ValueError, match="unknown codec"):
        Sip(codecs=("OPUS",))
    assert Sip(codecs=("pcmu",)).codecs == ("PCMU",)
