"""A reader for the parts of Rasa's YAML training-data format this project uses.

``nlu:`` items of kind ``intent`` (examples with ``[text](entity)`` or
``[text]{"entity": "e", "value": "v"}`` annotations), ``synonym`` and ``lookup``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import yamlfile
from ..errors import ConfigError

ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<entity>[\w-]+)\)|(?P<json>\{[^}]*\}))")


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


def load_training_data(folder: str | Path) -> TrainingData:
    """Every ``*.yml``/``*.yaml`` file below ``folder``."""
    folder = Path(folder)
    data = TrainingData()
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".yml", ".yaml"))
    if not files:
        raise ConfigError(f"{folder}: no Rasa training data (*.yml) found")
    pending: list[tuple[yamlfile.Located, int, str, str]] = []
    for path in files:
        located = yamlfile.load(path)
        items = located.data.get("nlu") if isinstance(located.data, dict) else None
        if not isinstance(items, list):
            raise ConfigError(f"{path}: expected a top-level `nlu:` list")
        for index, item in enumerate(items):
            where = located.where(("nlu", index))
            if not isinstance(item, dict) or not isinstance(item.get("examples"), str):
                raise ConfigError(f"{where}: each item needs `examples: |` with one `- example` per line")
            lines = [line.strip()[2:].strip() for line in item["examples"].splitlines() if line.strip().startswith("- ")]
            if "synonym" in item:
                for line in lines:
                    data.synonyms[line.lower()] = str(item["synonym"])
            elif "lookup" in item:
                data.lookups.setdefault(str(item["lookup"]), []).extend(lines)
            elif "intent" in item:
                for line in lines:
                    pending.append((located, index, str(item["intent"]), line))
            else:
                raise ConfigError(f"{where}: an item is an `intent`, a `synonym` or a `lookup`")
    for located, index, intent, line in pending:
        try:
            data.examples.append(parse_example(intent, line, data.synonyms))
        except ValueError as exc:
            raise ConfigError(f"{located.where(('nlu', index))}: {exc}") from None
    return data
