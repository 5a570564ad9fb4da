"""No PIN, card digits, temporary password or code is ever written in clear.

Real CLI runs (``voicebot chat --json``) over a bank seeded with distinctive values; the
secrets the caller received are read from what the demo phone printed; then the call
log, every ``--json`` output, the log file and every table that is not the bank's own
card register are searched for each exact value, and the call recordings' names and audio
(the DTMF detector run over the caller's channel: no key of the card or PIN entry).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

PIN, CARD, DNI, REFERENCE = "8642", "9753", "24681357", "31415926"
SEED = f"""\
customers:
  - id: T001
    name: Prueba Secretos
    document: {{type: dni, number: "{DNI}B"}}
    language: es
    email: prueba@example.com
    mobile: "+34611111111"
    phones: ["+34611111111"]
    cards:
      - {{last4: "{CARD}", pin: "{PIN}"}}
    users: {{ebanking: psecretos, phone: psecretos.tel}}
    signature_blocked: true
    blocked_operations:
      - {{reference: "{REFERENCE}", description: "Compra", amount: "10.00 EUR"}}
"""
IDENTIFY = ["1", "1", "1", "1", DNI, CARD]
SCRIPTS = {
    "recover": IDENTIFY + [PIN],
    "recover_spoken_pin": ["1", "1", "1", "1", DNI, "nueve siete cinco tres", "ocho seis cuatro dos"],
    "wrong_pin_then_right": IDENTIFY + ["1111", DNI, CARD, PIN],
    "sms_key": ["1", "3", "2", "1", DNI, f"{REFERENCE}#", CARD, PIN, "*", ""],
    "operation": ["1", "2", f"{REFERENCE}#"],
    "hang_up_in_pin": IDENTIFY + ["86"],
}


def voicebot(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicebot", "--config", str(config), *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=True,
    )


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("secrets")
    config = folder / "voicebot.yaml"
    config.write_text(
        f"database: {folder / 'line.sqlite3'}\n"
        f"logging: {{file: {folder / 'voicebot.log'}, level: DEBUG}}\n"
        "security: {scrypt_n: 1024}\n"
        f"recording: {{folder: {folder / 'recordings'}}}\n"
    )
    (folder / "seed.yaml").write_text(SEED)
    voicebot(config, "bank", "seed", str(folder / "seed.yaml"))
    outputs, phone = {}, ""
    for name, script in SCRIPTS.items():
        run = voicebot(config, "chat", "--json", "--caller-id", "+34611111111", stdin="\n".join(script) + "\n")
        outputs[f"chat {name} --json"] = run.stdout
        phone += run.stderr  # the transcript: what the caller heard and what the demo phone got
    # The audio front too: the same recovery keyed as tones in a recording of the caller.
    import numpy as np
    import soundfile

    from voicebot.dtmf import generator

    tones, _ = generator.sequence("1111" + DNI + CARD + PIN, on=0.08, off=0.12, lead=1.0, tail=1.0,
                                  level_dbm0=-10.0, rng=np.random.default_rng(5))
    soundfile.write(folder / "caller.wav", tones, 8000)
    run = voicebot(config, "call", "--input", str(folder / "caller.wav"), "--no-speech", "--caller-id",
                   "+34611111111", "--transcript", str(folder / "call.json"), "--output", str(folder / "bot.wav"))
    outputs["call --input (stdout)"] = run.stdout + run.stderr
    outputs["call --input transcript"] = (folder / "call.json").read_text()
    outputs["calls --json"] = voicebot(config, "calls", "--json", "--last", "50").stdout
    outputs["calls"] = voicebot(config, "calls", "--last", "50").stdout
    outputs["outbox --json"] = voicebot(config, "outbox", "--json", "--last", "50").stdout
    outputs["bank show --json"] = voicebot(config, "bank", "show", "--json").stdout
    outputs["log file"] = (folder / "voicebot.log").read_text()
    return {"folder": folder, "outputs": outputs, "phone": phone}


def received_secrets(phone: str) -> dict[str, str]:
    password = re.search(r"contraseña temporal de Banca Electrónica es (\S+)\.", phone)
    code = re.search(rf"operación {REFERENCE}: (\d+)\.", phone)
    key = re.search(r"clave de firma SMS es: ([\d ,]+)\.", phone)
    assert password and code and key, phone
    return {
        "PIN": PIN,
        "card digits": CARD,
        "temporary password": password.group(1),
        "unlock code": code.group(1),
        "SMS key": re.sub(r"\D", "", key.group(1)),
    }


def test_calls_did_what_they_should(produced: dict) -> None:
    records = json.loads(produced["outputs"]["calls --json"])
    outcomes = sorted(r["outcome"] for r in records)
    assert outcomes == sorted([
        "credentials_sent", "credentials_sent", "credentials_sent", "sms_key_spoken",
        "operation_code_sent", "caller_hung_up", "credentials_sent",  # the last: the file call
    ])


def test_no_secret_in_any_output_or_log(produced: dict) -> None:
    secrets = received_secrets(produced["phone"])
    for where, text in produced["outputs"].items():
        for what, value in secrets.items():
            assert value not in text, f"{what} found in clear in `{where}`"
    # The masked forms are there instead.
    assert '"value": "****"' in produced["outputs"]["chat recover --json"]


def test_no_secret_in_any_table(produced: dict) -> None:
    secrets = received_secrets(produced["phone"])
    db = sqlite3.connect(produced["folder"] / "line.sqlite3")
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert {"calls", "outbox", "handoffs", "cards", "codes"} <= set(tables)
    for table in tables:
        rows = "\n".join(repr(row) for row in db.execute(f"SELECT * FROM {table}"))
        for what, value in secrets.items():
            if table == "cards" and what == "card digits":
                continue  # the bank's own card register holds the last 4 digits, as banks do
            assert value not in rows, f"{what} found in clear in table {table}"


def test_no_secret_in_any_recording(produced: dict) -> None:
    import soundfile

    from voicebot.dtmf.detector import detect

    secrets = received_secrets(produced["phone"])
    files = sorted((produced["folder"] / "recordings").iterdir())
    records = json.loads(produced["outputs"]["calls --json"])
    # Calls on audio keep one (the file call); the console's keep none. Named by the call id.
    assert [Path(r["recording"]["path"]).name for r in records if r.get("recording")] == [f.name for f in files]
    assert len(files) == 1
    for path in files:
        for what, value in secrets.items():
            assert value not in path.name, f"{what} in the name of {path}"
        audio, rate = soundfile.read(str(path))
        heard = "".join(k.key for k in detect(audio[:, 0], rate))
        assert PIN not in heard and CARD not in heard, f"{heard} keyed in {path}"
        assert heard == "1111" + DNI  # the menu keys and the document, then nothing
