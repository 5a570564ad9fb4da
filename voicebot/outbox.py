"""Sending what the outbox holds: a sender, and the transports it hands messages to.

The outbox (:class:`~voicebot.backends.sqlite.SqliteOutbox`) is the source of truth: the
step that caused a message queued it in its own transaction. :class:`OutboxSender` takes
due messages from it and hands each to a :class:`MessageTransport` (the demo phone here;
SMTP, SMPP or an HTTP gateway for a bank). A failed hand-over is retried with a doubling
wait, up to ``outbox.give_up_minutes``; every attempt carries the message's idempotency
key, so a provider that took a message whose reply was lost drops the repeat. Nothing is
sent twice by us: a message is claimed with a lease before it is handed over and marked
sent right after; only a sender that dies between the two leaves it to be retried, with
the same key.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from dataclasses import dataclass
from typing import Protocol, TextIO, runtime_checkable

from .backends.sqlite import QueuedMessage, SqliteOutbox
from .config import Outbox
from .errors import BackendError

log = logging.getLogger(__name__)

BATCH = 100  # messages claimed per pass

# An error text may quote what was sent (a gateway echoing the body): digit runs go.
_DIGIT_RUN = re.compile(r"\d{4,}")


class DeliveryError(BackendError):
    """A transport could not hand a message over. ``permanent``: retrying cannot help
    (the provider refused the number or the address), so the message fails at once."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@runtime_checkable
class MessageTransport(Protocol):
    def deliver(self, message: QueuedMessage) -> str:
        """Hand ``message`` to the provider with its ``idempotency_key``; the provider's id for it.

        Raise :class:`DeliveryError` (or ``OSError``) when the provider did not take it.
        """


class DemoPhone:
    """The embedded transport: prints each SMS and e-mail (the console's demo phone and mailbox).

    With no stream it takes messages without showing them. A repeated idempotency key is
    not printed twice, as a real gateway would not send twice.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._taken: set[str] = set()

    def deliver(self, message: QueuedMessage) -> str:
        provider_id = f"demo-{message.idempotency_key[:12]}"
        if message.idempotency_key in self._taken or self.stream is None:
            self._taken.add(message.idempotency_key)
            return provider_id
        if message.channel == "sms":
            text = f"[SMS to {message.recipient}] {message.body.reveal()}\n"
        else:
            subject = f" {message.subject}:" if message.subject else ""
            text = f"[E-mail to {message.recipient}]{subject} {message.body.reveal()}\n"
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed
            raise DeliveryError(f"the demo phone cannot print: {type(exc).__name__}") from None
        self._taken.add(message.idempotency_key)
        return provider_id


class ByChannel:
    """One transport per channel (SMS to the SMS gateway, e-mail to the mail server)."""

    def __init__(self, sms: MessageTransport, email: MessageTransport) -> None:
        self.transports = {"sms": sms, "email": email}

    def deliver(self, message: QueuedMessage) -> str:
        transport = self.transports.get(message.channel)
        if transport is None:
            raise DeliveryError(f"{message.id}: no transport for {message.channel!r}", permanent=True)
        return transport.deliver(message)

    def close(self) -> None:
        for transport in {id(t): t for t in self.transports.values()}.values():
            close = getattr(transport, "close", None)
            if close is not None:
                close()


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def __bool__(self) -> bool:
        return bool(self.sent or self.retrying or self.failed)


class OutboxSender:
    """Sends due messages now (:meth:`send_due`) and, once started, whenever one falls due."""

    def __init__(self, outbox: SqliteOutbox, transport: MessageTransport, settings: Outbox | None = None) -> None:
        self.outbox = outbox
        self.transport = transport
        self.settings = settings or Outbox()
        self._pass = threading.Lock()  # one pass at a time in a process (the lease covers other processes)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def retry_wait(self, attempt: int) -> float:
        """Seconds before retrying after failed attempt number ``attempt`` (1, 2, ...): doubling, capped."""
        wait = self.settings.retry_first_seconds * 2.0 ** min(attempt - 1, 32)
        # Whole seconds: the outbox keeps times to the second, and a retry must not fall due at once.
        return float(max(1, math.ceil(min(wait, self.settings.retry_max_seconds))))

    def send_due(self) -> SendReport:
        """One pass: every message due now is handed over once. Never raises.

        Messages are claimed one at a time, so a lease covers one hand-over (a batch's last
        message could outlive its lease behind slow ones, and be claimed by another sender).
        """
        report = SendReport()
        with self._pass:
            tried: set[str] = set()
            while len(tried) < BATCH and not self._stopping.is_set():
                try:
                    claimed = self.outbox.claim_due(self.settings.lease_seconds, 1)
                except BackendError as exc:
                    log.warning("outbox: cannot read the queue: %s", exc)
                    break
                if not claimed or claimed[0].id in tried:
                    if claimed:  # due again at once (a retry within the second): leave it for later
                        self._mark(claimed[0], report, "not tried again in the same pass", self.retry_wait(1))
                    break
                tried.add(claimed[0].id)
                self._send(claimed[0], report)
        return report

    def _send(self, message: QueuedMessage, report: SendReport) -> None:
        try:
            provider_id = self.transport.deliver(message)
        except Exception as exc:  # any fault of a transport: the message waits, the sender goes on
            error = _DIGIT_RUN.sub(lambda m: "#" * len(m.group()), f"{type(exc).__name__}: {exc}")
            permanent = isinstance(exc, DeliveryError) and exc.permanent
            self._mark(message, report, error, self.retry_wait(message.attempt), permanent)
            return
        try:
            if not self.outbox.mark_sent(message, str(provider_id)):
                # Our lease ran out while the provider took its time, and another sender may have
                # claimed the message: it sends with the same key, which the provider drops.
                log.warning("outbox: %s was sent after its lease ran out", message.id)
        except BackendError as exc:
            # Taken by the provider but not marked: after the lease it is sent again, under the
            # same key. Nothing better can be done with the database failing.
            log.error("outbox: %s was sent but cannot be marked: %s", message.id, exc)
        report.sent += 1

    def _mark(self, message: QueuedMessage, report: SendReport, error: str, wait: float,
              permanent: bool = False) -> None:
        try:
            status = self.outbox.mark_retry(message, error, wait, 0 if permanent else self.settings.give_up_minutes)
        except BackendError as exc:
            log.error("outbox: %s not sent and cannot be marked (%s): retried after its lease", message.id, exc)
            report.retrying += 1
            return
        if status == "taken":
            log.info("outbox: %s failed after its lease ran out; another sender has it", message.id)
        elif status == "failed":
            report.failed += 1
            log.error("outbox: %s (%s) failed for good after %d attempt(s): %s",
                      message.id, message.channel, message.attempt, error)
        else:
            report.retrying += 1
            log.warning("outbox: %s (%s) not sent (attempt %d): %s; retried in %g s",
                        message.id, message.channel, message.attempt, error, wait)

    # ---------------------------------------------------------------- in the background

    def start(self) -> None:
        """Send in a background thread from now on, waking when a message falls due or on :meth:`wake`."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="voicebot-outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def queued(self) -> None:
        """A step committed messages: the background thread sends them if it runs (the step's
        thread, and the caller, need not wait for a mail server), else they go now."""
        if self._thread is not None:
            self.wake()
        else:
            self.send_due()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop sending: the pass in progress ends after the message it is handing over (the
        rest stay queued), so the transport and the database can be closed after this."""
        thread, self._thread = self._thread, None
        self._stopping.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        with self._pass:  # and a pass run in a step's thread is over too
            pass

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.send_due()
                due_in = self.outbox.next_due_in()
            except Exception:  # never let the thread die: the next wake tries again
                log.exception("outbox: the sender's pass failed")
                due_in = self.settings.retry_first_seconds
            # Also look now and then without being woken: another process may have queued.
            # Never spin: a message still due after a pass (the database was busy) waits a little.
            self._wake.wait(min(max(due_in if due_in is not None else 60.0, 0.5), 60.0))
            self._wake.clear()
