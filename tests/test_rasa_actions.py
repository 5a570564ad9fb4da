"""The unlock steps as rasa_sdk actions: each run as Rasa runs it (CollectingDispatcher, a
tracker from Rasa's JSON) against the real SQLite bank; the IVR's in-process path through
the executor; the form validations; the domain file against the actions; nlu_data/ against
Rasa's training-data schema (the `rasa` package itself does not install here)."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.interfaces import ActionExecutionRejection

from voicebot.actions import ActionOutcome, UnlockActions
from voicebot.app import Line
from voicebot.backends.base import BankingBackend
from voicebot.errors import BackendError, BackendUnavailable
from voicebot.masking import Secret
from voicebot.rasa_actions import (
    DETAIL_SLOT,
    DOMAIN_FILE,
    RESULT_SLOT,
    SECRET_SLOTS,
    UNLOCK_ACTIONS,
    VALIDATION_ACTIONS,
    ActionConfirmPasswordChange,
    ActionIdentifyCaller,
    ActionOperationUnlockCode,
    ActionRecoverUser,
    ActionSmsSignatureKey,
    ActionUnlockSignature,
    ActionVerifyCard,
    Backends,
    UnlockAction,
    action_call,
    build_executor,
    load_domain,
)

ANA = {"document_type": "dni", "document_number": "12345678Z", "card_last4": "4567", "pin": "1234"}


def tracker(slots: dict[str, Any], events: list[dict[str, Any]] | None = None) -> Tracker:
    """A tracker as Rasa sends it in a /webhook request."""
    return Tracker.from_dict({
        "sender_id": "conversation-1",
        "slots": {"language": "es", **slots},
        "latest_message": {"intent": {"name": "inform", "confidence": 1.0}, "entities": [], "text": "..."},
        "events": events or [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
    })


def run(action: Any, slots: dict[str, Any], domain: dict[str, Any] | None = None,
        events: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """Run one action; (slots it set, response names, raw messages)."""
    dispatcher = CollectingDispatcher()
    returned = asyncio.run(action.run(dispatcher, tracker(slots, events), domain or load_domain()))
    assert all(event["event"] == "slot" for event in returned)
    return ({e["name"]: e["value"] for e in returned}, [m["response"] for m in dispatcher.messages], dispatcher.messages)


def backends(line: Line, bank: BankingBackend | None = None) -> Backends:
    return Backends(bank or line.bank, line.outbox, line.outbox, line.config)


def sent(line: Line) -> list[dict[str, Any]]:
    return line.outbox.list_messages(100)


# ---------------------------------------------------------------------- verify_card


def test_verify_card_success_names_the_customer_and_clears_the_secrets(line: Line) -> None:
    slots, responses, _ = run(ActionVerifyCard(backends(line)), ANA)
    assert slots == {RESULT_SLOT: "ok", DETAIL_SLOT: None, "customer_id": "C001", "card_last4": None, "pin": None}
    assert responses == ["utter_verify_card_ok"]


def test_verify_card_with_the_control_letter_left_out_or_an_nie(line: Line) -> None:
    assert run(ActionVerifyCard(backends(line)), {**ANA, "document_number": "12345678"})[0][RESULT_SLOT] == "ok"
    john = {"document_type": "nie", "document_number": "01234567", "card_last4": "1111", "pin": "2222"}
    assert run(ActionVerifyCard(backends(line)), john)[0]["customer_id"] == "C002"


def test_wrong_pin_and_unknown_customer_get_the_same_answer(line: Line) -> None:
    wrong_pin, responses, _ = run(ActionVerifyCard(backends(line)), {**ANA, "pin": "9999"})
    assert wrong_pin == {RESULT_SLOT: "mismatch", DETAIL_SLOT: None, "card_last4": None, "pin": None}
    assert responses == ["utter_verify_card_mismatch"]
    unknown, responses, _ = run(ActionVerifyCard(backends(line)), {**ANA, "document_number": "00000000T"})
    assert unknown == wrong_pin and responses == ["utter_verify_card_mismatch"]


def test_locked_card(line: Line) -> None:
    action = ActionVerifyCard(backends(line))
    for _ in range(line.config.lockout.max_pin_attempts - 1):
        assert run(action, {**ANA, "pin": "9999"})[0][RESULT_SLOT] == "mismatch"
    assert run(action, {**ANA, "pin": "9999"})[0][RESULT_SLOT] == "locked"
    slots, responses, _ = run(action, ANA)  # the right PIN no longer opens it
    assert slots[RESULT_SLOT] == "locked" and "customer_id" not in slots and slots["pin"] is None
    assert responses == ["utter_verify_card_locked"]


def test_a_malformed_document_is_an_error_without_the_number(line: Line, caplog: pytest.LogCaptureFixture) -> None:
    slots, responses, _ = run(ActionVerifyCard(backends(line)), {**ANA, "document_number": "12345678A"})
    assert slots[RESULT_SLOT] == "error" and slots[DETAIL_SLOT] == "unusable data (ValueError)"
    assert slots["pin"] is None and responses == ["utter_verify_card_error"]


def test_a_missing_slot_rejects_the_action(line: Line) -> None:
    with pytest.raises(ActionExecutionRejection, match="needs the slot"):
        run(ActionVerifyCard(backends(line)), {**ANA, "pin": None})


# ---------------------------------------------------------------------- the other steps


def test_recover_user_sends_the_username_by_email_and_the_password_by_sms(line: Line) -> None:
    slots, responses, _ = run(ActionRecoverUser(backends(line)), {"customer_id": "C001", "channel": "ebanking"})
    assert slots == {RESULT_SLOT: "sent", DETAIL_SLOT: None} and responses == ["utter_recover_user_sent"]
    email, sms = sorted(sent(line), key=lambda m: m["channel"])
    assert email["recipient"] == "ana.garcia@example.com" and "agarcia" in email["body"]
    assert sms["recipient"] == "+34600000001" and "****" in sms["body"]


def test_recover_user_in_english(line: Line) -> None:
    run(ActionRecoverUser(backends(line)), {"customer_id": "C002", "channel": "phone", "language": "en"})
    assert any("telephone banking" in m["body"] for m in sent(line))


def test_recover_user_without_an_email_sends_nothing(line: Line) -> None:
    slots, responses, _ = run(ActionRecoverUser(backends(line)), {"customer_id": "C003", "channel": "ebanking"})
    assert slots == {RESULT_SLOT: "contact_missing", DETAIL_SLOT: "missing email"}
    assert responses == ["utter_recover_user_contact_missing"] and sent(line) == []


def test_recover_user_of_an_unknown_customer_is_an_error(line: Line) -> None:
    slots, _, _ = run(ActionRecoverUser(backends(line)), {"customer_id": "C999", "channel": "ebanking"})
    assert slots[RESULT_SLOT] == "error" and slots[DETAIL_SLOT].startswith("BackendError")


def test_unlock_signature(line: Line) -> None:
    assert run(ActionUnlockSignature(backends(line)), {"customer_id": "C005"})[:2] == (
        {RESULT_SLOT: "unlocked", DETAIL_SLOT: None}, ["utter_unlock_signature_unlocked"])
    assert run(ActionUnlockSignature(backends(line)), {"customer_id": "C999"})[0][RESULT_SLOT] == "error"


def test_sms_signature_key_is_said_never_stored(line: Line) -> None:
    slots, responses, messages = run(ActionSmsSignatureKey(backends(line)),
                                     {"customer_id": "C002", "operation_reference": "555000111"})
    assert slots == {RESULT_SLOT: "issued", DETAIL_SLOT: None} and responses == ["utter_sms_signature_key_issued"]
    key = messages[0]["sms_key"]
    assert re.fullmatch(r"\d{%d}" % line.config.codes.sms_key_length, key)
    assert key not in str(slots)
    unknown, responses, _ = run(ActionSmsSignatureKey(backends(line)),
                                {"customer_id": "C002", "operation_reference": "999999"})
    assert unknown[RESULT_SLOT] == "unknown_operation" and responses == ["utter_sms_signature_key_unknown_operation"]


def test_identify_caller(line: Line) -> None:
    action = ActionIdentifyCaller(backends(line))
    assert run(action, {"caller_id": "+34950000004"})[0] == {RESULT_SLOT: "registered", DETAIL_SLOT: None,
                                                             "customer_id": "C004"}
    assert run(action, {"caller_id": "+34699999999"})[0] == {RESULT_SLOT: "unregistered", DETAIL_SLOT: None}
    assert run(action, {})[0] == {RESULT_SLOT: "unregistered", DETAIL_SLOT: "no caller ID"}


def test_operation_unlock_code(line: Line) -> None:
    action = ActionOperationUnlockCode(backends(line))
    slots, responses, _ = run(action, {"customer_id": "C001", "operation_reference": "20261129001"})
    assert slots == {RESULT_SLOT: "sent", DETAIL_SLOT: None} and responses == ["utter_operation_unlock_code_sent"]
    (sms,) = sent(line)
    assert sms["recipient"] == "+34600000001" and "20261129001" in sms["body"] and "****" in sms["body"]
    assert run(action, {"customer_id": "C001", "operation_reference": "123"})[0][RESULT_SLOT] == "unknown_operation"


def test_operation_unlock_code_without_a_mobile(line: Line) -> None:
    slots, responses, _ = run(ActionOperationUnlockCode(backends(line)),
                              {"customer_id": "C004", "operation_reference": "444000444"})
    assert slots == {RESULT_SLOT: "contact_missing", DETAIL_SLOT: "missing mobile"}
    assert responses == ["utter_operation_unlock_code_contact_missing"] and sent(line) == []


def test_confirm_password_change(line: Line) -> None:
    slots, responses, _ = run(ActionConfirmPasswordChange(backends(line)), {"customer_id": "C001"})
    assert slots[RESULT_SLOT] == "confirmed" and slots["message_id"] == sent(line)[0]["id"]
    assert responses == ["utter_confirm_password_change_confirmed"]
    assert run(ActionConfirmPasswordChange(backends(line)), {"customer_id": "C004"})[0][RESULT_SLOT] == "contact_missing"


class BrokenBank:
    """A bank whose every call fails, as a real adapter does when the bank is down."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise BackendUnavailable(f"bank timed out in {name}")
        return fail


ALL_SLOTS = {**ANA, "customer_id": "C001", "channel": "ebanking", "operation_reference": "20261129001",
             "caller_id": "+34600000001"}


@pytest.mark.parametrize("action_class", UNLOCK_ACTIONS, ids=lambda c: c.step)
def test_a_backend_error_is_the_result_error(line: Line, action_class: type[UnlockAction]) -> None:
    slots, responses, _ = run(action_class(backends(line, bank=BrokenBank())), ALL_SLOTS)  # type: ignore[arg-type]
    assert slots[RESULT_SLOT] == "error"
    assert slots[DETAIL_SLOT].startswith("BackendUnavailable: bank timed out in ")
    assert responses == [f"utter_{action_class.step}_error"]
    assert all(slots[name] is None for name in SECRET_SLOTS if name in action_class.reads())
    assert sent(line) == []


# ---------------------------------------------------------------------- the IVR's path


def test_the_ivr_runs_the_actions_through_the_executor(line: Line, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real_run = line.actions.executor.run

    async def spy(action_call: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(action_call)
        return await real_run(action_call, *args, **kwargs)

    monkeypatch.setattr(line.actions.executor, "run", spy)
    outcome = line.actions.run("verify_card", {"document_type": "dni", "document_number": "12345678",
                                               "card_last4": Secret("4567"), "pin": Secret("1234")}, "es")
    assert outcome == ActionOutcome("ok", {"customer_id": "C001"}, "")
    (call,) = calls
    assert set(call) == {"next_action", "sender_id", "tracker", "domain", "version"}
    assert call["next_action"] == "action_verify_card" and call["tracker"]["slots"]["pin"] == "1234"


def test_the_ivr_gets_the_sms_key_as_a_secret(line: Line) -> None:
    outcome = line.actions.run("sms_signature_key", {"customer_id": "C002", "operation_reference": "555000111"}, "en")
    assert outcome.result == "issued" and isinstance(outcome.data["sms_key"], Secret)
    assert set(outcome.data) == {"sms_key"}


def test_the_ivr_sees_errors_as_results(line: Line) -> None:
    assert line.actions.run("verify_card", {"document_type": "dni", "document_number": "12345678",
                                            "card_last4": Secret("4567"), "pin": ""}, "es") \
        == ActionOutcome("error", {}, "action_verify_card needs the slot(s) pin")
    assert line.actions.run("nope", {}, "es").result == "error"
    broken = UnlockActions(BrokenBank(), line.outbox, line.outbox, line.config)  # type: ignore[arg-type]
    outcome = broken.run("identify_caller", {"caller_id": "+34600000001"}, "es")
    assert outcome.result == "error" and "BackendUnavailable" in outcome.detail


def test_the_ivr_runs_actions_from_inside_an_event_loop(line: Line) -> None:
    async def in_loop() -> ActionOutcome:
        return line.actions.run("identify_caller", {"caller_id": "+34600000001"}, "es")

    assert asyncio.run(in_loop()) == ActionOutcome("registered", {"customer_id": "C001"}, "")


def test_confirm_password_change_outside_a_call(line: Line) -> None:
    assert line.actions.confirm_password_change("C001") == sent(line)[0]["id"]
    with pytest.raises(BackendError, match="no mobile"):
        line.actions.confirm_password_change("C004")
    with pytest.raises(BackendError, match="^unknown customer 'C999'$"):
        line.actions.confirm_password_change("C999")


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + (self.format(record) if record.exc_info else ""))


def test_no_pin_or_card_reaches_a_log_record(line: Line) -> None:
    """Before any scrubbing filter: the raw messages of every logger on the way."""
    recorder = Recorder()
    loggers = [logging.getLogger(name) for name in ("voicebot", "rasa_sdk", "")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(recorder)
        logger.setLevel(logging.DEBUG)
    try:
        args = {"document_type": "dni", "document_number": "12345678", "card_last4": Secret("4567")}
        for pin in ("9876", "1234"):
            line.actions.run("verify_card", {**args, "pin": Secret(pin)}, "es")
        line.actions.run("verify_card", {**args, "pin": ""}, "es")  # rejected
        UnlockActions(BrokenBank(), line.outbox, line.outbox, line.config).run(  # type: ignore[arg-type]
            "verify_card", {**args, "pin": Secret("9876")}, "es")
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(recorder)
            logger.setLevel(level)
    assert recorder.lines  # the executor and the actions did log
    text = "\n".join(recorder.lines)
    assert "9876" not in text and "1234" not in text and "4567" not in text


# ---------------------------------------------------------------------- form validation


def validate(line: Line, form_action: str, active: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Run a form validation action through the executor, as Rasa does after extracting ``new``."""
    executor = build_executor(backends(line))
    call = action_call(form_action, {**active, **new}, load_domain())
    call["tracker"]["events"] = [{"event": "slot", "name": k, "value": v} for k, v in new.items()]
    result = asyncio.run(executor.run(call))
    assert result is not None
    return ({e["name"]: e["value"] for e in result.events}, [m["response"] for m in result.responses])


@pytest.mark.parametrize("document_type, given, kept", [
    ("dni", "12345678Z", "12345678Z"),
    ("dni", "12345678", "12345678Z"),     # the letter computed
    ("dni", "12.345.678-z", None),        # dots are not a DNI
    ("dni", "12345678A", None),           # wrong control letter
    ("dni", "1234567", None),
    ("nie", "X1234567L", "X1234567L"),
    ("nie", "01234567", "X1234567L"),     # X keyed as 0
    ("nie", "Y1234567A", None),
])
def test_document_number_with_its_control_letter(line: Line, document_type: str, given: str, kept: str | None) -> None:
    slots, responses = validate(line, "validate_unlock_identity_form", {"document_type": document_type},
                                {"document_number": given})
    assert slots == {"document_number": kept}
    assert responses == ([] if kept else ["utter_invalid_document_number"])


@pytest.mark.parametrize("slot, given, kept", [
    ("card_last4", "4567", "4567"), ("card_last4", "45 67", "4567"), ("card_last4", "456", None),
    ("card_last4", "45a7", None), ("pin", "1234", "1234"), ("pin", "12345", None),
    ("document_type", "NIE", "nie"), ("document_type", "passport", None),
])
def test_card_pin_and_document_type(line: Line, slot: str, given: str, kept: str | None) -> None:
    slots, responses = validate(line, "validate_unlock_identity_form", {}, {slot: given})
    assert slots == {slot: kept} and responses == ([] if kept else [f"utter_invalid_{slot}"])


@pytest.mark.parametrize("given, kept", [("555000111", "555000111"), ("555000111#", "555000111"),
                                         ("123", None), ("12345678901234567", None), ("55500011x", None)])
def test_operation_reference(line: Line, given: str, kept: str | None) -> None:
    slots, responses = validate(line, "validate_unlock_operation_form", {}, {"operation_reference": given})
    assert slots == {"operation_reference": kept}
    assert responses == ([] if kept else ["utter_invalid_operation_reference"])


# ---------------------------------------------------------------------- the domain file


def test_the_domain_file_matches_the_actions(line: Line) -> None:
    domain = load_domain()
    executor = build_executor(backends(line))
    assert domain["actions"] == [a.name for a in executor.list_actions()]
    slots = domain["slots"]
    for action in UNLOCK_ACTIONS:
        for name in (*action.reads(), *action.sets, RESULT_SLOT, DETAIL_SLOT, "language"):
            assert name in slots, (action.step, name)
        assert set(action.results) | {"error"} <= set(slots[RESULT_SLOT]["values"])
        for response in action.responses():
            assert response in domain["responses"], response
    for validation in VALIDATION_ACTIONS:
        form = domain["forms"][validation().form_name()]
        for slot in form["required_slots"]:
            assert hasattr(validation, f"validate_{slot}") and f"utter_ask_{slot}" in domain["responses"]
        assert set(validation.RESPONSES) <= set(domain["responses"])  # type: ignore[attr-defined]
    for name in SECRET_SLOTS:
        assert slots[name]["influence_conversation"] is False
    assert "{sms_key}" in domain["responses"]["utter_sms_signature_key_issued"][0]["text"]


def test_the_domain_file_has_rasa_3_shape() -> None:
    """Rasa's domain schema (rasa/shared/utils/schemas/domain.yml) and its slot rules, by hand."""
    domain = yaml.safe_load(DOMAIN_FILE.read_text(encoding="utf-8"))
    assert set(domain) <= {"version", "intents", "entities", "actions", "responses", "slots", "forms",
                           "config", "session_config"}
    assert domain["version"] == "3.1"
    for name, slot in domain["slots"].items():
        assert slot["type"] in {"text", "bool", "categorical", "float", "list", "any"}, name
        assert isinstance(slot["mappings"], list) and slot["mappings"], name  # Rasa 3 requires mappings
        for mapping in slot["mappings"]:
            assert mapping["type"] in {"from_text", "from_entity", "from_intent", "from_trigger_intent", "custom"}
            for condition in mapping.get("conditions", []):
                assert condition["active_loop"] in domain["forms"]
    for name, variations in domain["responses"].items():
        assert name.startswith("utter_") and isinstance(variations, list) and variations
        assert any("condition" not in v for v in variations), f"{name}: no default variation"
        for variation in variations:
            assert isinstance(variation["text"], str) and variation["text"]
            assert set(variation) <= {"text", "condition", "buttons", "image", "custom", "channel", "metadata"}


# ---------------------------------------------------------------------- nlu_data/ is Rasa training data

# rasa/shared/nlu/training_data/schemas/nlu.yml (Rasa 3), as data: each item is one of these.
NLU_ITEM_KINDS = {"intent": {"intent", "examples", "metadata"}, "synonym": {"synonym", "examples"},
                  "regex": {"regex", "examples"}, "lookup": {"lookup", "examples"}}
NLU_DATA = Path(__file__).resolve().parent.parent / "nlu_data"


@pytest.mark.parametrize("path", sorted(NLU_DATA.glob("*/*.yml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_nlu_data_follows_rasas_schema(path: Path) -> None:
    """`rasa data validate` would be the check, but `rasa` does not install on this Python with these
    dependencies; this is its schema (pykwalify) and its example-line rule, written out."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(data) <= {"version", "nlu", "responses"} and isinstance(data["version"], str) and data["version"]
    assert isinstance(data["nlu"], list) and data["nlu"]
    for index, item in enumerate(data["nlu"]):
        where = f"{path}: nlu[{index}]"
        kinds = [kind for kind in NLU_ITEM_KINDS if kind in item]
        assert len(kinds) == 1, f"{where}: one of {sorted(NLU_ITEM_KINDS)}"
        kind = kinds[0]
        assert set(item) <= NLU_ITEM_KINDS[kind] and "examples" in item, where
        assert isinstance(item[kind], str) and item[kind], where
        examples = item["examples"]
        if kind == "intent" and isinstance(examples, list):  # the long form: [{text, metadata}]
            assert all(isinstance(e, dict) and isinstance(e.get("text"), str) and e["text"] for e in examples), where
            continue
        assert isinstance(examples, str), where
        lines = [line for line in examples.splitlines() if line.strip()]
        assert lines and all(line.startswith("- ") and line[2:].strip() for line in lines), where
