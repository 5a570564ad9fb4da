"""Operations of ``voicebot serve``: ``/healthz`` for a balancer, ``/metrics`` for Prometheus.

One small HTTP listener per process (``ops.listen``, ``--ops HOST:PORT``): the standard
library's ``ThreadingHTTPServer`` on a daemon thread. Two fixed paths do not need a WSGI
stack; prometheus_client's own ``start_http_server`` serves only the metrics; a thread per
request keeps a slow database check from holding up a scrape.

``GET /healthz``: 200 and ``{"status": "ok", ...}`` while the instance takes calls; 503
while it starts, once SIGTERM began the drain (``"draining"``: OPTIONS answer 503 too, so
Kamailio and an orchestrator take it out), and when the database does not answer a
``SELECT 1`` within ``ops.database_timeout``. ``GET /metrics``: Prometheus text format
from this process's own :class:`Metrics` registry. Anything else: 404.

Every label is a closed set of words fixed here (an outcome, an input mode, a step name,
a fault kind, a SIP status): never a caller ID, a dialled number, a key typed or any text
that came from outside. Values outside a set are counted as ``other``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector

from .errors import VoicebotError
from .logs import call_context
from .menu.model import Outcome

if TYPE_CHECKING:
    from .asr.speech import LineSpeech
    from .call.session import CallSession
    from .dtmf.detector import KeyTone

log = logging.getLogger(__name__)

OTHER = "other"
OUTCOMES = (*(outcome.value for outcome in Outcome), "interrupted")
# The engine's input modes (CallRecord.inputs) -> the label: keys are "dtmf".
INPUT_MODES = {"key": "dtmf", "speech": "speech", "timeout": "timeout", "confirm": "confirm",
               "repeat": "repeat", "shortcut": "shortcut"}
KEY_SOURCES = ("tone", "rfc4733", "sip-info")
# How an action's detail (voicebot.rasa_actions, voicebot.dialog.engine) names a backend fault.
FAULT_KINDS = (
    ("no answer in time", "timeout"),  # the engine's action timer ran out (timeouts.action)
    ("BackendUnavailable", "unavailable"),  # down, timed out, or the step ran past its time and was undone
    ("BackendReplyError", "bad_reply"),  # an answer of the wrong shape
    ("BackendError", "refused"),  # the backend refused or failed the operation
    ("unusable data", "unusable_data"),
    ("unexpected fault", "unexpected"),
    ("unexpected result", "unexpected_result"),  # a result the menu has no route for
)
SIP_STATUSES = ("403", "404", "488", "500", "503")
SIP_REASONS = {  # the parenthesis of our 503s (voicebot.transports.sip._refusal)
    "shutting down": "draining", "line full": "max_calls", "too many calls from this address": "max_calls_per_source"}
SIP_STATUS_REASONS = {"403": "forbidden", "404": "number_not_served", "488": "no_common_media",
                      "500": "internal_error", "503": "unavailable"}
_WORD = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")

DTMF_BUCKETS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
ASR_BUCKETS = (0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)


class OpsError(VoicebotError):
    """The ops listener could not start (its address is taken, or not this machine's)."""


# ---------------------------------------------------------------------- metrics


class Metrics:
    """This process's metrics, on a registry of its own (not prometheus_client's global one:
    a test, or a process running two fronts, builds as many as it needs)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls_in_progress = Gauge(
            "voicebot_calls_in_progress", "SIP calls answered and not yet ended", registry=r)
        self.draining = Gauge(
            "voicebot_draining", "1 once SIGTERM started the drain (no new call is taken), else 0", registry=r)
        self.calls_ended = Counter(
            "voicebot_calls_ended", "SIP calls ended, by the outcome of their call record: the engine's outcomes "
            "(failed also when the line could not close the call properly)", ["outcome"], registry=r)
        self.inputs = Counter(
            "voicebot_inputs", "Inputs the dialog engine took, by mode: dtmf (keys; a whole entry such as a PIN is "
            "one), speech, timeout (nothing before the timer), confirm (yes/no to digits heard, by key or voice), "
            "repeat (the end message again), shortcut (a step answered by an earlier sentence)", ["mode"], registry=r)
        self.dtmf_latency = Histogram(
            "voicebot_dtmf_latency_seconds", "From the end of a key to the dialog engine having it: for source=tone, "
            "from the end of its tone in the caller's audio (the detector needs some audio after it); for "
            "rfc4733/sip-info, from its end event or INFO reaching the line. What a caller waits for on each key",
            ["source"], buckets=DTMF_BUCKETS, registry=r)
        self.asr_latency = Histogram(
            "voicebot_asr_latency_seconds", "From the end of the caller's speech (the last voiced frame the "
            "recogniser heard) to its final result: the end-of-speech silence (speech.end_silence_*, 0.25-0.6 s) "
            "plus the decoding; growing past that, the decoder threads are short", ["language"],
            buckets=ASR_BUCKETS, registry=r)
        self.backend_errors = Counter(
            "voicebot_backend_errors", "Backend steps that failed and sent the caller to an agent with an apology, "
            "by step and kind (timeout, unavailable, bad_reply, refused, unusable_data, unexpected, "
            "unexpected_result, other)", ["step", "kind"], registry=r)
        self.sip_refused = Counter(
            "voicebot_sip_refused", "INVITEs refused, by status and reason (draining, max_calls, "
            "max_calls_per_source, forbidden, number_not_served, no_common_media, unavailable, internal_error)",
            ["status", "reason"], registry=r)
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, start time
        for outcome in (*OUTCOMES, OTHER):  # every series exists from the start: rate() needs a zero
            self.calls_ended.labels(outcome)
        for mode in INPUT_MODES.values():
            self.inputs.labels(mode)
        for source in KEY_SOURCES:
            self.dtmf_latency.labels(source)
        self.sip_refused.labels("503", "max_calls")
        self.sip_refused.labels("503", "draining")

    # ------------------------------------------------------------------ what the SIP front reports

    def track_server(self, calls_in_progress: Callable[[], int], draining: Callable[[], bool]) -> None:
        """Read at each scrape from the server itself, so they cannot drift."""
        self.calls_in_progress.set_function(lambda: float(calls_in_progress()))
        self.draining.set_function(lambda: 1.0 if draining() else 0.0)

    def call_ended(self, outcome: object) -> None:
        self.calls_ended.labels(outcome if outcome in OUTCOMES else OTHER).inc()

    def input_taken(self, mode: object) -> None:
        self.inputs.labels(INPUT_MODES.get(str(mode), OTHER)).inc()

    def key_latency(self, source: str, seconds: float) -> None:
        self.dtmf_latency.labels(source if source in KEY_SOURCES else OTHER).observe(max(0.0, seconds))

    def speech_latency(self, language: str, seconds: float) -> None:
        self.asr_latency.labels(language if _LANGUAGE.match(language) else OTHER).observe(max(0.0, seconds))

    def action_recorded(self, action: dict[str, Any]) -> None:
        """One entry of a call record's ``actions``: counted if the caller got the apology."""
        detail = str(action.get("detail") or "")
        if action.get("result") != "error" and not detail.startswith("unexpected result"):
            return
        step = str(action.get("action") or "")
        kind = next((kind for prefix, kind in FAULT_KINDS if detail.startswith(prefix)), OTHER)
        self.backend_errors.labels(step if _WORD.match(step) else OTHER, kind).inc()

    def refused(self, status: int, reason: str) -> None:
        code = str(status) if str(status) in SIP_STATUSES else OTHER
        why = next((word for text, word in SIP_REASONS.items() if text in reason.lower()),
                   SIP_STATUS_REASONS.get(code, OTHER))
        self.sip_refused.labels(code, why).inc()

    # ------------------------------------------------------------------ per call

    def meter_call(self, session: CallSession) -> MeteredCall:
        return MeteredCall(session, self)

    def meter_speech(self, speech: LineSpeech | None) -> LineSpeech | None:
        """The speech the SIP front gives its calls: each recogniser timed (ASR latency)."""
        return None if speech is None else cast("LineSpeech", MeteredSpeech(speech, self))

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The body and content type of /metrics (OpenMetrics if the scraper asks for it)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class MeteredCall:
    """A SIP call's session as the transport drives it: each step runs with the call's id
    in the log context, and what the engine took since the last step is counted."""

    def __init__(self, session: CallSession, metrics: Metrics) -> None:
        self.session = session
        self.metrics = metrics
        self.call_id = session.meta.call_id
        self._inputs = 0  # entries of the record already counted
        self._actions = 0
        self._seen = 0  # transcript entries already looked at
        self._pressed: list[tuple[str, float]] = []  # (source, monotonic) of keys not yet stepped
        self._tones: list[KeyTone] = []  # keys the detector found in this step
        session.on_key_tone = self._tone_found

    def start(self) -> None:
        with call_context(self.call_id):
            self.session.start()
        self._count()

    def press(self, key: str, source: str) -> None:
        self._pressed.append((source, time.monotonic()))
        self.session.press(key, source)

    def _tone_found(self, tone: KeyTone) -> None:
        self._tones.append(tone)

    def step(self, frame: Any) -> Any:
        began = time.monotonic()
        with call_context(self.call_id):
            out = self.session.step(frame)
        self._after_step(began)
        return out

    def finish(self) -> dict[str, Any]:
        """The call record (``CallSession.finish``), counted: runs on a worker thread."""
        with call_context(self.call_id):
            try:
                record = self.session.finish()
            except Exception:
                self.metrics.call_ended("failed")
                raise
        self._count()
        self.metrics.call_ended(record.get("outcome"))
        return record

    def _after_step(self, began: float) -> None:
        done = time.monotonic()
        # Keys the engine took in this step, in order: pair each with what reported it. A
        # press the session dropped (the same key from two sources) has no transcript entry.
        transcript = self.session.transcript
        new, self._seen = transcript[self._seen:], len(transcript)
        tones, self._tones = self._tones, []
        pressed, self._pressed = self._pressed, []
        for entry in new:
            if entry.kind != "key":
                continue
            source = entry.detail.get("source")
            if source == "tone" and tones:
                # The audio the detector needed past the tone's end, plus this step's own time.
                tone = tones.pop(0)
                self.metrics.key_latency("tone", self.session.now - tone.end + (done - began))
            else:
                index = next((i for i, (s, _) in enumerate(pressed) if s == source), None)
                if index is not None:
                    self.metrics.key_latency(str(source), done - pressed.pop(index)[1])
        self._count()

    def _count(self) -> None:
        record = self.session.engine.record
        for item in record.inputs[self._inputs:]:
            self.metrics.input_taken(item.get("mode"))
        self._inputs = len(record.inputs)
        for action in record.actions[self._actions:]:
            self.metrics.action_recorded(action)
        self._actions = len(record.actions)


class MeteredSpeech:
    """A :class:`~voicebot.asr.speech.LineSpeech` whose recognisers are timed; the rest is the speech's own."""

    def __init__(self, speech: LineSpeech, metrics: Metrics) -> None:
        self._speech = speech
        self._metrics = metrics

    def new_recognizer(self, language: str, sample_rate: int) -> Any:
        recognizer = self._speech.new_recognizer(language, sample_rate)
        return None if recognizer is None else MeteredRecognizer(recognizer, self._metrics, language, sample_rate)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._speech, name)


class MeteredRecognizer:
    """A recogniser whose final results are timed from the end of the speech they hold.

    The recogniser is fed the call's audio as it arrives (every 20 ms while it listens), so
    the audio fed since a result's ``end_sample`` is the time the caller has waited since
    they stopped speaking; add the time of the feed that brought the result back."""

    def __init__(self, recognizer: Any, metrics: Metrics, language: str, sample_rate: int) -> None:
        self._recognizer = recognizer
        self._metrics = metrics
        self._language = language
        self._rate = sample_rate
        self._fed = 0  # samples fed, at the input rate (the results' sample positions)

    def feed(self, samples: Any) -> list[Any]:
        began = time.monotonic()
        events = self._recognizer.feed(samples)
        self._fed += len(samples)
        return self._timed(events, began)

    def wait(self, timeout: float | None = None) -> list[Any]:
        began = time.monotonic()
        return self._timed(self._recognizer.wait(timeout), began)

    def poll(self) -> list[Any]:
        return self._timed(self._recognizer.poll(), time.monotonic())

    def _timed(self, events: list[Any], began: float) -> list[Any]:
        from .asr.recognizer import FinalTranscript

        for event in events:
            if isinstance(event, FinalTranscript):
                waited = (self._fed - event.end_sample) / self._rate + (time.monotonic() - began)
                self._metrics.speech_latency(self._language, waited)
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recognizer, name)


# ---------------------------------------------------------------------- health


class DatabaseProbe:
    """``SELECT 1`` in a read transaction, bounded: at most one probe runs at a time (a hung
    database holds one thread, not one per request); a check waits ``timeout`` for it."""

    def __init__(self, db: Any, timeout: float) -> None:
        self._db = db
        self._timeout = timeout
        self._lock = threading.Lock()
        self._probe: tuple[threading.Thread, threading.Event, list[str]] | None = None
        self._last = "ok"

    def check(self) -> str:
        """ok; error (the database refused or is gone); timeout (no answer in time)."""
        with self._lock:
            if self._probe is None or not self._probe[0].is_alive():
                done, result = threading.Event(), ["timeout"]
                thread = threading.Thread(target=self._run, args=(done, result), name="ops-database-probe",
                                          daemon=True)
                self._probe = (thread, done, result)
                thread.start()
            _, done, result = self._probe
        done.wait(self._timeout)
        state = result[0]
        if state != self._last:
            level = logging.INFO if state == "ok" else logging.WARNING
            log.log(level, "health: the database %s", "answers again" if state == "ok" else
                    f"does not answer ({state}): /healthz says 503")
            self._last = state
        return state

    def _run(self, done: threading.Event, result: list[str]) -> None:
        try:
            with self._db.transaction(write=False) as conn:
                conn.execute("SELECT 1").fetchone()
            result[0] = "ok"
        except Exception as exc:  # whatever the driver raises: the database is not usable
            log.debug("health: database check failed: %s", exc)
            result[0] = "error"
        finally:
            done.set()


class LineHealth:
    """What /healthz answers: (status code, body). 503 until :meth:`attach` and ``ready``."""

    def __init__(self, database_timeout: float = 2.0) -> None:
        self._database_timeout = database_timeout
        self._server: Any = None
        self._probe: DatabaseProbe | None = None
        self.ready = False

    def attach(self, server: Any, db: Any) -> None:
        """The SIP server (``accepting``, ``calls_in_progress()``) and the line's database."""
        self._server = server
        self._probe = DatabaseProbe(db, self._database_timeout)

    def __call__(self) -> tuple[int, dict[str, Any]]:
        server, probe = self._server, self._probe
        if server is None or probe is None or not self.ready:
            return 503, {"status": "starting", "calls_in_progress": 0, "draining": False, "database": "unknown"}
        draining = not server.accepting
        database = probe.check()
        body = {"status": "ok", "calls_in_progress": server.calls_in_progress(), "draining": draining,
                "database": database}
        if draining:
            body["status"] = "draining"
        elif database != "ok":
            body["status"] = "database_unreachable"
        return (200 if body["status"] == "ok" else 503), body


# ---------------------------------------------------------------------- the listener


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    metrics: Metrics
    health: Callable[[], tuple[int, dict[str, Any]]]

    def server_bind(self) -> None:
        # HTTPServer's own looks the host's name up in the DNS (getfqdn): an offline machine waits for it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # seconds a client may take to send its request

    def version_string(self) -> str:
        return "voicebot"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            status, state = self.server.health()
            self._send(status, (json.dumps(state) + "\n").encode(), "application/json", body)
        elif path == "/metrics":
            data, content_type = self.server.metrics.exposition(self.headers.get("Accept"))
            self._send(200, data, content_type, body)
        else:
            self._send(404, b"not found: /healthz or /metrics\n", "text/plain; charset=utf-8", body)

    def _send(self, status: int, data: bytes, content_type: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a probe every second is not news (http.server would print each to stderr)


class OpsListener:
    """``/healthz`` and ``/metrics`` on ``listen`` (host:port; port 0: any free one), on a daemon thread."""

    def __init__(self, listen: str, metrics: Metrics, health: Callable[[], tuple[int, dict[str, Any]]]) -> None:
        host, port = split_listen(listen)
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = server_class((host, port), _Handler)
        except OSError as exc:
            raise OpsError(f"cannot listen on {listen} for /healthz and /metrics: {exc.strerror or exc}") from None
        self._server.metrics = metrics
        self._server.health = health
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.25},
                                        name="ops-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> OpsListener:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def sd_notify(state: str) -> bool:
    """Tell systemd (``Type=notify``) how the service is, e.g. ``READY=1``; False outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("systemd notification %r not sent: %s", state.split("=")[0], exc)
        return False
    return True
