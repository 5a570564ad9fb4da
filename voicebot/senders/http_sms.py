"""SMS through a provider's HTTP API: one JSON POST per message (``sms.transport: http``).

Providers differ in their field names, not in the shape: a URL, a token, a JSON body with
the number and the text, a reply with the message's id. So the body is a template from
the configuration (``sms.http.body``) whose strings may hold ``{to}``, ``{text}`` and
``{id}``, and ``sms.http.id_field`` says where the reply keeps the provider's id. The
outbox's idempotency key goes in a header (``Idempotency-Key`` by default) and as ``{id}``:
a retry after a time-out carries the same key, so a provider that took the first attempt
does not send the SMS twice.

What the replies mean here: 2xx taken; 408, 425, 429 and 5xx "try later"; 401 and 403 a
configuration to fix (the messages wait, retried); any other 4xx refused for good.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import httpx

from ..backends.sqlite import QueuedMessage
from ..config import HttpSms
from ..outbox import DeliveryError

log = logging.getLogger(__name__)

RETRY_LATER = {408, 425, 429}


class HttpSmsSender:
    """:class:`~voicebot.outbox.MessageTransport` for SMS over a provider's JSON API (httpx)."""

    def __init__(self, settings: HttpSms, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        headers = dict(settings.headers)
        auth: httpx.Auth | None = None
        if settings.token is not None:
            headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
        elif settings.username:
            auth = httpx.BasicAuth(settings.username, settings.password.get_secret_value() if settings.password else "")
        verify: ssl.SSLContext | bool = True
        if settings.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(settings.ca_file))
        self.client = httpx.Client(headers=headers, auth=auth, verify=verify, timeout=settings.timeout,
                                   transport=transport, follow_redirects=False)

    def deliver(self, message: QueuedMessage) -> str:
        if message.channel != "sms":
            raise DeliveryError(f"{message.id}: the HTTP SMS gateway takes SMS, not {message.channel}", permanent=True)
        values = {"{to}": message.recipient, "{text}": message.body.reveal(), "{id}": message.idempotency_key}
        body = _filled(self.settings.body, values)
        headers = {self.settings.idempotency_header: message.idempotency_key} if self.settings.idempotency_header else {}
        try:
            reply = self.client.post(self.settings.url, json=body, headers=headers)
        except httpx.TimeoutException:
            # It may have been taken: the retry carries the same key, which the provider drops.
            raise DeliveryError(f"{message.id}: the SMS gateway did not answer in {self.settings.timeout:g} s") from None
        except httpx.HTTPError as exc:  # refused, unreachable, TLS failed
            raise DeliveryError(f"{message.id}: cannot reach the SMS gateway ({type(exc).__name__})") from None
        status = reply.status_code
        if status in RETRY_LATER or status >= 500:
            raise DeliveryError(f"{message.id}: the SMS gateway answered {status}: try later")
        if status in (401, 403):
            raise DeliveryError(f"{message.id}: the SMS gateway refused our credentials ({status}): check sms.http")
        if not 200 <= status < 300:
            # The reply's text may quote what we sent: its status only.
            raise DeliveryError(f"{message.id}: the SMS gateway refused the message ({status})", permanent=True)
        provider_id = _found(reply, self.settings.id_field)
        if provider_id is None:
            # Taken (2xx), but no id we can read: sent all the same; only receipts cannot be matched.
            log.warning("%s: the SMS gateway answered %d without a usable %r", message.id, status, self.settings.id_field)
            return f"http-{status}-{message.idempotency_key[:12]}"
        return provider_id

    def close(self) -> None:
        self.client.close()


def _filled(template: Any, values: dict[str, str]) -> Any:
    """The body template with its placeholders replaced, in every string at any depth.

    Plain replacement, not ``str.format``: the text is the customer's message and may hold
    braces, and a template must not reach attributes of the values."""
    if isinstance(template, str):
        for placeholder, value in values.items():
            template = template.replace(placeholder, value)
        return template
    if isinstance(template, dict):
        return {key: _filled(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [_filled(value, values) for value in template]
    return template


def _found(reply: httpx.Response, path: str) -> str | None:
    """The value at ``path`` ("id", "data.id", "messages.0.id") of the reply's JSON, as text."""
    try:
        value: Any = reply.json()
    except ValueError:
        return None
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return str(value)[:200]
    return None
