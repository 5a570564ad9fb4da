"""A reader for the parts of Rasa's YAML training-data format this project uses.

``nlu:`` items of kind ``intent`` (examples with ``[text](entity)`` or
``[text]{"entity": "e", "value": "v"}`` annotations), ``synonym`` and ``lookup``. The files
stay valid Rasa 3 training data, so the same folder can be checked with ``rasa data
validate`` or trained by Rasa itself; where this reader is stricter than Rasa (an example
under two intents, a line that is not ``- example``) it is because Rasa would only warn
about, or silently drop, what is a mistake here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import yamlfile
from ..errors import ConfigError

ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<entity>[\w-]+)\)|(?P<json>\{[^}]*\}))")
# `examples: |` (or `|-`, `>`...): the example lines start on the next line of the file.
_BLOCK_SCALAR = re.compile(r"examples:\s*[|>][-+0-9]*\s*(#.*)?$")


@dataclass(frozen=True)
class EntitySpan:
    text: str
    entity: str
    value: str


@dataclass(frozen=True)
class Example:
    intent: str
    text: str  # annotations removed
    entities: tuple[EntitySpan, ...]


@dataclass
class TrainingData:
    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # phrase -> value
    lookups: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""  # the file or folder read, for messages

    def intents(self) -> set[str]:
        return {example.intent for example in self.examples}


def parse_example(intent: str, raw: str, synonyms: dict[str, str] | None = None) -> Example:
    spans: list[EntitySpan] = []

    def replace(match: re.Match[str]) -> str:
        text = match["text"]
        if match["entity"]:
            entity, value = match["entity"], (synonyms or {}).get(text.lower(), text)
        else:
            try:
                spec = json.loads(match["json"])
                entity, value = spec["entity"], str(spec.get("value", text))
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"bad entity annotation {match.group(0)!r}") from None
        spans.append(EntitySpan(text, entity, value))
        return text

    text = ANNOTATION.sub(replace, raw)
    return Example(intent, text, tuple(spans))


def load_training_data(path: str | Path) -> TrainingData:
    """One Rasa NLU file, or every ``*.yml``/``*.yaml`` file below a folder."""
    path = Path(path)
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml"))
        if not files:
            raise ConfigError(f"{path}: no Rasa training data (*.yml) found")
    data = TrainingData(source=str(path))
    # (place, intent, raw example): parsed once every synonym is known, whatever the file order
    pending: list[tuple[str, str, str]] = []
    for file in files:
        located = yamlfile.load(file)
        if not isinstance(located.data, dict):
            raise ConfigError(f"{file}: expected `version: \"3.1\"` and a top-level `nlu:` list")
        version = located.data.get("version")
        if version is not None and not isinstance(version, str):
            # Rasa refuses an unquoted version: YAML reads 3.1 as a number.
            raise ConfigError(f"{located.where(('version',))}: write the version as a string in quotes: "
                              f"version: \"{version}\"")
        items = located.data.get("nlu")
        if not isinstance(items, list):
            raise ConfigError(f"{file}: expected a top-level `nlu:` list")
        file_lines = file.read_text(encoding="utf-8").splitlines()
        for index, item in enumerate(items):
            where = located.where(("nlu", index))
            if not isinstance(item, dict) or not isinstance(item.get("examples"), str):
                raise ConfigError(f"{where}: each item needs `examples: |` with one `- example` per line")
            lines = _example_lines(item["examples"], located, index, file_lines)
            if "synonym" in item:
                for _, line in lines:
                    data.synonyms[line.lower()] = str(item["synonym"])
            elif "lookup" in item:
                data.lookups.setdefault(str(item["lookup"]), []).extend(line for _, line in lines)
            elif "intent" in item:
                if not lines:
                    raise ConfigError(f"{where}: intent {item['intent']!r} has no examples")
                pending.extend((place, str(item["intent"]), line) for place, line in lines)
            else:
                raise ConfigError(f"{where}: an item is an `intent`, a `synonym` or a `lookup`")
    first_seen: dict[str, tuple[str, str]] = {}  # example as compared -> (intent, place)
    for place, intent, line in pending:
        try:
            example = parse_example(intent, line, data.synonyms)
        except ValueError as exc:
            raise ConfigError(f"{place}: {exc}") from None
        # One phrase under two intents teaches the classifier nothing but a coin toss.
        key = " ".join(example.text.casefold().split())
        earlier = first_seen.setdefault(key, (intent, place))
        if earlier[0] != intent:
            raise ConfigError(f"{place}: {example.text!r} is an example of {intent!r} and also of "
                              f"{earlier[0]!r} ({earlier[1]}); keep it under one intent")
        data.examples.append(example)
    return data


def _example_lines(block: str, located: yamlfile.Located, index: int, file_lines: list[str]) -> list[tuple[str, str]]:
    """``(place, text)`` of each ``- example`` line; anything else in the block is an error."""
    key_line = located.line_of(("nlu", index, "examples"))
    exact = key_line is not None and _BLOCK_SCALAR.search(file_lines[key_line - 1]) is not None
    found = []
    for offset, raw in enumerate(block.splitlines()):
        line = raw.strip()
        if not line:
            continue
        where = (f"{located.source}:{key_line + 1 + offset}: nlu[{index}].examples" if exact and key_line
                 else located.where(("nlu", index, "examples")))
        if not line.startswith("- ") or not line[2:].strip():
            raise ConfigError(f"{where}: {line!r}: each example is one line `- text`")
        found.append((where, line[2:].strip()))
    return found
