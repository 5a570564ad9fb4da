"""The backend steps of the unlock flows, as the dialog engine names them in the menu.

Each action takes the engine's ``RunAction.args`` and returns an :class:`ActionOutcome`
(result name + slots to set), reaching the bank, SMS and e-mail only through their
interfaces. A backend fault becomes the result ``error`` (the engine then offers an agent);
its detail names the fault, never a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import messages
from .backends.base import (
    BankingBackend,
    Channel,
    CodePurpose,
    EmailGateway,
    OutgoingMessage,
    SmsGateway,
    VerifyResult,
)
from .config import Config
from .documents import Document
from .errors import BackendError
from .masking import Secret

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionOutcome:
    result: str
    data: Mapping[str, str | Secret] = field(default_factory=dict)
    detail: str = ""


Args = Mapping[str, "str | Secret"]


class UnlockActions:
    """The actions of SPEC.md over injected backends."""

    NAMES = frozenset({
        "verify_card", "recover_user", "unlock_signature",
        "sms_signature_key", "identify_caller", "operation_unlock_code",
    })

    def __init__(self, bank: BankingBackend, sms: SmsGateway, email: EmailGateway, config: Config) -> None:
        self.bank = bank
        self.sms = sms
        self.email = email
        self.config = config
        self._actions: dict[str, Callable[[Args, str], ActionOutcome]] = {
            "verify_card": self.verify_card,
            "recover_user": self.recover_user,
            "unlock_signature": self.unlock_signature,
            "sms_signature_key": self.sms_signature_key,
            "identify_caller": self.identify_caller,
            "operation_unlock_code": self.operation_unlock_code,
        }
        assert set(self._actions) == self.NAMES

    def run(self, name: str, args: Args, language: str = "es") -> ActionOutcome:
        action = self._actions.get(name)
        if action is None:
            return ActionOutcome("error", detail=f"no action named {name!r}")
        try:
            return action(args, language)
        except BackendError as exc:
            log.warning("action %s failed: %s", name, exc)
            return ActionOutcome("error", detail=f"{type(exc).__name__}: {exc}")
        except (KeyError, ValueError) as exc:
            # Bad data from the engine or a backend reply we cannot use: an agent takes over.
            log.warning("action %s got unusable data: %s", name, type(exc).__name__)
            return ActionOutcome("error", detail=f"unusable data ({type(exc).__name__})")

    # ---------------------------------------------------------------- the actions

    def verify_card(self, args: Args, language: str) -> ActionOutcome:
        document = Document.parse(_text(args["document_type"]), _text(args["document_number"]))
        card_last4, pin = _secret(args["card_last4"]), _secret(args["pin"])
        verification = self.bank.verify_card(document, card_last4, pin)
        if verification.result is VerifyResult.OK and verification.customer_id:
            return ActionOutcome("ok", {"customer_id": verification.customer_id})
        return ActionOutcome(verification.result.value)

    def recover_user(self, args: Args, language: str) -> ActionOutcome:
        customer_id, channel = _text(args["customer_id"]), Channel(_text(args["channel"]))
        contacts = self.bank.contacts(customer_id)
        missing = [name for name, value in (("email", contacts.email), ("mobile", contacts.mobile)) if not value]
        if missing:
            return ActionOutcome("contact_missing", detail="missing " + " and ".join(missing))
        credentials = self.bank.recover_user(customer_id, channel)
        channel_name = messages.CHANNEL_NAMES.get(language, messages.CHANNEL_NAMES["es"])[channel.value]
        assert contacts.email and contacts.mobile
        self.email.send_email(OutgoingMessage(
            to=contacts.email,
            subject=messages.text("username_email", language, "subject").format(channel_name=channel_name),
            template=messages.text("username_email", language),
            params={"name": contacts.name, "channel_name": channel_name, "username": credentials.username},
            language=language,
        ))
        self.sms.send_sms(OutgoingMessage(
            to=contacts.mobile,
            template=messages.text("temporary_password_sms", language),
            params={
                "channel_name": channel_name,
                "password": credentials.temporary_password,
                "hours": str(self.config.codes.temporary_password_minutes // 60 or 1),
            },
            language=language,
        ))
        return ActionOutcome("sent")

    def unlock_signature(self, args: Args, language: str) -> ActionOutcome:
        self.bank.unlock_signature(_text(args["customer_id"]))
        return ActionOutcome("unlocked")

    def sms_signature_key(self, args: Args, language: str) -> ActionOutcome:
        customer_id, reference = _text(args["customer_id"]), _text(args["operation_reference"])
        if self.bank.blocked_operation(customer_id, reference) is None:
            return ActionOutcome("unknown_operation")
        issued = self.bank.issue_code(customer_id, CodePurpose.SMS_SIGNATURE_KEY, reference)
        return ActionOutcome("issued", {"sms_key": issued.code})

    def identify_caller(self, args: Args, language: str) -> ActionOutcome:
        caller_id = _text(args.get("caller_id", ""))
        customer_id = self.bank.customer_by_phone(caller_id) if caller_id else None
        if customer_id is None:
            return ActionOutcome("unregistered", detail="no caller ID" if not caller_id else "")
        return ActionOutcome("registered", {"customer_id": customer_id})

    def operation_unlock_code(self, args: Args, language: str) -> ActionOutcome:
        customer_id, reference = _text(args["customer_id"]), _text(args["operation_reference"])
        contacts = self.bank.contacts(customer_id)
        if not contacts.mobile:
            return ActionOutcome("contact_missing", detail="missing mobile")
        if self.bank.blocked_operation(customer_id, reference) is None:
            return ActionOutcome("unknown_operation")
        issued = self.bank.issue_code(customer_id, CodePurpose.OPERATION_UNLOCK, reference)
        self.sms.send_sms(OutgoingMessage(
            to=contacts.mobile,
            template=messages.text("operation_code_sms", language),
            params={"reference": reference, "code": issued.code,
                    "minutes": str(self.config.codes.unlock_code_minutes)},
            language=language,
        ))
        return ActionOutcome("sent")

    # ---------------------------------------------------------------- outside a call

    def confirm_password_change(self, customer_id: str) -> str:
        """SPEC: once the customer changed the passwords, an SMS confirms it. Returns the message id."""
        contacts = self.bank.confirm_password_change(customer_id)
        if not contacts.mobile:
            raise BackendError(f"customer {customer_id} has no mobile to confirm the change to")
        return self.sms.send_sms(OutgoingMessage(
            to=contacts.mobile,
            template=messages.text("password_changed_sms", contacts.language),
            params={"agent_phone": self.config.agent.phone_number},
            language=contacts.language,
        ))


def _text(value: "str | Secret") -> str:
    if isinstance(value, Secret):
        raise ValueError("a secret was passed where plain data was expected")
    return value


def _secret(value: "str | Secret") -> Secret:
    return value if isinstance(value, Secret) else Secret(value)
