"""Phone calls over SIP/RTP: ``voicebot serve`` answers softphones, a PBX or a SIP trunk.

Every call runs the same :class:`~voicebot.call.session.CallSession` as the headset and
file fronts (DTMF detector, recogniser, dialog engine, prompts); this module only carries
its audio and its signalling. The SIP stack is ``aiosipua`` + ``aiortp`` (asyncio, pure
Python): the measurements that chose it are in the README; everything that touches the
library is in this module, so it can be swapped.

One process, one event loop, many calls:

- SIP and RTP arrive as callbacks on the loop. A call's audio is cut into 20 ms frames and
  stepped through its session as it arrives (the caller's clock is the call's clock); the
  bot's frames wait in a short queue.
- One shared 20 ms tick sends every call's next frame (absolute deadlines: measured
  p99 lateness 1.6 ms at 100 calls, against a task per call that cost a third more CPU).
  A caller who sends no audio (silence suppression, a dead line) is stepped with silence
  by the tick, so prompts and timers go on.
- Keys come from RFC 4733 events, SIP INFO (``application/dtmf-relay``) and tones in the
  audio (our Goertzel detector); the session counts one press reported twice once.
- Transfer to an agent is a blind transfer (REFER with the hand-off ticket in a header,
  never a secret); if it is refused, the caller hears the agent's number.
- Access: an allow-list of source networks (403), optional digest authentication for
  trunks (401/403), limits on calls in total and per source (503). SIGTERM stops taking
  calls (503, and OPTIONS answers 503 so a balancer moves on) and lets calls in progress
  finish, up to ``sip.drain_seconds``.

What the library lacks, done here on its primitives (pinned versions: it uses a few private
attributes): responses to our own BYE/REFER (it drops them), retransmission of those
requests over UDP, INFO, digest authentication as a server, INVITE retransmission (it would
start a second call), the offer's telephone-event payload type and ``ptime`` in the answer,
RFC 4733 repeated digits, an RTP timeout, G.722's RTP clock, TCP replies to a Via without
``rport``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..app import CallMeta, Line
from ..asr.speech import LineSpeech
from ..call.session import CallSession, PromptRenderer
from ..config import Sip as SipSettings
from ..config import normalise_number
from ..dialog import Transfer
from ..errors import VoicebotError
from ..logs import ContextThreadPoolExecutor
from ..ops import MeteredCall, Metrics

log = logging.getLogger(__name__)

TICK = 0.02  # seconds: one RTP packet of 20 ms per call per tick
SILENT_CALLER_AFTER = 0.06  # seconds without caller audio before the tick steps the session with silence
CATCH_UP_DEPTH = 3  # frames queued for the caller past which two go out in one tick
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9}
USER_AGENT = "voicebot"
NONCE_SECONDS = 300  # a digest challenge's life
MAX_NONCES = 10_000  # challenges outstanding at once
ACTION_WORKERS = 4  # backend actions at once, for all calls (each is a few ms to ~100 ms of scrypt or SQLite)


class SipError(VoicebotError):
    """The SIP front could not start (port taken, library missing)."""


def _silence_start_up_assertion() -> None:
    """aiosipua asserts its UDP transport's class at start-up, which Python 3.11's selector
    transport fails although it works; asyncio logs the harmless traceback. Drop that one."""

    class _Filter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            exc = record.exc_info[1] if record.exc_info else None
            return not (isinstance(exc, AssertionError) and "connection_made" in record.getMessage())

    logging.getLogger("asyncio").addFilter(_Filter())


def incoming_uas(incoming: Any, uases: list[Any]) -> Any:
    """The SipUAS an INVITE arrived on (its transport's)."""
    return next((uas for uas in uases if uas.transport is incoming.transport), uases[0])


def user_part(uri: str | None) -> str | None:
    """``"Alice" <sip:+34600000001@host;tag=x>`` -> ``+34600000001``; None when withheld."""
    if not uri:
        return None
    found = re.search(r"(?:sips?|tel):([^@;>]+)", uri)
    user = found.group(1) if found else None
    if user is None or user.lower() in ("anonymous", "unknown", "restricted", "private"):
        return None
    return user


def dialed_number(incoming: Any) -> str | None:
    """The number the caller dialled: the Request-URI's user (where a trunk or a balancer puts
    it, RFC 3261 §8.2.2.1), else the To header's (aiosipua's ``callee``)."""
    return user_part(getattr(incoming.invite, "uri", None)) or user_part(incoming.callee)


# ---------------------------------------------------------------------- the library's gaps


def _library() -> Any:
    try:
        import aiortp
        import aiosipua
        from aiosipua.transport import TcpSipTransport
    except ImportError as exc:
        raise SipError(f"the SIP front needs aiosipua and aiortp ({exc}): pip install -e .") from None
    return aiosipua, aiortp, TcpSipTransport


def _tcp_transport_class() -> type:
    _, _, TcpSipTransport = _library()

    class ConnectionTcpTransport(TcpSipTransport):  # type: ignore[misc, valid-type]
        """aiosipua routes a TCP response by the top Via; a client whose Via names its
        listening port (no rport) would get nothing. Stamp received/rport with the
        connection's peer, so the answer goes back on the same connection (RFC 3261 18.2.2)."""

        def _dispatch(self, data: bytes, addr: tuple[str, int]) -> None:
            head, sep, rest = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            if lines and not lines[0].startswith(b"SIP/"):
                for index, line in enumerate(lines[1:], 1):
                    if line.split(b":", 1)[0].strip().lower() in (b"via", b"v"):
                        first, comma, more = line.partition(b",")
                        first = re.sub(rb";\s*(rport|received)(=[^;,]*)?", b"", first)
                        lines[index] = first + b";received=%s;rport=%d" % (addr[0].encode(), addr[1]) + comma + more
                        break
                data = b"\r\n".join(lines) + sep + rest
            super()._dispatch(data, addr)

    return ConnectionTcpTransport


class _DtmfEvents:
    """RFC 4733 receiver in place of aiortp's, which keys events on the RTP timestamp only:
    a sender that reuses a timestamp ("1", "1") loses the second key, and an event whose end
    packets are all lost is never reported. Here each event is reported once, at its first
    end packet; a new start after an end is a new event even on the same timestamp; an event
    that never ended is reported when the next one starts."""

    def __init__(self, on_key: Any, aiortp: Any) -> None:
        self._on_key = on_key
        self._aiortp = aiortp
        self._timestamp: int | None = None
        self._event: int | None = None
        self._ended = False
        self._ended_at = 0.0

    def handle_packet(self, packet: Any) -> None:
        event = self._aiortp.DtmfEvent.parse(packet.payload)
        now = time.monotonic()
        # A start more than 40 ms after an end on the same timestamp is a new press (a sender
        # that reuses the timestamp, as SIPp replaying one key's pcap does). A copy of the
        # ended event delayed past 40 ms by the network would count twice: not told apart.
        again = self._ended and not event.end and now - self._ended_at > 0.04
        new = packet.timestamp != self._timestamp or again
        if new:
            if self._timestamp is not None and not self._ended and self._event is not None:
                self._on_key(self._aiortp.dtmf.EVENT_TO_DIGIT.get(self._event))
            self._timestamp, self._event, self._ended = packet.timestamp, event.event, False
        if event.end and not self._ended:
            self._ended, self._ended_at = True, now
            self._on_key(event.digit)


class _RtpPorts:
    """Even RTP ports (RTCP takes the odd one above) from the configured range."""

    def __init__(self, low: int, high: int) -> None:
        first = low + (low % 2)
        self._free = deque(range(first, high, 2))

    def take(self) -> int:
        if not self._free:
            raise SipError("no RTP port left in sip.rtp_ports")
        return self._free.popleft()

    def give_back(self, port: int) -> None:
        self._free.append(port)


# ---------------------------------------------------------------------- one call


@dataclass
class SipCall:
    """One answered call: its SIP dialog, its RTP session and its call session."""

    incoming: Any  # aiosipua IncomingCall
    uas: Any  # the aiosipua SipUAS it arrived on
    source: tuple[str, int]
    session: CallSession | None = None
    meter: MeteredCall | None = None  # the session as the transport steps it: metrics, the log's call id
    rtp: Any = None  # aiortp RTPSession
    port: int = 0
    rate: int = 8000
    codec: str = ""
    sdp_session_id: str = field(default_factory=lambda: str(secrets.randbelow(10**9)))
    sdp_version: int = 0
    held: bool = False
    answered: bool = False
    ended: str = ""
    pending: dict[str, asyncio.Future[Any]] = field(default_factory=dict)  # Via branch -> final response
    caller_audio: bytearray = field(default_factory=bytearray)
    bot_frames: deque[bytes] = field(default_factory=deque)
    last_audio: float = 0.0  # loop time of the caller's last audio
    packets_seen: int = -1
    packets_changed: float = 0.0
    bye_sent: bool = False
    transfer_state: list[int] = field(default_factory=list)  # NOTIFY sipfrag statuses

    @property
    def call_id(self) -> str:
        return str(self.incoming.call_id)

    @property
    def frame_bytes(self) -> int:
        return int(self.rate * TICK) * 2


# ---------------------------------------------------------------------- the server


class SipServer:
    """``voicebot serve``: answers SIP calls until :meth:`drain` (SIGTERM) or :meth:`stop`."""

    def __init__(self, line: Line, renderer: PromptRenderer, speech: LineSpeech | None,
                 settings: SipSettings | None = None, metrics: Metrics | None = None) -> None:
        self.line = line
        self.renderer = renderer
        self.speech = speech
        self.metrics = metrics or Metrics()
        self._call_speech = self.metrics.meter_speech(speech)  # each call's recognisers timed
        self.settings = settings or line.config.sip
        host, _, port = self.settings.listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.media_address = self.settings.media_address or self.host
        self._networks = [ipaddress.ip_network(n, strict=False) for n in self.settings.allow]
        self._ports = _RtpPorts(*self.settings.rtp_ports)
        self.calls: dict[str, SipCall] = {}
        self._nonces: dict[str, tuple[float, int]] = {}  # digest nonce -> (when issued, highest nc used)
        self.accepting = True
        self.stats: dict[str, int] = {"answered": 0, "rejected_403": 0, "rejected_503": 0, "rejected_488": 0, "rejected_404": 0,
                                      "challenged_401": 0, "cancelled": 0, "rtp_timeouts": 0}
        self._uases: list[Any] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.tick_lateness: deque[float] = deque(maxlen=50_000)  # seconds, for the benchmark
        # Backend actions of every call (scrypt, SQLite): a few workers, not a thread per call
        # (each runs in its call's context: the call id on its log lines).
        self._actions = ContextThreadPoolExecutor(max_workers=ACTION_WORKERS, thread_name_prefix="sip-action")
        self.metrics.track_server(self.calls_in_progress, lambda: not self.accepting)

    def calls_in_progress(self) -> int:
        """Calls answered and not ended (any thread may ask: /healthz, /metrics)."""
        return sum(1 for call in list(self.calls.values()) if call.answered and not call.ended)

    # ------------------------------------------------------------------ start and stop

    async def start(self) -> None:
        from ..call.recording import check_recording_folder

        check_recording_folder(self.line.config)  # before any call is taken (a ConfigError says why)
        aiosipua, _, _ = _library()
        _silence_start_up_assertion()
        self._loop = asyncio.get_running_loop()
        transports = [aiosipua.UdpSipTransport(local_addr=(self.host, self.port))]
        if self.settings.tcp:
            transports.append(_tcp_transport_class()(local_addr=(self.host, self.port)))
        for transport in transports:
            uas = aiosipua.SipUAS(transport, user_agent=USER_AGENT)
            self._wire(uas)
            try:
                await uas.start()
            except OSError as exc:
                await self.stop()
                raise SipError(f"cannot listen on {self.settings.listen}: {exc.strerror or exc}") from None
            self._catch_responses(transport)
            self._uases.append(uas)
        self._tasks = [self._loop.create_task(self._tick()), self._loop.create_task(self._watch_rtp())]
        log.info("SIP: listening on %s (%s)", self.settings.listen, "udp+tcp" if self.settings.tcp else "udp")

    async def drain(self, seconds: float | None = None) -> None:
        """Take no new call; wait for the calls in progress (up to ``seconds``), then end the rest."""
        self.accepting = False
        bound = self.settings.drain_seconds if seconds is None else seconds
        log.info("SIP: draining %d call(s) (up to %.0f s)", len(self.calls), bound)
        deadline = time.monotonic() + bound
        while self.calls and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await self.stop()

    async def stop(self) -> None:
        self.accepting = False
        for call in list(self.calls.values()):
            if call.session is not None:
                call.session.hang_up("shutdown")
            self._end(call, "shutdown")
        deadline = time.monotonic() + 3.0
        while self.calls and time.monotonic() < deadline:  # the BYEs' answers, the records
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        for uas in self._uases:
            await uas.stop()
        self._uases = []
        self._actions.shutdown(wait=False)

    # ------------------------------------------------------------------ signalling

    def _wire(self, uas: Any) -> None:
        uas.on_invite = lambda incoming: self._spawn(self._on_invite(uas, incoming))
        uas.on_reinvite = lambda incoming: self._on_reinvite(incoming)
        uas.on_bye = lambda incoming, request: self._caller_left(incoming.call_id, "bye")
        uas.on_cancel = lambda request, addr: self._on_cancel(request.call_id or "")
        uas.on_ack_timeout = lambda incoming: self._caller_left(incoming.call_id, "no ACK")
        uas.on_transfer_progress = self._on_transfer_progress
        uas.on_options = lambda request, addr: self._on_options(uas, request)
        uas._handlers["INFO"] = lambda request, addr: self._on_info(uas, request)  # it would answer 405

    def _spawn(self, coroutine: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _catch_responses(self, transport: Any) -> None:
        """aiosipua drops the responses to requests we send in a dialog (BYE, REFER): it
        hands responses only to its own client's calls. Take them first."""
        from aiosipua import SipResponse

        inner = transport.on_message

        def on_message(message: Any, addr: tuple[str, int]) -> None:
            if isinstance(message, SipResponse):
                call = self.calls.get(message.call_id or "")
                branch = message.via[0].branch if message.via else None
                if call is not None and branch in call.pending and message.status_code >= 200:
                    future = call.pending.pop(branch)
                    if not future.done():
                        future.set_result(message)
                return
            inner(message, addr)

        transport.on_message = on_message

    def _reply(self, incoming: Any, status: int, reason: str, headers: dict[str, str] | None = None,
               end_dialog: bool = True) -> None:
        response = incoming.dialog.create_response(incoming.invite, status, reason)
        for name, value in (headers or {}).items():
            response.headers.set_single(name, value)
        incoming.transport.send_reply(response)
        if end_dialog:
            incoming.dialog.terminate()

    async def _on_invite(self, uas: Any, incoming: Any) -> None:
        call_id = incoming.call_id
        known = self.calls.get(call_id)
        if known is not None:
            # aiosipua made a second call (a new To tag) in place of ours: put ours back. A
            # retransmitted INVITE needs nothing more; another INVITE on a call we still hold
            # (aiosipua forgot its dialog) must not become a second call on the same Call-ID.
            uas._calls[call_id] = known.incoming
            if not (known.incoming.invite.cseq and incoming.invite.cseq and
                    known.incoming.invite.cseq.seq == incoming.invite.cseq.seq):
                self._reply(incoming, 500, "Server Internal Error", {"Retry-After": "1"}, end_dialog=False)
            return
        source = incoming.source_addr
        refusal = self._refusal(source)
        if refusal is not None:
            status, reason = refusal
            self.stats[f"rejected_{status}"] += 1
            log.info("SIP: %s from %s refused: %d %s", call_id, source[0], status, reason)
            self._refuse(uas, incoming, status, reason)
            return
        if self.settings.users and not self._authenticated(incoming):
            return
        dialed = dialed_number(incoming)
        if normalise_number(dialed or "") not in self.line.config.dialed_numbers:
            # A trunk offering a number this line does not serve (checked after access
            # control, so an unknown source cannot probe which numbers exist).
            self.stats["rejected_404"] += 1
            log.info("SIP: %s: number %s is not served here (dialed_numbers)", call_id, dialed)
            self._refuse(uas, incoming, 404, "Not Found")
            return
        offer = incoming.sdp_offer
        if offer is None:
            self.stats["rejected_488"] += 1
            self._refuse(uas, incoming, 488, "Not Acceptable Here (an offer in the INVITE is needed)")
            return
        call = SipCall(incoming, uas, source)
        self.calls[call_id] = call
        try:
            await self._set_up(call)
        except Exception:
            log.exception("SIP: %s: setting up the call failed", call_id)
            if not call.answered:
                self._refuse(uas, incoming, 500, "Server Internal Error")
                if call.rtp is not None:
                    await call.rtp.close()
                self._release(call)
            else:
                self._end(call, "internal error")

    async def _set_up(self, call: SipCall) -> None:
        aiosipua, aiortp, _ = _library()
        incoming, uas, call_id, source = call.incoming, call.uas, call.call_id, call.source
        offer = incoming.sdp_offer
        try:
            call.port = self._ports.take()
            answer, payload_type, dtmf_type = self._answer(call, offer)
            self._apply(call, offer, payload_type)
        except (aiosipua.SdpNegotiationError, SipError) as exc:
            self.stats["rejected_488"] += 1
            log.info("SIP: %s: no common codec or port (%s)", call_id, exc)
            self._refuse(uas, incoming, 488, "Not Acceptable Here")
            self._release(call)
            return
        incoming.ringing()
        try:
            call.rtp = await aiortp.RTPSession.create(
                local_addr=(self.media_address, call.port), remote_addr=offer.rtp_address,
                payload_type=payload_type, clock_rate=8000, dtmf_payload_type=dtmf_type,
                jitter_prefetch=0,  # no hold-back: the session has its own 20 ms framing
                symmetric_rtp=False,  # the SDP decides where audio goes (latching would let anyone redirect it)
            )
        except OSError as exc:
            log.warning("SIP: %s: RTP port %d: %s", call_id, call.port, exc)
            self._refuse(uas, incoming, 503, "Service Unavailable")
            self._release(call)
            return
        if call.ended:  # CANCEL while the media was set up
            await call.rtp.close()
            self._release(call)
            return
        if payload_type == 9:
            call.rtp._sender.timestamp_increment = 160  # G.722's RTP clock is 8 kHz (RFC 3551); aiortp steps 320
        call.rtp._dtmf_receiver = _DtmfEvents(lambda key: self._key(call, key, "rfc4733"), aiortp)
        call.rtp.on_audio = lambda pcm, timestamp: self._heard(call, pcm)
        call.rtp.on_dtmf = lambda digit, duration: None  # (our receiver calls _key itself)
        meta = CallMeta(transport="sip", caller_id=user_part(incoming.caller), dialed=dialed_number(incoming))
        session = CallSession(self.line, meta, self.renderer, self._call_speech, call.rate, virtual=False,
                              action_pool=self._actions)
        session.on_transfer = lambda command, ticket: self._spawn(self._transfer(call, command, ticket))
        call.meter = self.metrics.meter_call(session)
        call.session = session
        incoming.accept(answer)
        call.answered = True
        self.stats["answered"] += 1
        assert self._loop is not None
        call.last_audio = call.packets_changed = self._loop.time()
        log.info("SIP: %s answered (%s from %s, caller %s, dialled %s)", call_id, call.codec, source[0],
                 meta.caller_id or "withheld", meta.dialed, extra={"call_id": meta.call_id})
        call.meter.start()

    def _refusal(self, source: tuple[str, int]) -> tuple[int, str] | None:
        address = ipaddress.ip_address(source[0])
        if self._networks and not any(address in network for network in self._networks):
            return 403, "Forbidden"  # first: a source we do not serve learns nothing of our state
        if not self.accepting:
            return 503, "Service Unavailable (shutting down)"
        if len(self.calls) >= self.settings.max_calls:
            return 503, "Service Unavailable (line full)"
        if sum(1 for c in self.calls.values() if c.source[0] == source[0]) >= self.settings.max_calls_per_source:
            return 503, "Service Unavailable (too many calls from this address)"
        return None

    def _authenticated(self, incoming: Any) -> bool:
        """Digest (RFC 7616 qop=auth, MD5, what trunks and softphones send), checked with
        aiosipua's client-side digest code. No credentials: a 401 challenge; wrong ones: 403.
        A nonce is ours, of our realm, at most 5 minutes old, and each use must count up
        (``nc``): a captured INVITE cannot be replayed for a new call."""
        from aiosipua.auth import SipDigestAuth, build_credentials
        from aiosipua.headers import AuthChallenge, parse_auth

        now = time.monotonic()
        self._nonces = {n: (t, nc) for n, (t, nc) in self._nonces.items() if now - t < NONCE_SECONDS}
        header = incoming.invite.get_header("authorization")
        if header:
            try:
                given = parse_auth(header, credentials=True).params
                count = int(given.get("nc", ""), 16)
            except (ValueError, TypeError, AttributeError):
                given, count = {}, 0
            nonce = given.get("nonce", "")
            password = self.settings.users.get(given.get("username", ""))
            issued = self._nonces.get(nonce)
            if (password is not None and issued is not None and count > issued[1]
                    and given.get("realm") == self.settings.realm and given.get("qop") == "auth"):
                challenge = AuthChallenge("Digest", {"realm": self.settings.realm, "nonce": nonce,
                                                     "algorithm": "MD5", "qop": "auth"})
                expected = build_credentials(SipDigestAuth(given["username"], password), challenge,
                                             incoming.invite.method, given.get("uri", ""),
                                             nonce_count=count, cnonce=given.get("cnonce"))
                if expected is not None and secrets.compare_digest(str(expected.params["response"]),
                                                                   str(given.get("response", ""))):
                    self._nonces[nonce] = (issued[0], count)
                    return True
            self.stats["rejected_403"] += 1
            log.info("SIP: %s: digest authentication failed (user %r)", incoming.call_id, given.get("username"))
            self._refuse(incoming_uas(incoming, self._uases), incoming, 403, "Forbidden")
            return False
        if len(self._nonces) >= MAX_NONCES:  # a flood of unauthenticated INVITEs: no more state for them
            self._refuse(incoming_uas(incoming, self._uases), incoming, 503, "Service Unavailable")
            return False
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = (now, 0)
        self.stats["challenged_401"] += 1
        self._reply(incoming, 401, "Unauthorized", {
            "WWW-Authenticate": f'Digest realm="{self.settings.realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'})
        return False

    def _answer(self, call: SipCall, offer: Any, codecs: tuple[str, ...] | None = None) -> tuple[Any, int, int]:
        """Our SDP answer (answer, payload type, telephone-event type): the first of our codecs
        the offer has, the offer's own telephone-event type, 20 ms packets. (aiosipua picks in
        the offer's order, always answers telephone-event as 101 and copies the offer's
        ptime: all fixed here.) Changes nothing on the call: see ``_apply``."""
        aiosipua, _, _ = _library()
        problem = _unusable_media_address(offer)
        if problem:
            raise aiosipua.SdpNegotiationError(problem)
        dtmf_type = next((c.payload_type for c in offer.audio.codecs
                          if c.encoding_name.lower() == "telephone-event" and c.clock_rate == 8000), 101)
        for codec in codecs or self.settings.codecs:
            try:
                answer, payload_type = aiosipua.negotiate_sdp(
                    offer, local_ip=self.media_address, rtp_port=call.port, supported_codecs=[PAYLOAD_TYPES[codec]],
                    dtmf_payload_type=dtmf_type, session_id=call.sdp_session_id)
            except aiosipua.SdpNegotiationError:
                continue
            answer.origin.session_version = str(call.sdp_version + 1)
            answer.audio.attributes["ptime"] = ["20"]  # aiortp sends 20 ms packets whatever the offer asked
            return answer, payload_type, dtmf_type
        raise aiosipua.SdpNegotiationError("none of " + ", ".join(codecs or self.settings.codecs))

    @staticmethod
    def _held(offer: Any) -> bool:
        direction = offer.audio.direction
        if direction == "sendrecv" and "sendonly" in offer.attributes:
            direction = "sendonly"  # a session-level attribute: aiosipua reads only the media's
        if direction == "sendrecv" and "inactive" in offer.attributes:
            direction = "inactive"
        address = offer.rtp_address or ("", 0)
        return direction in ("sendonly", "inactive") or address[0] in ("0.0.0.0", "::")

    def _apply(self, call: SipCall, offer: Any, payload_type: int) -> None:
        """The answer is going out: the call takes its codec, rate and hold state."""
        call.sdp_version += 1
        call.codec = next(name for name, number in PAYLOAD_TYPES.items() if number == payload_type)
        call.rate = 16000 if payload_type == 9 else 8000
        call.held = self._held(offer)

    def _on_reinvite(self, incoming: Any) -> None:
        """Hold, resume, a new address: the call keeps the codec it started with (its session
        runs at one rate), so only that codec is offered back; a refusal changes nothing."""
        aiosipua, _, _ = _library()
        call = self.calls.get(incoming.call_id)
        offer = incoming.sdp_offer
        if call is None or offer is None or call.rtp is None:
            self._reply(incoming, 488, "Not Acceptable Here", end_dialog=False)  # reject() would end the call
            return
        try:
            answer, payload_type, _ = self._answer(call, offer, (call.codec,))
        except aiosipua.SdpNegotiationError:
            self._reply(incoming, 488, "Not Acceptable Here (the call's codec is needed)", end_dialog=False)
            return
        self._apply(call, offer, payload_type)
        address = offer.rtp_address
        if address and address[0] not in ("0.0.0.0", "::"):
            call.rtp.update_remote(address)
        log.info("SIP: %s %s", call.call_id, "on hold" if call.held else "resumed")
        if call.session is not None:
            call.session.note("hold" if call.held else "resume")
        incoming.accept(answer)

    def _on_options(self, uas: Any, request: Any) -> None:
        """A ping (a balancer's health probe): 200 while calls are taken, 503 while draining."""
        status, reason = (200, "OK") if self.accepting else (503, "Service Unavailable")
        uas._send_error(request, status, reason,  # (its generic reply, whatever the status)
                        extra_headers={"Allow": "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY"})

    def _on_info(self, uas: Any, request: Any) -> None:
        call = self.calls.get(request.call_id or "")
        if call is None:
            uas._send_error(request, 481, "Call/Transaction Does Not Exist")
            return
        if not uas._validate_in_dialog(call.incoming.dialog, request):
            return  # it answered 481/500 itself
        uas.transport.send_reply(call.incoming.dialog.create_response(request, 200, "OK"))
        kind = (request.content_type or "").split(";")[0].strip().lower()
        body = request.text or ""
        if kind == "application/dtmf-relay":
            fields = dict(line.split("=", 1) for line in body.replace("\r", "").split("\n") if "=" in line)
            self._key(call, fields.get("Signal", "").strip(), "sip-info")
        elif kind == "application/dtmf":
            self._key(call, body.strip(), "sip-info")

    def _on_cancel(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None:
            return
        if call.answered:
            # The CANCEL crossed our 200: the call stands (RFC 3261 9.2), the caller will ACK
            # and BYE. aiosipua forgot the dialog all the same: give it back, or that BYE gets 481.
            call.uas._calls[call_id] = call.incoming
            return
        self.stats["cancelled"] += 1
        call.ended = "cancelled"
        log.info("SIP: %s cancelled before answer", call_id)

    def _caller_left(self, call_id: str, why: str) -> None:
        call = self.calls.get(call_id)
        if call is None:
            return
        call.bye_sent = True  # the dialog is over: nothing to send
        if call.session is not None and not call.session.finished:
            call.session.hang_up(None if why == "bye" else why)
        self._end(call, why)

    # ------------------------------------------------------------------ media

    def _heard(self, call: SipCall, pcm: bytes) -> None:
        """The caller's audio (16-bit PCM at the call's rate, any packet size): 20 ms frames
        through the session as they complete; its answers queue for the tick."""
        session, meter = call.session, call.meter
        if session is None or meter is None or call.ended or call.held:
            return
        assert self._loop is not None
        call.last_audio = self._loop.time()
        call.caller_audio += pcm
        size = call.frame_bytes
        while len(call.caller_audio) >= size and not session.finished:
            frame = np.frombuffer(bytes(call.caller_audio[:size]), dtype="<i2")
            del call.caller_audio[:size]
            call.bot_frames.append(self._pcm(meter.step(frame)))
        if session.finished:
            self._session_over(call)

    @staticmethod
    def _pcm(samples: np.ndarray) -> bytes:
        return (np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()

    def _key(self, call: SipCall, key: str, source: str) -> None:
        if call.meter is not None and key and not call.ended:
            call.meter.press(key, source)

    async def _tick(self) -> None:
        """Every call's next 20 ms to its caller, on one clock for all."""
        assert self._loop is not None
        loop = self._loop
        deadline = loop.time() + TICK
        while True:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            now = loop.time()
            self.tick_lateness.append(now - deadline)
            deadline += TICK
            if now - deadline > 1.0:  # the loop was stalled: start again from now, do not burst
                deadline = now + TICK
            for call in list(self.calls.values()):
                try:
                    self._send_next(call, now)
                except Exception:  # one broken call must not stop the others' audio
                    log.exception("SIP: %s: sending audio failed", call.call_id)
                    self._end(call, "internal error")

    def _send_next(self, call: SipCall, now: float) -> None:
        session, meter = call.session, call.meter
        if session is None or meter is None or call.rtp is None or call.ended or call.held:
            return
        if not call.bot_frames and now - call.last_audio > SILENT_CALLER_AFTER and not session.finished:
            # No audio from the caller (silence suppression, a line gone quiet): the call
            # goes on, on our clock, so prompts play and timers run.
            call.bot_frames.append(self._pcm(meter.step(np.zeros(call.frame_bytes // 2, dtype=np.int16))))
            call.last_audio = now - SILENT_CALLER_AFTER  # one frame per tick from now on
        for _ in range(2 if len(call.bot_frames) > CATCH_UP_DEPTH else 1):
            if call.bot_frames:
                call.rtp.send_audio_pcm_auto(call.bot_frames.popleft())
        if session.finished:
            self._session_over(call)

    def _session_over(self, call: SipCall) -> None:
        """The session ended the call (goodbye, transfer): BYE once the caller has heard its last frame."""
        if not call.bot_frames and not call.ended:
            self._end(call, "line hung up")

    async def _watch_rtp(self) -> None:
        """No RTP for ``rtp_timeout`` seconds (not on hold): the caller is gone (aiortp has no such timer)."""
        assert self._loop is not None
        while True:
            await asyncio.sleep(1.0)
            now = self._loop.time()
            for call in list(self.calls.values()):
                if call.rtp is None or call.ended:
                    continue
                received = call.rtp.stats.get("packets_received", 0)  # reset by a new SSRC: compare, not grow
                if call.held or received != call.packets_seen:
                    call.packets_seen, call.packets_changed = received, now
                elif now - call.packets_changed > self.settings.rtp_timeout:
                    self.stats["rtp_timeouts"] += 1
                    log.info("SIP: %s: no RTP for %.0f s: the caller is gone", call.call_id, self.settings.rtp_timeout)
                    if call.session is not None:
                        call.session.hang_up("rtp_timeout")
                    self._end(call, "rtp timeout")

    # ------------------------------------------------------------------ requests of ours

    def _send_in_dialog(self, call: SipCall, method: str, headers: dict[str, str]) -> asyncio.Future[Any]:
        """A request in the call's dialog, retransmitted over UDP (RFC 3261 timer E) until
        its final response, which the future gets (or TimeoutError after 32 s)."""
        from aiosipua.utils import format_addr

        incoming = call.incoming
        host, port = incoming._signaling_addr()
        request = incoming.dialog.create_request(method, via_host=host, via_port=port,
                                                 via_transport="UDP" if not incoming.transport.reliable else "TCP")
        request.headers.set_single("Contact", f"<sip:{format_addr(host, port)}>")
        for name, value in headers.items():
            request.headers.set_single(name, value)
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        call.pending[request.via[0].branch] = future
        incoming.transport.send(request, incoming.source_addr)
        if not incoming.transport.reliable:
            self._spawn(self._retransmit(call, request, future))
        return future

    async def _retransmit(self, call: SipCall, request: Any, future: asyncio.Future[Any]) -> None:
        interval, waited = 0.5, 0.0
        while not future.done() and waited < 32.0:
            try:
                await asyncio.wait_for(asyncio.shield(future), interval)
                return
            except asyncio.TimeoutError:
                waited += interval
                interval = min(interval * 2, 4.0)
                if not future.done():
                    call.incoming.transport.send(request, call.incoming.source_addr)
        if not future.done():
            future.set_exception(asyncio.TimeoutError())

    async def _transfer(self, call: SipCall, command: Transfer, ticket: str) -> None:
        """Blind transfer: REFER the caller to the agents; the hand-off's ticket and reason
        go in a header (the context is in the desk's record, never a secret on the wire)."""
        target = self.line.config.agent.target
        session = call.session
        assert session is not None
        if not target.startswith(("sip:", "sips:")):
            log.info("SIP: %s: agent target %r is not a SIP URI: the caller is told the number", call.call_id, target)
            session.transfer_answered(False)
            return
        context = json.dumps({"ticket": ticket, "reason": command.reason, "call": session.meta.call_id},
                             separators=(",", ":"))
        future = self._send_in_dialog(call, "REFER", {
            "Refer-To": f"<{target}>",
            "Referred-By": f"<{call.incoming.dialog.local_uri}>",
            "X-Voicebot-Context": context,
        })
        try:
            response = await asyncio.wait_for(future, self.settings.transfer_timeout)
            status = response.status_code
        except asyncio.TimeoutError:
            status = 408
        if status >= 300:
            log.info("SIP: %s: REFER refused (%d): the caller hears the agent's number", call.call_id, status)
            session.transfer_answered(False)
            return
        # 202: accepted. The NOTIFYs say how the new call went; a final one that fails
        # means the caller is still ours. No final NOTIFY in time: the transfer stands.
        deadline = time.monotonic() + self.settings.transfer_timeout
        while time.monotonic() < deadline and not call.ended:
            finals = [s for s in call.transfer_state if s >= 200]
            if finals:
                break
            await asyncio.sleep(0.05)
        finals = [s for s in call.transfer_state if s >= 200]
        accepted = not finals or 200 <= finals[0] < 300
        log.info("SIP: %s: transfer %s", call.call_id, "done" if accepted else f"failed ({finals[0]})")
        session.transfer_answered(accepted)

    def _on_transfer_progress(self, call_id: str, status: int, reason: str) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            call.transfer_state.append(status)

    # ------------------------------------------------------------------ the end of a call

    def _end(self, call: SipCall, why: str) -> None:
        # A call cancelled while its media was being set up is still to be released (stop()).
        if call.ended and call.ended != "cancelled":
            return
        call.ended = why
        incoming = call.incoming
        from aiosipua.dialog import DialogState

        if call.answered and not call.bye_sent and incoming.dialog.state == DialogState.CONFIRMED:
            call.bye_sent = True
            self._send_in_dialog(call, "BYE", {})
            incoming._stop_retransmissions()
            incoming.dialog.terminate()
        call.uas._calls.pop(call.call_id, None)
        self._spawn(self._close(call))

    async def _close(self, call: SipCall) -> None:
        try:
            if call.pending:  # our BYE's answer (or its timeout) before the dialog is forgotten
                await asyncio.wait(list(call.pending.values()), timeout=4.0)
            if call.rtp is not None:
                await call.rtp.close()
            meter = call.meter
            if meter is not None:
                assert self._loop is not None
                # The record goes to SQLite after the call's actions are done: off the loop.
                record = await self._loop.run_in_executor(None, meter.finish)
                log.info("SIP: %s ended (%s): %s", call.call_id, call.ended, record.get("outcome"),
                         extra={"call_id": meter.call_id})
        except Exception:
            log.exception("SIP: %s: closing the call failed", call.call_id)
        finally:
            self._release(call)  # whatever failed, the call no longer counts against the limits

    def _refuse(self, uas: Any, incoming: Any, status: int, reason: str) -> None:
        """A final error to an INVITE, and aiosipua forgets it (it would wait for an ACK a
        scanner never sends, and keep the call for good)."""
        incoming.reject(status, reason)
        self.metrics.refused(status, reason)
        if uas._calls.get(incoming.call_id) is incoming:
            del uas._calls[incoming.call_id]

    def _release(self, call: SipCall) -> None:
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]
        if call.port:
            self._ports.give_back(call.port)
            call.port = 0


async def serve(server: SipServer, ready: Any = None) -> None:
    """Run until SIGTERM (drain: calls in progress finish) or SIGINT (end the calls now)."""
    import signal

    await server.start()
    loop = asyncio.get_running_loop()
    draining, stopping = asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, draining.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    if ready is not None:
        ready()
    waits = [loop.create_task(draining.wait()), loop.create_task(stopping.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()
    if draining.is_set():
        await server.drain()
    else:
        await server.stop()


class SipThread:
    """The SIP front on its own thread and event loop, beside a call in the foreground
    (``voicebot run``: the console or headset call, and softphones at the same time)."""

    def __init__(self, server: SipServer) -> None:
        import threading

        self.server = server
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sip", daemon=True)

    def start(self) -> None:
        """Return once SIP is answered (or raise why it cannot be, e.g. the port is taken)."""
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()

    def stop(self, drain: float = 0.0) -> None:
        """End: let calls in progress finish for up to ``drain`` seconds, then end the rest."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self.server.drain(drain), self._loop)
        try:
            future.result(drain + 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def _unusable_media_address(offer: Any) -> str | None:
    """Why the offer's audio address cannot be sent to, or None. The library takes any port
    number and any host text: a port past 65535 (or 0, a refused stream) or a name in place of
    an address would only fail later, inside the call's RTP session."""
    if offer.audio is None:
        return "no audio stream offered"
    address = offer.rtp_address
    if not address:
        return "no audio address"
    host, port = address
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "the audio address is not an IP address"
    if not isinstance(port, int) or not 0 < port < 65536:
        return "the audio port is out of range"
    return None
