"""The dialog engine fed by hand: a list of events in, the exact commands out.

No backend, clock or sleep: each test plays the host itself. It ends prompts
(``PromptFinished``), lets timers run out (``TimerExpired``) and answers actions
(``ActionCompleted``). Prompt texts come from the real menu (``voicebot/data/menu.yaml``),
so a change of wording does not break these tests but a change of behaviour does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from unittest.mock import ANY

import pytest

from voicebot.config import DEFAULT_MENU, DEFAULT_NLU_DATA, Config
from voicebot.dialog import (
    ActionCompleted,
    CallerHungUp,
    CallStarted,
    CancelTimer,
    Command,
    DialogEngine,
    DigitPressed,
    EngineSettings,
    Event,
    Expect,
    HangUp,
    Listen,
    Phase,
    PlayPrompt,
    PromptFinished,
    RunAction,
    SpeechRecognized,
    SpokenDigits,
    StartTimer,
    StopListening,
    StopPrompt,
    TimerExpired,
    TimerKind,
    Transfer,
    TransferFailed,
)
from voicebot.dialog.commands import Text
from voicebot.errors import EngineError
from voicebot.masking import MASK, Secret
from voicebot.menu import load_menu
from voicebot.menu.model import Menu, Outcome, Route, language_spans
from voicebot.nlu import TextInterpreter

UNLOCK_LINE = "950183313"
SUPPORT_LINE = "901 511 000"  # as a caller would read it off the leaflet
CALLER = "+34600000001"
DNI = "12345678"  # its control letter is Z
CARD, PIN = "9753", "8642"  # distinctive: found nowhere else in a call
UNIVERSAL_KEYS = ("*", "#", "0", "7")  # repeat, back, agent, more slowly
DIGIT_KEYS = tuple("0123456789*#")
AGENT_PHONE_WORDS = "9 5 0, 2 1 0, 1 9 1"  # EngineSettings().agent_phone, read as digits


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def menu() -> Menu:
    return load_menu(DEFAULT_MENU)


@pytest.fixture(scope="module")
def nlu() -> TextInterpreter:
    return TextInterpreter.from_folder(DEFAULT_NLU_DATA, ["es", "en"])


class Call:
    """The host's side of one call: feeds events and notes what is playing, timed and running."""

    def __init__(self, engine: DialogEngine) -> None:
        self.engine = engine
        self.commands: list[Command] = []  # everything the engine asked for, in order
        self.playing: int | None = None
        self.timer: str | None = None
        self.action: str | None = None

    def feed(self, *events: Event) -> list[Command]:
        out: list[Command] = []
        for event in events:
            if isinstance(event, PromptFinished) and event.play_id == self.playing:
                self.playing = None
            if isinstance(event, TimerExpired) and event.timer_id == self.timer:
                self.timer = None
            commands = self.engine.feed(event)
            for command in commands:
                if isinstance(command, PlayPrompt):
                    self.playing = command.play_id
                elif isinstance(command, StopPrompt):
                    self.playing = None
                elif isinstance(command, StartTimer):
                    self.timer = command.timer_id
                elif isinstance(command, CancelTimer) and command.timer_id == self.timer:
                    self.timer = None
                elif isinstance(command, RunAction):
                    self.action = command.action_id
            out += commands
        self.commands += out
        return out

    def start(self, dialed: str = UNLOCK_LINE, **kwargs: Any) -> list[Command]:
        return self.feed(CallStarted(caller_id=CALLER, dialed=dialed, **kwargs))

    def keys(self, keys: str) -> list[Command]:
        return self.feed(*(DigitPressed(key) for key in keys))

    def say(self, text: str, confidence: float = 1.0) -> list[Command]:
        return self.feed(SpeechRecognized(text, confidence))

    def prompt_ends(self) -> list[Command]:
        assert self.playing is not None, "no prompt is playing"
        return self.feed(PromptFinished(self.playing))

    def timer_expires(self) -> list[Command]:
        assert self.timer is not None, "no timer is running"
        return self.feed(TimerExpired(self.timer))

    def action_completes(self, result: str, data: Mapping[str, str | Secret] | None = None,
                         detail: str = "") -> list[Command]:
        assert self.action is not None, "no action was asked for"
        return self.feed(ActionCompleted(self.action, result, dict(data or {}), detail))

    def hangs_up(self) -> list[Command]:
        return self.feed(CallerHungUp())


@pytest.fixture
def make_call(menu: Menu, nlu: TextInterpreter) -> Callable[..., Call]:
    def make(settings: EngineSettings | None = None, menu_: Menu | None = None) -> Call:
        return Call(DialogEngine(menu_ or menu, nlu, settings or EngineSettings()))
    return make


@pytest.fixture
def call(make_call: Callable[..., Call]) -> Call:
    return make_call()


class Says:
    """Matches a ``PlayPrompt`` by what the caller hears; the whole object is unwieldy."""

    def __init__(self, prompt_id: str, text: str, language: str = "es", barge_in: bool | None = None) -> None:
        heard = "".join(part for _, part in language_spans(text, language))  # <en>…</en> marks a voice, not words
        self.prompt_id, self.text, self.language, self.barge_in = prompt_id, heard, language, barge_in

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlayPrompt):
            return NotImplemented
        return (other.prompt_id, other.text, other.language) == (self.prompt_id, self.text, self.language) and (
            self.barge_in is None or other.barge_in == self.barge_in)

    def __repr__(self) -> str:
        return f"Says({self.prompt_id!r}, {self.text!r}, {self.language!r})"


class Prompts:
    """What the menu file makes the IVR say, in one language."""

    def __init__(self, menu: Menu, language: str) -> None:
        self.menu, self.language = menu, language

    def text(self, key: str) -> str:
        return self.menu.texts[key][self.language]

    def node(self, name: str, which: str = "prompt", barge_in: bool | None = None) -> Says:
        texts = getattr(self.menu.nodes[name], which)
        return Says(f"{name}.{which}", texts[self.language], self.language, barge_in)

    def reprompt(self, name: str, after: str) -> Says:
        """The short prompt after a failure: first what went wrong (``no_input``, ``no_match``)."""
        short = self.menu.nodes[name].reprompt[self.language]  # type: ignore[union-attr]
        return Says(f"{name}.reprompt", f"{self.text(after)} {short}", self.language)

    def agent(self, after: str | None = None) -> Says:
        text = self.text("agent") if after is None else f"{self.text(after)} {self.text('agent')}"
        return Says("texts.agent", text, self.language, barge_in=False)


@pytest.fixture(scope="module")
def es(menu: Menu) -> Prompts:
    return Prompts(menu, "es")


@pytest.fixture(scope="module")
def en(menu: Menu) -> Prompts:
    return Prompts(menu, "en")


def choice(node: str, keys: Iterable[str], languages: tuple[str, ...] = ("es",)) -> Listen:
    return Listen(node=node, expect=Expect.CHOICE, languages=languages, keys=(*keys, *UNIVERSAL_KEYS), phrases=ANY)


def digits(node: str, least: int, most: int, secret: bool = False, language: str = "es") -> Listen:
    return Listen(node=node, expect=Expect.DIGITS, languages=(language,), keys=DIGIT_KEYS,
                  min_digits=least, max_digits=most, secret=secret)


def no_input_timer(seconds: float = 5.0) -> StartTimer:
    return StartTimer(ANY, TimerKind.NO_INPUT, seconds)


INTER_DIGIT = StartTimer(ANY, TimerKind.INTER_DIGIT, 3.0)
NEXT_DIGIT = [CancelTimer(ANY), INTER_DIGIT]  # what every further key of an entry does


def at_operation_reference(call: Call) -> None:
    """Spanish caller, blocked-operation flow, registered phone: the reference prompt plays."""
    call.start(language="es")
    call.keys("2")
    call.action_completes("registered", {"customer_id": "C001"})
    assert call.engine.node_name == "operation_reference"


def at_verify(call: Call) -> list[Command]:
    """Spanish caller, user recovery by e-banking with a DNI, card and PIN keyed: verify_card runs."""
    call.start(language="es")
    return call.keys("111" + DNI + CARD + PIN)


# ---------------------------------------------------------------------- starting a call


def test_unlock_line_asks_for_the_language_in_both_languages(call: Call, es: Prompts) -> None:
    out = call.start()
    assert out == [
        es.node("language", barge_in=True),
        Listen(node="language", expect=Expect.CHOICE, languages=("es", "en"), keys=("1", "2", *UNIVERSAL_KEYS),
               phrases=ANY),
    ]
    phrases = out[1].phrases  # type: ignore[union-attr]
    assert "castellano" in phrases["es"] and "english" in phrases["en"]
    assert call.prompt_ends() == [no_input_timer(5.0)]
    assert call.engine.record.entry_point == "unlock_line"


def test_support_number_with_spaces_starts_at_support(make_call: Callable[..., Call], es: Prompts) -> None:
    call = make_call(EngineSettings.from_config(Config()))
    assert call.start(dialed=SUPPORT_LINE) == [es.node("support"), choice("support", "4198", ("es", "en"))]
    assert call.engine.record.entry_point == "support_line"


@pytest.mark.parametrize("dialed", [SUPPORT_LINE, "950 210 191"])
def test_default_settings_know_both_support_numbers(call: Call, es: Prompts, dialed: str) -> None:
    assert call.start(dialed=dialed) == [es.node("support"), choice("support", "4198", ("es", "en"))]


def test_known_language_skips_the_language_menu(call: Call, en: Prompts) -> None:
    assert call.start(language="en") == [en.node("main"), choice("main", "123", ("en",))]
    assert call.engine.language == "en"
    assert call.engine.record.language == "en"
    assert call.engine.record.path == ["language", "main"]


def test_known_language_on_the_support_line_speaks_it(make_call: Callable[..., Call], en: Prompts) -> None:
    call = make_call(EngineSettings.from_config(Config()))
    assert call.start(dialed=SUPPORT_LINE, language="en") == [en.node("support"),
                                                              choice("support", "4198", ("es", "en"))]


def test_known_language_on_the_support_line_records_support_once(make_call: Callable[..., Call]) -> None:
    call = make_call(EngineSettings.from_config(Config()))
    call.start(dialed=SUPPORT_LINE, language="en")
    assert call.engine.record.path == ["support"]


# ---------------------------------------------------------------------- barge-in


def test_a_key_during_a_prompt_stops_it_then_the_next_prompt_plays(call: Call, es: Prompts) -> None:
    call.start(language="es")
    assert call.keys("1") == [StopPrompt(), es.node("user_channel"), choice("user_channel", "12")]


@pytest.fixture
def deaf_language_menu(menu: Menu) -> Menu:
    """The real menu, but speech may not interrupt the language question."""
    nodes = dict(menu.nodes)
    nodes["language"] = nodes["language"].model_copy(update={"barge_in": False})
    return menu.model_copy(update={"nodes": nodes})


def test_a_key_stops_even_a_prompt_without_barge_in(make_call: Callable[..., Call], deaf_language_menu: Menu,
                                                     en: Prompts) -> None:
    call = make_call(menu_=deaf_language_menu)
    assert call.start()[0].barge_in is False  # type: ignore[union-attr]
    assert call.keys("2") == [StopPrompt(), en.node("main"), choice("main", "123", ("en",))]


def test_speech_during_a_prompt_without_barge_in_is_ignored_then_taken(
        make_call: Callable[..., Call], deaf_language_menu: Menu, en: Prompts) -> None:
    call = make_call(menu_=deaf_language_menu)
    call.start()
    assert call.say("english") == []
    assert call.prompt_ends() == [no_input_timer()]
    timer = call.timer
    assert call.say("english") == [CancelTimer(timer), en.node("main"), choice("main", "123", ("en",))]


def test_speech_stops_a_prompt_that_allows_barge_in(call: Call, es: Prompts) -> None:
    call.start(language="es")
    assert call.say("usuario") == [StopPrompt(), es.node("user_channel"), choice("user_channel", "12")]


# ---------------------------------------------------------------------- type-ahead and stale events


def test_keys_during_an_action_are_replayed_at_the_next_entry_without_its_prompt(call: Call) -> None:
    call.start(language="es")
    assert call.keys("2") == [StopPrompt(), RunAction(ANY, "identify_caller", {"caller_id": CALLER})]
    assert call.engine.phase is Phase.ACTION
    assert call.keys("1234#") == []
    assert call.action_completes("registered", {"customer_id": "C001"}) == [
        digits("operation_reference", 4, 16),
        INTER_DIGIT, *NEXT_DIGIT, *NEXT_DIGIT, *NEXT_DIGIT,
        CancelTimer(ANY),
        RunAction(ANY, "operation_unlock_code", {"customer_id": "C001", "operation_reference": "1234"}),
    ]


def test_a_key_during_an_intermediate_message_stops_it_and_counts_at_the_next_step(call: Call, es: Prompts) -> None:
    at_verify(call)
    assert call.action_completes("mismatch") == [es.node("verify_mismatch")]
    assert call.keys("1") == [StopPrompt(), digits("dni_number", 8, 8), INTER_DIGIT]
    assert call.keys(DNI[1:])[-2:] == [es.node("card_last4"), digits("card_last4", 4, 4, secret=True)]
    assert call.engine.record.inputs[-1] == {"node": "dni_number", "mode": "key", "value": "******78Z"}


def test_a_stopped_prompt_finishing_late_is_ignored(call: Call) -> None:
    call.start(language="es")
    stopped = call.playing
    call.keys("1")
    assert stopped is not None and call.playing != stopped
    assert call.feed(PromptFinished(stopped)) == []
    assert call.engine.phase is Phase.PLAYING


def test_a_cancelled_timer_expiring_late_is_ignored(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.prompt_ends()
    cancelled = call.timer
    assert cancelled is not None
    assert call.keys("*") == [CancelTimer(cancelled), es.node("main"), choice("main", "123")]
    assert call.feed(TimerExpired(cancelled)) == []
    assert call.engine.record.inputs[-1] == {"node": "main", "mode": "key", "value": "*"}


def test_an_old_action_completing_late_is_ignored(call: Call, es: Prompts) -> None:
    at_verify(call)
    old = call.action
    call.action_completes("mismatch")
    call.prompt_ends()
    call.keys(DNI + CARD + PIN)
    assert call.action != old
    assert call.feed(ActionCompleted(old, "ok", {"customer_id": "C001"})) == []  # type: ignore[arg-type]
    assert call.engine.phase is Phase.ACTION
    assert call.action_completes("mismatch") == [es.node("verify_mismatch")]


# ---------------------------------------------------------------------- digit entries


def test_every_key_restarts_the_inter_digit_timer(call: Call) -> None:
    at_operation_reference(call)
    assert call.keys("1") == [StopPrompt(), INTER_DIGIT]
    first = call.timer
    assert call.keys("2") == [CancelTimer(first), INTER_DIGIT]  # type: ignore[arg-type]
    assert call.timer not in (None, first)


def test_no_input_timer_of_a_long_entry_is_longer(call: Call) -> None:
    call.start(language="es")
    call.keys("111")
    assert call.prompt_ends() == [no_input_timer(8.0)]  # DNI: 8 keys, EngineSettings.long_entry_first_input


def test_pound_ends_an_entry_that_has_its_minimum(call: Call) -> None:
    at_operation_reference(call)
    call.keys("1234")
    timer = call.timer
    assert call.keys("#") == [
        CancelTimer(timer),  # type: ignore[arg-type]
        RunAction(ANY, "operation_unlock_code", {"customer_id": "C001", "operation_reference": "1234"}),
    ]


def test_pound_with_too_few_digits_is_a_no_match(call: Call, es: Prompts) -> None:
    at_operation_reference(call)
    call.keys("123")
    timer = call.timer
    assert call.keys("#") == [
        CancelTimer(timer),  # type: ignore[arg-type]
        es.reprompt("operation_reference", after="no_match"),
        digits("operation_reference", 4, 16),
    ]
    assert call.engine.record.inputs[-1] == {"node": "operation_reference", "mode": "key", "value": "123#"}


def test_inter_digit_timeout_with_enough_digits_accepts_the_entry(call: Call) -> None:
    at_operation_reference(call)
    call.keys("12345")
    assert call.timer_expires() == [
        RunAction(ANY, "operation_unlock_code", {"customer_id": "C001", "operation_reference": "12345"}),
    ]


def test_inter_digit_timeout_with_too_few_digits_is_a_no_match(call: Call, es: Prompts) -> None:
    at_operation_reference(call)
    call.keys("12")
    assert call.timer_expires() == [es.reprompt("operation_reference", after="no_match"),
                                    digits("operation_reference", 4, 16)]
    assert call.engine.record.inputs[-1]["value"] == "12 (incomplete)"


def test_star_restarts_the_entry_and_replays_the_prompt(call: Call, es: Prompts) -> None:
    at_operation_reference(call)
    call.keys("12")
    timer = call.timer
    assert call.keys("*") == [CancelTimer(timer), es.node("operation_reference"),  # type: ignore[arg-type]
                              digits("operation_reference", 4, 16)]
    assert call.keys("3456#")[-1] == RunAction(ANY, "operation_unlock_code",
                                               {"customer_id": "C001", "operation_reference": "3456"})


def test_reaching_the_maximum_ends_the_entry_at_once(call: Call) -> None:
    at_operation_reference(call)
    longest = "1234567890123456"
    assert call.keys(longest)[-2:] == [
        CancelTimer(ANY),
        RunAction(ANY, "operation_unlock_code", {"customer_id": "C001", "operation_reference": longest}),
    ]
    assert call.timer is None


def test_the_fourth_card_digit_moves_on_to_the_pin(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.keys("111" + DNI + CARD[:3])
    assert call.keys(CARD[3]) == [CancelTimer(ANY), es.node("card_pin"), digits("card_pin", 4, 4, secret=True)]


def test_speech_fills_an_entry_when_no_key_was_pressed(call: Call) -> None:
    at_operation_reference(call)
    assert call.say("dos tres cuatro cinco") == [
        StopPrompt(),
        RunAction(ANY, "operation_unlock_code", {"customer_id": "C001", "operation_reference": "2345"}),
    ]


def test_a_letter_key_leaves_the_entry_timed(call: Call) -> None:
    at_operation_reference(call)
    call.keys("12")
    call.keys("A")
    assert call.timer is not None


def test_pound_after_a_full_fixed_length_entry_is_not_a_failure(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.keys("111" + DNI)
    out = call.keys("#")
    assert not any(isinstance(c, PlayPrompt) and c.prompt_id.endswith(".reprompt") for c in out)
    assert call.keys(CARD)[-2:] == [es.node("card_pin"), digits("card_pin", 4, 4, secret=True)]


# ---------------------------------------------------------------------- re-prompts and failures


def test_no_input_replays_the_short_prompt_after_saying_so(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.prompt_ends()
    reprompt = es.reprompt("main", after="no_input")
    assert reprompt.text.startswith(es.text("no_input") + " ")
    assert call.timer_expires() == [reprompt, choice("main", "123")]
    assert call.engine.record.inputs[-1] == {"node": "main", "mode": "timeout", "value": "no input"}


def test_no_match_replays_the_short_prompt_after_saying_so(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.prompt_ends()
    timer = call.timer
    assert call.keys("5") == [CancelTimer(timer), es.reprompt("main", after="no_match"),  # type: ignore[arg-type]
                              choice("main", "123")]


def test_third_no_input_goes_to_an_agent(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.prompt_ends()
    call.timer_expires()
    call.prompt_ends()
    call.timer_expires()
    call.prompt_ends()
    assert call.timer_expires() == [es.agent()]
    assert call.prompt_ends() == [
        StopListening(),
        Transfer("no_input", {"reason": "no_input", "language": "es", "entry_point": "unlock_line",
                              "last_step": "main", "caller_id": CALLER}),
    ]
    assert (call.engine.record.outcome, call.engine.record.outcome_reason) == (Outcome.TRANSFERRED, "no_input")


def test_no_input_and_no_match_count_together(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.prompt_ends()
    assert call.timer_expires()[0] == es.reprompt("main", after="no_input")
    call.prompt_ends()
    assert call.say("patata frita")[1] == es.reprompt("main", after="no_match")
    call.prompt_ends()
    timer = call.timer
    assert call.keys("5") == [CancelTimer(timer), es.agent()]  # type: ignore[arg-type]
    assert call.prompt_ends() == [StopListening(), Transfer("no_match", ANY)]
    assert call.engine.record.outcome_reason == "no_match"


def test_attempts_start_again_at_each_node(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.prompt_ends()
    call.timer_expires()
    call.prompt_ends()
    call.timer_expires()
    call.keys("1")  # two failures at `main`, then a choice
    call.prompt_ends()
    call.timer_expires()
    call.prompt_ends()
    assert call.timer_expires() == [es.reprompt("user_channel", after="no_input"), choice("user_channel", "12")]


def test_low_confidence_speech_is_a_no_match(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.prompt_ends()
    timer = call.timer
    assert call.say("usuario", confidence=0.3) == [
        CancelTimer(timer), es.reprompt("main", after="no_match"), choice("main", "123"),  # type: ignore[arg-type]
    ]
    assert call.engine.record.inputs[-1] == {"node": "main", "mode": "speech", "value": "(low confidence)"}
    call.prompt_ends()
    assert call.say("usuario", confidence=0.9)[1:] == [es.node("user_channel"), choice("user_channel", "12")]


# ---------------------------------------------------------------------- secrets


def test_verify_card_carries_the_pin_and_card_as_secrets(call: Call) -> None:
    out = at_verify(call)
    assert out[-2:] == [
        CancelTimer(ANY),
        RunAction(ANY, "verify_card", {"document_type": "dni", "document_number": DNI + "Z",
                                       "card_last4": Secret(CARD), "pin": Secret(PIN), "caller_id": ANY}),
    ]
    run = out[-1]
    assert isinstance(run, RunAction)
    assert isinstance(run.args["card_last4"], Secret) and isinstance(run.args["pin"], Secret)
    assert (run.args["card_last4"].reveal(), run.args["pin"].reveal()) == (CARD, PIN)  # type: ignore[union-attr]
    assert "card_last4" not in call.engine.slots and "pin" not in call.engine.slots
    by_node = {item["node"]: item["value"] for item in call.engine.record.inputs}
    assert (by_node["card_last4"], by_node["card_pin"]) == (MASK, MASK)


def test_a_spoken_pin_is_a_secret_too(call: Call) -> None:
    call.start(language="es")
    call.keys("111" + DNI + CARD)
    out = call.say("ocho seis cuatro dos")
    assert out[-1] == RunAction(ANY, "verify_card", {"document_type": "dni", "document_number": DNI + "Z",
                                                     "card_last4": Secret(CARD), "pin": Secret(PIN), "caller_id": ANY})
    assert call.engine.record.inputs[-1] == {"node": "card_pin", "mode": "speech", "value": MASK}


def test_an_agent_asked_for_at_the_pin_gets_no_card_digits(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.keys("111" + DNI + CARD)
    assert "card_last4" in call.engine.slots
    assert call.say("operador") == [StopPrompt(), es.agent()]
    out = call.prompt_ends()
    assert out == [StopListening(), Transfer("caller_request", ANY)]
    context = out[1].context  # type: ignore[union-attr]
    assert not any(isinstance(value, Secret) for value in context.values())
    assert CARD not in repr(context) and "card_last4" not in context
    assert context["document_number"] == "******78Z"


def test_a_whole_call_never_shows_the_pin_or_card(call: Call, es: Prompts) -> None:
    at_verify(call)  # by keys
    call.action_completes("mismatch")
    call.prompt_ends()
    call.keys(DNI)  # then by voice
    call.say("nueve siete cinco tres")
    call.say("ocho seis cuatro dos")
    call.action_completes("mismatch")
    call.prompt_ends()
    call.keys(DNI + CARD + PIN)
    assert call.action_completes("mismatch") == [es.node("verification_failed")]
    out = call.prompt_ends()
    assert out == [StopListening(), Transfer("verification_failed", ANY)]
    context = out[1].context  # type: ignore[union-attr]
    assert context == {"reason": "verification_failed", "language": "es", "entry_point": "unlock_line",
                       "last_step": "verification_failed", "caller_id": CALLER, "flow": "recover_user",
                       "channel": "ebanking", "document_type": "dni", "document_number": "******78Z"}
    runs = [c for c in call.commands if isinstance(c, RunAction)]
    assert len(runs) == 3 and all(run.args["pin"] == Secret(PIN) for run in runs)
    for command in call.commands:
        assert CARD not in repr(command) and PIN not in repr(command), command
    record = repr(call.engine.record.as_dict())
    assert CARD not in record and PIN not in record


# ---------------------------------------------------------------------- backend faults and transfers


@pytest.mark.parametrize(("result", "detail", "recorded"), [
    ("error", "bank timed out", "bank timed out"),
    ("bogus", "", "unexpected result 'bogus'"),
])
def test_a_backend_fault_goes_to_an_agent(call: Call, es: Prompts, result: str, detail: str, recorded: str) -> None:
    call.start(language="es")
    call.keys("2")
    assert call.action_completes(result, detail=detail) == [es.agent(after="backend_error")]
    assert call.prompt_ends() == [StopListening(), Transfer("backend_error", ANY)]
    record = call.engine.record
    assert record.actions == [{"action": "identify_caller", "result": result, "detail": recorded}]
    assert (record.outcome, record.outcome_reason) == (Outcome.TRANSFERRED, "backend_error")


def test_a_failed_transfer_gives_the_agent_phone_then_hangs_up(call: Call, es: Prompts) -> None:
    call.start(language="es")
    assert call.keys("0") == [StopPrompt(), es.agent()]
    assert call.prompt_ends() == [StopListening(), Transfer("caller_request", ANY)]
    out = call.feed(TransferFailed("busy"))
    expected = es.text("transfer_failed").replace("{agent_phone:digits}", AGENT_PHONE_WORDS)
    assert out == [Says("texts.transfer_failed", expected, barge_in=False)]
    assert SpokenDigits("950210191") in out[0].segments  # type: ignore[union-attr]
    assert call.prompt_ends() == [StopListening(), HangUp(Outcome.FAILED, "transfer_failed:caller_request")]
    assert call.engine.phase is Phase.ENDED


# ---------------------------------------------------------------------- hang-up


def _playing(call: Call) -> None:
    call.start(language="es")


def _waiting(call: Call) -> None:
    call.start(language="es")
    call.prompt_ends()


def _in_an_entry(call: Call) -> None:
    at_operation_reference(call)
    call.keys("12")


def _running_an_action(call: Call) -> None:
    call.start(language="es")
    call.keys("2")


def _in_a_message(call: Call) -> None:
    at_verify(call)
    call.action_completes("mismatch")


def _after_the_end(call: Call) -> None:
    at_sms_key(call)
    call.prompt_ends()


@pytest.mark.parametrize(("setup", "timed"), [
    (_playing, False), (_waiting, True), (_in_an_entry, True), (_running_an_action, False),
    (_in_a_message, False), (_after_the_end, True),
], ids=["playing", "waiting", "entry", "action", "message", "after_end"])
def test_a_hang_up_only_cancels_a_running_timer(call: Call, setup: Callable[[Call], None], timed: bool) -> None:
    setup(call)
    timer, playing, action = call.timer, call.playing, call.action
    assert (timer is not None) == timed
    assert call.hangs_up() == ([CancelTimer(timer)] if timer else [])  # type: ignore[arg-type]
    assert call.engine.phase is Phase.ENDED
    later: list[Event] = [CallerHungUp(), DigitPressed("1"), SpeechRecognized("usuario"), TransferFailed()]
    later += [PromptFinished(playing)] if playing is not None else []
    later += [TimerExpired(timer)] if timer else []
    later += [ActionCompleted(action, "ok")] if action else []
    for event in later:
        assert call.feed(event) == [], event
    expected = Outcome.SMS_KEY_SPOKEN if setup is _after_the_end else Outcome.CALLER_HUNG_UP
    assert call.engine.record.outcome is expected


def test_a_hang_up_during_the_final_message_keeps_its_outcome(call: Call, es: Prompts) -> None:
    at_verify(call)
    assert call.action_completes("ok", {"customer_id": "C001"}) == [
        RunAction(ANY, "recover_user", {"customer_id": "C001", "channel": "ebanking"}),
    ]
    assert call.action_completes("sent") == [es.node("credentials_sent", barge_in=False)]
    assert call.hangs_up() == []
    assert call.engine.record.outcome is Outcome.CREDENTIALS_SENT


def test_the_final_message_ends_the_call(call: Call) -> None:
    at_verify(call)
    call.action_completes("ok", {"customer_id": "C001"})
    call.action_completes("sent")
    assert call.prompt_ends() == [StopListening(), HangUp(Outcome.CREDENTIALS_SENT, None)]


def test_a_hang_up_after_a_transfer_keeps_transferred(call: Call) -> None:
    call.start(language="es")
    call.keys("0")
    call.prompt_ends()
    assert call.hangs_up() == []
    assert (call.engine.record.outcome, call.engine.record.outcome_reason) == (Outcome.TRANSFERRED, "caller_request")


# ---------------------------------------------------------------------- the SMS key, said and repeated

SMS_KEY = "314159"


def at_sms_key(call: Call) -> list[Command]:
    """The SMS signature key flow up to the key being spoken; returns that prompt's commands."""
    call.start(language="es")
    call.keys("321" + DNI + "20261129001#" + CARD + PIN)
    call.action_completes("ok", {"customer_id": "C001"})
    return call.action_completes("issued", {"sms_key": Secret(SMS_KEY)})


def test_the_sms_key_is_spoken_but_never_shown(call: Call, es: Prompts) -> None:
    out = at_sms_key(call)
    words = "3 1 4, 1 5 9"
    expected = call.engine.menu.nodes["sms_key_spoken"].prompt["es"].replace("{sms_key:digits}", words)
    assert out == [Says("sms_key_spoken.prompt", expected, barge_in=False)]
    assert out[0].has_secret  # type: ignore[union-attr]
    assert SMS_KEY not in repr(out) and "3 1 4" not in repr(out)
    assert call.prompt_ends() == [
        Listen(node="sms_key_spoken", expect=Expect.REPEAT_ONLY, languages=("es",), keys=("*",)),
        no_input_timer(),
    ]
    timer = call.timer
    assert call.keys("*") == [CancelTimer(timer), Says("sms_key_spoken.prompt", expected)]  # type: ignore[arg-type]
    call.prompt_ends()
    assert call.timer_expires() == [StopListening(), HangUp(Outcome.SMS_KEY_SPOKEN, None)]


def test_star_during_the_sms_key_stops_it_before_replaying(call: Call) -> None:
    first = at_sms_key(call)[0]
    assert call.keys("*") == [StopPrompt(), Says("sms_key_spoken.prompt", first.text)]  # type: ignore[union-attr]


# ---------------------------------------------------------------------- misuse


@pytest.mark.parametrize("event", [
    DigitPressed("1"), SpeechRecognized("uno"), PromptFinished(1), TimerExpired("no_input#1"),
    ActionCompleted("verify_card-1", "ok"), TransferFailed(), CallerHungUp(),
], ids=lambda event: type(event).__name__)
def test_events_before_call_started_are_refused(call: Call, event: Event) -> None:
    with pytest.raises(EngineError):
        call.feed(event)
    assert call.engine.phase is Phase.BROKEN
    for later in (CallStarted(caller_id=CALLER, dialed=UNLOCK_LINE), DigitPressed("1"), CallerHungUp()):
        with pytest.raises(EngineError):
            call.feed(later)


def test_a_second_call_started_breaks_the_engine(call: Call) -> None:
    call.start(language="es")
    with pytest.raises(EngineError):
        call.start(language="es")
    with pytest.raises(EngineError):
        call.keys("1")


def test_an_unconfigured_language_is_refused(call: Call) -> None:
    with pytest.raises(EngineError, match="'fr'"):
        call.start(language="fr")
    assert call.engine.phase is Phase.BROKEN


# ---------------------------------------------------------------------- the verification counter


def _mismatches(call: Call, times: int) -> list[Command]:
    """Verify fails ``times`` times; returns what the last failure plays."""
    at_verify(call)
    out = call.action_completes("mismatch")
    for _ in range(times - 1):
        call.prompt_ends()
        call.keys(DNI + CARD + PIN)
        out = call.action_completes("mismatch")
    return out


def test_a_mismatch_asks_again_from_the_document(call: Call, es: Prompts) -> None:
    assert _mismatches(call, 1) == [es.node("verify_mismatch")]
    assert call.prompt_ends() == [es.node("dni_number"), digits("dni_number", 8, 8)]


def test_the_third_mismatch_goes_to_an_agent(call: Call, es: Prompts) -> None:
    assert _mismatches(call, 2) == [es.node("verify_mismatch")]
    call.prompt_ends()
    call.keys(DNI + CARD + PIN)
    assert call.action_completes("mismatch") == [es.node("verification_failed")]
    assert call.prompt_ends() == [StopListening(), Transfer("verification_failed", ANY)]
    assert call.engine.record.path[-2:] == ["verify_mismatch", "verification_failed"]


def test_the_mismatch_limit_comes_from_the_settings(make_call: Callable[..., Call], es: Prompts) -> None:
    call = make_call(EngineSettings(counter_limits={"verification_failures": 2}))
    assert _mismatches(call, 2) == [es.node("verification_failed")]
    assert call.prompt_ends() == [StopListening(), Transfer("verification_failed", ANY)]


# ---------------------------------------------------------------------- gaps and endings


def test_a_gap_in_the_menus_routes_goes_to_an_agent(make_call: Callable[..., Call], menu: Menu) -> None:
    """A route list that does not cover the call's slots is the menu's fault: a person takes over."""
    nodes = dict(menu.nodes)
    card = nodes["dni_number"]
    nodes["dni_number"] = card.model_copy(update={"next": [Route(when={"flow": "sms_key"}, go="sms_operation_reference")]})
    call = make_call(menu_=menu.model_copy(update={"nodes": nodes}))
    call.start(language="es")
    call.keys("1")
    call.keys("1")
    call.keys("1")
    commands = call.keys("12345678")
    assert isinstance(commands[-1], PlayPrompt) and commands[-1].prompt_id == "texts.agent"
    call.prompt_ends()
    assert call.engine.record.outcome_reason == "menu_error"
    assert call.engine.record.actions[-1]["detail"] == "no route from dni_number"


def test_the_sms_key_is_forgotten_when_the_call_ends(call: Call) -> None:
    call.start(language="es")
    call.engine.slots["sms_key"] = Secret("123456")
    call.hangs_up()
    assert not any(isinstance(value, Secret) for value in call.engine.slots.values())


# ---------------------------------------------------------------------- spoken digits read back, keys-only languages
# Spoken digits the line is not sure of are read back and confirmed, or asked for again;
# never a PIN. Keys and speech share an entry. A language with no speech model is keys-only.


DOUBTFUL = 0.6  # above the no-match floor (0.5), below the read-back threshold (0.8)
CONFIRM_KEYS = ("1", "2", *UNIVERSAL_KEYS)


def played(commands: list) -> list[PlayPrompt]:
    return [c for c in commands if isinstance(c, PlayPrompt)]


def confirm_listen(node: str) -> Listen:
    return Listen(node=node, expect=Expect.YES_NO, languages=("es",), keys=CONFIRM_KEYS)


def run_reference(reference: str) -> RunAction:
    return RunAction(ANY, "operation_unlock_code", {"customer_id": "C001", "operation_reference": reference})


def test_doubtful_digits_are_read_back_and_a_yes_accepts_them(call: Call, es: Prompts) -> None:
    at_operation_reference(call)
    out = call.say("dos tres cuatro cinco", confidence=DOUBTFUL)
    [prompt] = played(out)
    assert prompt.prompt_id == "texts.confirm_digits"
    assert SpokenDigits("2345") in prompt.segments
    assert out[-1] == confirm_listen("operation_reference")
    assert call.engine.record.inputs[-1]["value"] == "2345 (to confirm)"
    call.prompt_ends()
    assert call.say("sí")[-1] == run_reference("2345")
    assert call.engine.record.inputs[-1] == {"node": "operation_reference", "mode": "speech", "value": "2345"}


def test_a_no_asks_for_the_number_again(call: Call, es: Prompts) -> None:
    at_operation_reference(call)
    call.say("dos tres cuatro cinco", confidence=DOUBTFUL)
    call.prompt_ends()
    out = call.say("no")
    [prompt] = played(out)
    assert prompt.text.startswith(es.text("reenter"))
    assert out[-1] == digits("operation_reference", 4, 16)
    assert call.keys("9876#")[-1] == run_reference("9876")


def test_keys_answer_the_confirmation_too(make_call: Callable[..., Call]) -> None:
    yes, no = make_call(), make_call()
    for call in (yes, no):
        at_operation_reference(call)
        call.say("dos tres cuatro cinco", confidence=DOUBTFUL)
    assert yes.keys("1")[-1] == run_reference("2345")
    assert no.keys("2")[-1] == digits("operation_reference", 4, 16)


def test_star_repeats_the_read_back(call: Call) -> None:
    at_operation_reference(call)
    call.say("dos tres cuatro cinco", confidence=DOUBTFUL)
    out = call.keys("*")
    assert [p.prompt_id for p in played(out)] == ["texts.confirm_digits"]
    assert call.keys("1")[-1] == run_reference("2345")


def test_digits_said_again_instead_of_yes_replace_the_number(call: Call) -> None:
    at_operation_reference(call)
    call.say("dos tres cuatro cinco", confidence=DOUBTFUL)
    assert call.say("dos tres cuatro seis")[-1] == run_reference("2346")


def test_something_else_at_the_confirmation_asks_again_shortly(call: Call, es: Prompts) -> None:
    at_operation_reference(call)
    call.say("dos tres cuatro cinco", confidence=DOUBTFUL)
    out = call.say("patata")
    assert [p.prompt_id for p in played(out)] == ["texts.confirm_again"]
    assert call.keys("1")[-1] == run_reference("2345")


def test_confident_digits_are_not_read_back(call: Call) -> None:
    at_operation_reference(call)
    assert call.say("dos tres cuatro cinco", confidence=0.95) == [StopPrompt(), run_reference("2345")]


def test_too_many_digits_are_read_back_with_the_length_needed(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.keys("111")  # user recovery, e-banking, DNI: the DNI number wants 8 digits
    out = call.say("uno dos tres cuatro cinco seis siete ocho nueve")
    [prompt] = played(out)
    # Spoken in full, but the DNI step masks its entry: the digits stay out of the transcript.
    assert SpokenDigits(Secret("123456789")) in prompt.segments
    assert "123456789" not in prompt.masked_text() and "1 2 3" not in prompt.masked_text()
    assert prompt.prompt_id == "dni_number.reprompt"
    assert Text("texts.wrong_count.es.expected", "8") in prompt.segments  # "…y necesito 8 cifras"
    assert call.engine.record.inputs[-1]["value"].endswith("(wrong length)")
    assert call.engine.node_name == "dni_number"


def test_a_doubtful_pin_is_never_read_back(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.keys("111" + DNI + CARD)
    out = call.say("ocho seis cuatro dos", confidence=DOUBTFUL)
    [prompt] = played(out)
    assert prompt.text.startswith(es.text("secret_by_keys"))
    assert not any(isinstance(s, SpokenDigits) for s in prompt.segments)
    assert "8642" not in repr(out) and "8 6 4 2" not in prompt.text
    assert call.engine.record.inputs[-1] == {"node": "card_pin", "mode": "speech", "value": MASK + " (not sure)"}
    assert "pin" not in call.engine.slots


def test_a_pin_of_the_wrong_length_is_asked_for_by_keys(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.keys("111" + DNI + CARD)
    out = call.say("ocho seis cuatro dos uno")
    [prompt] = played(out)
    assert prompt.text.startswith(es.text("secret_by_keys"))
    assert "86421" not in repr(out)


def test_keys_then_speech_make_one_entry(call: Call) -> None:
    at_operation_reference(call)
    call.keys("12")
    assert call.say("tres cuatro")[-1] == run_reference("1234")


def test_speech_then_keys_make_one_entry(call: Call) -> None:
    at_operation_reference(call)
    out = call.say("cuatro cinco")  # fewer than the 4 a reference needs: the entry waits for more
    assert out == [StopPrompt(), StartTimer(ANY, TimerKind.INTER_DIGIT, 3.0)]
    assert call.keys("67#")[-1] == run_reference("4567")


@pytest.mark.parametrize("mumble", ["a ver", "¿eh?", "repite"])
def test_a_mumble_or_a_command_while_keying_is_ignored(call: Call, mumble: str) -> None:
    at_operation_reference(call)
    call.keys("12")
    running = call.timer
    assert call.say(mumble) == []
    assert call.timer == running
    assert call.keys("34#")[-1] == run_reference("1234")


def test_asking_for_an_agent_while_keying_is_heard(call: Call, es: Prompts) -> None:
    at_operation_reference(call)
    call.keys("12")
    assert call.say("quiero hablar con un operador")[-1] == es.agent()


def test_a_language_without_speech_is_told_once_to_use_the_keypad(make_call: Callable[..., Call],
                                                                  en: Prompts) -> None:
    call = make_call(EngineSettings(speech_languages=("es",)))
    out = call.start(language="en")
    [prompt] = played(out)
    assert prompt.text.startswith(en.text("speech_unavailable"))
    call.keys("1")
    [second] = played(call.commands[len(out):])
    assert en.text("speech_unavailable") not in second.text


def test_a_language_with_speech_hears_no_notice(make_call: Callable[..., Call], es: Prompts) -> None:
    call = make_call(EngineSettings(speech_languages=("es",)))
    [prompt] = played(call.start(language="es"))
    assert es.text("speech_unavailable") not in prompt.text


def test_the_notice_waits_for_the_language_choice(make_call: Callable[..., Call], en: Prompts) -> None:
    call = make_call(EngineSettings(speech_languages=("es",)))
    [first] = played(call.start())
    assert en.text("speech_unavailable") not in first.text
    out = call.keys("2")
    assert any(p.text.startswith(en.text("speech_unavailable")) for p in played(out))


# ---------------------------------------------------------------------- a menu choice in the caller's own words


@pytest.mark.parametrize(("lang", "said", "then"), [
    ("es", "no me acuerdo de mi nombre de usuario", "user_channel"),
    ("es", "tengo una transferencia parada que no puedo terminar", "identify_caller"),
    ("en", "i can't remember my login name", "user_channel"),
])
def test_a_paraphrase_picks_the_option_of_its_intent(make_call: Callable[..., Call], lang: str, said: str,
                                                     then: str) -> None:
    call = make_call()
    call.start(language=lang)
    call.prompt_ends()
    call.say(said)
    assert call.engine.node_name == then


def test_an_out_of_scope_sentence_at_a_menu_is_a_no_match(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.prompt_ends()
    out = call.say("quiero pedir una hipoteca para un piso")
    assert es.reprompt("main", after="no_match") in out


def test_a_spoken_correction_replaces_keyed_digits_too(call: Call) -> None:
    at_operation_reference(call)
    call.keys("45")
    call.say("seis siete", confidence=DOUBTFUL)  # "4567", doubtful: read back
    assert call.say("dos tres cuatro seis")[-1] == run_reference("2346")


def test_a_doubtful_first_half_of_a_spoken_pin_is_asked_for_by_keys(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.keys("111" + DNI + CARD)
    [prompt] = played(call.say("ocho seis", confidence=DOUBTFUL))
    assert prompt.text.startswith(es.text("secret_by_keys"))


def test_a_part_marked_in_another_language_is_said_in_its_voice(call: Call) -> None:
    [play, _] = call.start()
    assert isinstance(play, PlayPrompt) and play.language == "es"
    voices = [(segment.language, segment.text) for segment in play.segments]  # type: ignore[union-attr]
    assert voices == [(None, "Servicio de desbloqueo de claves. Para castellano, pulse 1 o diga castellano. "),
                      ("en", "For English, press 2 or say English.")]


# ---------------------------------------------------------------------- a backend that does not answer


def test_a_backend_step_without_an_answer_in_time_offers_an_agent(make_call: Callable[..., Call], es: Prompts) -> None:
    call = make_call(EngineSettings(action_timeout=17.0))
    commands = at_verify(call)
    assert StartTimer(ANY, TimerKind.ACTION, 17.0) in commands
    late = call.action
    assert es.agent("backend_error") in call.timer_expires()
    assert call.engine.record.actions[-1] == {"action": "verify_card", "result": "error", "detail": "no answer in time"}
    # The answer that comes after is not taken: the caller was told and is on the way to an agent.
    assert call.feed(ActionCompleted(late, "ok", {"customer_id": "C001"})) == []  # type: ignore[arg-type]
    assert "customer_id" not in call.engine.slots


def test_an_answer_in_time_cancels_the_step_timer(make_call: Callable[..., Call], es: Prompts) -> None:
    call = make_call(EngineSettings(action_timeout=17.0))
    at_verify(call)
    step_timer = call.timer
    commands = call.action_completes("mismatch")
    assert CancelTimer(step_timer) in commands  # type: ignore[arg-type]
    assert es.node("verify_mismatch") in commands


# ---------------------------------------------------------------------- patience


def test_each_no_input_gives_the_caller_longer_up_to_the_cap(make_call: Callable[..., Call], es: Prompts) -> None:
    call = make_call(EngineSettings(patience_step=0.5, max_first_input=9.0, max_attempts=5))
    call.start()
    seen = []
    for _ in range(4):
        call.prompt_ends()
        started = [c for c in call.commands if isinstance(c, StartTimer) and c.kind is TimerKind.NO_INPUT]
        seen.append(started[-1].seconds)
        call.timer_expires()
    assert seen == [5.0, 7.5, 9.0, 9.0]


def test_an_entry_left_incomplete_gives_longer_between_keys(make_call: Callable[..., Call]) -> None:
    call = make_call(EngineSettings(patience_step=0.5, max_inter_digit=8.0))
    at_operation_reference(call)
    assert call.keys("1")[-1] == StartTimer(ANY, TimerKind.INTER_DIGIT, 3.0)
    call.timer_expires()  # one key of a reference: incomplete
    call.prompt_ends()
    assert call.keys("1")[-1] == StartTimer(ANY, TimerKind.INTER_DIGIT, 4.5)


# ---------------------------------------------------------------------- more slowly, more time


def test_more_slowly_by_key_or_voice_slows_every_later_prompt_down_to_the_floor(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.prompt_ends()
    replay = call.keys("7")
    plays = [c for c in replay if isinstance(c, PlayPrompt)]
    assert plays[-1].rate == pytest.approx(0.8) and plays[-1].prompt_id == "main.prompt"
    assert plays[-1].text.startswith(es.text("slower"))
    call.prompt_ends()
    call.say("más despacio")
    call.prompt_ends()
    call.say("más despacio por favor")
    call.prompt_ends()
    later = call.keys("1")
    assert [c.rate for c in later if isinstance(c, PlayPrompt)] == [pytest.approx(0.6)]  # 0.8 × 0.8, then the floor


def test_one_moment_gives_a_long_wait_once_without_counting_a_failure(call: Call, es: Prompts) -> None:
    call.start(language="es")
    call.prompt_ends()
    said = call.say("un momento por favor")
    assert [c.text for c in said if isinstance(c, PlayPrompt)] == [es.text("more_time")]
    assert call.prompt_ends() == [StartTimer(ANY, TimerKind.NO_INPUT, 30.0)]
    call.timer_expires()  # still nothing: an ordinary no-input now
    call.prompt_ends()
    assert call.commands[-1] == StartTimer(ANY, TimerKind.NO_INPUT, 5.0)
    assert call.keys("1")  # and the caller goes on
    assert call.engine.node_name != "main"
