"""The bank's REST API (``voicebot/data/bank_api.yaml``) as a :class:`~voicebot.backends.base.BankingBackend`.

``bank.backend: http``. Faults map onto the project's errors, and the actions turn every one
of them into the result ``error`` (an apology and an agent):

    time-out, refused connection, 5xx        BackendUnavailable
    JSON malformed or of the wrong shape     BackendReplyError (nothing of the reply is used)
    any other 4xx                            BackendError, with the status only

Retries only where a repeat cannot do the work twice: GET and PUT, the read-only phone
lookup, and the POSTs that carry an ``Idempotency-Key`` (recoveries, code issuing) — one
random key per logical call, the same on each of its retries, so a bank that did the work
but whose reply was lost answers the retry with that same reply. A connection that was
never made is retried whatever the call (nothing was sent). Verifications and code
redemptions are never repeated: each try counts against the customer.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import time
from datetime import datetime
from typing import Any, Callable
from urllib.parse import quote

import httpx

from ..config import HttpBankSettings
from ..errors import BackendError, BackendReplyError, BackendUnavailable
from ..masking import Secret, reveal
from .base import (
    BlockedOperation,
    Channel,
    CodePurpose,
    Contacts,
    Credentials,
    Document,
    IssuedCode,
    Verification,
    VerifyResult,
)

log = logging.getLogger(__name__)

_BACKOFF_FIRST = 0.2
_BACKOFF_MAX = 2.0


class HttpBank:
    """:class:`~voicebot.backends.base.BankingBackend` over HTTP (httpx), thread-safe (one pooled client)."""

    def __init__(self, settings: HttpBankSettings, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        headers = {"Accept": "application/json", "User-Agent": "voicebot"}
        if settings.token is not None:
            headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
        verify: ssl.SSLContext | bool = True
        if settings.ca_file is not None or settings.client_cert is not None:
            try:
                context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
                if settings.client_cert is not None:
                    context.load_cert_chain(str(settings.client_cert),
                                            str(settings.client_key) if settings.client_key else None)
            except (OSError, ssl.SSLError) as exc:
                raise BackendError(f"bank.http: cannot load the TLS files: {exc}") from None
            verify = context
        self.client = httpx.Client(base_url=settings.url, headers=headers, verify=verify,
                                   timeout=settings.timeout, transport=transport, follow_redirects=False)

    # -- the operations

    def verify_card(self, document: Document, card_last4: Secret, pin: Secret,
                    caller_id: str | None = None) -> Verification:
        body = {"document": {"type": str(document.type), "number": document.number},
                "card_last4": reveal(card_last4), "pin": reveal(pin), "caller_id": caller_id}
        reply = _object(self._call("POST", "/v1/verifications", body), "customer_id", "result")
        try:
            result = VerifyResult(reply["result"])
        except ValueError:
            raise BackendReplyError("verify_card: the bank answered an unknown result") from None
        customer_id = _text(reply, "customer_id", optional=True)
        if (result is VerifyResult.OK) != (customer_id is not None):
            raise BackendReplyError("verify_card: a customer id must come with ok, and only with ok")
        return Verification(result, customer_id)

    def contacts(self, customer_id: str) -> Contacts:
        return _contacts(self._call("GET", f"/v1/customers/{_part(customer_id)}/contacts"))

    def customer_by_phone(self, phone: str) -> str | None:
        reply = _object(self._call("POST", "/v1/customer-lookups", {"phone": phone}, safe=True), "customer_id")
        return _text(reply, "customer_id", optional=True)

    def recover_user(self, customer_id: str, channel: Channel) -> Credentials:
        reply = _object(self._call("POST", f"/v1/customers/{_part(customer_id)}/recoveries",
                                   {"channel": str(Channel(channel))}, keyed=True),
                        "username", "temporary_password", "expires_at", "must_change")
        must_change = reply["must_change"]
        if not isinstance(must_change, bool):
            raise BackendReplyError("recover_user: must_change is not a boolean")
        return Credentials(_text(reply, "username"), Secret(_text(reply, "temporary_password")),
                           _time(reply, "expires_at"), must_change)

    def unlock_signature(self, customer_id: str) -> None:
        self._call("PUT", f"/v1/customers/{_part(customer_id)}/signature", {"blocked": False}, empty=True)

    def blocked_operation(self, customer_id: str, reference: str) -> BlockedOperation | None:
        reply = _object(self._call("GET", f"/v1/customers/{_part(customer_id)}/blocked-operations/{_part(reference)}"),
                        "blocked_operation")
        found = reply["blocked_operation"]
        if found is None:
            return None
        operation = _object(found, "reference", "description", "amount")
        return BlockedOperation(_text(operation, "reference"), _text(operation, "description"),
                                _text(operation, "amount"))

    def issue_code(self, customer_id: str, purpose: CodePurpose, reference: str) -> IssuedCode:
        purpose = CodePurpose(purpose)
        reply = _object(self._call("POST", f"/v1/customers/{_part(customer_id)}/codes",
                                   {"purpose": str(purpose), "reference": reference}, keyed=True),
                        "purpose", "reference", "code", "expires_at")
        if reply["purpose"] != str(purpose) or reply["reference"] != reference:
            raise BackendReplyError("issue_code: the bank answered for another purpose or operation")
        return IssuedCode(purpose, reference, Secret(_text(reply, "code")), _time(reply, "expires_at"))

    def redeem_code(self, customer_id: str, purpose: CodePurpose, reference: str, code: Secret) -> bool:
        reply = _object(self._call("POST", f"/v1/customers/{_part(customer_id)}/code-redemptions",
                                   {"purpose": str(CodePurpose(purpose)), "reference": reference,
                                    "code": reveal(code)}), "redeemed")
        if not isinstance(reply["redeemed"], bool):
            raise BackendReplyError("redeem_code: redeemed is not a boolean")
        return reply["redeemed"]

    def confirm_password_change(self, customer_id: str) -> Contacts:
        return _contacts(self._call("POST", f"/v1/customers/{_part(customer_id)}/password-change-confirmations", {}))

    def close(self) -> None:
        self.client.close()

    # -- the wire

    def _call(self, method: str, path: str, body: Any = None, keyed: bool = False, safe: bool = False,
              empty: bool = False) -> Any:
        """One logical call: its tries, and the reply's JSON (None when ``empty``)."""
        headers = {"Idempotency-Key": secrets.token_urlsafe(24)} if keyed else {}  # the same on every retry
        repeatable = keyed or safe or method in ("GET", "PUT")
        tries = 1 + self.settings.retries
        what = f"{method} {path.split('/')[-1] if method != 'GET' else path}"
        for attempt in range(tries):
            last = attempt == tries - 1
            if attempt:
                self._sleep(min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (attempt - 1)))
            try:
                reply = self.client.request(method, path, json=body, headers=headers)
            except httpx.ConnectError:
                # Never connected: nothing was sent, so even a verification may try again.
                if last:
                    raise BackendUnavailable(f"the bank cannot be reached ({what})") from None
                continue
            except httpx.TimeoutException:
                if last or not repeatable:
                    raise BackendUnavailable(f"the bank did not answer in {self.settings.timeout:g} s ({what})") from None
                continue
            except httpx.HTTPError as exc:  # the connection dropped, a protocol error, TLS failed
                if last or not repeatable:
                    raise BackendUnavailable(f"the bank's connection failed ({what}: {type(exc).__name__})") from None
                continue
            status = reply.status_code
            if status >= 500:
                if last or not repeatable:
                    raise BackendUnavailable(f"the bank answered {status} ({what})")
                continue
            if status >= 400 or not 200 <= status < 300:
                # The body may quote what we sent (a PIN): the status only.
                raise BackendError(f"the bank refused {what} ({status})")
            if empty:
                return None
            try:
                return reply.json()
            except ValueError:
                raise BackendReplyError(f"the bank's reply to {what} is not JSON") from None
        raise AssertionError("unreachable")  # pragma: no cover


def _part(value: str) -> str:
    """One path segment: customer ids and references are not secrets, but must not make a new path."""
    if not value or not isinstance(value, str):
        raise BackendError("an empty customer id or reference")
    return quote(value, safe="")


def _object(value: Any, *names: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BackendReplyError("the bank's reply is not a JSON object")
    missing = [name for name in names if name not in value]
    if missing:
        raise BackendReplyError(f"the bank's reply lacks {', '.join(missing)}")
    return value


def _text(reply: dict[str, Any], name: str, optional: bool = False) -> Any:
    value = reply.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BackendReplyError(f"the bank's {name} is not a non-empty string")
    return value


def _time(reply: dict[str, Any], name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_text(reply, name))
    except ValueError:
        raise BackendReplyError(f"the bank's {name} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise BackendReplyError(f"the bank's {name} has no offset")
    return moment


def _contacts(value: Any) -> Contacts:
    reply = _object(value, "customer_id", "name", "email", "mobile", "language")
    return Contacts(_text(reply, "customer_id"), _text(reply, "name"), _text(reply, "email", optional=True),
                    _text(reply, "mobile", optional=True), _text(reply, "language"))
