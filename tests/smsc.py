"""A small SMPP 3.4 SMSC for the tests, on loopback: smpplib's PDU classes over a TCP socket.

Why our own: the server-capable library on PyPI (smpp34 1.5, Rust-backed) accepts any bind
in its Python API and cannot hang up on a client, and those are two of the things the
sender must survive. This one speaks the protocol for real (binds checked by system_id and
password, submit_sm_resp with message ids, deliver_sm receipts, enquire_link, unbind,
generic_nack) and can be told to refuse the Nth submit with a status, hang up on it, take it
and never answer, or hang up now. It keeps what it took, and rejoins long SMS by their concatenation header
(GSM-7 decoded with smpplib's own table, so the sender's table is checked against another).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import smpplib.consts as c
import smpplib.gsm
import smpplib.smpp

SYSTEM_ID = "TESTSMSC"
BINDS = {"bind_transceiver", "bind_transmitter", "bind_receiver"}


class _Sequence:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sequence = 0

    def next_sequence(self) -> int:
        with self._lock:
            self.sequence += 1
            return self.sequence


@dataclass
class Submitted:
    """One submit_sm the SMSC took."""

    number: int  # 1 for the first submit_sm (taken or not) since the SMSC started
    at: float  # time.monotonic()
    message_id: str
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes

    @property
    def udh(self) -> tuple[int, int, int] | None:
        """(reference, parts, this part's number) from an 8-bit concatenation header."""
        if not self.esm_class & c.SMPP_GSMFEAT_UDHI:
            return None
        m = self.short_message
        assert m[:3] == b"\x05\x00\x03", f"unexpected user data header {m[:6].hex()}"
        return m[3], m[4], m[5]

    @property
    def user_data(self) -> bytes:
        return self.short_message[6:] if self.udh else self.short_message

    @property
    def text(self) -> str:
        return decode(self.user_data, self.data_coding)

    @property
    def length(self) -> int:
        """Characters this part carries as the phone counts them: septets, or UCS-2 units."""
        return len(self.user_data) // 2 if self.data_coding == 8 else len(self.user_data)


@dataclass
class Sms:
    """A message as the phone shows it: its parts rejoined."""

    destination: str
    text: str
    data_coding: int
    parts: list[Submitted]


def decode(data: bytes, data_coding: int) -> str:
    if data_coding == 8:
        return data.decode("utf-16-be")
    assert data_coding == 0, f"data_coding {data_coding}"
    table, chars, escape = smpplib.gsm.GSM_CHARACTER_TABLE, [], False
    for byte in data:
        if byte == 0x1B and not escape:
            escape = True
            continue
        chars.append(table[byte + 0x80 if escape else byte])
        escape = False
    return "".join(chars)


class _Session:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.bound = False
        self.system_id = ""
        self._send_lock = threading.Lock()
        self.answers: dict[int, tuple[threading.Event, list[Any]]] = {}

    def send(self, pdu: Any) -> None:
        with self._send_lock:
            self.sock.sendall(pdu.generate())

    def read(self) -> Any | None:
        head = self._exactly(4)
        if head is None:
            return None
        (length,) = struct.unpack(">L", head)
        body = self._exactly(length - 4)
        if body is None:
            return None
        # (a client with a sequence generator: smpplib numbers a request before parse() reads its number)
        return smpplib.smpp.parse_pdu(head + body, client=_Sequence(), allow_unknown_opt_params=True)

    def _exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            part = self.sock.recv(size - len(data))
            if not part:
                return None
            data += part
        return data

    def hang_up(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Smsc:
    """Start with ``with Smsc() as smsc:`` (or start/stop); ``smsc.port`` on 127.0.0.1."""

    def __init__(self, system_id: str = "voicebot", password: str = "s3cret") -> None:
        self.system_id = system_id
        self.password = password
        self.refuse: dict[int, int] = {}  # submit number -> command_status to answer it with
        self.hang_up_at: set[int] = set()  # submit numbers the SMSC hangs up on, without answering
        self.silent_at: set[int] = set()  # submit numbers it takes but never answers
        self.enquire_links = 0
        self.received: list[Submitted] = []
        self.binds: list[int] = []  # each bind's answer status
        self.unbinds = 0
        self.submits = 0
        self._lock = threading.Lock()
        self._sequence = _Sequence()
        self._sessions: list[_Session] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]

    # ------------------------------------------------------------------ control

    def start(self) -> Smsc:
        thread = threading.Thread(target=self._accept, name="test-smsc", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self._listener.close()
        self.hang_up()
        for thread in self._threads:
            thread.join(2)

    def __enter__(self) -> Smsc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hang_up(self) -> None:
        """Close every client connection now, without an unbind."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.hang_up()

    def sessions(self) -> int:
        with self._lock:
            return sum(1 for s in self._sessions if s.bound)

    def messages(self) -> list[Sms]:
        """What the phones got: single SMS as they came, long ones rejoined by their header."""
        done: list[Sms] = []
        waiting: dict[tuple[str, int, int], dict[int, Submitted]] = {}
        with self._lock:
            received = list(self.received)
        for sub in received:
            if sub.udh is None:
                done.append(Sms(sub.destination_addr, sub.text, sub.data_coding, [sub]))
                continue
            reference, total, number = sub.udh
            parts = waiting.setdefault((sub.destination_addr, reference, total), {})
            parts[number] = sub
            if len(parts) == total:
                ordered = [parts[n] for n in range(1, total + 1)]
                assert {p.data_coding for p in ordered} == {sub.data_coding}
                done.append(Sms(sub.destination_addr, "".join(p.text for p in ordered), sub.data_coding, ordered))
                del waiting[(sub.destination_addr, reference, total)]
        return done

    def send_receipt(self, message_id: str, stat: str = "DELIVRD", tlvs: bool = True, timeout: float = 2.0) -> int:
        """A delivery receipt to the bound client; the status of its deliver_sm_resp."""
        with self._lock:
            original = next((s for s in self.received if s.message_id == message_id), None)
        first_words = original.text[:20].encode("ascii", "replace").decode() if original else ""
        stamp = time.strftime("%y%m%d%H%M")
        text = (f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} submit date:{stamp} "
                f"done date:{stamp} stat:{stat} err:000 text:{first_words}")
        fields: dict[str, Any] = {}
        if tlvs:
            fields = {"receipted_message_id": message_id, "message_state": 2 if stat == "DELIVRD" else 5}
        pdu = smpplib.smpp.make_pdu(
            "deliver_sm", client=self._sequence, service_type="", source_addr_ton=1, source_addr_npi=1,
            source_addr=original.destination_addr if original else "34600000000", dest_addr_ton=5, dest_addr_npi=0,
            destination_addr="BANCO", esm_class=0x04, protocol_id=0, priority_flag=0, registered_delivery=0,
            replace_if_present_flag=0, data_coding=0, short_message=text.encode("ascii"), **fields)
        return self._request(pdu, timeout).status

    def enquire_link(self, timeout: float = 2.0) -> int:
        return self._request(smpplib.smpp.make_pdu("enquire_link", client=self._sequence), timeout).status

    def wait_until(self, condition: Callable[[], bool], timeout: float = 3.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            time.sleep(0.01)
        return condition()

    # ------------------------------------------------------------------ inside

    def _request(self, pdu: Any, timeout: float) -> Any:
        with self._lock:
            session = next(s for s in reversed(self._sessions) if s.bound)
        event, box = threading.Event(), []
        session.answers[pdu.sequence] = (event, box)
        session.send(pdu)
        assert event.wait(timeout), f"no answer to {pdu.command}"
        return box[0]

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            session = _Session(sock)
            with self._lock:
                self._sessions.append(session)
            thread = threading.Thread(target=self._serve, args=(session,), name="test-smsc-session", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, session: _Session) -> None:
        try:
            while True:
                pdu = session.read()
                if pdu is None or not self._handle(session, pdu):
                    break
        except OSError:
            pass
        finally:
            session.hang_up()
            with self._lock:
                if session in self._sessions:
                    self._sessions.remove(session)

    def _answer(self, session: _Session, request: Any, command: str, status: int = c.SMPP_ESME_ROK,
                **fields: Any) -> None:
        pdu = smpplib.smpp.make_pdu(command, client=self._sequence, status=status, **fields)
        pdu.sequence = request.sequence  # (smpplib ignores sequence= when its generator has a number)
        session.send(pdu)

    def _handle(self, session: _Session, pdu: Any) -> bool:
        """Act on one PDU; False to hang up."""
        command = pdu.command
        if pdu.is_response():
            waiting = session.answers.pop(pdu.sequence, None)
            if waiting is not None:
                waiting[1].append(pdu)
                waiting[0].set()
        elif command in BINDS:
            system_id, password = pdu.system_id.decode(), pdu.password.decode()
            if system_id != self.system_id:
                status = c.SMPP_ESME_RINVSYSID
            elif session.bound:
                status = c.SMPP_ESME_RALYBND
            else:
                status = c.SMPP_ESME_ROK if password == self.password else c.SMPP_ESME_RINVPASWD
            with self._lock:
                self.binds.append(status)
            session.bound = session.bound or status == c.SMPP_ESME_ROK
            self._answer(session, pdu, f"{command}_resp", status,
                         system_id=SYSTEM_ID if status == c.SMPP_ESME_ROK else None)
        elif not session.bound:
            self._answer(session, pdu, "generic_nack", c.SMPP_ESME_RINVBNDSTS)
        elif command == "submit_sm":
            with self._lock:
                self.submits += 1
                number = self.submits
            if number in self.hang_up_at:
                return False
            if number in self.refuse:
                self._answer(session, pdu, "submit_sm_resp", self.refuse[number])
                return True
            message_id = f"{0x5A0000 + number:x}"  # hex ids, as many SMSCs give them
            with self._lock:
                self.received.append(Submitted(
                    number, time.monotonic(), message_id, pdu.source_addr.decode(), pdu.source_addr_ton,
                    pdu.source_addr_npi, pdu.destination_addr.decode(), pdu.dest_addr_ton, pdu.dest_addr_npi,
                    pdu.esm_class, pdu.data_coding, pdu.registered_delivery, pdu.short_message or b""))
            if number not in self.silent_at:
                self._answer(session, pdu, "submit_sm_resp", message_id=message_id)
        elif command == "enquire_link":
            with self._lock:
                self.enquire_links += 1
            self._answer(session, pdu, "enquire_link_resp")
        elif command == "unbind":
            with self._lock:
                self.unbinds += 1
            self._answer(session, pdu, "unbind_resp")
            return False
        else:
            self._answer(session, pdu, "generic_nack", c.SMPP_ESME_RINVCMDID)
        return True
