"""The explorer: finds, by keys only and by voice only, a way to every node and every outcome.

It knows nothing of the flows. It reads the menu the configuration names and searches it
breadth first, the way a patient tester would: place a call, follow it until the line
waits for the caller, then try each thing the caller could do there, each in a new call
(replayed from the start on a fresh copy of the bank, since the bank remembers).

- At a **menu**, each option: its key (keys-only caller), or a phrase for it (voice-only
  caller): one the prompt announces, else another of its ``say`` phrases, else an example
  of its ``intent`` from the NLU data. A phrase that does not pick the option is a
  failed attempt; the next phrase is tried. Options that switch the call to another
  language are left to that language's run.
- At a **digit entry**, values from the demo bank's customers (:mod:`.caller`): their
  document, cards, PINs and blocked operations, and a wrong one of each (a mismatch, a
  locked card, an unknown reference are outcomes too). Keyed as digits, or said digit by
  digit in the call's language ("equis uno dos…").
- A **read-back** (spoken digits the line is unsure of) is answered yes; a final message
  that listens for "repeat" is left to run out.

States already seen (same node, same slots that are not secret, same counters, same
caller) are not explored again. Every call is planned on text (:class:`~.calls.TextCall`);
the keys-only calls the report relies on are then placed again on audio.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ..config import Config
from ..menu.model import DigitsNode, Mask, Menu, MenuNode, MessageNode, Next, Option, UniversalCommand, language_spans
from ..nlu.classifier import normalise
from ..nlu.rasa_data import TrainingData
from .calls import AudioCall, CallRun, ScratchBank, TextCall, Timing
from .caller import (
    Mode,
    Persona,
    SlotKind,
    Step,
    StepKind,
    Value,
    digit_words,
    keys_for,
    slot_kind,
    spoken,
    values_for,
)

MAX_CALLS = 4000  # calls one exploration may place; past it the report says the search was cut short


@dataclass(frozen=True)
class Aim:
    """What the last step of a script was meant to do, to judge whether it did."""

    node: str
    option: int | None = None  # a menu option's index
    candidate: int = 0  # which of the option's phrases (voice), to try the next if it fails
    value: str = ""  # a digit entry: what the value was (for the report)


@dataclass(frozen=True)
class Script:
    entry: str
    dialed: str | None
    persona: Persona | None = None
    steps: tuple[Step, ...] = ()
    card: str | None = None  # the card named last (for the PIN that follows)
    aim: Aim | None = None

    def then(self, step: Step, aim: Aim | None = None, **changes: Any) -> "Script":
        return replace(self, steps=self.steps + (step,), aim=aim, **changes)


@dataclass
class Attempt:
    """Something the caller tried that the line did not take the way it was meant."""

    node: str
    option: int | None
    what: str  # the step, as shown
    problem: str
    run: CallRun


@dataclass
class Exploration:
    language: str
    mode: Mode
    medium: str = "text"  # where the coverage below comes from: text or audio
    calls: int = 0
    cut_short: bool = False
    runs: list[CallRun] = field(default_factory=list)  # every call placed (text)
    first: dict[str, CallRun] = field(default_factory=dict)  # node -> first call that reached it
    chosen: dict[tuple[str, int], CallRun] = field(default_factory=dict)  # (menu, option) -> a call that chose it
    applicable: set[tuple[str, int]] = field(default_factory=set)  # options this run could try
    attempts: list[Attempt] = field(default_factory=list)
    completed: list[CallRun] = field(default_factory=list)
    entry_problems: list[str] = field(default_factory=list)
    audio_runs: list[tuple[CallRun, CallRun]] = field(default_factory=list)  # (plan, audio call)
    merges: list[CallRun] = field(default_factory=list)  # calls from another entry that joined an explored state

    def completed_through(self, node: str) -> CallRun | None:
        found = [run for run in self.completed if node in run.nodes]
        return min(found, key=lambda run: run.seconds) if found else None


def option_targets(next: Next) -> list[str]:
    return [next] if isinstance(next, str) else [route.go for route in next]


def strip_tags(text: str) -> str:
    return re.sub(r"</?[a-z]{2,3}>", "", text)


def prompt_text(texts: dict[str, str], language: str) -> str:
    template = texts.get(language) or next(iter(texts.values()), "")
    return "".join(part for _, part in language_spans(template, language))


class Explorer:
    def __init__(self, bank: ScratchBank, timing: Timing, training: dict[str, TrainingData], config: Config,
                 personas: list[Persona], *, say_key_numbers: bool = False, max_calls: int = MAX_CALLS) -> None:
        self.bank = bank
        self.menu: Menu = bank.menu
        self.timing = timing
        self.training = training
        self.config = config
        self.personas = personas
        self.say_key_numbers = say_key_numbers
        self.max_calls = max_calls
        self.default_caller = personas[0].caller_id if personas else "+34600000001"
        # Personas who try wrong values too: the first of each kind of document, and those
        # without a right value to give. The error paths do not depend on who the customer is.
        self._tries_wrong: set[str] = set()
        kinds: set[str | None] = set()
        for persona in personas:
            if persona.document_type not in kinds or persona.document_number is None:
                self._tries_wrong.add(persona.id)
                kinds.add(persona.document_type)

    # ------------------------------------------------------------------ entry points

    def entries(self) -> list[tuple[str, str | None]]:
        """(entry point, number to dial), the default entry point (the unlock line) first."""
        numbers: dict[str, str] = {}
        for number, entry in self.config.dialed_numbers.items():
            numbers.setdefault(entry, number)
        ordered = sorted(self.menu.entry_points, key=lambda e: (e != self.config.default_entry_point, e))
        found: list[tuple[str, str | None]] = []
        for entry in ordered:
            if entry in numbers:
                found.append((entry, numbers[entry]))
            elif entry == self.config.default_entry_point:
                found.append((entry, None))
        return found

    # ------------------------------------------------------------------ the search

    def explore(self, language: str, mode: Mode) -> Exploration:
        result = Exploration(language, mode)
        reachable = {entry for entry, _ in self.entries()}
        for entry in self.menu.entry_points:
            if entry not in reachable:
                result.entry_problems.append(
                    f"entry point {entry!r}: no number in `dialed_numbers` leads to it, and it is not the default")
        queue: deque[Script] = deque(Script(entry, dialed) for entry, dialed in self.entries())
        seen: dict[tuple[Any, ...], str] = {}
        while queue:
            if result.calls >= self.max_calls:
                result.cut_short = True
                break
            script = queue.popleft()
            run = self.place_text(script)
            result.calls += 1
            result.runs.append(run)
            if script.aim is not None and not self._judge(script, run, result, queue):
                continue
            if run.error:
                continue
            for name in run.nodes:
                result.first.setdefault(name, run)
            if script.persona is None and self._used_caller_id(run):
                # The call reached a step that looks at the caller ID: who calls matters from
                # the start, so the same steps are placed again by each caller.
                queue.extend(replace(script, persona=persona, aim=None) for persona in self.personas)
                continue
            if run.finished:
                result.completed.append(run)
                continue
            signature = self._signature(script, run)
            if signature in seen:
                if script.entry != seen[signature]:
                    # Another entry point joins a state already explored from the first: the
                    # rest is the same call. Kept, to measure its paths (see ``longest``).
                    result.merges.append(run)
                continue
            seen[signature] = script.entry
            queue.extend(self._next_steps(script, run, language, mode, result))
        return result

    def place_text(self, script: Script) -> CallRun:
        line = self.bank.fresh(script.persona)
        return TextCall(line, self.timing, entry=script.entry, dialed=script.dialed, persona=script.persona,
                        steps=script.steps, default_caller=self.default_caller).place()

    def place_audio(self, run: CallRun, language: str, renderer: Any, speech: Any) -> CallRun:
        line = self.bank.fresh(run.persona)
        return AudioCall(line, renderer, speech, self.timing, entry=run.entry, dialed=run.dialed, persona=run.persona,
                         steps=run.steps, default_caller=self.default_caller, language=language).place()

    def _used_caller_id(self, run: CallRun) -> bool:
        names = {e.detail.get("name") for e in run.entries if e.kind == "action"}
        return any(getattr(node, "action", None) in names and "caller_id" in getattr(node, "args", [])
                   for node in self.menu.nodes.values())

    def _signature(self, script: Script, run: CallRun) -> tuple[Any, ...]:
        slots = tuple(sorted((k, v) for k, v in run.slots.items() if k != "caller_id"))
        counted = tuple(sorted((name, run.nodes.count(name)) for name, node in self.menu.nodes.items()
                               if isinstance(node, MessageNode) and node.counter and name in run.nodes))
        node = self.menu.nodes.get(run.node)
        card = script.card if isinstance(node, DigitsNode) and slot_kind(node) is SlotKind.PIN else None
        return (run.node, run.phase, run.language, slots, counted,
                script.persona.id if script.persona else None, card)

    def longest(self, result: Exploration) -> dict[str, CallRun]:
        """Per place a call ends, the longest call there that visits no node twice (the
        normal way, without mistakes), from any entry point. A path from another entry point
        that joins an explored state is measured by placing it whole: that entry's steps to
        the joining state, then the explored call's steps from there."""
        best: dict[str, CallRun] = {}

        def rank(run: CallRun) -> tuple[int, float]:
            # Fewest nodes visited twice first (some places are only reached after mistakes:
            # a locked card), then the longest.
            return (len(run.nodes) - len(set(run.nodes)), -run.seconds)

        for run in result.completed:
            terminal = run.terminal()
            if terminal not in best or rank(run) < rank(best[terminal]):
                best[terminal] = run
        for terminal, run in list(best.items()):
            for joined in result.merges:
                if joined.node not in run.nodes or joined.entry == run.entry:
                    continue
                tail = run.steps[run.steps_before(joined.node):]
                script = Script(joined.entry, joined.dialed, run.persona, joined.steps + tail)
                whole = self.place_text(script)
                result.calls += 1
                if whole.finished and whole.terminal() == terminal and rank(whole) < rank(best[terminal]):
                    best[terminal] = whole
        return best

    # ------------------------------------------------------------------ judging a step

    def _judge(self, script: Script, run: CallRun, result: Exploration, queue: deque[Script]) -> bool:
        """Did the last step do what it was meant to? If not, note it (and try the next phrase)."""
        aim = script.aim
        assert aim is not None
        index = len(script.steps) - 1
        if run.steps_taken <= index:
            result.attempts.append(Attempt(aim.node, aim.option, script.steps[-1].shown(),
                                           "the line never listened for it", run))
            return False
        entered = run.entered_after(index)
        node = self.menu.nodes[aim.node]
        if aim.option is not None and isinstance(node, MenuNode):
            option = node.options[aim.option]
            targets = option_targets(option.next)
            took = bool(entered) and entered[0] in targets and all(run.slots.get(k) == v for k, v in option.set.items())
            if took:
                result.chosen.setdefault((aim.node, aim.option), run)
                return True
            what = f"went to {entered[0]}" if entered else ("ended the call" if run.finished else "stayed")
            result.attempts.append(Attempt(aim.node, aim.option, script.steps[-1].shown(),
                                           f"did not choose option {option.key} (the line {what})", run))
            if script.steps[-1].kind is StepKind.SAY:
                parent = replace(script, steps=script.steps[:-1], aim=None)
                candidates = self.phrases(aim.node, aim.option, result.language)
                following = aim.candidate + 1
                if following < len(candidates):
                    phrase, source = candidates[following]
                    queue.appendleft(parent.then(Step(StepKind.SAY, phrase, f"option {option.key} ({source})"),
                                                 replace(aim, candidate=following)))
            return False
        if isinstance(node, DigitsNode):
            if entered and entered[0] != aim.node:
                return True
            result.attempts.append(Attempt(aim.node, None, script.steps[-1].shown(),
                                           f"the entry ({aim.value}) was not taken", run))
            return False
        return True

    # ------------------------------------------------------------------ what to try next

    def _next_steps(self, script: Script, run: CallRun, language: str, mode: Mode,
                    result: Exploration) -> list[Script]:
        listen = run.listen
        node = self.menu.nodes.get(run.node)
        if run.phase == "after_end":
            return [script.then(Step(StepKind.SILENCE, why="listens to the end"))]
        if listen is not None and listen.expect.value == "yes_no":
            if mode is Mode.KEYS:
                return [script.then(Step(StepKind.KEYS, "1", "yes to the read-back"))]
            return [script.then(Step(StepKind.SAY, self.example("affirm", run.language) or "sí", "yes to the read-back"))]
        if isinstance(node, MenuNode):
            return self._menu_steps(script, run, node, language, mode, result)
        if isinstance(node, DigitsNode):
            return self._digit_steps(script, run, node, mode)
        return []

    def _menu_steps(self, script: Script, run: CallRun, node: MenuNode, language: str, mode: Mode,
                    result: Exploration) -> list[Script]:
        found = []
        for index, option in enumerate(node.options):
            switches_to = option.set.get("language")
            if switches_to is not None and switches_to != language:
                continue  # left to that language's run
            if switches_to is None and run.language != language:
                continue  # the caller first switches the call to their language
            result.applicable.add((run.node, index))
            aim = Aim(run.node, index)
            if mode is Mode.KEYS:
                found.append(script.then(Step(StepKind.KEYS, option.key, f"option {option.key}"), aim))
                continue
            candidates = self.phrases(run.node, index, language)
            if not candidates:
                result.attempts.append(Attempt(run.node, index, "(nothing to say)",
                                               f"option {option.key} has no phrase and no intent in {language!r}", run))
                continue
            phrase, source = candidates[0]
            found.append(script.then(Step(StepKind.SAY, phrase, f"option {option.key} ({source})"), aim))
        return found

    def _digit_steps(self, script: Script, run: CallRun, node: DigitsNode, mode: Mode) -> list[Script]:
        visit = run.nodes.count(run.node) - 1
        choices: list[tuple[Persona | None, Value]] = []
        if script.persona is None and slot_kind(node) is not SlotKind.OTHER:
            for someone in self.personas:
                values = values_for(node, someone, None, visit)
                right = [v for v in values if v.right][:1]
                wrong = [v for v in values if not v.right]
                choices += [(someone, v) for v in right]
                if not right and someone.document_number is None:
                    choices += [(someone, v) for v in wrong[:1]]
        else:
            caller = script.persona or (self.personas[0] if self.personas else None)
            if caller is None:
                return []
            values = values_for(node, caller, script.card, visit)
            # One right card or operation is enough: a customer's others lead to the same places.
            right = [v for v in values if v.right][:1]
            wrong = [v for v in values if not v.right][:1]
            if visit:
                # A retry (after a mismatch, an unknown reference): only what leads on to the
                # line's limits (a locked card, too many failures). The right values were
                # tried the first time round.
                kind = slot_kind(node)
                right = right[:1] if kind in (SlotKind.DOCUMENT, SlotKind.CARD) else []
            tries_wrong = caller.id in self._tries_wrong or not right
            choices = [(script.persona, v) for v in right + (wrong if tries_wrong else [])]
        found = []
        for persona, value in choices:
            aim = Aim(run.node, value=value.label)
            secret = node.mask is Mask.FULL
            if mode is Mode.KEYS:
                step = Step(StepKind.KEYS, keys_for(node, value), value.label, secret)
            else:
                step = Step(StepKind.SAY, spoken(value.said, run.language), value.label, secret)
            card = value.card if value.card is not None else script.card
            found.append(script.then(step, aim, persona=persona, card=card))
        return found

    # ------------------------------------------------------------------ phrases

    def phrases(self, node_name: str, index: int, language: str) -> list[tuple[str, str]]:
        """What a voice-only caller says for an option, best first, with where it comes from."""
        node = self.menu.nodes[node_name]
        assert isinstance(node, MenuNode)
        option = node.options[index]
        said_in = option.set.get("language", language) if node.any_language else language
        heard = normalise(prompt_text(node.prompt, language))
        say = option.say.get(said_in, [])
        announced = [p for p in say if f" {normalise(p)} " in f" {heard} "]
        found = [(p, "announced phrase") for p in announced]
        found += [(p, "phrase") for p in say if p not in announced]
        if option.intent:
            found += [(text, f"an example of intent {option.intent}") for text in self.examples(option.intent, said_in)[:2]]
        if self.say_key_numbers:
            word = digit_words(language).get(option.key)
            if word:
                found.append((word, "the key's number said"))
        return found

    def examples(self, intent: str, language: str) -> list[str]:
        data = self.training.get(language)
        if data is None:
            return []
        return [example.text for example in data.examples if example.intent == intent]

    def example(self, intent: str, language: str) -> str | None:
        found = self.examples(intent, language)
        return found[0] if found else None

    # ------------------------------------------------------------------ commands and timeouts

    def command_step(self, command: UniversalCommand, language: str, mode: Mode) -> Step | None:
        if mode is Mode.KEYS:
            key = self.menu.universal_key(command)
            return Step(StepKind.KEYS, key, f"the {command.value} key") if key else None
        phrase = self.example(command.value, language)
        return Step(StepKind.SAY, phrase, f"the {command.value} command") if phrase else None

    def prefix_to(self, run: CallRun, node: str) -> Script:
        """The script of ``run`` up to the moment the call entered ``node``."""
        taken = run.steps[:run.steps_before(node)]
        return Script(run.entry, run.dialed, run.persona, tuple(taken))


def option_label(option: Option, language: str) -> str:
    phrases = option.say.get(language) or next(iter(option.say.values()), [])
    return f"{option.key}" + (f" / {phrases[0]}" if phrases else "")


def uniq(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
