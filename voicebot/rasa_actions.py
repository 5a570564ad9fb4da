"""The unlock steps as rasa_sdk actions: one implementation for the IVR and for Rasa assistants.

Each backend step of SPEC.md is an :class:`rasa_sdk.Action` (``action_verify_card``, …). It
reads its inputs from the tracker's slots, reaches the bank, SMS and e-mail only through
the interfaces of :mod:`voicebot.backends.base`, and returns its effects as events:

- ``SlotSet("unlock_result", <result>)``: the result name the menu routes on (``ok``,
  ``mismatch``, ``sent``, …; ``error`` when a backend failed);
- ``SlotSet("unlock_detail", …)``: why, for the record (never a secret);
- ``SlotSet`` of what it found (``customer_id``, ``message_id``);
- ``SlotSet(<secret slot>, None)`` for every PIN or card slot it read, so no secret stays
  in the conversation after its step.

What the caller is told goes through the dispatcher as a response name
(``utter_verify_card_mismatch``, …); a code that must be said aloud (the SMS signature key)
travels only as that response's variable, never in a slot.

The IVR runs these same actions in-process through rasa_sdk's :class:`ActionExecutor`, with
the request Rasa would send (:func:`action_call`): :class:`ExecutorActions` keeps the
``run(name, args, language) -> ActionOutcome`` shape the call session uses. ``voicebot
actions serve`` puts the executor behind rasa_sdk's HTTP endpoint (:func:`serve`).
``voicebot/data/rasa_domain.yaml`` lists the slots, responses, forms and actions for a Rasa
user to merge into their domain.

The tracker an action receives holds secrets as plain strings (that is the format): it is
never logged here, and nothing in these actions puts a slot value into a log line.
"""

from __future__ import annotations

import logging
import re
import signal
import time
from abc import abstractmethod
from contextvars import ContextVar
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import rasa_sdk
import yaml
from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import ActionExecutor, CollectingDispatcher
from rasa_sdk.interfaces import ActionExecutionRejection, ActionMissingDomainException, ActionNotFoundException
from rasa_sdk.types import DomainDict

from . import messages
from .backends.base import (
    BankingBackend,
    BlockedOperation,
    Channel,
    CodePurpose,
    Contacts,
    Credentials,
    EmailGateway,
    IssuedCode,
    OutgoingMessage,
    SmsGateway,
    Verification,
    VerifyResult,
)
from .config import Config
from .documents import Document, DocumentType
from .errors import BackendError, BackendReplyError, BackendUnavailable, ConfigError
from .masking import Secret, reveal

log = logging.getLogger(__name__)

DOMAIN_FILE = Path(__file__).parent / "data" / "rasa_domain.yaml"

RESULT_SLOT = "unlock_result"
DETAIL_SLOT = "unlock_detail"
LANGUAGE_SLOT = "language"
# Slots that hold a secret the caller gave: cleared by the action that reads them.
SECRET_SLOTS = frozenset({"card_last4", "pin"})
# Response variables that carry a secret to be said aloud (the IVR wraps them in Secret).
SECRET_RESPONSE_VARIABLES = frozenset({"sms_key"})
# The sender id of the IVR's in-process calls (a Rasa conversation id otherwise).
IVR_SENDER_ID = "voicebot-ivr"
# When the call asked for the step now running (time.monotonic()), if a call did: its time
# limit counts from then, not from when a worker got to it.
STEP_ASKED_AT: ContextVar[float | None] = ContextVar("STEP_ASKED_AT", default=None)


@dataclass(frozen=True)
class Backends:
    """What the actions reach the world through: the interfaces, and the line's configuration.

    ``messages_queued`` is called after a step queued messages and committed (the line's
    outbox sender sends them then).
    """

    bank: BankingBackend
    sms: SmsGateway
    email: EmailGateway
    config: Config
    messages_queued: Callable[[], object] | None = None

    def atomic(self) -> AbstractContextManager[object]:
        """One unit for a step that changes the bank and queues messages: all of it is kept, or none.

        The embedded bank and outbox share one SQLite file, so this is one transaction. Backends
        that do not share a database (a bank's REST API and a local outbox, issue 11) get no
        such guarantee here yet: the step then changes the bank first and queues after.
        """
        if self.shares_one_database():
            return cast(AbstractContextManager[object], self.bank.db.atomic())  # type: ignore[attr-defined]
        return nullcontext()

    def shares_one_database(self) -> bool:
        """Bank, SMS and e-mail write to one database (the embedded ones): a step can be one transaction."""
        databases = {id(getattr(part, "db", None)) for part in (self.bank, self.sms, self.email)}
        db = getattr(self.bank, "db", None)
        return len(databases) == 1 and db is not None and hasattr(db, "atomic")


@dataclass
class StepResult:
    result: str
    slots: dict[str, str] = field(default_factory=dict)  # found data, set as slots
    detail: str = ""
    said: dict[str, str] = field(default_factory=dict)  # variables of the response


class UnlockAction(Action):
    """One backend step. Subclasses name the step, the slots it reads and the results it gives."""

    step: ClassVar[str]  # the menu's name for it (``verify_card``)
    requires: ClassVar[tuple[str, ...]] = ()  # slots that must be set, else the action rejects
    optional: ClassVar[tuple[str, ...]] = ()
    results: ClassVar[tuple[str, ...]]  # besides "error"
    sets: ClassVar[tuple[str, ...]] = ()  # slots it may set besides the result and detail
    # Changes the bank and queues messages: run as one unit (Backends.atomic). Steps that
    # only read or count (a PIN check) are not, so a slow hash never holds the write lock.
    atomic: ClassVar[bool] = False

    def __init__(self, backends: Backends) -> None:
        self.backends = backends

    def name(self) -> str:
        return f"action_{self.step}"

    @classmethod
    def responses(cls) -> list[str]:
        return [f"utter_{cls.step}_{result}" for result in (*cls.results, "error")]

    @classmethod
    def reads(cls) -> tuple[str, ...]:
        return (*cls.requires, *cls.optional)

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        values = {name: _slot_text(tracker.get_slot(name)) for name in self.reads()}
        missing = [name for name in self.requires if not values[name]]
        if missing:
            # Rasa's way to say "not now": its policies predict something else (HTTP 400).
            raise ActionExecutionRejection(self.name(), f"{self.name()} needs the slot(s) {', '.join(missing)}")
        language = _slot_text(tracker.get_slot(LANGUAGE_SLOT)) or "es"
        if language not in messages.CHANNEL_NAMES:
            language = "es"
        outcome = self.perform_in_time(values, language)
        dispatcher.utter_message(response=f"utter_{self.step}_{outcome.result}", **outcome.said)
        events: list[EventType] = [SlotSet(RESULT_SLOT, outcome.result), SlotSet(DETAIL_SLOT, outcome.detail or None)]
        events += [SlotSet(name, value) for name, value in outcome.slots.items()]
        events += [SlotSet(name, None) for name in self.reads() if name in SECRET_SLOTS]
        return events

    def perform_in_time(self, values: Mapping[str, str], language: str) -> StepResult:
        """:meth:`perform`, all of it or nothing (``atomic`` steps), within ``timeouts.action``.

        A step that ran past its time is undone before it commits: the caller has been told
        it failed and offered an agent, so nothing of it may reach the customer. Any fault of
        a backend (an exception, a reply of the wrong shape) is the result ``error``; its
        detail names the kind of fault, never a value.
        """
        # The clock starts when the call asked for the step (it may have waited for a worker).
        deadline = (STEP_ASKED_AT.get() or time.monotonic()) + self.config.timeouts.action
        if time.monotonic() > deadline:
            log.warning("%s waited past its time before it could start: not run", self.name())
            return StepResult("error", detail="BackendUnavailable: the step waited too long to start: not run")
        undoable = self.atomic and self.backends.shares_one_database()
        try:
            with self.backends.atomic() if self.atomic else nullcontext():
                outcome = self.perform(values, language)
                if time.monotonic() > deadline:
                    if undoable:
                        raise BackendUnavailable(f"the step took longer than {self.config.timeouts.action:g} s: undone")
                    # Backends on different systems cannot be rolled back (SECURITY.md, known gaps).
                    log.warning("%s took longer than %g s and cannot be undone", self.name(),
                                self.config.timeouts.action)
        except BackendError as exc:
            log.warning("%s failed: %s", self.name(), exc)
            return StepResult("error", detail=f"{type(exc).__name__}: {exc}")
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            # Data we cannot use (a malformed document, a backend reply of the wrong shape).
            # Its text may quote the value, so only its kind is kept.
            log.warning("%s got unusable data: %s", self.name(), type(exc).__name__)
            return StepResult("error", detail=f"unusable data ({type(exc).__name__})")
        except Exception as exc:  # a backend's own fault we do not know: still an agent, never a crash
            log.error("%s: unexpected %s from a backend", self.name(), type(exc).__name__)
            return StepResult("error", detail=f"unexpected fault ({type(exc).__name__})")
        if self.atomic and self.backends.messages_queued is not None:
            try:
                self.backends.messages_queued()
            except Exception:  # the step is done and committed: its messages wait for a retry
                log.exception("%s: its messages are queued but could not be handed over now", self.name())
        return outcome

    @abstractmethod
    def perform(self, slots: Mapping[str, str], language: str) -> StepResult:
        """The step itself, over ``self.backends``; ``slots``: the values of :meth:`reads` ("" if unset)."""

    # shorthands
    @property
    def bank(self) -> BankingBackend:
        return self.backends.bank

    @property
    def config(self) -> Config:
        return self.backends.config


class ActionVerifyCard(UnlockAction):
    step = "verify_card"
    requires = ("document_type", "document_number", "card_last4", "pin")
    optional = ("caller_id",)  # failed checks count against it too (lockout.failures_per_caller)
    results = ("ok", "mismatch", "locked", "paused")
    sets = ("customer_id",)

    def perform(self, slots: Mapping[str, str], language: str) -> StepResult:
        document = Document.parse(slots["document_type"], slots["document_number"])
        verification = _reply(self.bank.verify_card(document, Secret(slots["card_last4"]), Secret(slots["pin"]),
                                                    caller_id=slots["caller_id"] or None), Verification, self.step)
        result = VerifyResult(verification.result)
        if result is not VerifyResult.OK:
            # Unknown document, unknown card, wrong PIN: one answer, so a caller cannot tell which.
            return StepResult(result.value)
        if not verification.customer_id or not isinstance(verification.customer_id, str):
            return StepResult("error", detail="the bank verified the card without naming the customer")
        return StepResult("ok", {"customer_id": verification.customer_id})


class ActionRecoverUser(UnlockAction):
    step = "recover_user"
    requires = ("customer_id", "channel")
    results = ("sent", "contact_missing")
    atomic = True  # a new password and the two messages that carry it: together or not at all

    def perform(self, slots: Mapping[str, str], language: str) -> StepResult:
        customer_id, channel = slots["customer_id"], Channel(slots["channel"])
        contacts = _contacts(self.bank.contacts(customer_id), self.step)
        missing = [name for name, value in (("email", contacts.email), ("mobile", contacts.mobile)) if not value]
        if missing:
            return StepResult("contact_missing", detail="missing " + " and ".join(missing))
        assert contacts.email and contacts.mobile
        credentials = _reply(self.bank.recover_user(customer_id, channel), Credentials, self.step)
        if not _text(credentials.username) or not isinstance(credentials.temporary_password, Secret) \
                or not credentials.temporary_password.reveal().strip():
            raise BackendReplyError("the bank's new credentials lack a username or a password")
        channel_name = messages.CHANNEL_NAMES.get(language, messages.CHANNEL_NAMES["es"])[channel.value]
        self.backends.email.send_email(OutgoingMessage(
            to=contacts.email,
            subject=messages.text("username_email", language, "subject").format(channel_name=channel_name),
            template=messages.text("username_email", language),
            params={"name": contacts.name, "channel_name": channel_name, "username": credentials.username},
            language=language,
        ))
        self.backends.sms.send_sms(OutgoingMessage(
            to=contacts.mobile,
            template=messages.text("temporary_password_sms", language),
            params={
                "channel_name": channel_name,
                "password": credentials.temporary_password,
                "hours": str(self.config.codes.temporary_password_minutes // 60 or 1),
            },
            language=language,
        ))
        return StepResult("sent")


class ActionUnlockSignature(UnlockAction):
    step = "unlock_signature"
    requires = ("customer_id",)
    results = ("unlocked",)
    atomic = True  # so a step past its time is undone, like the others that change the bank

    def perform(self, slots: Mapping[str, str], language: str) -> StepResult:
        self.bank.unlock_signature(slots["customer_id"])
        return StepResult("unlocked")


class ActionSmsSignatureKey(UnlockAction):
    step = "sms_signature_key"
    requires = ("customer_id", "operation_reference")
    results = ("issued", "unknown_operation")
    atomic = True  # a code the caller was never told (the step failed) must not stay live

    def perform(self, slots: Mapping[str, str], language: str) -> StepResult:
        customer_id, reference = slots["customer_id"], slots["operation_reference"]
        if _operation(self.bank.blocked_operation(customer_id, reference), self.step) is None:
            return StepResult("unknown_operation")
        issued = _code(self.bank.issue_code(customer_id, CodePurpose.SMS_SIGNATURE_KEY, reference), self.step)
        # Said to the caller, so it is the response's variable; never a slot.
        return StepResult("issued", said={"sms_key": issued.code.reveal()})


class ActionIdentifyCaller(UnlockAction):
    step = "identify_caller"
    optional = ("caller_id",)
    results = ("registered", "unregistered")
    sets = ("customer_id",)

    def perform(self, slots: Mapping[str, str], language: str) -> StepResult:
        caller_id = slots["caller_id"]
        customer_id = self.bank.customer_by_phone(caller_id) if caller_id else None
        if customer_id is not None and not _text(customer_id):
            raise BackendReplyError(f"the bank's reply to {self.step} is not a customer id")
        if customer_id is None:
            return StepResult("unregistered", detail="no caller ID" if not caller_id else "")
        return StepResult("registered", {"customer_id": customer_id})


class ActionOperationUnlockCode(UnlockAction):
    step = "operation_unlock_code"
    requires = ("customer_id", "operation_reference")
    results = ("sent", "contact_missing", "unknown_operation")
    atomic = True  # the code and the SMS that carries it: together or not at all

    def perform(self, slots: Mapping[str, str], language: str) -> StepResult:
        customer_id, reference = slots["customer_id"], slots["operation_reference"]
        contacts = _contacts(self.bank.contacts(customer_id), self.step)
        if not contacts.mobile:
            return StepResult("contact_missing", detail="missing mobile")
        if _operation(self.bank.blocked_operation(customer_id, reference), self.step) is None:
            return StepResult("unknown_operation")
        issued = _code(self.bank.issue_code(customer_id, CodePurpose.OPERATION_UNLOCK, reference), self.step)
        self.backends.sms.send_sms(OutgoingMessage(
            to=contacts.mobile,
            template=messages.text("operation_code_sms", language),
            params={"reference": reference, "code": issued.code,
                    "minutes": str(self.config.codes.unlock_code_minutes)},
            language=language,
        ))
        return StepResult("sent")


class ActionConfirmPasswordChange(UnlockAction):
    """Outside a call (the bank tells us the customer changed the passwords): the SMS that confirms it."""

    step = "confirm_password_change"
    requires = ("customer_id",)
    results = ("confirmed", "contact_missing")
    sets = ("message_id",)
    atomic = True

    def perform(self, slots: Mapping[str, str], language: str) -> StepResult:
        customer_id = slots["customer_id"]
        contacts = _contacts(self.bank.confirm_password_change(customer_id), self.step)
        if not contacts.mobile:
            return StepResult("contact_missing",
                              detail=f"customer {customer_id} has no mobile to confirm the change to")
        message_id = self.backends.sms.send_sms(OutgoingMessage(
            to=contacts.mobile,
            template=messages.text("password_changed_sms", contacts.language),
            params={"agent_phone": self.config.agent.phone_number},
            language=contacts.language,
        ))
        return StepResult("confirmed", {"message_id": message_id})


_Reply = TypeVar("_Reply")


def _reply(value: Any, kind: type[_Reply], step: str) -> _Reply:
    """``value`` if the backend answered ``step`` with a ``kind``; garbage is a fault, not data."""
    if not isinstance(value, kind):
        raise BackendReplyError(f"the bank's reply to {step} is not a {kind.__name__} ({type(value).__name__})")
    return value


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _contacts(value: Any, step: str) -> Contacts:
    contacts = _reply(value, Contacts, step)
    for name in ("email", "mobile"):
        if getattr(contacts, name) is not None and not isinstance(getattr(contacts, name), str):
            raise BackendReplyError(f"the bank's contacts for {step} have an unusable {name}")
    if not isinstance(contacts.name, str) or not isinstance(contacts.language, str):
        raise BackendReplyError(f"the bank's contacts for {step} have an unusable name or language")
    return contacts


def _operation(value: Any, step: str) -> BlockedOperation | None:
    return None if value is None else _reply(value, BlockedOperation, step)


def _code(value: Any, step: str) -> IssuedCode:
    issued = _reply(value, IssuedCode, step)
    if not isinstance(issued.code, Secret) or not issued.code.reveal().isdigit():
        raise BackendReplyError(f"the bank's code for {step} is not a secret of digits")
    return issued


UNLOCK_ACTIONS: tuple[type[UnlockAction], ...] = (
    ActionVerifyCard, ActionRecoverUser, ActionUnlockSignature, ActionSmsSignatureKey,
    ActionIdentifyCaller, ActionOperationUnlockCode, ActionConfirmPasswordChange,
)

# ---------------------------------------------------------------------- form validation

_DIGITS = re.compile(r"\d+")


class ValidateUnlockIdentityForm(FormValidationAction):
    """The document, card and PIN of ``unlock_identity_form`` (a Rasa assistant's; the IVR's
    menu checks its own entries). A wrong value is cleared and answered with one response."""

    RESPONSES: ClassVar[tuple[str, ...]] = (
        "utter_invalid_document_type", "utter_invalid_document_number", "utter_invalid_card_last4", "utter_invalid_pin",
    )

    def name(self) -> str:
        return "validate_unlock_identity_form"

    def validate_document_type(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: DomainDict) -> dict[str, Any]:
        text = _slot_text(value).strip().lower()
        if text in {t.value for t in DocumentType}:
            return {"document_type": text}
        dispatcher.utter_message(response="utter_invalid_document_type")
        return {"document_type": None}

    def validate_document_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                 domain: DomainDict) -> dict[str, Any]:
        """A DNI's 8 digits or an NIE's X/Y/Z and 7 digits; the control letter checked when given."""
        document_type = _slot_text(tracker.get_slot("document_type")).lower() or DocumentType.DNI.value
        try:
            document = Document.parse(document_type, _slot_text(value))
        except ValueError:
            dispatcher.utter_message(response="utter_invalid_document_number")
            return {"document_number": None}
        return {"document_number": document.number}

    def validate_card_last4(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                            domain: DomainDict) -> dict[str, Any]:
        return self._digits("card_last4", value, 4, 4, dispatcher)

    def validate_pin(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                     domain: DomainDict) -> dict[str, Any]:
        return self._digits("pin", value, 4, 4, dispatcher)

    @staticmethod
    def _digits(slot: str, value: Any, low: int, high: int, dispatcher: CollectingDispatcher) -> dict[str, Any]:
        digits = "".join(_slot_text(value).split())
        if _DIGITS.fullmatch(digits) and low <= len(digits) <= high:
            return {slot: digits}
        dispatcher.utter_message(response=f"utter_invalid_{slot}")
        return {slot: None}


class ValidateUnlockOperationForm(FormValidationAction):
    """The operation reference of ``unlock_operation_form``: 4 to 16 digits, as the menu keys it."""

    RESPONSES: ClassVar[tuple[str, ...]] = ("utter_invalid_operation_reference",)

    def name(self) -> str:
        return "validate_unlock_operation_form"

    def validate_operation_reference(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                     domain: DomainDict) -> dict[str, Any]:
        digits = "".join(_slot_text(value).split()).rstrip("#")
        if _DIGITS.fullmatch(digits) and 4 <= len(digits) <= 16:
            return {"operation_reference": digits}
        dispatcher.utter_message(response="utter_invalid_operation_reference")
        return {"operation_reference": None}


VALIDATION_ACTIONS: tuple[type[FormValidationAction], ...] = (ValidateUnlockIdentityForm, ValidateUnlockOperationForm)


class _GuardedExecutor(ActionExecutor):
    """rasa_sdk's executor, for which a request it cannot use is a rejection (HTTP 400).

    Otherwise the error would reach rasa_sdk's generic handler, whose 500 reply echoes the
    whole request back, tracker and PIN slot included.
    """

    async def run(self, action_call: dict[str, Any]) -> Any:
        try:
            return await super().run(action_call)
        except (ActionExecutionRejection, ActionNotFoundException, ActionMissingDomainException):
            raise
        except Exception as exc:
            name = action_call.get("next_action") if isinstance(action_call, dict) else None
            log.warning("a request for %s could not be used: %s", name, type(exc).__name__)
            raise ActionExecutionRejection(str(name), f"the request could not be used ({type(exc).__name__})") from None


def build_executor(backends: Backends) -> ActionExecutor:
    """rasa_sdk's executor with every unlock action and form validation registered."""
    executor = _GuardedExecutor()
    for action_class in UNLOCK_ACTIONS:
        executor.register_action(action_class(backends))
    for validation_class in VALIDATION_ACTIONS:
        executor.register_action(validation_class())
    return executor


def load_domain(path: Path = DOMAIN_FILE) -> dict[str, Any]:
    """The domain file as the dict Rasa sends along with each call."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a Rasa domain (a mapping)")
    return data


# ---------------------------------------------------------------------- the action server


def serve(executor: ActionExecutor, host: str = "127.0.0.1", port: int = 5055,
          log_handlers: list[logging.Handler] | None = None) -> None:
    """rasa_sdk's own action server (``/health``, ``/actions``, ``/webhook``) over ``executor``,
    until SIGINT or SIGTERM.

    One process: the executor holds the line's open database, which cannot be pickled into
    the worker processes ``rasa_sdk.endpoint.run`` spawns. The actions' backend calls block
    (a PIN check is a scrypt hash), so requests are answered one at a time.
    """
    from rasa_sdk.constants import DEFAULT_KEEP_ALIVE_TIMEOUT
    from rasa_sdk.endpoint import create_app

    # The server's own log lines (requests, errors) go where the line's go, through the same
    # digit-run scrubber; neither rasa_sdk nor Sanic logs a request's body.
    for name in ("rasa_sdk", "sanic"):
        logger = logging.getLogger(name)
        for handler in log_handlers or []:
            logger.addHandler(handler)
        logger.setLevel(max(logging.INFO, logging.getLogger("voicebot").getEffectiveLevel()))
        logger.propagate = False
    logging.getLogger("sanic.access").addFilter(_AccessLine())
    # Sanic installs its SIGTERM handler only once the server runs (after it already answers):
    # a SIGTERM before then must stop it just as cleanly.
    signal.signal(signal.SIGTERM, _interrupt)
    app = create_app(executor, cors_origins=None)
    app.config.KEEP_ALIVE_TIMEOUT = DEFAULT_KEEP_ALIVE_TIMEOUT

    app.run(host=host, port=port, single_process=True, motd=False, access_log=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class _AccessLine(logging.Filter):
    """Sanic's access records keep their fields as extras (its own formatter reads them): one plain line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage():
            record.msg = "%s %s %s"
            record.args = (getattr(record, "host", "-"), getattr(record, "request", "-"), getattr(record, "status", "-"))
        return True


# ---------------------------------------------------------------------- the IVR's side


def action_call(action_name: str, slots: Mapping[str, str | None], domain: Mapping[str, Any],
                sender_id: str = IVR_SENDER_ID) -> dict[str, Any]:
    """The request body Rasa POSTs to an action server's ``/webhook`` for ``action_name``."""
    return {
        "next_action": action_name,
        "sender_id": sender_id,
        "tracker": {
            "sender_id": sender_id,
            "slots": dict(slots),
            "latest_message": {},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
        "domain": dict(domain),
        "version": rasa_sdk.__version__,
    }


def _slot_text(value: Any) -> str:
    if value is None:
        return ""
    return reveal(value) if isinstance(value, Secret) else str(value)
