"""`voicebot bank serve`: the embedded SQLite bank behind the HTTP contract of ``data/bank_api.yaml``.

It lets :class:`~voicebot.backends.http_bank.HttpBank` be tested against a real server, and
shows a bank exactly what to implement. :class:`BankApi` is the contract without the
sockets: ``handle(method, path, headers, body) -> Reply``; :func:`make_server` puts it
behind the standard library's ``ThreadingHTTPServer``.

Why the standard library and not Sanic (installed with rasa-sdk): every bank operation is
synchronous and blocking (scrypt, SQLite's write lock), so an event loop would only hand
each request to a thread pool anyway; a thread per request is the same with nothing more to
start, no global app registry, and it runs in a test thread as easily as in a process.

Nothing secret is logged: a request's line (method, path: customer id and operation
reference, neither secret) and its status, never a body or a header. Error replies are
fixed texts per error code and never quote the request (its body may hold a PIN).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import BackendError
from ..masking import Secret
from .base import BankingBackend, Channel, CodePurpose, Contacts, Document, DocumentType

log = logging.getLogger(__name__)

CONTRACT = Path(__file__).resolve().parent.parent / "data" / "bank_api.yaml"
MAX_BODY = 16 * 1024
IDEMPOTENCY_SECONDS = 15 * 60  # a retry comes within seconds; held no longer, as replies hold clear secrets
IDEMPOTENCY_ENTRIES = 10_000
_IN_FLIGHT_WAIT = 60.0

_ID = r"[A-Za-z0-9_-]{1,64}"
_REF = r"[A-Za-z0-9_-]{1,40}"
_KEY = re.compile(r"[!-~]{16,200}")

_MESSAGES = {
    "bad_request": "the request is malformed",
    "unauthorized": "a valid bearer token is required",
    "not_found": "no such resource",
    "unknown_customer": "no such customer",
    "refused": "the bank will not do this for this customer",
    "method_not_allowed": "method not allowed here",
    "too_large": "the request body is too large",
    "idempotency_key_required": "this operation needs an Idempotency-Key header",
    "idempotency_key_reused": "this Idempotency-Key was used for another request",
    "internal": "the bank failed; nothing was done",
    "unavailable": "the bank is unavailable; nothing was done",
}


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


class _BadRequest(Exception):
    """A request that does not follow the contract; its text names a field, never a value."""


def error_reply(status: int, code: str, detail: str | None = None) -> Reply:
    body = {"error": code, "message": detail or _MESSAGES[code]}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return Reply(status, json.dumps(body).encode(), headers)


def _json_reply(status: int, value: Any) -> Reply:
    return Reply(status, json.dumps(value, ensure_ascii=False).encode())


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _contacts(contacts: Contacts) -> dict[str, Any]:
    return {"customer_id": contacts.customer_id, "name": contacts.name, "email": contacts.email,
            "mobile": contacts.mobile, "language": contacts.language}


def _field(body: Mapping[str, Any], name: str, kind: type, optional: bool = False) -> Any:
    value = body.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise _BadRequest(f"{name}: missing or not a {kind.__name__}")
    return value


def _only(body: Mapping[str, Any], *names: str) -> None:
    extra = set(body) - set(names)
    if extra:
        raise _BadRequest(f"unknown field(s) {sorted(extra)}")  # names only: they are the client's keys


@dataclass
class _Remembered:
    fingerprint: str
    done: threading.Event
    reply: Reply | None = None
    expires: float = 0.0


class IdempotencyCache:
    """The first complete reply per Idempotency-Key, in memory, for ``seconds``.

    In memory on purpose: the replies hold clear temporary passwords and codes, which must
    not reach a disk. A restart forgets the keys; a retry after it does the work again (a
    new password or code supersedes the lost one: still one live credential)."""

    def __init__(self, seconds: float = IDEMPOTENCY_SECONDS, capacity: int = IDEMPOTENCY_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[str, _Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def run(self, key: str, fingerprint: str, work: Callable[[], Reply]) -> Reply:
        with self._lock:
            self._expire()
            entry = self._entries.get(key)
            owner = entry is None
            if entry is None:
                entry = _Remembered(fingerprint, threading.Event())
                self._entries[key] = entry
        if not owner:
            if not hmac.compare_digest(entry.fingerprint, fingerprint):
                return error_reply(422, "idempotency_key_reused")
            # The first request with this key is still running (a client retried past its time-out).
            if not entry.done.wait(_IN_FLIGHT_WAIT) or entry.reply is None:
                return error_reply(503, "unavailable")
            return entry.reply
        reply = error_reply(500, "internal")
        try:
            reply = work()
        finally:
            with self._lock:
                if reply.status >= 500:
                    # Nothing was done (the bank's transaction rolled back): a retry may do it.
                    self._entries.pop(key, None)
                else:
                    entry.reply = reply
                    entry.expires = self._clock() + self.seconds
            entry.done.set()
        return reply

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, e in self._entries.items() if e.done.is_set() and e.expires <= now]:
            del self._entries[key]
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


class BankApi:
    """The contract over a :class:`BankingBackend`: requests in, :class:`Reply` out; no sockets."""

    def __init__(self, bank: BankingBackend, token: str | None = None,
                 idempotency: IdempotencyCache | None = None) -> None:
        self.bank = bank
        self._token = token.encode() if token else None
        self.idempotency = idempotency or IdempotencyCache()
        # (method, path pattern, handler, needs an Idempotency-Key)
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Reply], bool]] = [
            ("POST", re.compile(r"/v1/verifications"), self._verify_card, False),
            ("POST", re.compile(r"/v1/customer-lookups"), self._customer_by_phone, False),
            ("GET", re.compile(rf"/v1/customers/(?P<customer_id>{_ID})/contacts"), self._get_contacts, False),
            ("POST", re.compile(rf"/v1/customers/(?P<customer_id>{_ID})/recoveries"), self._recover_user, True),
            ("PUT", re.compile(rf"/v1/customers/(?P<customer_id>{_ID})/signature"), self._unlock_signature, False),
            ("GET", re.compile(rf"/v1/customers/(?P<customer_id>{_ID})/blocked-operations/(?P<reference>{_REF})"),
             self._blocked_operation, False),
            ("POST", re.compile(rf"/v1/customers/(?P<customer_id>{_ID})/codes"), self._issue_code, True),
            ("POST", re.compile(rf"/v1/customers/(?P<customer_id>{_ID})/code-redemptions"), self._redeem_code, False),
            ("POST", re.compile(rf"/v1/customers/(?P<customer_id>{_ID})/password-change-confirmations"),
             self._confirm_password_change, False),
        ]

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if self._token is not None:
            given = headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._token):
                return error_reply(401, "unauthorized")
        path = path.split("?", 1)[0]
        allowed = False
        for route_method, pattern, handler, keyed in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method != method:
                allowed = True
                continue
            try:
                payload = self._payload(body)
            except _BadRequest as exc:
                return error_reply(400, "bad_request", str(exc))
            if not keyed:
                return self._run(handler, payload, match.groupdict())
            key = headers.get("idempotency-key", "")
            if not _KEY.fullmatch(key):
                return error_reply(400, "idempotency_key_required")
            fingerprint = hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()
            return self.idempotency.run(key, fingerprint, lambda: self._run(handler, payload, match.groupdict()))
        return error_reply(405, "method_not_allowed") if allowed else error_reply(404, "not_found")

    @staticmethod
    def _payload(body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _BadRequest("the body is not JSON") from None
        if not isinstance(payload, dict):
            raise _BadRequest("the body is not a JSON object")
        return payload

    def _run(self, handler: Callable[..., Reply], payload: dict[str, Any], params: dict[str, str]) -> Reply:
        try:
            return handler(payload, **params)
        except _BadRequest as exc:
            return error_reply(400, "bad_request", str(exc))
        except (ValueError, TypeError):
            # From parsing a field (a document, an enum): its text may quote the value.
            return error_reply(400, "bad_request")
        except BackendError as exc:
            text = str(exc)
            if text.startswith("unknown customer"):
                return error_reply(404, "unknown_customer")
            if "database" in text:  # busy past its time-out, closed, corrupt: nothing was done
                log.error("bank unavailable: %s", text)
                return error_reply(503, "unavailable")
            return error_reply(409, "refused")
        except Exception as exc:  # never a traceback to the client; never the request in the log
            log.error("bank operation failed: %s", type(exc).__name__)
            return error_reply(500, "internal")

    # -- the operations

    def _verify_card(self, body: dict[str, Any]) -> Reply:
        _only(body, "document", "card_last4", "pin", "caller_id")
        document = _field(body, "document", dict)
        _only(document, "type", "number")
        parsed = Document.parse(DocumentType(_field(document, "type", str)), _field(document, "number", str))
        if parsed.number != document["number"]:
            raise _BadRequest("document.number: not in its full form with the control letter")
        card_last4, pin = _field(body, "card_last4", str), _field(body, "pin", str)
        if len(card_last4) > 16 or len(pin) > 16:
            raise _BadRequest("card_last4, pin: too long")
        verification = self.bank.verify_card(parsed, Secret(card_last4), Secret(pin),
                                             caller_id=_field(body, "caller_id", str, optional=True))
        return _json_reply(200, {"result": str(verification.result), "customer_id": verification.customer_id})

    def _customer_by_phone(self, body: dict[str, Any]) -> Reply:
        _only(body, "phone")
        phone = _field(body, "phone", str)
        if not 1 <= len(phone) <= 32:
            raise _BadRequest("phone: 1 to 32 characters")
        return _json_reply(200, {"customer_id": self.bank.customer_by_phone(phone)})

    def _get_contacts(self, body: dict[str, Any], customer_id: str) -> Reply:
        return _json_reply(200, _contacts(self.bank.contacts(customer_id)))

    def _recover_user(self, body: dict[str, Any], customer_id: str) -> Reply:
        _only(body, "channel")
        credentials = self.bank.recover_user(customer_id, Channel(_field(body, "channel", str)))
        return _json_reply(201, {"username": credentials.username,
                                 "temporary_password": credentials.temporary_password.reveal(),
                                 "expires_at": _timestamp(credentials.expires_at),
                                 "must_change": credentials.must_change})

    def _unlock_signature(self, body: dict[str, Any], customer_id: str) -> Reply:
        _only(body, "blocked")
        if body.get("blocked") is not False:
            raise _BadRequest("blocked: only false (unlock) is offered")
        self.bank.unlock_signature(customer_id)
        return Reply(204)

    def _blocked_operation(self, body: dict[str, Any], customer_id: str, reference: str) -> Reply:
        operation = self.bank.blocked_operation(customer_id, reference)
        found = None if operation is None else {
            "reference": operation.reference, "description": operation.description, "amount": operation.amount}
        return _json_reply(200, {"blocked_operation": found})

    def _issue_code(self, body: dict[str, Any], customer_id: str) -> Reply:
        _only(body, "purpose", "reference")
        reference = _field(body, "reference", str)
        if not 1 <= len(reference) <= 40:
            raise _BadRequest("reference: 1 to 40 characters")
        issued = self.bank.issue_code(customer_id, CodePurpose(_field(body, "purpose", str)), reference)
        return _json_reply(201, {"purpose": str(issued.purpose), "reference": issued.reference,
                                 "code": issued.code.reveal(), "expires_at": _timestamp(issued.expires_at)})

    def _redeem_code(self, body: dict[str, Any], customer_id: str) -> Reply:
        _only(body, "purpose", "reference", "code")
        reference, code = _field(body, "reference", str), _field(body, "code", str)
        if not 1 <= len(reference) <= 40 or len(code) > 32:
            raise _BadRequest("reference or code: too long")
        redeemed = self.bank.redeem_code(customer_id, CodePurpose(_field(body, "purpose", str)), reference,
                                         Secret(code))
        return _json_reply(200, {"redeemed": bool(redeemed)})

    def _confirm_password_change(self, body: dict[str, Any], customer_id: str) -> Reply:
        _only(body)
        return _json_reply(200, _contacts(self.bank.confirm_password_change(customer_id)))


class _Handler(BaseHTTPRequestHandler):
    server: "BankServer"
    protocol_version = "HTTP/1.1"
    server_version = "voicebot-bank/1"
    timeout = 30  # seconds a client may take to send its request: one that never does frees its thread

    def _serve(self) -> None:
        length_text = self.headers.get("Content-Length", "0")
        if not length_text.isdigit():
            self._send(error_reply(400, "bad_request", "Content-Length is required"), close=True)
            return
        length = int(length_text)
        if length > MAX_BODY:
            self._send(error_reply(413, "too_large"), close=True)  # unread: the connection ends
            return
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._send(self.server.api.handle(self.command, self.path, headers, body))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def _send(self, reply: Reply, close: bool = False) -> None:
        self.send_response(reply.status)
        if reply.body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")  # replies may hold a password or a code
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line (method and path: no secrets in this contract's URLs) and status only.
        log.info("%s %s", self.address_string(), format % args)


class BankServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: BankApi,
                 handler: type[BaseHTTPRequestHandler] = _Handler) -> None:
        self.api = api
        super().__init__(address, handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        # socketserver's default prints a traceback to stderr (a client that hung up before
        # its reply, most often): one line in the log, no request content.
        kind = sys.exc_info()[0]
        log.warning("bank: a request from %s ended with %s", client_address[0],
                    kind.__name__ if kind is not None else "an error")


def make_server(bank: BankingBackend, host: str = "127.0.0.1", port: int = 8085, token: str | None = None,
                handler: type[BaseHTTPRequestHandler] = _Handler) -> BankServer:
    """A server bound to ``host:port`` (0: any free port); call ``serve_forever()`` to answer."""
    return BankServer((host, port), BankApi(bank, token), handler)
