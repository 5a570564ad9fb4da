"""The dialog engine: every rule that moves a call through the menu lives in this module.

``DialogEngine(menu, interpreter, settings).feed(event) -> list[command]``. It is a state
machine over the menu data with one extra dimension, the *phase* of the current node:

    PLAYING   an input node's prompt is playing; keys (and speech, if barge-in) are taken
    WAITING   the prompt is over; the no-input or inter-digit timer runs
    MESSAGE   a message, transfer or end prompt is playing; keys are kept for later
    ACTION    a backend step runs on the host; keys are kept for later
    AFTER_END a final prompt is over; only "repeat" is heard until the timer ends the call
    TRANSFER  the host is transferring the call
    ENDED     nothing more happens; any event is ignored
    BROKEN    an internal error happened; every further event raises ``EngineError``

Input rules (learnt from Twilio <Gather>, FreeSWITCH play_and_get_digits, Jambonz gather):
a key always stops the prompt and is never lost (kept while an action or message runs,
replayed at the next input node); the no-input timer starts when the prompt ends; each
key restarts the inter-digit timer; ``#`` ends an entry, ``*`` restarts it; once a key is
pressed in an entry, speech for it is ignored; no-input and no-match re-prompt with the
short prompt, and after ``max_attempts`` failures the call goes to an agent.
"""

from __future__ import annotations

import dataclasses

import enum
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

from ..config import Config, normalise_number
from ..documents import Document
from ..errors import EngineError
from ..masking import MASK, Secret, mask_tail
from ..menu.model import (
    ActionNode,
    DigitsNode,
    EndNode,
    Mask,
    Menu,
    MenuNode,
    MessageNode,
    Next,
    Option,
    Outcome,
    TransferNode,
    UniversalCommand,
    language_spans,
)
from ..nlu.interpreter import TextInterpreter, Understanding, longest_match
from .commands import (
    CancelTimer,
    Command,
    Expect,
    HangUp,
    Listen,
    PlayPrompt,
    RunAction,
    Segment,
    SpokenDigits,
    StartTimer,
    StopListening,
    StopPrompt,
    Text,
    TimerKind,
    Transfer,
)
from .events import (
    ActionCompleted,
    CallerHungUp,
    CallStarted,
    DigitPressed,
    Event,
    Key,
    PromptFinished,
    SpeechRecognized,
    TimerExpired,
    TransferFailed,
)

# Slots the one-sentence shortcut may fill before their step is reached. Secrets never.
ACTION_GRACE = 2.0  # seconds the engine waits past ``timeouts.action`` for a step's answer

SHORTCUT_SLOTS = {"flow", "channel", "document_type", "language", "document_number"}


class Phase(enum.Enum):
    IDLE = "idle"
    PLAYING = "playing"
    WAITING = "waiting"
    MESSAGE = "message"
    ACTION = "action"
    AFTER_END = "after_end"
    TRANSFER = "transfer"
    ENDED = "ended"
    BROKEN = "broken"


@dataclass(frozen=True)
class EngineSettings:
    first_input_timeout: float = 5.0
    inter_digit_timeout: float = 3.0
    long_entry_first_input: float = 8.0
    max_attempts: int = 3
    min_confidence: float = 0.5
    confirm_below: float = 0.8  # spoken digits heard with less confidence are read back (never a PIN)
    # Languages whose speech the line can recognise; None: every one (text transports).
    speech_languages: tuple[str, ...] | None = None
    languages: tuple[str, ...] = ("es", "en")
    default_language: str = "es"
    agent_phone: str = "950210191"
    counter_limits: Mapping[str, int] = field(default_factory=dict)
    # dialled number -> entry point; by default the numbers of the leaflet, as in Config
    entry_points: Mapping[str, str] = field(default_factory=lambda: dict(Config().dialed_numbers))
    default_entry_point: str = "unlock_line"
    # Seconds a backend step may take before the caller is offered an agent; None: no limit.
    # The step itself undoes its work past ``timeouts.action``; the engine waits a little
    # longer, so a step that just made it is not cut off on its way back.
    action_timeout: float | None = None
    # A caller who lets a timer run out is given longer from then on: each no-input (or an
    # entry left incomplete) adds ``patience_step`` × the usual time, up to the caps.
    patience_step: float = 0.0
    max_first_input: float = 15.0
    max_inter_digit: float = 8.0
    # "More slowly": the speech rate is multiplied by this for the rest of the call, each time
    # the caller asks, down to ``slowest`` (of the usual rate).
    slower_step: float = 0.8
    slowest: float = 0.6
    more_time: float = 30.0  # seconds the line waits after "one moment"

    @classmethod
    def from_config(cls, config: Config) -> "EngineSettings":
        return cls(
            first_input_timeout=config.timeouts.first_input,
            inter_digit_timeout=config.timeouts.inter_digit,
            long_entry_first_input=config.timeouts.long_entry_first_input,
            max_attempts=config.retries.max_attempts,
            min_confidence=config.nlu.min_confidence,
            confirm_below=config.nlu.confirm_below,
            languages=tuple(config.languages),
            default_language=config.default_language,
            agent_phone=config.agent.phone_number,
            counter_limits={"verification_failures": config.lockout.max_verifications_per_call},
            entry_points=dict(config.dialed_numbers),
            default_entry_point=config.default_entry_point,
            action_timeout=config.timeouts.action + ACTION_GRACE,
            patience_step=config.timeouts.patience_step,
            max_first_input=config.timeouts.max_first_input,
            max_inter_digit=config.timeouts.max_inter_digit,
            slower_step=config.tts.slower_step,
            slowest=config.tts.slowest,
            more_time=config.timeouts.more_time,
        )


@dataclass
class CallRecord:
    """What the engine knows of the call, masked as it is written. The host adds times and ids."""

    entry_point: str = ""
    language: str = ""
    path: list[str] = field(default_factory=list)
    inputs: list[dict[str, str]] = field(default_factory=list)
    actions: list[dict[str, str]] = field(default_factory=list)
    outcome: Outcome | None = None
    outcome_reason: str | None = None
    transfer_context: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry_point": self.entry_point,
            "language": self.language,
            "path": list(self.path),
            "inputs": [dict(item) for item in self.inputs],
            "actions": [dict(item) for item in self.actions],
            "outcome": self.outcome.value if self.outcome else None,
            "outcome_reason": self.outcome_reason,
            "transfer_context": dict(self.transfer_context),
        }


class DialogEngine:
    def __init__(
        self,
        menu: Menu,
        interpreter: TextInterpreter,
        settings: EngineSettings | None = None,
    ) -> None:
        self.menu = menu
        self.interpreter = interpreter
        self.settings = settings or EngineSettings()
        self.record = CallRecord()
        self.phase = Phase.IDLE
        self.node_name = ""
        self.slots: dict[str, str | Secret] = {}
        self._pending: dict[str, str] = {}  # what the caller already said, for steps to come
        self._language = self.settings.default_language
        self._attempts = 0
        self._counters: dict[str, int] = {}
        self._history: list[str] = []  # input nodes visited, for "back"
        self._entry: list[str] = []  # keys of the digit entry in progress
        self._entry_keyed = False
        self._confirming: str | None = None  # spoken digits read back, awaiting yes or no
        self._told_keys_only = False  # the caller heard that speech is unavailable in their language
        self._absorb_pound = False  # an entry just ended at its maximum length
        self._kept_keys: deque[Key] = deque()  # type-ahead kept while no input node listens
        self._play_id = 0
        self._playing: int | None = None
        self._barge_in = True
        self._timer_seq = 0
        self._timer: str | None = None
        self._timeouts_run_out = 0  # no-inputs and incomplete entries in this call (see _patient)
        self._rate = 1.0  # of the line's speech rate, for the rest of the call ("more slowly")
        self._more_time = False  # the caller asked for a moment: the next wait is settings.more_time
        self._action_seq = 0
        self._action_id: str | None = None
        self._after_message: Callable[[], list[Command]] | None = None
        self._reachable_cache: dict[tuple[str, int], list[dict[str, str]]] = {}

    # ------------------------------------------------------------------ public

    @property
    def language(self) -> str:
        return self._language

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.ENDED, Phase.TRANSFER)

    def feed(self, event: Event) -> list[Command]:
        if self.phase is Phase.BROKEN:
            raise EngineError("the engine failed earlier and accepts no more events")
        try:
            return self._dispatch(event)
        except EngineError:
            self.phase = Phase.BROKEN
            raise
        except Exception as exc:  # a bug: stop here rather than mislead the caller
            self.phase = Phase.BROKEN
            raise EngineError(f"internal error on {type(event).__name__}: {type(exc).__name__}") from exc

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, event: Event) -> list[Command]:
        if isinstance(event, CallStarted):
            return self._on_call_started(event)
        if self.phase is Phase.IDLE:
            raise EngineError(f"{type(event).__name__} before CallStarted")
        if isinstance(event, CallerHungUp):
            return self._on_hang_up()
        if self.phase is Phase.ENDED:
            return []
        if isinstance(event, TransferFailed):
            return self._on_transfer_failed(event)
        if self.phase is Phase.TRANSFER:
            return []
        if isinstance(event, PromptFinished):
            return self._on_prompt_finished(event)
        if isinstance(event, DigitPressed):
            return self._on_key(event.key)
        if isinstance(event, SpeechRecognized):
            return self._on_speech(event)
        if isinstance(event, TimerExpired):
            return self._on_timer(event)
        if isinstance(event, ActionCompleted):
            return self._on_action_completed(event)
        raise EngineError(f"unknown event {type(event).__name__}")

    def _on_call_started(self, event: CallStarted) -> list[Command]:
        if self.phase is not Phase.IDLE:
            raise EngineError("CallStarted twice")
        settings = self.settings
        entry = settings.default_entry_point
        if event.dialed:
            entry = settings.entry_points.get(normalise_number(event.dialed), entry)
        if entry not in self.menu.entry_points:
            raise EngineError(f"entry point {entry!r} is not in the menu")
        self.slots["caller_id"] = event.caller_id or ""
        self.record.entry_point = entry
        start = self.menu.entry_points[entry]
        if event.language:
            if event.language not in settings.languages:
                raise EngineError(f"language {event.language!r} is not configured")
            self._set_language(event.language)
            # A caller whose language is known skips the language question.
            start = self._skip_language_choice(start, event.language)
        else:
            self._set_language(settings.default_language)
        return self._enter(start)

    def _skip_language_choice(self, start: str, language: str) -> str:
        node = self.menu.nodes[start]
        if isinstance(node, MenuNode) and node.any_language:
            for option in node.options:
                # Only a real language question is skipped, not a menu that merely offers a switch.
                if option.set.get("language") == language and isinstance(option.next, str) and option.next != start:
                    self.record.path.append(start)
                    return option.next
        return start

    # ------------------------------------------------------------------ entering nodes

    def _enter(self, name: str, *, forward: bool = True) -> list[Command]:
        node = self.menu.nodes[name]
        self.node_name = name
        self.record.path.append(name)
        self._attempts = 0
        self._clear_entry()
        if isinstance(node, (MenuNode, DigitsNode)):
            if forward and (not self._history or self._history[-1] != name):
                self._history.append(name)
            shortcut = self._try_shortcut(node)
            if shortcut is not None:
                return shortcut
            return self._start_input(node)
        if isinstance(node, ActionNode):
            return self._run_action(node)
        if isinstance(node, MessageNode):
            if node.counter:
                count = self._counters.get(node.counter, 0) + 1
                self._counters[node.counter] = count
                limit = self.settings.counter_limits.get(node.counter, self.menu.counters.get(node.counter, 3))
                if count >= limit and node.exceeded:
                    return self._enter(node.exceeded)
            return self._message(node, lambda: self._go(node.next))
        if isinstance(node, TransferNode):
            return self._message(node, lambda: self._transfer(node.reason))
        if isinstance(node, EndNode):
            self._set_outcome(node.outcome)
            return self._message(node, lambda: self._after_end(node))
        raise EngineError(f"node type of {name!r} is not handled")

    def _start_input(self, node: MenuNode | DigitsNode, prefix: Iterable[Segment] = (), which: str = "prompt") -> list[Command]:
        listen = self._listen_command(node)
        self._barge_in = node.barge_in
        if self._kept_keys:
            # Type-ahead: the caller already answered; do not play what they skipped.
            self.phase = Phase.WAITING
            commands: list[Command] = [listen]
            while self._kept_keys and self.phase in (Phase.WAITING, Phase.PLAYING) and self.node_name == listen.node:
                commands += self._on_key(self._kept_keys.popleft())
            return commands
        texts = getattr(node, which) or node.prompt
        if self._keys_only_here(node):
            self._told_keys_only = True
            notice = self._render(self.menu.texts["speech_unavailable"], "texts.speech_unavailable")
            prefix = _joined(notice, list(prefix))
        segments = _joined(list(prefix), self._render(texts, f"{self.node_name}.{which}"))
        play = self._play(f"{self.node_name}.{which}", segments, node.barge_in)
        self.phase = Phase.PLAYING
        return [play, listen]

    def _keys_only_here(self, node: MenuNode | DigitsNode) -> bool:
        """The caller's language has no speech recognition, and they have not been told yet."""
        speech = self.settings.speech_languages
        if speech is None or self._told_keys_only or self._language in speech:
            return False
        return not (isinstance(node, MenuNode) and node.any_language)  # told once the language is chosen

    def _listen_command(self, node: MenuNode | DigitsNode) -> Listen:
        universal_keys = tuple(spec.key for spec in self.menu.universal.values() if spec.key)
        if isinstance(node, MenuNode):
            languages = tuple(self.settings.languages) if node.any_language else (self._language,)
            phrases = {lang: tuple(p for option in node.options for p in option.say.get(lang, [])) for lang in languages}
            return Listen(
                node=self.node_name,
                expect=Expect.CHOICE,
                languages=languages,
                keys=tuple(option.key for option in node.options) + universal_keys,
                phrases=phrases,
            )
        return Listen(
            node=self.node_name,
            expect=Expect.DIGITS,
            languages=(self._language,),
            keys=tuple("0123456789*#"),
            min_digits=node.min,
            max_digits=node.max,
            secret=node.mask is Mask.FULL,
            letters=node.validate_as in ("nie", "document"),
        )

    def _message(self, node: MessageNode | TransferNode | EndNode, then: Callable[[], list[Command]]) -> list[Command]:
        self._after_message = then
        self.phase = Phase.MESSAGE
        self._barge_in = node.barge_in
        return [self._play(f"{self.node_name}.prompt", self._render(node.prompt, f"{self.node_name}.prompt"), node.barge_in)]

    def _after_end(self, node: EndNode) -> list[Command]:
        if node.repeatable:
            self.phase = Phase.AFTER_END
            listen = Listen(node=self.node_name, expect=Expect.REPEAT_ONLY, languages=(self._language,),
                            keys=("*",))
            return [listen, self._start_timer(TimerKind.NO_INPUT, self.settings.first_input_timeout)]
        return self._hang_up()

    def _run_action(self, node: ActionNode) -> list[Command]:
        self._action_seq += 1
        self._action_id = f"{node.action}-{self._action_seq}"
        args = {name: self.slots.get(name, "") for name in node.args}
        # A secret lives only as long as the step that needs it: the command carries it now.
        for name in node.args:
            if isinstance(self.slots.get(name), Secret):
                del self.slots[name]
        self.phase = Phase.ACTION
        commands: list[Command] = []
        if node.prompt:
            commands.append(self._play(f"{self.node_name}.prompt", self._render(node.prompt, f"{self.node_name}.prompt"), True))
        commands.append(RunAction(action_id=self._action_id, name=node.action, args=args))
        if self.settings.action_timeout is not None:
            commands.append(self._start_timer(TimerKind.ACTION, self.settings.action_timeout))
        return commands

    # ------------------------------------------------------------------ events

    def _on_prompt_finished(self, event: PromptFinished) -> list[Command]:
        if event.play_id != self._playing:
            return []  # a prompt that was stopped, or an old one
        self._playing = None
        if self.phase is Phase.PLAYING:
            self.phase = Phase.WAITING
            return [self._start_timer(TimerKind.NO_INPUT, self._first_input_timeout())]
        if self.phase is Phase.MESSAGE:
            then, self._after_message = self._after_message, None
            return then() if then else []
        return []

    def _on_key(self, key: Key) -> list[Command]:
        if self._absorb_pound:
            # Callers end every entry with '#', even one that was already complete.
            self._absorb_pound = False
            if key == Key.POUND:
                return []
        if self.phase in (Phase.ACTION, Phase.MESSAGE):
            node = self.menu.nodes[self.node_name]
            if self.phase is Phase.MESSAGE and isinstance(node, MessageNode) and self._playing is not None:
                # A key skips an intermediate message; it then counts at the next step.
                self._kept_keys.append(key)
                commands: list[Command] = [StopPrompt()]
                self._playing = None
                then, self._after_message = self._after_message, None
                return commands + (then() if then else [])
            if self.phase is Phase.MESSAGE and isinstance(node, EndNode) and node.repeatable and key == Key.STAR:
                self._playing = None
                return [StopPrompt(), *self._replay_end(node)]
            self._kept_keys.append(key)
            return []
        if self.phase is Phase.AFTER_END:
            node = self.menu.nodes[self.node_name]
            if key == Key.STAR and isinstance(node, EndNode):
                return self._cancel_timer() + self._replay_end(node)
            return []
        if self.phase not in (Phase.PLAYING, Phase.WAITING):
            return []
        commands = self._interrupt()
        node = self.menu.nodes[self.node_name]
        if isinstance(node, MenuNode):
            return commands + self._menu_key(node, key)
        assert isinstance(node, DigitsNode)
        if self._confirming is not None:
            return commands + self._confirm_key(node, key)
        return commands + self._digit_key(node, key)

    def _on_speech(self, event: SpeechRecognized) -> list[Command]:
        if self.phase is Phase.AFTER_END:
            understanding = self.interpreter.understand(event.text, self._language)
            node = self.menu.nodes[self.node_name]
            if understanding.command is UniversalCommand.REPEAT and isinstance(node, EndNode):
                return self._cancel_timer() + self._replay_end(node)
            return []
        if self.phase not in (Phase.PLAYING, Phase.WAITING):
            return []  # nobody is listening: a message, an action, or echo of a prompt
        if self.phase is Phase.PLAYING and not self._barge_in:
            return []
        node = self.menu.nodes[self.node_name]
        if event.confidence < self.settings.min_confidence:
            if isinstance(node, DigitsNode) and self._entry_keyed:
                return []  # a mumble while the caller keys: not for this entry
            commands = self._interrupt()
            self._record_input("speech", "(low confidence)")
            if isinstance(node, DigitsNode) and node.mask is Mask.FULL:
                return commands + self._failure("secret_by_keys")
            return commands + self._failure("no_match")
        if isinstance(node, MenuNode):
            return self._interrupt() + self._menu_speech(node, event.text)
        assert isinstance(node, DigitsNode)
        if self._confirming is not None:
            return self._confirm_speech(node, event.text, event.confidence)
        return self._digits_speech(node, event.text, event.confidence)

    def _on_timer(self, event: TimerExpired) -> list[Command]:
        if event.timer_id != self._timer:
            return []
        kind = TimerKind(event.timer_id.split("#")[0])
        self._timer = None
        if self.phase is Phase.AFTER_END:
            return self._hang_up()
        if kind is TimerKind.ACTION and self.phase is Phase.ACTION:
            # The backend did not answer in time. Its answer, if it comes, is ignored (the
            # action id is gone), and the step undoes its own work past its deadline.
            node = self.menu.nodes[self.node_name]
            assert isinstance(node, ActionNode)
            self._action_id = None
            self.record.actions.append({"action": node.action, "result": "error", "detail": "no answer in time"})
            return self._agent("backend_error", texts_key="backend_error")
        if self.phase not in (Phase.WAITING, Phase.PLAYING):
            return []
        node = self.menu.nodes[self.node_name]
        if kind is TimerKind.INTER_DIGIT and isinstance(node, DigitsNode):
            if len(self._entry) >= node.min:
                return self._finish_entry(node, "".join(self._entry), "key")
            self._record_input("key", self._masked(node, "".join(self._entry)) + " (incomplete)")
            self._timeouts_run_out += 1
            return self._failure("no_match")
        self._record_input("timeout", "no input")
        self._timeouts_run_out += 1
        return self._failure("no_input")

    def _on_action_completed(self, event: ActionCompleted) -> list[Command]:
        if self.phase is not Phase.ACTION or event.action_id != self._action_id:
            return []
        node = self.menu.nodes[self.node_name]
        assert isinstance(node, ActionNode)
        self._action_id = None
        cancel = self._cancel_timer()
        route = node.results.get(event.result)
        entry = {"action": node.action, "result": event.result}
        if event.detail:
            entry["detail"] = event.detail
        if route is None:
            if event.result != "error":
                entry["detail"] = f"unexpected result {event.result!r}"
            self.record.actions.append(entry)
            return cancel + self._agent("backend_error", texts_key="backend_error")
        self.record.actions.append(entry)
        for name, value in event.data.items():
            self.slots[name] = value
        self.slots.update(route.set)
        return cancel + self._go(route.next)

    def _on_transfer_failed(self, event: TransferFailed) -> list[Command]:
        if self.phase is not Phase.TRANSFER:
            return []
        self.record.outcome = Outcome.FAILED
        self.record.outcome_reason = f"transfer_failed:{self.record.outcome_reason or ''}".rstrip(":")
        self.phase = Phase.MESSAGE
        self._after_message = self._hang_up
        return [self._play("texts.transfer_failed", self._render(self.menu.texts["transfer_failed"], "texts.transfer_failed"), False)]

    def _on_hang_up(self) -> list[Command]:
        if self.phase is Phase.ENDED:
            return []
        if self.record.outcome is None:
            self._set_outcome(Outcome.CALLER_HUNG_UP)
        self._forget_secrets()
        self.phase = Phase.ENDED
        return self._cancel_timer()

    # ------------------------------------------------------------------ menus

    def _menu_key(self, node: MenuNode, key: Key) -> list[Command]:
        for option in node.options:
            if option.key == key:
                self._record_input("key", key.value)
                return self._choose(node, option)
        command = self.menu.command_for_key(key.value)
        if command is not None:
            self._record_input("key", key.value)
            return self._universal(command)
        self._record_input("key", key.value)
        return self._failure("no_match")

    def _menu_speech(self, node: MenuNode, text: str) -> list[Command]:
        languages = self.settings.languages if node.any_language else (self._language,)
        best: tuple[int, Option | None, Understanding | None] = (0, None, None)
        understandings = []
        for lang in languages:
            understanding = self.interpreter.understand(text, lang)
            understandings.append(understanding)
            for option in node.options:
                score = longest_match(understanding.tokens, option.say.get(lang, []))
                if score > best[0]:
                    best = (score, option, understanding)
        self._record_input("speech", understandings[0].text)
        primary = self._primary_understanding(understandings, node)
        self._stash(primary)
        if primary.command is not None and not primary.entities and best[1] is None:
            return self._universal(primary.command)
        if primary.choice is not None:
            for option in node.options:
                if option.key == primary.choice:
                    return self._choose(node, option)
        if best[1] is not None:
            if node.any_language and best[2] is not None:
                self._set_language(best[2].language)  # answered in English: carry on in English
            return self._choose(node, best[1])
        if primary.entities:
            candidates = self._shortcut_candidates(node, self._pending)
            if len(candidates) == 1:
                return self._choose(node, candidates[0])
        if primary.command is not None:
            return self._universal(primary.command)
        # In the caller's own words ("no me acuerdo de mi nombre de usuario"): the classifier's intent.
        by_intent = [option for option in node.options if primary.intent and option.intent == primary.intent]
        if len(by_intent) == 1:
            return self._choose(node, by_intent[0])
        return self._failure("no_match")

    def _primary_understanding(self, understandings: list[Understanding], node: MenuNode) -> Understanding:
        """In a node that takes any language, the language the caller was understood in wins."""
        if len(understandings) == 1:
            return understandings[0]
        def weight(u: Understanding) -> tuple[int, int]:
            return (len(u.entities) + (u.command is not None), u.language == self._language)
        best = max(understandings, key=weight)
        if node.any_language and weight(best)[0] > 0 and "language" not in best.entities:
            best = dataclasses.replace(best, entities={**best.entities, "language": best.language})
        return best

    def _choose(self, node: MenuNode, option: Option) -> list[Command]:
        for name, value in option.set.items():
            self.slots[name] = value
            if self._pending.get(name) == value:
                del self._pending[name]
            if name == "language":
                self._set_language(value)
        return self._go(option.next)

    def _stash(self, understanding: Understanding) -> None:
        for name, value in understanding.entities.items():
            if name in SHORTCUT_SLOTS:
                self._pending[name] = value
        # "mi DNI es 12345678 Z": the number is kept for the document step.
        if "document_type" in understanding.entities and sum(ch.isdigit() for ch in understanding.spelled) >= 7:
            self._pending["document_number"] = understanding.spelled

    def _try_shortcut(self, node: MenuNode | DigitsNode) -> list[Command] | None:
        if not self._pending:
            return None
        if isinstance(node, MenuNode):
            candidates = self._shortcut_candidates(node, self._pending)
            if len(candidates) == 1:
                self._record_input("shortcut", f"option {candidates[0].key}")
                return self._choose(node, candidates[0])
            return None
        value = self._pending.pop(node.slot, None)
        if value is None:
            return None
        return self._finish_entry(node, value, "shortcut", allow_retry=False)

    def _shortcut_candidates(self, node: MenuNode, wanted: Mapping[str, str]) -> list[Option]:
        """Options whose branch can set what the caller already asked for, and nothing against it."""
        found = []
        for index, option in enumerate(node.options):
            for assignment in self._reachable(self.node_name, index):
                shared = [name for name in wanted if name in assignment]
                if shared and all(assignment[name] == wanted[name] for name in shared):
                    found.append(option)
                    break
        return found

    def _reachable(self, node_name: str, index: int, depth: int = 0) -> list[dict[str, str]]:
        """Every combination of slot values the menus below an option can set."""
        key = (node_name, index)
        if key in self._reachable_cache:
            return self._reachable_cache[key]
        node = self.menu.nodes[node_name]
        assert isinstance(node, MenuNode)
        option = node.options[index]
        result = [dict(option.set)]
        target = option.next if isinstance(option.next, str) else None
        if target and depth < 8 and target != node_name:
            child = self.menu.nodes[target]
            if isinstance(child, MenuNode) and not child.any_language:
                below = [a for i in range(len(child.options)) for a in self._reachable(target, i, depth + 1)]
                result = [{**assignment, **dict(option.set)} for assignment in below] or result
        self._reachable_cache[key] = result
        return result

    # ------------------------------------------------------------------ digit entries

    def _digit_key(self, node: DigitsNode, key: Key) -> list[Command]:
        commands = self._cancel_timer()
        if key == Key.STAR:
            self._record_input("key", "*")
            self._clear_entry()
            return commands + self._start_input(node)
        if key == Key.POUND:
            entry = "".join(self._entry)
            if len(entry) >= node.min:
                return commands + self._finish_entry(node, entry, "key")
            self._record_input("key", self._masked(node, entry) + "#")
            return commands + self._failure("no_match")
        if not key.value.isdigit():
            # A-D keys exist on few phones and mean nothing here; the entry stays timed.
            if self._entry:
                return commands + [self._start_timer(TimerKind.INTER_DIGIT, self._inter_digit_timeout())]
            return commands + [self._start_timer(TimerKind.NO_INPUT, self._first_input_timeout())]
        self._entry.append(key.value)
        self._entry_keyed = True
        if len(self._entry) >= node.max:
            self._absorb_pound = True
            return commands + self._finish_entry(node, "".join(self._entry), "key")
        return commands + [self._start_timer(TimerKind.INTER_DIGIT, self._inter_digit_timeout())]

    def _digits_speech(self, node: DigitsNode, text: str, confidence: float) -> list[Command]:
        understanding = self.interpreter.understand(text, self._language)
        said = understanding.spelled if node.validate_as else understanding.digits
        if understanding.command is not None and not understanding.digits:
            if self._entry_keyed and understanding.command is not UniversalCommand.AGENT:
                # The caller is keying: a hesitation ("¿eh?") must not throw the keys away.
                # Asking for a person still works.
                return []
            self._record_input("speech", understanding.text)
            return self._interrupt() + self._universal(understanding.command)
        if not said:
            if self._entry_keyed:
                return []  # the caller is keying this entry; what the microphone heard is not for it
            self._record_input("speech", "(no digits)" if node.mask is Mask.FULL else understanding.text)
            return self._interrupt() + self._failure("no_match")
        commands = self._interrupt() + self._cancel_timer()
        # Keys and speech may share one entry ("4 5" keyed, then "sesenta y siete" said).
        value = "".join(self._entry) + said
        count = sum(ch.isdigit() for ch in value)
        doubtful = confidence < self.settings.confirm_below or _doubtful(understanding)
        if node.mask is Mask.FULL and doubtful:
            # A PIN is never read back: the caller is asked to key it, privately.
            self._record_input("speech", MASK + " (not sure)")
            return commands + self._failure("secret_by_keys")
        if count < node.min and value.isdigit():
            self._entry, self._entry_keyed = list(value), True
            return commands + [self._start_timer(TimerKind.INTER_DIGIT, self._inter_digit_timeout())]
        # (A spoken NIE or passport carries letters: its own parser judges its length.)
        wrong_count = value.isdigit() and count > node.max
        if node.mask is Mask.FULL:
            if wrong_count or doubtful:
                # A PIN is never read back: the caller is asked to key it, privately.
                self._record_input("speech", MASK + " (not sure)")
                return commands + self._failure("secret_by_keys")
            return commands + self._finish_entry(node, value, "speech")
        if wrong_count:
            self._record_input("speech", self._masked(node, value) + " (wrong length)")
            heard = {"heard": self._heard(node, value), "expected": str(node.max)}
            return commands + self._failure("wrong_count", values=heard)
        if doubtful:
            self._confirming = value
            self._record_input("speech", self._masked(node, value) + " (to confirm)")
            return commands + self._ask_to_confirm(node, "confirm_digits")
        return commands + self._finish_entry(node, value, "speech")

    def _ask_to_confirm(self, node: DigitsNode, texts_key: str) -> list[Command]:
        assert self._confirming is not None
        segments = self._render(self.menu.texts[texts_key], f"texts.{texts_key}",
                                {"heard": self._heard(node, self._confirming)})
        listen = Listen(node=self.node_name, expect=Expect.YES_NO, languages=(self._language,),
                        keys=("1", "2", *(spec.key for spec in self.menu.universal.values() if spec.key)))
        self.phase = Phase.PLAYING
        return [self._play(f"texts.{texts_key}", segments, True), listen]

    def _confirm_key(self, node: DigitsNode, key: Key) -> list[Command]:
        commands = self._cancel_timer()
        if key == Key.ONE:
            return commands + self._confirmed(node, True)
        if key == Key.TWO:
            return commands + self._confirmed(node, False)
        universal = self.menu.command_for_key(key.value)
        if universal is UniversalCommand.REPEAT:
            return commands + self._ask_to_confirm(node, "confirm_digits")
        if universal is not None:
            return commands + self._universal(universal)
        self._attempts += 1
        if self._attempts >= self.settings.max_attempts:
            return commands + self._agent("no_match")
        return commands + self._ask_to_confirm(node, "confirm_again")

    def _confirm_speech(self, node: DigitsNode, text: str, confidence: float) -> list[Command]:
        understanding = self.interpreter.understand(text, self._language)
        commands = self._interrupt() + self._cancel_timer()
        if understanding.intent in ("affirm", "deny"):
            return commands + self._confirmed(node, understanding.intent == "affirm")
        if understanding.command is UniversalCommand.REPEAT:
            return commands + self._ask_to_confirm(node, "confirm_digits")
        if understanding.command is not None:
            return commands + self._universal(understanding.command)
        if understanding.digits:
            # Digits again instead of yes or no: the caller is correcting the number.
            self._clear_entry()
            return commands + self._digits_speech(node, text, confidence)
        self._attempts += 1
        if self._attempts >= self.settings.max_attempts:
            return commands + self._agent("no_match")
        return commands + self._ask_to_confirm(node, "confirm_again")

    def _confirmed(self, node: DigitsNode, yes: bool) -> list[Command]:
        value, self._confirming = self._confirming, None
        assert value is not None
        self._record_input("confirm", "yes" if yes else "no")
        if yes:
            return self._finish_entry(node, value, "speech")
        self._clear_entry()
        return self._start_input(node, prefix=self._render(self.menu.texts["reenter"], "texts.reenter"))

    def _finish_entry(self, node: DigitsNode, value: str, mode: str, allow_retry: bool = True) -> list[Command]:
        self._clear_entry()
        digits = sum(ch.isdigit() for ch in value)
        # A spoken document may carry letters (the NIE's X, the control letter): its parser judges.
        valid = bool(node.validate_as) or node.min <= digits <= node.max
        stored: str | Secret = value
        if valid and node.validate_as:
            kind = node.validate_as if node.validate_as != "document" else str(self.slots.get("document_type", "dni"))
            try:
                stored = Document.parse(kind, value).number
            except ValueError:
                valid = False
        elif valid and not value.isdigit():
            valid = False
        self._record_input(mode, self._masked(node, str(stored) if valid else value) + ("" if valid else " (invalid)"))
        if not valid:
            if not allow_retry:
                return self._start_input(node)
            return self._failure("invalid", invalid_texts=node.invalid)
        self.slots[node.slot] = Secret(value) if node.mask is Mask.FULL else stored
        return self._go(node.next)

    def _heard(self, node: DigitsNode, value: str) -> str | Secret:
        """A number read back: spoken in full, but a step that masks its entry (a document)
        keeps it out of the transcript's text."""
        return value if node.mask is Mask.NONE else Secret(value)

    def _clear_entry(self) -> None:
        self._entry, self._entry_keyed, self._confirming = [], False, None

    def _masked(self, node: DigitsNode, value: str) -> str:
        if node.mask is Mask.FULL:
            return MASK  # fixed width: not even the length of a PIN is written down
        if node.mask is Mask.PARTIAL:
            return mask_tail(value)
        return value

    # ------------------------------------------------------------------ failures, commands

    def _failure(self, kind: str, invalid_texts: Mapping[str, str] | None = None,
                 values: Mapping[str, str | Secret] | None = None) -> list[Command]:
        """A no-input, no-match or invalid entry: re-prompt shortly, or give up to an agent."""
        self._attempts += 1
        node = self.menu.nodes[self.node_name]
        assert isinstance(node, (MenuNode, DigitsNode))
        if self._attempts >= self.settings.max_attempts:
            return self._agent("no_input" if kind == "no_input" else "no_match")
        self._clear_entry()
        if kind == "invalid" and invalid_texts:
            prefix = self._render(invalid_texts, f"{self.node_name}.invalid")
        else:
            key = kind if kind in ("no_input", "no_match", "wrong_count", "secret_by_keys") else "invalid_entry"
            prefix = self._render(self.menu.texts[key], f"texts.{key}", values)
        return self._start_input(node, prefix=prefix, which="reprompt")

    def _universal(self, command: UniversalCommand) -> list[Command]:
        node = self.menu.nodes[self.node_name]
        assert isinstance(node, (MenuNode, DigitsNode))
        self._clear_entry()
        if command is UniversalCommand.REPEAT:
            return self._start_input(node)
        if command is UniversalCommand.HELP:
            if node.help:
                return self._start_input(node, which="help")
            return self._start_input(node, prefix=self._render(self.menu.texts["help"], "texts.help"))
        if command is UniversalCommand.BACK:
            self._pending.clear()
            if len(self._history) >= 2:
                self._history.pop()
                return self._enter(self._history[-1], forward=False)
            return self._start_input(node, prefix=self._render(self.menu.texts["at_start"], "texts.at_start"))
        if command is UniversalCommand.AGENT:
            return self._agent("caller_request")
        if command is UniversalCommand.SLOWER:
            self._rate = max(self.settings.slowest, self._rate * self.settings.slower_step)
            return self._start_input(node, prefix=self._render(self.menu.texts["slower"], "texts.slower"))
        if command is UniversalCommand.MORE_TIME:
            # Said briefly, then a long wait; the prompt is not read again (the caller heard it).
            self._more_time = True
            self._barge_in = node.barge_in
            play = self._play("texts.more_time", self._render(self.menu.texts["more_time"], "texts.more_time"),
                              node.barge_in)
            self.phase = Phase.PLAYING
            return [play, self._listen_command(node)]
        if command is UniversalCommand.GOODBYE:
            self._set_outcome(Outcome.CALLER_HUNG_UP, "goodbye")
            self.phase = Phase.MESSAGE
            self._after_message = self._hang_up
            return [self._play("texts.goodbye", self._render(self.menu.texts["goodbye"], "texts.goodbye"), False)]
        raise EngineError(f"universal command {command} is not handled")

    def _agent(self, reason: str, texts_key: str | None = None) -> list[Command]:
        first = self._render(self.menu.texts[texts_key], f"texts.{texts_key}") if texts_key else []
        segments = _joined(first, self._render(self.menu.texts["agent"], "texts.agent"))
        self.phase = Phase.MESSAGE
        self._after_message = lambda: self._transfer(reason)
        return self._cancel_timer() + [self._play("texts.agent", segments, False)]

    def _transfer(self, reason: str) -> list[Command]:
        self._forget_secrets()
        self._set_outcome(Outcome.TRANSFERRED, reason)
        context = {
            "reason": reason,
            "language": self._language,
            "entry_point": self.record.entry_point,
            "last_step": self.node_name,
        }
        for name, value in self.slots.items():
            if isinstance(value, Secret) or not value:
                continue
            context[name] = mask_tail(value) if name == "document_number" else value
        self.record.transfer_context = dict(context)
        self.phase = Phase.TRANSFER
        return self._cancel_timer() + [StopListening(), Transfer(reason=reason, context=context)]

    def _forget_secrets(self) -> None:
        for name in [name for name, value in self.slots.items() if isinstance(value, Secret)]:
            del self.slots[name]

    def _hang_up(self) -> list[Command]:
        self._forget_secrets()
        outcome = self.record.outcome
        if outcome is None:
            outcome = Outcome.FAILED
            self._set_outcome(outcome, "ended without outcome")
        self.phase = Phase.ENDED
        return self._cancel_timer() + [StopListening(), HangUp(outcome, self.record.outcome_reason)]

    def _replay_end(self, node: EndNode) -> list[Command]:
        self._record_input("repeat", "*")
        return self._message(node, lambda: self._after_end(node))

    # ------------------------------------------------------------------ helpers

    def _go(self, next: Next) -> list[Command]:
        """Enter the node ``next`` names, or the first route whose slots match."""
        if isinstance(next, str):
            return self._enter(next)
        for route in next:
            if all(self._slot_text(name) == value for name, value in route.when.items()):
                return self._enter(route.go)
        # The menu has a gap for this combination of slots: a person must take over.
        self.record.actions.append({"action": "route", "result": "error", "detail": f"no route from {self.node_name}"})
        return self._agent("menu_error")

    def _slot_text(self, name: str) -> str | None:
        value = self.slots.get(name)
        return None if isinstance(value, Secret) else value

    def _render(self, texts: Mapping[str, str], key: str,
                values: Mapping[str, str | Secret] | None = None) -> list[Segment]:
        template = texts.get(self._language) or next(iter(texts.values()))
        segments: list[Segment] = []
        for language, part in language_spans(template, self._language):
            segments += self._render_part(part, key, language, values)
        return segments

    def _render_part(self, template: str, key: str, language: str,
                     values: Mapping[str, str | Secret] | None) -> list[Segment]:
        voice = None if language == self._language else language
        segments: list[Segment] = []
        for literal, field_name, spec, _ in Formatter().parse(template):
            if literal:
                segments.append(Text(f"{key}.{self._language}", literal, voice))
            if field_name is None:
                continue
            if values is not None and field_name in values:
                value: str | Secret = values[field_name]
            elif field_name == "agent_phone":
                value = self.settings.agent_phone
            else:
                value = self.slots.get(field_name, "")
            if spec == "digits":
                segments.append(SpokenDigits(value))
            else:
                segments.append(Text(f"{key}.{self._language}.{field_name}", str(value), voice))
        return segments

    def _play(self, prompt_id: str, segments: list[Segment], barge_in: bool) -> PlayPrompt:
        self._play_id += 1
        self._playing = self._play_id
        return PlayPrompt(self._play_id, prompt_id, self._language, tuple(segments), barge_in, self._rate)

    def _interrupt(self) -> list[Command]:
        commands: list[Command] = []
        if self.phase is Phase.PLAYING and self._playing is not None:
            self._playing = None
            commands.append(StopPrompt())
        self.phase = Phase.WAITING
        return commands + self._cancel_timer()

    def _start_timer(self, kind: TimerKind, seconds: float) -> StartTimer:
        self._timer_seq += 1
        self._timer = f"{kind.value}#{self._timer_seq}"
        return StartTimer(self._timer, kind, seconds)

    def _cancel_timer(self) -> list[Command]:
        if self._timer is None:
            return []
        timer, self._timer = self._timer, None
        return [CancelTimer(timer)]

    def _first_input_timeout(self) -> float:
        node = self.menu.nodes[self.node_name]
        if isinstance(node, (MenuNode, DigitsNode)) and node.timeout:
            base = node.timeout
        elif isinstance(node, DigitsNode) and node.max > 4:
            base = self.settings.long_entry_first_input
        else:
            base = self.settings.first_input_timeout
        if self._more_time:  # the caller asked for a moment: this wait, once, is the long one
            self._more_time = False
            return max(base, self.settings.more_time)
        return self._patient(base, self.settings.max_first_input)

    def _inter_digit_timeout(self) -> float:
        return self._patient(self.settings.inter_digit_timeout, self.settings.max_inter_digit)

    def _patient(self, base: float, cap: float) -> float:
        """``base``, longer for a caller who has let timers run out in this call (never past
        ``cap``, and never shorter than ``base``: a menu may ask for more than the cap)."""
        grown = base * (1 + self.settings.patience_step * self._timeouts_run_out)
        return max(base, min(grown, cap))

    def _set_language(self, language: str) -> None:
        if language in self.settings.languages:
            self._language = language
            self.slots["language"] = language
            self.record.language = language

    def _set_outcome(self, outcome: Outcome, reason: str | None = None) -> None:
        self.record.outcome = outcome
        self.record.outcome_reason = reason

    def _record_input(self, mode: str, value: str) -> None:
        self.record.inputs.append({"node": self.node_name, "mode": mode, "value": value})


def _doubtful(understanding: Understanding) -> bool:
    """Numbers that can be read two ways, or number words that made no digits."""
    return understanding.digits_ambiguous or understanding.number_words_not_understood > 0


def _joined(*parts: list[Segment]) -> list[Segment]:
    """Prompts said one after the other, with the space a speaker would leave between them."""
    segments: list[Segment] = []
    for part in parts:
        if part and segments:
            segments.append(Text("pause", " "))
        segments.extend(part)
    return segments
