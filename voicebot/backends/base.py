"""The backend interfaces and the values that cross them.

Every method is synchronous and may block (a database, a network call): hosts run them off
the audio path. A backend that cannot answer raises :class:`~voicebot.errors.BackendError`
(or ``BackendUnavailable``); the action that called it reports ``error`` and the caller is
offered an agent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Protocol, runtime_checkable

from ..documents import DNI_LETTERS, Document, DocumentType  # noqa: F401  (re-exported)
from ..masking import Secret, reveal

class Channel(enum.StrEnum):
    """Which online-banking user the caller wants back (SPEC: e-banking or telephone banking)."""

    EBANKING = "ebanking"
    PHONE = "phone"


class VerifyResult(enum.StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"  # unknown document, no such card, or wrong PIN: never said which
    LOCKED = "locked"  # the card's phone channel is locked after too many wrong PINs
    PAUSED = "paused"  # too many failed checks lately from this caller ID or for this document


@dataclass(frozen=True)
class Verification:
    result: VerifyResult
    customer_id: str | None = None


@dataclass(frozen=True)
class Contacts:
    customer_id: str
    name: str
    email: str | None
    mobile: str | None
    language: str


@dataclass(frozen=True)
class Credentials:
    """A recovered online-banking user: the username and a new, single-use temporary password."""

    username: str
    temporary_password: Secret
    expires_at: datetime
    must_change: bool = True


@dataclass(frozen=True)
class BlockedOperation:
    reference: str
    description: str
    amount: str  # as the bank shows it, e.g. "250.00 EUR"


class CodePurpose(enum.StrEnum):
    OPERATION_UNLOCK = "operation_unlock"
    SMS_SIGNATURE_KEY = "sms_signature_key"


@dataclass(frozen=True)
class IssuedCode:
    purpose: CodePurpose
    reference: str
    code: Secret
    expires_at: datetime


@dataclass(frozen=True)
class OutgoingMessage:
    """A message whose template may hold secrets: ``render()`` for the wire, ``masked()`` for records.

    ``params`` values that are :class:`Secret` are replaced by ``****`` in ``masked()``.
    """

    to: str
    template: str
    params: Mapping[str, str | Secret] = field(default_factory=dict)
    subject: str = ""
    language: str = "es"

    def render(self) -> str:
        return self.template.format_map({k: reveal(v) for k, v in self.params.items()})

    def masked(self) -> str:
        return self.template.format_map({k: str(v) for k, v in self.params.items()})


@runtime_checkable
class BankingBackend(Protocol):
    def verify_card(self, document: Document, card_last4: Secret, pin: Secret,
                    caller_id: str | None = None) -> Verification:
        """Check that the document's holder has a card ending in ``card_last4`` whose PIN is ``pin``.

        A wrong PIN counts against that card across calls; at the limit the card's phone
        channel locks. Unknown document, unknown card and wrong PIN all give ``MISMATCH``,
        in the same time, so a caller cannot tell which factor was wrong. Every failed
        check also counts against the caller ID and the document in their windows
        (``lockout``): past either limit the answer is ``PAUSED``, without checking.
        """

    def contacts(self, customer_id: str) -> Contacts: ...

    def customer_by_phone(self, phone: str) -> str | None:
        """The customer whose registered phone is ``phone`` (caller ID), if any."""

    def recover_user(self, customer_id: str, channel: Channel) -> Credentials:
        """Issue a temporary password for the customer's user on ``channel`` (must change at next login)."""

    def unlock_signature(self, customer_id: str) -> None: ...

    def blocked_operation(self, customer_id: str, reference: str) -> BlockedOperation | None: ...

    def issue_code(self, customer_id: str, purpose: CodePurpose, reference: str) -> IssuedCode:
        """A fresh random code bound to customer, purpose and operation; single-use, expiring."""

    def redeem_code(self, customer_id: str, purpose: CodePurpose, reference: str, code: Secret) -> bool:
        """What e-banking does with a code the customer types: true once, while unexpired."""

    def confirm_password_change(self, customer_id: str) -> Contacts:
        """The customer changed the temporary passwords: clear the must-change flag."""


@runtime_checkable
class SmsGateway(Protocol):
    def send_sms(self, message: OutgoingMessage) -> str:
        """Queue or send ``message``; returns the provider's (or outbox's) message id."""


@runtime_checkable
class EmailGateway(Protocol):
    def send_email(self, message: OutgoingMessage) -> str: ...


@dataclass(frozen=True)
class TransferTicket:
    target: str
    ticket_id: str


@runtime_checkable
class AgentDesk(Protocol):
    def hand_off(self, reason: str, context: Mapping[str, Any]) -> TransferTicket:
        """Tell the agents a call is coming (context has no secrets) and say where to send it."""


@runtime_checkable
class CallLog(Protocol):
    def save(self, record: Mapping[str, Any]) -> None:
        """Store one finished call's record (already masked by whoever built it)."""

    def recent(self, limit: int = 20) -> list[dict[str, Any]]: ...
