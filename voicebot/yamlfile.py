"""YAML files that remember where every value came from.

Operators write the menu, the configuration and the bank seed by hand. When one of them is
wrong, the message must say ``menu.yaml:42: nodes.main.options[1].next: unknown node
'mian'``, not a stack trace. :func:`load` returns the plain data plus a map from each
value's path to its line; :func:`validation_problems` turns pydantic's errors into such
messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError

PathKey = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass
class Located:
    """Parsed YAML data with the line (1-based) of every mapping key and list item."""

    data: Any
    source: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get(())

    def where(self, path: Iterable[str | int]) -> str:
        path = tuple(path)
        line = self.line_of(path)
        place = f"{self.source}:{line}" if line else self.source
        dotted = dotted_path(path)
        return f"{place}: {dotted}" if dotted else place


def dotted_path(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def load(path: str | Path) -> Located:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return loads(text, str(path))


def loads(text: str, source: str = "<string>") -> Located:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{line}: not valid YAML: {problem}") from None
    located = Located(data=None, source=source)
    if node is None:
        located.data = {}
        return located
    located.lines[()] = node.start_mark.line + 1
    _record_lines(node, (), located.lines)
    # Constructing from the same text again is simpler than constructing from the node
    # graph by hand, and keeps YAML's own type rules (anchors, merges, tags).
    located.data = yaml.safe_load(text)
    return located


def _record_lines(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = path + (key,)
            lines[child] = key_node.start_mark.line + 1
            _record_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = path + (index,)
            lines[child] = item.start_mark.line + 1
            _record_lines(item, child, lines)


def validation_problems(error: ValidationError, located: Located, prefix: PathKey = ()) -> list[str]:
    """One ``file:line: path: message`` line per pydantic error."""
    problems = []
    for item in error.errors():
        loc = prefix + _real_path(located.data, prefix, tuple(item["loc"]))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (misspelt?)"
        elif item["type"] == "missing":
            message = "required key is missing"
        problems.append(f"{located.where(loc)}: {message}")
    return problems


def _real_path(data: Any, prefix: PathKey, loc: PathKey) -> PathKey:
    """``loc`` without what pydantic adds to it (the tag of a tagged union, validator names).

    Walks the data: a middle part that is not a key there is pydantic's, not the file's.
    """
    current = data
    for part in prefix:
        current = _child(current, part)
    path: list[str | int] = []
    for index, part in enumerate(loc):
        child = _child(current, part)
        last = index == len(loc) - 1
        if child is _MISSING and not last:
            continue
        path.append(part)
        current = child
    return tuple(path)


_MISSING = object()


def _child(current: Any, part: Any) -> Any:
    if isinstance(current, dict) and part in current:
        return current[part]
    if isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
        return current[part]
    return _MISSING


def validate(located: Located, model: type[ModelT], expected: str) -> ModelT:
    """``model`` built from a mapping file; ``ConfigError`` with every problem located.

    ``expected`` says what the top level should be, for a file that is not a mapping at all.
    """
    if not isinstance(located.data, dict):
        raise ConfigError(f"{located.source}: {expected}")
    try:
        return model.model_validate(located.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, located)) from None
