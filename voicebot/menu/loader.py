"""Read and check the menu file. Every problem is reported with its file and line."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from string import Formatter

from .. import yamlfile
from ..errors import ConfigError
from .model import (
    ActionNode,
    DigitsNode,
    Menu,
    MenuNode,
    MessageNode,
    Next,
    Route,
    Texts,
    language_spans,
)

PathKey = tuple[str | int, ...]

# The menu names no other file: every prompt is text in this file (the audio is rendered
# from it), so there is no path to escape the menu's folder with; unknown keys such as
# `include:` or `prompt_file:` are refused by the model (extra="forbid").

# Node and entry-point names appear in call records, logs and prompt ids.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A field in a prompt is a slot's name, looked up in a dict by the engine: no attribute
# or index access (`{slot.__dict__}`, `{0[x]}`), no conversions (`{x!r}`).
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
MAX_TEXT = 1000  # characters of one prompt: more than a minute of speech


def load_menu(path: str | Path, known_actions: Iterable[str] | None = None) -> Menu:
    located = yamlfile.load(path)
    return parse_menu(located, known_actions)


def parse_menu(located: yamlfile.Located, known_actions: Iterable[str] | None = None) -> Menu:
    menu = yamlfile.validate(located, Menu, "the menu must be a mapping with `nodes`")
    problems = [f"{located.where(path)}: {message}" for path, message in _check(menu, known_actions)]
    if problems:
        raise ConfigError(problems)
    return menu


def next_targets(next: Next) -> Iterator[tuple[PathKey, str]]:
    if isinstance(next, str):
        yield (), next
    else:
        for index, route in enumerate(next):
            yield (index, "go"), route.go


def successors(menu: Menu, name: str) -> Iterator[tuple[PathKey, str]]:
    """Every node ``name`` can lead to, with the path (inside the node) that names it."""
    node = menu.nodes[name]
    if isinstance(node, MenuNode):
        for index, option in enumerate(node.options):
            for sub, target in next_targets(option.next):
                yield ("options", index, "next") + sub, target
    elif isinstance(node, ActionNode):
        for result, route in node.results.items():
            for sub, target in next_targets(route.next):
                yield ("results", result, "next") + sub, target
    elif isinstance(node, (DigitsNode, MessageNode)):
        for sub, target in next_targets(node.next):
            yield ("next",) + sub, target
        if isinstance(node, MessageNode) and node.exceeded:
            yield ("exceeded",), node.exceeded


# Shared texts the dialog engine speaks by name.
REQUIRED_TEXTS = ("no_match", "no_input", "invalid_entry", "help", "at_start", "goodbye", "agent",
                  "transfer_failed", "backend_error", "confirm_digits", "confirm_again", "wrong_count",
                  "reenter", "secret_by_keys", "speech_unavailable", "slower", "more_time")


def _check(menu: Menu, known_actions: Iterable[str] | None) -> Iterator[tuple[PathKey, str]]:
    langs = list(menu.languages)
    for entry, target in menu.entry_points.items():
        if target not in menu.nodes:
            yield ("entry_points", entry), f"unknown node {target!r}"
    for name in menu.nodes:
        for sub, target in successors(menu, name):
            if target not in menu.nodes:
                yield ("nodes", name) + sub, f"unknown node {target!r}"
    for entry in menu.entry_points:
        if not _NAME.fullmatch(entry):
            yield ("entry_points", entry), "an entry point's name is 1-64 letters, digits, _ . -"
    for name in menu.nodes:
        if not _NAME.fullmatch(name):
            yield ("nodes", name), "a node's name is 1-64 letters, digits, _ . -"
    yield from _check_texts(menu, langs)
    yield from _check_templates(menu)
    yield from _check_nodes(menu, known_actions)
    reachable = _reachable(menu)
    for name in menu.nodes:
        if name not in reachable:
            yield ("nodes", name), f"node {name!r} cannot be reached from any entry point"
    yield from _check_loops(menu)


def _check_texts(menu: Menu, langs: list[str]) -> Iterator[tuple[PathKey, str]]:
    def missing(texts: dict, path: PathKey, required: bool) -> Iterator[tuple[PathKey, str]]:
        if not texts and not required:
            return
        for lang in langs:
            if not texts.get(lang):
                yield path, f"no text in language {lang!r}"
        for lang, text in texts.items():
            if lang not in langs:
                yield path + (lang,), f"language {lang!r} is not in `languages` {langs}"
            for part_language, _ in language_spans(str(text), lang) if isinstance(text, str) else ():
                if part_language not in langs:
                    yield path + (lang,), f"<{part_language}>: not a language of the menu ({', '.join(langs)})"

    for key, texts in menu.texts.items():
        yield from missing(texts, ("texts", key), True)
    for key in REQUIRED_TEXTS:
        if key not in menu.texts:
            yield ("texts",), f"the shared text {key!r} is missing (the dialog engine speaks it)"
    for name, node in menu.nodes.items():
        base = ("nodes", name)
        required = not isinstance(node, ActionNode)
        yield from missing(node.prompt, base + ("prompt",), required)
        for field in ("reprompt", "help", "invalid"):
            optional = getattr(node, field, None)
            if optional is not None:
                yield from missing(optional, base + (field,), False)
        if isinstance(node, MenuNode):
            for index, option in enumerate(node.options):
                yield from missing(option.say, base + ("options", index, "say"), False)


def _check_nodes(menu: Menu, known_actions: Iterable[str] | None) -> Iterator[tuple[PathKey, str]]:
    actions = set(known_actions) if known_actions is not None else None
    universal_keys = {spec.key: command for command, spec in menu.universal.items() if spec.key}
    for name, node in menu.nodes.items():
        base = ("nodes", name)
        if isinstance(node, MenuNode):
            seen: dict[str, int] = {}
            for index, option in enumerate(node.options):
                if option.key in seen:
                    yield base + ("options", index, "key"), f"key {option.key} is already option {seen[option.key]}"
                seen[option.key] = index
                if option.key in universal_keys:
                    yield base + ("options", index, "key"), (
                        f"key {option.key} is the universal '{universal_keys[option.key]}' key"
                    )
        elif isinstance(node, DigitsNode):
            if node.min > node.max:
                yield base + ("min",), f"min ({node.min}) is more than max ({node.max})"
        elif isinstance(node, ActionNode):
            if actions is not None and node.action not in actions:
                yield base + ("action",), f"unknown action {node.action!r} (known: {sorted(actions)})"
            if "error" in node.results:
                yield base + ("results", "error"), "'error' always goes to an agent; it cannot be routed"
        elif isinstance(node, MessageNode):
            if node.counter and node.counter not in menu.counters:
                yield base + ("counter",), f"unknown counter {node.counter!r} (declare it under `counters`)"
            if node.counter and not node.exceeded:
                yield base + ("exceeded",), "a node with a counter needs `exceeded`"


def _spoken_texts(menu: Menu) -> Iterator[tuple[PathKey, Texts]]:
    """Every group of texts the engine renders, with its path."""
    for key, texts in menu.texts.items():
        yield ("texts", key), texts
    for name, node in menu.nodes.items():
        for field in ("prompt", "reprompt", "help", "invalid"):
            spoken: Texts | None = getattr(node, field, None)
            if spoken:
                yield ("nodes", name, field), spoken


def _check_templates(menu: Menu) -> Iterator[tuple[PathKey, str]]:
    for path, texts in _spoken_texts(menu):
        for lang, text in texts.items():
            for problem in _template_problems(text):
                yield path + (lang,), problem


def _template_problems(text: str) -> Iterator[str]:
    if len(text) > MAX_TEXT:
        yield f"a text of {len(text):,} characters (at most {MAX_TEXT:,})"
        return
    hidden = yamlfile.hidden_character(text, allowed="\n\t")
    if hidden is not None:
        yield f"the control or invisible character U+{ord(hidden):04X} (write only what is said)"
    try:
        fields = [(field, spec, conversion) for _, field, spec, conversion in Formatter().parse(text)
                  if field is not None]
    except ValueError as exc:  # "Single '}' encountered…": the engine would fail mid-call
        yield f"{exc} (write {{{{ and }}}} for a brace that is said)"
        return
    for field, spec, conversion in fields:
        if not _FIELD.fullmatch(field):
            yield f"{{{field}}}: a field is a slot's name (letters, digits, _), e.g. {{document_number}}"
        elif conversion is not None:
            yield f"{{{field}!{conversion}}}: no conversions (only {{{field}}} or {{{field}:digits}})"
        elif spec not in ("", "digits"):
            yield f"unknown format ':{spec}' (only ':digits')"


def _automatic_successors(menu: Menu, name: str) -> Iterator[str]:
    """The nodes ``name`` goes on to without the caller doing anything (no menu, no entry)."""
    node = menu.nodes[name]
    if isinstance(node, ActionNode):
        for route in node.results.values():
            yield from (target for _, target in next_targets(route.next))
    elif isinstance(node, MessageNode):
        if not node.counter:  # with a counter, `next` is taken at most its limit of times
            yield from (target for _, target in next_targets(node.next))
        if node.exceeded:
            yield node.exceeded


def _check_loops(menu: Menu) -> Iterator[tuple[PathKey, str]]:
    """A loop of actions and messages never waits for the caller: the call would go round
    for ever (re-running a backend step, re-sending an SMS) or, through `exceeded`, recurse
    until the engine's stack overflows. Each loop is reported once, at its first node."""
    done: set[str] = set()
    for start in menu.nodes:
        if start in done:
            continue
        # Iterative depth-first search: a menu of thousands of nodes needs no deep stack.
        on_path: dict[str, int] = {start: 0}
        path = [start]
        stack = [iter(list(_automatic_successors(menu, start)))]
        while stack:
            target = next(stack[-1], None)
            if target is None:
                stack.pop()
                finished = path.pop()
                del on_path[finished]
                done.add(finished)
                continue
            if target not in menu.nodes or target in done:
                continue
            if target in on_path:
                loop = path[on_path[target]:] + [target]
                yield ("nodes", target), (
                    f"the loop {' -> '.join(loop)} never waits for the caller: put a menu or a digits entry "
                    "in it, or a message with a counter"
                )
                continue
            on_path[target] = len(path)
            path.append(target)
            stack.append(iter(list(_automatic_successors(menu, target))))


def _reachable(menu: Menu) -> set[str]:
    seen: set[str] = set()
    todo = [target for target in menu.entry_points.values() if target in menu.nodes]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(target for _, target in successors(menu, name) if target in menu.nodes)
    return seen


__all__ = ["load_menu", "parse_menu", "successors", "Route"]
