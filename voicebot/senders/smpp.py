"""SMS over SMPP 3.4: the outbox's SMS handed to an operator's SMSC (``sms.transport: smpp``; smpplib).

One bind as transceiver, made on the first message and kept: submits go out on it, and a
reader thread takes what the SMSC sends back (delivery receipts, which go to ``on_receipt``;
``enquire_link``; an ``unbind``) and sends an ``enquire_link`` when the line has been quiet.
A bind that dies (the SMSC hung up, stopped answering, unbound) is dropped; the message in
flight fails with a :class:`~voicebot.outbox.DeliveryError` the outbox retries, and the next
message binds again.

What the SMSC's answers mean here: throttling (``ESME_RTHROTTLED``, ``ESME_RMSGQFUL``) and
anything unknown are "try later"; a refused bind is a configuration to fix (the messages
wait, retried, the error naming the SMSC's reason); an invalid destination
(``ESME_RINVDSTADR``) fails the message for good.

Encoding (:func:`encode_sms`): GSM 03.38 7-bit when every character is in the default
alphabet or its extension table (an extension character costs two septets), else UCS-2.
Spanish needs care: ñ Ñ ü Ü ¿ ¡ é É are in GSM-7, but á í ó ú Á Í Ó Ú are not, so most
Spanish texts go as UCS-2, 70 characters to an SMS. A long text is sent in parts with a
concatenation header (8-bit reference): 153 septets or 67 UCS-2 characters a part, never
cutting an escape pair or a surrogate pair. smpplib's own ``gsm.make_parts`` is not used:
its table sends a backtick as §, lacks §, and it cuts GSM-7 parts by bytes, escape or not.

The message body carries a temporary password or a code: it never reaches a log (smpplib
logs each PDU in hex at debug level, so its logger is kept at ERROR) nor an exception text.
"""

from __future__ import annotations

import collections
import itertools
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp

from ..backends.sqlite import QueuedMessage
from ..config import Smpp
from ..outbox import DeliveryError

log = logging.getLogger(__name__)
# smpplib's client logs every PDU it sends and reads in hex at DEBUG: a message body, a
# receipt's first words, the bind's password. Its warnings repeat what this module logs.
_WIRE_LOG = logging.getLogger(f"{__name__}.wire")
_WIRE_LOG.setLevel(logging.ERROR)

GSM7 = 0x00  # data_coding: the SMSC's default alphabet, GSM 03.38, one septet per octet on the wire
UCS2 = 0x08  # data_coding: UCS-2 (UTF-16BE)
UDHI = 0x40  # esm_class: short_message starts with a user data header

# 3GPP TS 23.038 default alphabet, in code order (0x1B is the escape to the extension table).
_GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
assert len(_GSM7_BASIC) == 128
GSM7_BASIC = {char: code for code, char in enumerate(_GSM7_BASIC) if code != 0x1B}
GSM7_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E,
                  "|": 0x40, "€": 0x65}

# Octets of short_message: one part alone, or a part after the 6-octet header (GSM-7: 7 septets).
_SINGLE = {GSM7: 160, UCS2: 140}
_PART = {GSM7: 153, UCS2: 134}

THROTTLED = {smpplib.consts.SMPP_ESME_RTHROTTLED, smpplib.consts.SMPP_ESME_RMSGQFUL}
REFUSED_FOR_GOOD = {smpplib.consts.SMPP_ESME_RINVDSTADR}
_STATUS_NAMES = {value: name.removeprefix("SMPP_") for name, value in vars(smpplib.consts).items()
                 if name.startswith("SMPP_ESME_")}
# message_state (receipt TLV) to the words of a receipt's text
_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN",
           8: "REJECTD"}

ENQUIRE_LINK_SECONDS = 30.0  # a quiet bind is probed this often (SMSCs drop idle binds)
THROTTLE_PAUSE = 1.0  # seconds without submits after the SMSC said it is throttling
_POLL = 0.25  # the reader's look at its stop flag


@dataclass(frozen=True)
class SmsParts:
    """A text as SMPP carries it: the ``short_message`` of each submit, with their coding."""

    data_coding: int  # GSM7 or UCS2
    esm_class: int  # UDHI when in parts
    payloads: tuple[bytes, ...]


def encode_sms(text: str, reference: int = 0) -> SmsParts:
    """``text`` as one SMS or as parts with a concatenation header carrying ``reference`` (0–255)."""
    data_coding, units = _units(text)
    if sum(map(len, units)) <= _SINGLE[data_coding]:
        return SmsParts(data_coding, 0, (b"".join(units),))
    chunks = _split(units, _PART[data_coding])
    if len(chunks) > 255:
        raise ValueError(f"a text of {len(chunks)} SMS: at most 255 can be joined")
    header = bytes((0x05, 0x00, 0x03, reference & 0xFF, len(chunks)))
    return SmsParts(data_coding, UDHI, tuple(header + bytes((n,)) + chunk for n, chunk in enumerate(chunks, 1)))


def gsm7_septets(text: str) -> int | None:
    """Septets ``text`` takes in GSM-7 (an extension character counts two), None if it does not fit."""
    data_coding, units = _units(text)
    return sum(map(len, units)) if data_coding == GSM7 else None


def _units(text: str) -> tuple[int, list[bytes]]:
    """Each character's octets, in GSM-7 if all fit, else in UCS-2 (a character outside the
    BMP is its surrogate pair, kept whole)."""
    units: list[bytes] = []
    for char in text:
        code = GSM7_BASIC.get(char)
        if code is not None:
            units.append(bytes((code,)))
        elif char in GSM7_EXTENSION:
            units.append(bytes((0x1B, GSM7_EXTENSION[char])))
        else:
            return UCS2, [char.encode("utf-16-be", errors="replace") for char in text]
    return GSM7, units


def _split(units: list[bytes], limit: int) -> list[bytes]:
    chunks: list[bytes] = []
    current = bytearray()
    for unit in units:
        if len(current) + len(unit) > limit:
            chunks.append(bytes(current))
            current.clear()
        current += unit
    chunks.append(bytes(current))
    return chunks


@dataclass(frozen=True)
class DeliveryReceipt:
    message_id: str  # the SMSC's id, as its submit_sm_resp gave it
    state: str  # DELIVRD, UNDELIV, EXPIRED, REJECTD, ...


_RECEIPT_ID = re.compile(r"(?:^|\s)id:(\S+)", re.IGNORECASE)
_RECEIPT_STAT = re.compile(r"(?:^|\s)stat:(\S+)", re.IGNORECASE)


def parse_receipt(pdu: Any) -> DeliveryReceipt | None:
    """The receipt a ``deliver_sm`` carries (its TLVs, else the ``id:… stat:…`` text), None if it is
    not one (a message from a phone)."""
    tlv_id = _text(getattr(pdu, "receipted_message_id", None))
    if (pdu.esm_class or 0) & 0x3C not in (0x04, 0x20) and not tlv_id:  # SMSC receipt, intermediate notification
        return None
    text = _text(pdu.short_message) or _text(getattr(pdu, "message_payload", None))
    found_id, found_stat = _RECEIPT_ID.search(text), _RECEIPT_STAT.search(text)
    message_id = tlv_id or (found_id.group(1) if found_id else "")
    state = found_stat.group(1).upper() if found_stat else _STATES.get(getattr(pdu, "message_state", None) or 0, "")
    if not message_id or not state:
        return None
    return DeliveryReceipt(message_id, state)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1").rstrip("\x00")
    return value or ""


def _receipt_ids(message_id: str) -> Iterator[str]:
    """The id as given, then as the other base: some SMSCs write a receipt's id in decimal
    when their submit_sm_resp gave it in hex, or the other way round."""
    yield message_id
    if message_id.isdigit() and len(message_id) <= 20:
        yield format(int(message_id), "x")
        yield format(int(message_id), "X")
    elif re.fullmatch(r"[0-9A-Fa-f]{1,16}", message_id):
        yield str(int(message_id, 16))


def status_name(status: int | None) -> str:
    if status is None:
        return "no status"
    return f"{_STATUS_NAMES.get(status, 'status')} 0x{status:02X}"


class _BindFailed(Exception):
    """No bind: the text says why (never with the password)."""


class _LinkLost(Exception):
    """The bind ended (the SMSC hung up, unbound, or stopped answering)."""


class _Sequence:
    """smpplib's sequence generator, safe from two threads (the reader answers, the sender submits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sequence = 0

    @property
    def sequence(self) -> int:
        return self._sequence

    def next_sequence(self) -> int:
        with self._lock:
            self._sequence = self._sequence % 0x7FFFFFFF + 1
            return self._sequence


@dataclass
class _Answer:
    event: threading.Event = field(default_factory=threading.Event)
    pdu: Any = None


class _Link:
    """One bind as transceiver: smpplib's client, the thread that reads the SMSC's PDUs, and the
    requests waiting for their answer (matched by sequence number)."""

    def __init__(self, settings: Smpp, on_deliver_sm: Callable[[Any], int]) -> None:
        self.settings = settings
        self.on_deliver_sm = on_deliver_sm
        self.client = smpplib.client.Client(settings.host, settings.port, timeout=settings.timeout,
                                            sequence_generator=_Sequence(), logger_name=_WIRE_LOG.name,
                                            allow_unknown_opt_params=True)
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._answers: dict[int, _Answer] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe: tuple[_Answer, float] | None = None
        self._quiet_since = time.monotonic()
        self.alive = False
        self.closing = False

    def connect(self) -> None:
        try:
            self.client.connect()
        except BaseException:
            self.client.disconnect()
            raise

    def bind(self, password: str) -> None:
        """Bind as transceiver (smpplib's exceptions on failure), then start reading."""
        s = self.settings
        try:
            self.client.bind_transceiver(system_id=s.system_id, system_type=s.system_type, password=password)
        except BaseException:
            self.client.disconnect()
            raise
        self.alive = True
        self._thread = threading.Thread(target=self._read, name="voicebot-smpp", daemon=True)
        self._thread.start()

    def make(self, command: str, sequence: int | None = None, **fields: Any) -> Any:
        pdu = smpplib.smpp.make_pdu(command, client=self.client, **fields)
        if sequence is not None:  # an answer: smpplib ignores sequence= when its generator has a number
            pdu.sequence = sequence
        return pdu

    def request(self, pdu: Any, timeout: float) -> Any:
        """Send ``pdu`` and wait for its answer; :class:`TimeoutError`, :class:`_LinkLost`."""
        answer = _Answer()
        with self._lock:
            if not self.alive:
                raise _LinkLost()
            self._answers[pdu.sequence] = answer
        try:
            self.send(pdu)
            if not answer.event.wait(timeout):
                raise TimeoutError()
        finally:
            with self._lock:
                self._answers.pop(pdu.sequence, None)
        if answer.pdu is None:
            raise _LinkLost()
        return answer.pdu

    def send(self, pdu: Any) -> None:
        with self._send_lock:
            if not self.alive or self.client._socket is None:
                raise _LinkLost()
            try:
                self.client.send_pdu(pdu)
            except smpplib.exceptions.ConnectionError:
                self.drop()
                raise _LinkLost() from None

    def drop(self) -> None:
        """End the bind without ceremony (it is broken): the reader closes the socket and leaves."""
        self.alive = False
        self._stop.set()
        sock = self.client._socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._fail_waiting()

    def close(self, timeout: float) -> None:
        """Unbind (briefly waiting for the SMSC's answer), stop the reader, close the socket."""
        self.closing = True  # the SMSC may hang up right after its unbind_resp: not a loss
        if self.alive:
            try:
                self.request(self.make("unbind"), min(timeout, 2.0))
            except (_LinkLost, TimeoutError):
                pass
        self.drop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None:
            self.client.disconnect()

    # ------------------------------------------------------------ the reader thread

    def _read(self) -> None:
        reason = "closed"
        try:
            while not self._stop.is_set():
                sock = self.client._socket
                # poll(), not select(): select() refuses descriptors past 1023, which a busy
                # SIP process reaches.
                poller = select.poll()
                poller.register(sock, select.POLLIN | select.POLLPRI)
                readable = poller.poll(_POLL * 1000)
                if not readable:
                    self._keep_alive()
                    continue
                try:
                    pdu = self.client.read_pdu()
                except smpplib.exceptions.UnknownCommandError:
                    log.warning("smpp: the SMSC sent a command smpplib does not know; ignored")
                    continue
                except TimeoutError:  # half a PDU, then silence
                    raise _LinkLost("the SMSC stopped in the middle of a PDU") from None
                self._quiet_since = time.monotonic()
                self._dispatch(pdu)
        except _LinkLost as exc:
            reason = str(exc) or "lost"
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError, ValueError) as exc:
            reason = f"lost ({type(exc).__name__})"
        finally:
            stopping = self._stop.is_set() or self.closing
            self.alive = False
            self._fail_waiting()
            with self._send_lock:
                self.client.disconnect()
            if not stopping:
                log.warning("smpp: the bind to %s:%s ended: %s; the next message binds again",
                            self.settings.host, self.settings.port, reason)

    def _dispatch(self, pdu: Any) -> None:
        if pdu.is_response():  # submit_sm_resp, enquire_link_resp, unbind_resp, generic_nack
            with self._lock:
                answer = self._answers.pop(pdu.sequence, None)
            if answer is not None:
                answer.pdu = pdu
                answer.event.set()
            return
        if pdu.command == "deliver_sm":
            status = self.on_deliver_sm(pdu)
            self.send(self.make("deliver_sm_resp", status=status, sequence=pdu.sequence))
        elif pdu.command == "enquire_link":
            self.send(self.make("enquire_link_resp", sequence=pdu.sequence))
        elif pdu.command == "unbind":
            self.send(self.make("unbind_resp", sequence=pdu.sequence))
            raise _LinkLost("the SMSC unbound")
        elif pdu.command != "alert_notification":  # that one has no answer
            self.send(self.make("generic_nack", status=smpplib.consts.SMPP_ESME_RINVCMDID, sequence=pdu.sequence))

    def _keep_alive(self) -> None:
        now = time.monotonic()
        if self._probe is not None:
            answer, sent_at = self._probe
            if answer.event.is_set():
                self._probe = None
            elif now - sent_at > self.settings.timeout:
                raise _LinkLost("the SMSC did not answer an enquire_link")
            return
        if now - self._quiet_since >= ENQUIRE_LINK_SECONDS:
            pdu, answer = self.make("enquire_link"), _Answer()
            with self._lock:
                self._answers[pdu.sequence] = answer
            self._probe = (answer, now)
            self.send(pdu)
            self._quiet_since = now

    def _fail_waiting(self) -> None:
        with self._lock:
            waiting, self._answers = list(self._answers.values()), {}
        for answer in waiting:
            answer.event.set()  # with no pdu: the link was lost


@dataclass
class _PartsTaken:
    """A long SMS some of whose parts the SMSC took: a retry sends the rest, with the same reference."""

    reference: int
    ids: dict[int, str] = field(default_factory=dict)


class SmppSender:
    """:class:`~voicebot.outbox.MessageTransport` for SMS over SMPP 3.4 (smpplib), one kept bind.

    ``on_receipt(provider_id, state)`` is called from the reader thread for each delivery
    receipt (the outbox's ``record_receipt``). ``deliver`` returns the SMSC's message id, or
    for a long SMS its parts' ids joined by single spaces.
    """

    def __init__(self, settings: Smpp, on_receipt: Callable[[str, str], object] | None = None) -> None:
        self.settings = settings
        self.on_receipt = on_receipt
        self._deliver = threading.Lock()  # one message at a time: parts in order, the pace kept
        self._link: _Link | None = None
        self._references = itertools.count(1)
        self._taken: collections.OrderedDict[str, _PartsTaken] = collections.OrderedDict()
        self._next_submit = 0.0
        self._bind_failed: tuple[float, str] | None = None  # (until when, why): the last bind's failure

    def deliver(self, message: QueuedMessage) -> str:
        if message.channel != "sms":
            raise DeliveryError(f"{message.id}: the SMSC takes SMS, not {message.channel}", permanent=True)
        destination = self._destination(message)
        with self._deliver:
            taken = self._taken.get(message.idempotency_key) or _PartsTaken(next(self._references) & 0xFF)
            try:
                parts = encode_sms(message.body.reveal(), taken.reference)
            except ValueError:
                raise DeliveryError(f"{message.id}: too long for SMS", permanent=True) from None
            link = self._bound(message)
            total = len(parts.payloads)
            for number, payload in enumerate(parts.payloads, 1):
                if number in taken.ids:
                    continue
                where = f"{message.id}" if total == 1 else f"{message.id} (part {number} of {total})"
                try:
                    taken.ids[number] = self._submit(link, destination, parts, payload, where)
                finally:
                    if total > 1 and taken.ids:
                        self._remember(message.idempotency_key, taken)
            self._taken.pop(message.idempotency_key, None)
            return " ".join(taken.ids[number] for number in range(1, total + 1))

    @property
    def bound(self) -> bool:
        """Whether a bind to the SMSC is up now."""
        return self._link is not None and self._link.alive

    def close(self) -> None:
        """Unbind and stop the reader thread (a later message would bind again)."""
        link, self._link = self._link, None
        if link is not None:
            link.close(self.settings.timeout)

    # ------------------------------------------------------------------ inside

    def _destination(self, message: QueuedMessage) -> str:
        number = message.recipient.strip()
        if self.settings.dest_addr_ton == smpplib.consts.SMPP_TON_INTL:
            number = number.removeprefix("+")
            if not (number.isascii() and number.isdigit() and 1 <= len(number) <= 15):
                raise DeliveryError(f"{message.id}: the recipient is not an international number", permanent=True)
        if not number or len(number) > 20 or not number.isascii():
            raise DeliveryError(f"{message.id}: the recipient is not an SMPP address", permanent=True)
        return number

    def _bound(self, message: QueuedMessage) -> _Link:
        if self._link is not None and self._link.alive:
            return self._link
        if self._link is not None:
            self._link.close(self.settings.timeout)
            self._link = None
        if self._bind_failed is not None and time.monotonic() < self._bind_failed[0]:
            # One bind attempt per `timeout` while binds fail, not one per waiting message: an SMSC
            # may lock an account after wrong passwords, and an unreachable one costs `timeout` each.
            raise DeliveryError(f"{message.id}: {self._bind_failed[1]}")
        try:
            link = self._bind()
        except _BindFailed as exc:
            self._bind_failed = (time.monotonic() + self.settings.timeout, str(exc))
            raise DeliveryError(f"{message.id}: {exc}") from None
        self._bind_failed = None
        self._link = link
        return link

    def _bind(self) -> _Link:
        s = self.settings
        password = s.password.get_secret_value() if s.password else ""
        if len(password) > 8 or not all(ord(char) < 256 for char in password):
            # smpplib would cut it to 8 silently, and the SMSC's "invalid password" would mislead
            raise _BindFailed("sms.smpp.password must be at most 8 Latin-1 characters (SMPP 3.4)")
        link = _Link(s, self._delivered)
        try:
            link.connect()
        except (smpplib.exceptions.ConnectionError, OSError):
            raise _BindFailed(f"cannot reach the SMSC {s.host}:{s.port}") from None
        try:
            link.bind(password)
        except smpplib.exceptions.PDUError as exc:
            status = exc.args[1] if len(exc.args) > 1 else None
            raise _BindFailed(f"the SMSC refused the bind as {s.system_id!r} ({status_name(status)}): "
                              "check sms.smpp") from None
        except (smpplib.exceptions.ConnectionError, OSError):
            raise _BindFailed(f"the SMSC {s.host}:{s.port} did not answer the bind") from None
        except (UnicodeEncodeError, ValueError):
            raise _BindFailed("sms.smpp's system_id or system_type cannot go in a bind (Latin-1 only)") from None
        log.info("smpp: bound to %s:%s as %r", s.host, s.port, s.system_id)
        return link

    def _submit(self, link: _Link, destination: str, parts: SmsParts, payload: bytes, where: str) -> str:
        s = self.settings
        self._pace()
        try:
            pdu = link.make("submit_sm", service_type="", source_addr_ton=s.source_addr_ton,
                            source_addr_npi=s.source_addr_npi, source_addr=s.source_addr,
                            dest_addr_ton=s.dest_addr_ton, dest_addr_npi=s.dest_addr_npi, destination_addr=destination,
                            esm_class=parts.esm_class, protocol_id=0, priority_flag=0,
                            registered_delivery=1 if s.delivery_receipts else 0, replace_if_present_flag=0,
                            data_coding=parts.data_coding, short_message=payload)
            answer = link.request(pdu, s.timeout)
        except TimeoutError:
            link.drop()  # an SMSC that does not answer a submit is not trusted with the next one
            raise DeliveryError(f"{where}: the SMSC did not answer in {s.timeout:g} s") from None
        except _LinkLost:
            raise DeliveryError(f"{where}: the connection to the SMSC was lost") from None
        except (UnicodeEncodeError, ValueError):
            raise DeliveryError(f"{where}: sms.smpp's source_addr cannot go in a submit_sm (Latin-1 only)") from None
        status = answer.status
        if answer.command == "generic_nack" or status != smpplib.consts.SMPP_ESME_ROK:
            if status in THROTTLED:
                self._next_submit = max(self._next_submit, time.monotonic() + THROTTLE_PAUSE)
                raise DeliveryError(f"{where}: the SMSC is throttling ({status_name(status)})")
            raise DeliveryError(f"{where}: the SMSC refused it ({status_name(status)})",
                                permanent=status in REFUSED_FOR_GOOD)
        return _text(answer.message_id)

    def _pace(self) -> None:
        """Keep ``max_per_second`` between submits (the SMSC throttles an ESME that does not)."""
        wait = self._next_submit - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._next_submit = max(self._next_submit, time.monotonic()) + 1.0 / self.settings.max_per_second

    def _remember(self, key: str, taken: _PartsTaken) -> None:
        self._taken[key] = taken
        self._taken.move_to_end(key)
        while len(self._taken) > 256:
            self._taken.popitem(last=False)

    def _delivered(self, pdu: Any) -> int:
        """A deliver_sm from the SMSC (reader thread): the status of its deliver_sm_resp."""
        receipt = parse_receipt(pdu)
        if receipt is None:
            log.info("smpp: a message from a phone (not a delivery receipt) was ignored")
            return smpplib.consts.SMPP_ESME_ROK
        log.info("smpp: delivery receipt %s for %s", receipt.state, receipt.message_id)
        if self.on_receipt is None:
            return smpplib.consts.SMPP_ESME_ROK
        try:
            for candidate in _receipt_ids(receipt.message_id):
                if self.on_receipt(candidate, receipt.state) is not False:
                    break
            else:
                log.info("smpp: the receipt for %s matches no message", receipt.message_id)
        except Exception as exc:  # the database busy or gone: the SMSC sends it again later
            log.warning("smpp: cannot record the receipt for %s (%s)", receipt.message_id, type(exc).__name__)
            return smpplib.consts.SMPP_ESME_RX_T_APPN
        return smpplib.consts.SMPP_ESME_ROK
