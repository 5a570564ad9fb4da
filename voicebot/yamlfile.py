"""YAML files that remember where every value came from.

Operators write the menu, the configuration and the bank seed by hand. When one of them is
wrong, the message must say ``menu.yaml:42: nodes.main.options[1].next: unknown node
'mian'``, not a stack trace. :func:`load` returns the plain data plus a map from each
value's path to its line; :func:`validation_problems` turns pydantic's errors into such
messages.

A file may also be hostile (issue 8). Only plain data is read: a ``!!python/…`` or other
tag, a key written twice (PyYAML would keep the last one silently), aliases that loop or
expand past :data:`MAX_VALUES`, nesting past :data:`MAX_DEPTH`, a file past
:data:`MAX_FILE_BYTES`, one that is not a regular file (a FIFO, a device) or not UTF-8 are
each one clear ``file:line`` problem, found before anything is built.
"""

from __future__ import annotations

import stat
import unicodedata
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


# Limits far above any file an operator writes by hand (the shipped menu is 20 kB, 1,200
# values, 9 levels deep), low enough that a hostile file is refused in well under a second
# instead of filling memory or the stack: a file of hundreds of megabytes, aliases that
# multiply ("billion laughs"), nesting that overflows the parser's recursion.
MAX_FILE_BYTES = 8 * 2**20
MAX_VALUES = 500_000  # counted with every alias expanded, as the program would see them
MAX_DEPTH = 50
MAX_PROBLEMS = 50  # reported of one file; the rest are counted

# What the files may hold: text, numbers, booleans, null, dates, lists and mappings.
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map", "merge")
)


def load(path: str | Path) -> Located:
    path = Path(path)
    try:
        # Not a regular file (a folder, a FIFO, /dev/zero): refused before it is opened.
        kind = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:  # a symlink loop, no permission
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(kind.st_mode):
        raise ConfigError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(kind.st_mode):
        raise ConfigError(f"{path}: not a regular file")
    if kind.st_size > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: too big ({kind.st_size:,} bytes; the limit is {MAX_FILE_BYTES:,})")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)  # the file may grow between stat and read
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: too big (more than {MAX_FILE_BYTES:,} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None
    return loads(text.removeprefix("\ufeff"), str(path))


def loads(text: str, source: str = "<string>") -> Located:
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # reads the whole text: refuses characters YAML does not allow
        node = loader.get_single_node()
        located = Located(data=None, source=source)
        if node is None:
            located.data = {}
            return located
        _check_plain(node)
        located.lines[()] = node.start_mark.line + 1
        _record_lines(node, (), located.lines)
        located.data = loader.construct_document(node)
        return located
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}{_line_of_error(exc, text)}: {_yaml_problem(exc)}") from None
    except RecursionError:  # a last resort: MAX_DEPTH is checked before Python's limit
        raise ConfigError(f"{source}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


class _Refused(yaml.MarkedYAMLError):
    """A file YAML accepts and these loaders do not (its message is the whole problem)."""


class _Loader(yaml.SafeLoader):
    """The safe loader, bounded in depth and in the number of values."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._composed = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        self._composed += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep",
                               problem_mark=self.peek_event().start_mark)
            if self._composed > MAX_VALUES:
                raise _Refused(problem=f"more than {MAX_VALUES:,} values", problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_plain(root: yaml.Node) -> None:
    """Refuse tags beyond plain data, duplicate keys, aliases that loop or multiply past
    :data:`MAX_VALUES`. Each node is looked at once, however many aliases name it."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    keys = yaml.constructor.SafeConstructor()

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in open_nodes:
            raise _Refused(problem="an alias refers to a value that contains it (a loop)", problem_mark=node.start_mark)
        if node.tag not in _PLAIN_TAGS:
            raise _Refused(
                problem=f"the tag {_short_tag(node.tag)} is not allowed (only text, numbers, true/false, null, lists "
                        "and mappings)",
                problem_mark=node.start_mark,
            )
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
            _refuse_duplicate_keys(node, keys)
        open_nodes.discard(id(node))
        if total > MAX_VALUES:
            raise _Refused(
                problem=f"expands to more than {MAX_VALUES:,} values (aliases repeating aliases?)",
                problem_mark=node.start_mark,
            )
        sizes[id(node)] = total
        return total

    size(root)


def _refuse_duplicate_keys(node: yaml.MappingNode, keys: yaml.constructor.SafeConstructor) -> None:
    # PyYAML keeps the last of two equal keys without a word: a second `pin:` under a card,
    # or a second `customers:`, must not silently win. Checked on the nodes as written,
    # before `<<` merges (whose keys may be overridden: that is what they are for).
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = keys.construct_object(key_node, deep=True)
        first = seen.setdefault(key, key_node)
        if first is not key_node:
            raise _Refused(
                problem=f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                problem_mark=key_node.start_mark,
            )


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _line_of_error(exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f":{mark.line + 1}"
    if isinstance(exc, yaml.reader.ReaderError):
        return f":{text.count(chr(10), 0, exc.position) + 1}"
    return ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, _Refused):
        return str(exc.problem)
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        return f"not valid YAML: the character U+{exc.character:04X} cannot appear in it"
    problem = getattr(exc, "problem", None) or str(exc)
    return f"not valid YAML: {problem}"


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


def hidden_character(text: str, allowed: str = "") -> str | None:
    """The first character of ``text`` that prints as nothing or moves what follows, if any.

    Control characters (an ESC rewrites the operator's terminal when ``voicebot bank show``
    prints a name), lone surrogates (SQLite cannot store them), line separators, and the
    invisible format characters: bidi overrides (U+202E shows "evil.exe" as "exe.live"),
    zero-width spaces, the BOM. Joiners and tag characters stay: emoji are built with them.
    """
    for char in text:
        category = unicodedata.category(char)
        if char in allowed:
            continue
        if category in ("Cc", "Cs", "Zl", "Zp"):
            return char
        if category == "Cf" and char not in "\u200c\u200d" and not "\U000e0020" <= char <= "\U000e007f":
            return char
    return None


def capped(problems: list[str]) -> list[str]:
    """The first :data:`MAX_PROBLEMS` problems, and how many more: a file of 10,000 wrong
    customers is told in a screenful."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS:,} more problems"]


def validation_problems(error: ValidationError, located: Located, prefix: PathKey = ()) -> list[str]:
    """One ``file:line: path: message`` line per pydantic error (at most :data:`MAX_PROBLEMS`)."""
    problems = []
    for item in error.errors():
        loc = prefix + _real_path(located.data, prefix, tuple(item["loc"]))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (misspelt?)"
        elif item["type"] == "missing":
            message = "required key is missing"
        problems.append(f"{located.where(loc)}: {message}")
    return capped(problems)


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
