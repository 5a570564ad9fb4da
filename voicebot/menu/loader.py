"""Read and check the menu file. Every problem is reported with its file and line."""

from __future__ import annotations

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
    language_spans,
)

PathKey = tuple[str | int, ...]


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
                  "reenter", "secret_by_keys", "speech_unavailable")


def _check(menu: Menu, known_actions: Iterable[str] | None) -> Iterator[tuple[PathKey, str]]:
    langs = list(menu.languages)
    for entry, target in menu.entry_points.items():
        if target not in menu.nodes:
            yield ("entry_points", entry), f"unknown node {target!r}"
    for name in menu.nodes:
        for sub, target in successors(menu, name):
            if target not in menu.nodes:
                yield ("nodes", name) + sub, f"unknown node {target!r}"
    yield from _check_texts(menu, langs)
    yield from _check_nodes(menu, known_actions)
    reachable = _reachable(menu)
    for name in menu.nodes:
        if name not in reachable:
            yield ("nodes", name), f"node {name!r} cannot be reached from any entry point"


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
        for lang, text in node.prompt.items():
            for _, field, spec, _ in Formatter().parse(text):
                if field is not None and spec not in ("", "digits"):
                    yield base + ("prompt", lang), f"unknown format ':{spec}' (only ':digits')"


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
