"""The backend steps of the unlock flows, as the dialog engine names them in the menu.

The steps themselves are rasa_sdk actions (:mod:`voicebot.rasa_actions`); this is the IVR's
side of them. :meth:`UnlockActions.run` takes the engine's ``RunAction`` (name and args),
builds the request Rasa would send to an action server, runs it in-process through
rasa_sdk's :class:`~rasa_sdk.executor.ActionExecutor`, and turns the events and responses
that come back into an :class:`ActionOutcome` (result name + data for the engine's slots).
So a call and a Rasa assistant run one code path. A backend fault becomes the result
``error`` (the engine then offers an agent); its detail names the fault, never a secret.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection

from .backends.base import BankingBackend, EmailGateway, SmsGateway
from .config import Config
from .errors import BackendError
from .masking import Secret
from .rasa_actions import (
    DETAIL_SLOT,
    IVR_SENDER_ID,
    LANGUAGE_SLOT,
    RESULT_SLOT,
    SECRET_RESPONSE_VARIABLES,
    STEP_ASKED_AT,
    UNLOCK_ACTIONS,
    Backends,
    action_call,
    build_executor,
    load_domain,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionOutcome:
    result: str
    data: Mapping[str, str | Secret] = field(default_factory=dict)
    detail: str = ""


Args = Mapping[str, "str | Secret"]

# The engine's step name -> the rasa_sdk action's name.
ACTION_NAMES = {action.step: f"action_{action.step}" for action in UNLOCK_ACTIONS}


class UnlockActions:
    """The actions of SPEC.md over injected backends, run through rasa_sdk's executor."""

    # What the menu may name (confirm_password_change is not a step of a call).
    NAMES = frozenset(ACTION_NAMES) - {"confirm_password_change"}

    def __init__(self, bank: BankingBackend, sms: SmsGateway, email: EmailGateway, config: Config,
                 messages_queued: Callable[[], object] | None = None) -> None:
        self.bank = bank
        self.sms = sms
        self.email = email
        self.config = config
        # messages_queued: called once a step's messages are committed to the outbox (send them now).
        self.backends = Backends(bank, sms, email, config, messages_queued)
        self.executor: ActionExecutor = build_executor(self.backends)
        self.domain = load_domain()

    def run(self, name: str, args: Args, language: str = "es", asked_at: float | None = None) -> ActionOutcome:
        """Run step ``name``; ``asked_at``: when the call asked for it (``time.monotonic()``),
        so time spent waiting for a worker counts against ``timeouts.action``."""
        if name not in self.NAMES:
            return ActionOutcome("error", detail=f"no action named {name!r}")
        STEP_ASKED_AT.set(asked_at)
        # The tracker holds the secrets as plain strings, as Rasa's would; it lives only for this call.
        slots: dict[str, str | None] = {key: _plain(value) or None for key, value in args.items()}
        slots[LANGUAGE_SLOT] = language
        try:
            response = self.execute(action_call(ACTION_NAMES[name], slots, self.domain))
        except ActionExecutionRejection as exc:
            log.warning("action %s rejected: %s", name, exc.message)
            return ActionOutcome("error", detail=exc.message)
        return _outcome(response)

    def execute(self, call: dict[str, Any]) -> dict[str, Any]:
        """Run one action request (Rasa's ``/webhook`` body) through the executor; its response body."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            result = asyncio.run(self.executor.run(call))
        else:
            # Called from inside an event loop: run on a thread of its own rather than re-enter it.
            with ThreadPoolExecutor(1, thread_name_prefix="voicebot-action") as pool:
                return pool.submit(contextvars.copy_context().run, self.execute, call).result()
        if result is None:
            raise BackendError(f"the action request named no action ({call.get('next_action')!r})")
        return result.model_dump()

    # ---------------------------------------------------------------- outside a call

    def confirm_password_change(self, customer_id: str) -> str:
        """SPEC: once the customer changed the passwords, an SMS confirms it. Returns the message id."""
        call = action_call("action_confirm_password_change", {"customer_id": customer_id}, self.domain)
        slots = _slot_events(self.execute(call))
        if slots.get(RESULT_SLOT) != "confirmed" or not slots.get("message_id"):
            detail = str(slots.get(DETAIL_SLOT) or "the password change could not be confirmed")
            raise BackendError(re.sub(r"^Backend\w*: ", "", detail))  # the fault's own words, for the operator
        return str(slots["message_id"])


def _outcome(response: Mapping[str, Any]) -> ActionOutcome:
    slots = _slot_events(response)
    result = slots.pop(RESULT_SLOT, None)
    detail = slots.pop(DETAIL_SLOT, None) or ""
    if not isinstance(result, str) or not result:
        return ActionOutcome("error", detail="the action set no result")
    data: dict[str, str | Secret] = {name: str(value) for name, value in slots.items() if value is not None}
    for message in response.get("responses", []):
        for name in SECRET_RESPONSE_VARIABLES & message.keys():
            data[name] = Secret(str(message[name]))
    return ActionOutcome(result, data, str(detail))


def _slot_events(response: Mapping[str, Any]) -> dict[str, Any]:
    return {event["name"]: event.get("value") for event in response.get("events", []) if event.get("event") == "slot"}


def _plain(value: "str | Secret") -> str:
    return value.reveal() if isinstance(value, Secret) else value


__all__ = ["ActionOutcome", "UnlockActions", "ACTION_NAMES", "IVR_SENDER_ID"]
