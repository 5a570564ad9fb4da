"""A whole user recovery against the real protocols at once (issue 11): the bank served over
HTTP by `voicebot bank serve` (a process), the e-mail to an SMTP server (aiosmtpd), the SMS
to an SMPP SMSC (tests/smsc.py), all on loopback. The caller keys the flow in the console;
the username arrives by e-mail, the temporary password by SMS, and that password is the one
the bank now holds (checked against its hash, never printed)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from aiosmtpd.controller import Controller

from tests.conftest import Caller, make_config
from tests.smsc import Smsc
from tests.test_smtp import Mailbox, free_port
from voicebot.app import Line
from voicebot.backends.seed import DEMO_SEED, load_seed, seed_bank
from voicebot.backends.sqlite import SqliteBank, check_secret, open_database

TOKEN = "bank-token-7c1e"
SMPP_PASSWORD = "smpp-pw"


def test_a_recovery_reaches_the_customer_through_http_smtp_and_smpp(tmp_path: Path) -> None:
    bank_config = make_config(tmp_path / "bank")
    (tmp_path / "bank.yaml").write_text(yaml.safe_dump(json.loads(bank_config.model_dump_json())))
    with open_database(bank_config.database) as db:
        seed_bank(SqliteBank(db, bank_config.codes, bank_config.lockout, bank_config.security), load_seed(DEMO_SEED))
    bank = subprocess.Popen([sys.executable, "-m", "voicebot", "--config", str(tmp_path / "bank.yaml"),
                             "bank", "serve", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "VOICEBOT__BANK__HTTP__TOKEN": TOKEN})
    mailbox, smtp_port = Mailbox(), free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        with Smsc(password=SMPP_PASSWORD) as smsc:
            assert bank.stdout is not None
            url = re.search(r"(http://\S+)/v1", bank.stdout.readline()).group(1)  # type: ignore[union-attr]
            config = make_config(
                tmp_path / "line",
                bank={"backend": "http", "http": {"url": url, "token": TOKEN}},
                email={"transport": "smtp", "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"}},
                sms={"transport": "smpp", "smpp": {"host": "127.0.0.1", "port": smsc.port, "password": SMPP_PASSWORD,
                                                   "timeout": 2, "max_per_second": 100}},
            )
            line = Line.open(config, echo=io.StringIO())
            try:
                result = Caller(line).call(["1", "1", "1", "1", "12345678", "4567", "1234"])
                statuses = {m["status"] for m in line.outbox.list_messages()}
            finally:
                line.close()
            assert result.outcome == "credentials_sent", result.transcript
            assert "[SMS to" not in result.transcript and "[E-mail to" not in result.transcript  # no demo phone
            [mail] = mailbox.received
            assert mail["To"] == "ana.garcia@example.com"
            assert "agarcia" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            [sms] = [m for m in smsc.messages() if m.destination == "34600000001"]
            prefix = "Su contraseña temporal de Banca Electrónica es "
            assert sms.text.startswith(prefix)
            password = sms.text[len(prefix):].split(".")[0]
            assert statuses == {"delivered"}
    finally:
        smtp.stop()
        bank.terminate()
        bank.wait(10)
    with open_database(bank_config.database) as db:
        stored = db._connection.execute(
            "SELECT temp_password_hash FROM online_users WHERE customer_id = 'C001' AND channel = 'ebanking'"
        ).fetchone()[0]
    assert check_secret(password, stored)  # the SMS carries the password the bank holds
