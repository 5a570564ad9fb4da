"""The bank over HTTP: the contract file, `voicebot bank serve` and HttpBank against it on loopback.

The served bank is the embedded SqliteBank over a seeded file; faults are made by a small
proxy in front of it (slow, 5xx, junk, a wrong shape, a reply lost after the work was done).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from voicebot.app import Line
from voicebot.backends.bank_server import CONTRACT, BankServer, make_server
from voicebot.backends.base import BankingBackend, BlockedOperation, Channel, CodePurpose, Document, VerifyResult
from voicebot.backends.http_bank import HttpBank
from voicebot.backends.seed import DEMO_SEED, load_seed, seed_bank
from voicebot.backends.sqlite import Database, SqliteBank, SqliteOutbox, open_database
from voicebot.config import Config, HttpBankSettings
from voicebot.errors import BackendError, BackendReplyError, BackendUnavailable
from voicebot.masking import Secret
from voicebot.rasa_actions import (
    ActionOperationUnlockCode,
    ActionRecoverUser,
    ActionVerifyCard,
    Backends,
    UnlockAction,
)

from .conftest import Caller, make_config

TOKEN = "test-token-0123456789"
ANA_DNI = Document.parse("dni", "12345678")
JOHN_NIE = Document.parse("nie", "01234567")


# ---------------------------------------------------------------------- fixtures


class Bank:
    """The demo bank in a SQLite file, served over HTTP on loopback from a thread."""

    def __init__(self, config: Config, token: str | None = TOKEN) -> None:
        self.config = config
        self.db: Database = open_database(config.database)
        self.sqlite = SqliteBank(self.db, config.codes, config.lockout, config.security)
        seed_bank(self.sqlite, load_seed(DEMO_SEED))
        self.server: BankServer = make_server(self.sqlite, "127.0.0.1", 0, token)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, url: str | None = None, **settings: Any) -> HttpBank:
        values: dict[str, Any] = {"url": url or self.url, "token": TOKEN, "timeout": 2.0, "retries": 2, **settings}
        return HttpBank(HttpBankSettings.model_validate(values), sleep=lambda _s: None)

    def codes(self, customer_id: str, reference: str) -> int:
        with self.db.transaction(write=False) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM codes WHERE customer_id = ? AND reference = ?",
                                    (customer_id, reference)).fetchone()[0])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.db.close()


@pytest.fixture
def bank(tmp_path: Path) -> Iterator[Bank]:
    served = Bank(make_config(tmp_path / "bank"))
    yield served
    served.close()


class Proxy:
    """Forwards to the served bank, except where a fault is set for a (method, path) pattern."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.faults: list[tuple[str, re.Pattern[str], str]] = []
        self.seen: list[tuple[str, str, str | None]] = []  # method, path, Idempotency-Key
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                proxy.seen.append((self.command, self.path, self.headers.get("Idempotency-Key")))
                fault = next((f for m, p, f in proxy.faults if m == self.command and p.search(self.path)), None)
                if fault == "slow":
                    time.sleep(1.0)
                if fault == "500":
                    return self._answer(500, b'{"error": "internal", "message": "x"}')
                if fault == "junk":
                    return self._answer(200, b'{"result": "ok", "customer_id": ')
                if fault == "shape":
                    return self._answer(200, b'{"customer_id": 7, "result": ["ok"], "username": null}')
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "idempotency-key",
                                                                                   "content-type")}
                try:
                    reply = httpx.request(self.command, proxy.target + self.path, content=body, headers=headers)
                except httpx.HTTPError:  # the bank went away (a test ending): as a real proxy would say
                    return self._answer(502, b'{"error": "unavailable", "message": "bad gateway"}')
                if fault == "lose-once":
                    # The bank did the work; its reply never reaches the client.
                    proxy.faults.remove((self.command, next(p for m, p, f in proxy.faults if f == fault), fault))
                    self.close_connection = True
                    return
                self._answer(reply.status_code, reply.content)

            do_GET = do_POST = do_PUT = _any

            def _answer(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (a time-out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def fault(self, method: str, path: str, kind: str) -> None:
        self.faults.append((method, re.compile(path), kind))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(bank: Bank) -> Iterator[Proxy]:
    made = Proxy(bank.url)
    yield made
    made.close()


# ---------------------------------------------------------------------- the contract


def test_the_contract_is_valid_openapi_and_has_every_banking_operation() -> None:
    from openapi_spec_validator import validate

    contract = yaml.safe_load(CONTRACT.read_text())
    validate(contract)
    operations = {op["x-backend-method"]: (method, path, op)
                  for path, item in contract["paths"].items()
                  for method, op in item.items() if method in ("get", "post", "put", "delete", "patch")}
    methods = {name for name in vars(BankingBackend) if not name.startswith("_") and callable(getattr(BankingBackend, name))}
    assert set(operations) == methods
    keyed = {name for name, (_, _, op) in operations.items()
             if any(p.get("$ref", "").endswith("/IdempotencyKey") for p in op.get("parameters", []))}
    assert keyed == {"recover_user", "issue_code"}
    # Secrets only in bodies: no path, query or header parameter names one.
    params = [p for item in contract["paths"].values() for p in item.get("parameters", [])]
    params += [p for _, _, op in operations.values() for p in op.get("parameters", [])]
    names = [contract["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]["name"] if "$ref" in p else p["name"]
             for p in params]
    assert not [n for n in names if re.search(r"pin|card|code|password", n, re.I)]
    assert contract["security"] == [{"bearer": []}]


# ---------------------------------------------------------------------- every operation


def test_every_operation_gives_what_the_sqlite_bank_gives(bank: Bank) -> None:
    http = bank.client()
    # verify: ok, mismatch, locked
    ok = http.verify_card(ANA_DNI, Secret("4567"), Secret("1234"), caller_id="+34600000001")
    assert (ok.result, ok.customer_id) == (VerifyResult.OK, "C001")
    assert http.verify_card(JOHN_NIE, Secret("1111"), Secret("0000")).result is VerifyResult.MISMATCH
    assert http.verify_card(JOHN_NIE, Secret("1111"), Secret("0001")).result is VerifyResult.MISMATCH
    assert http.verify_card(JOHN_NIE, Secret("1111"), Secret("0002")).result is VerifyResult.LOCKED
    assert http.verify_card(JOHN_NIE, Secret("1111"), Secret("2222")).result is VerifyResult.LOCKED
    assert http.verify_card(ANA_DNI, Secret("0000"), Secret("1234")).result is VerifyResult.MISMATCH
    # contacts and phones
    for customer in ("C001", "C003", "C004"):
        assert http.contacts(customer) == bank.sqlite.contacts(customer)
    assert http.customer_by_phone("+34950000004") == "C004" == bank.sqlite.customer_by_phone("+34950000004")
    assert http.customer_by_phone("+34699999999") is None
    # recovery
    credentials = http.recover_user("C001", Channel.EBANKING)
    assert credentials.username == "agarcia" and credentials.must_change
    assert len(credentials.temporary_password) == bank.config.codes.temporary_password_length
    assert credentials.expires_at > datetime.now(timezone.utc)
    ana = next(c for c in bank.sqlite.list_customers() if c["id"] == "C001")
    assert ana["users"]["ebanking"]["must_change"]
    # signature
    http.unlock_signature("C005")
    assert not next(c for c in bank.sqlite.list_customers() if c["id"] == "C005")["signature_blocked"]
    # operations and codes: issued, redeemed once
    operation = http.blocked_operation("C001", "20261129001")
    assert isinstance(operation, BlockedOperation) and operation == bank.sqlite.blocked_operation("C001", "20261129001")
    assert http.blocked_operation("C001", "123") is None
    issued = http.issue_code("C001", CodePurpose.OPERATION_UNLOCK, "20261129001")
    assert re.fullmatch(r"\d{%d}" % bank.config.codes.unlock_code_length, issued.code.reveal())
    assert not http.redeem_code("C001", CodePurpose.OPERATION_UNLOCK, "20261129001", Secret("x"))
    assert http.redeem_code("C001", CodePurpose.OPERATION_UNLOCK, "20261129001", issued.code)
    assert not http.redeem_code("C001", CodePurpose.OPERATION_UNLOCK, "20261129001", issued.code)
    key = http.issue_code("C002", CodePurpose.SMS_SIGNATURE_KEY, "555000111")
    assert len(key.code) == bank.config.codes.sms_key_length
    # password change
    assert http.confirm_password_change("C001") == bank.sqlite.contacts("C001")
    assert not next(c for c in bank.sqlite.list_customers() if c["id"] == "C001")["users"]["ebanking"]["must_change"]
    # refusals are errors with the status only, not "unavailable"
    for refused in (lambda: http.recover_user("C999", Channel.EBANKING), lambda: http.contacts("C999"),
                    lambda: http.issue_code("C001", CodePurpose.OPERATION_UNLOCK, "123")):
        with pytest.raises(BackendError) as caught:
            refused()
        assert not isinstance(caught.value, BackendUnavailable) and re.search(r"\((404|409)\)$", str(caught.value))
    http.close()


def test_the_token_is_required(bank: Bank) -> None:
    reply = httpx.get(f"{bank.url}/v1/customers/C001/contacts")
    assert reply.status_code == 401 and reply.headers["WWW-Authenticate"] == "Bearer"
    assert reply.json()["error"] == "unauthorized"
    wrong = bank.client(token="not-the-token")
    with pytest.raises(BackendError, match=r"\(401\)") as caught:
        wrong.contacts("C001")
    assert not isinstance(caught.value, BackendUnavailable)
    assert bank.client().contacts("C001").name == "Ana García López"


def test_errors_never_echo_the_request_and_nothing_secret_is_logged(bank: Bank, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for body in ({"document": {"type": "dni", "number": "bad-987654"}, "card_last4": "4567", "pin": "987654"},
                 {"document": {"type": "dni", "number": "12345678Z"}, "card_last4": 4567, "pin": "987654"},
                 {"document": {"type": "xx", "number": "12345678Z"}, "card_last4": "4567", "pin": "987654", "x": 1}):
        reply = httpx.post(f"{bank.url}/v1/verifications", json=body, headers=headers)
        assert reply.status_code == 400 and "987654" not in reply.text
    junk = httpx.post(f"{bank.url}/v1/verifications", content=b'{"pin": "987654"', headers=headers)
    assert junk.status_code == 400 and "987654" not in junk.text
    bank.client().verify_card(ANA_DNI, Secret("4567"), Secret("987654"))
    assert "987654" not in caplog.text and TOKEN not in caplog.text
    # Idempotency-Key: required where the contract says, and bound to one request
    url = f"{bank.url}/v1/customers/C001/codes"
    body = {"purpose": "operation_unlock", "reference": "20261129001"}
    assert httpx.post(url, json=body, headers=headers).json()["error"] == "idempotency_key_required"
    keyed = {**headers, "Idempotency-Key": "k" * 20}
    first = httpx.post(url, json=body, headers=keyed)
    assert first.status_code == 201 and httpx.post(url, json=body, headers=keyed).json() == first.json()
    other = httpx.post(url, json={**body, "purpose": "sms_signature_key"}, headers=keyed)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert bank.codes("C001", "20261129001") == 1


# ---------------------------------------------------------------------- faults


def _backends(bank: HttpBank, tmp_path: Path, **timeouts: Any) -> tuple[Backends, SqliteOutbox, Database]:
    config = make_config(tmp_path / "line", **({"timeouts": timeouts} if timeouts else {}))
    db = open_database(config.database)
    outbox = SqliteOutbox(db)
    return Backends(bank, outbox, outbox, config), outbox, db


def _perform(action: type[UnlockAction], backends: Backends, slots: dict[str, str]) -> str:
    values = {name: slots.get(name, "") for name in action.reads()}
    return action(backends).perform_in_time(values, "es").result


def test_a_slow_bank_is_unavailable_and_the_step_an_error(bank: Bank, proxy: Proxy, tmp_path: Path) -> None:
    proxy.fault("GET", r"/contacts$", "slow")
    proxy.fault("POST", r"/verifications$", "slow")
    http = bank.client(proxy.url, timeout=0.3, retries=1)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="did not answer"):
        http.contacts("C001")
    assert [p for _, p, _ in proxy.seen] == ["/v1/customers/C001/contacts"] * 2  # a GET: retried
    assert time.monotonic() - started < 1.5
    proxy.seen.clear()
    backends, outbox, db = _backends(http, tmp_path)
    slots = {"document_type": "dni", "document_number": "12345678", "card_last4": "4567", "pin": "1234"}
    assert _perform(ActionVerifyCard, backends, slots) == "error"
    assert len(proxy.seen) == 1  # a verification counts: never repeated
    assert _perform(ActionRecoverUser, backends, {"customer_id": "C001", "channel": "ebanking"}) == "error"
    assert outbox.list_messages(10) == []
    db.close()


@pytest.mark.parametrize("fault", ["500", "junk", "shape"])
def test_a_broken_bank_is_an_error_and_nothing_is_half_done(bank: Bank, proxy: Proxy, tmp_path: Path,
                                                           fault: str) -> None:
    proxy.fault("POST", r"/recoveries$", fault)
    proxy.fault("POST", r"/codes$", fault)
    proxy.fault("POST", r"/verifications$", fault)
    http = bank.client(proxy.url)
    expected = {"500": BackendUnavailable, "junk": BackendReplyError, "shape": BackendReplyError}[fault]
    with pytest.raises(expected):
        http.verify_card(ANA_DNI, Secret("4567"), Secret("1234"))
    with pytest.raises(expected):
        http.issue_code("C001", CodePurpose.OPERATION_UNLOCK, "20261129001")
    if fault == "500":  # retried, with one key for the logical call
        keys = [key for method, path, key in proxy.seen if path.endswith("/codes")]
        assert len(keys) == 3 and len(set(keys)) == 1 and keys[0]
    backends, outbox, db = _backends(http, tmp_path)
    assert _perform(ActionRecoverUser, backends, {"customer_id": "C001", "channel": "ebanking"}) == "error"
    assert _perform(ActionOperationUnlockCode, backends,
                    {"customer_id": "C001", "operation_reference": "20261129001"}) == "error"
    assert outbox.list_messages(10) == []  # no message carries a password or code the bank did not give
    ana = next(c for c in bank.sqlite.list_customers() if c["id"] == "C001")
    assert not ana["users"]["ebanking"]["must_change"] and bank.codes("C001", "20261129001") == 0
    db.close()


def test_a_reply_lost_after_the_work_is_retried_without_a_second_code(bank: Bank, proxy: Proxy) -> None:
    proxy.fault("POST", r"/codes$", "lose-once")
    http = bank.client(proxy.url)
    issued = http.issue_code("C001", CodePurpose.OPERATION_UNLOCK, "20261129001")
    keys = [key for _, path, key in proxy.seen if path.endswith("/codes")]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert bank.codes("C001", "20261129001") == 1
    assert bank.sqlite.redeem_code("C001", CodePurpose.OPERATION_UNLOCK, "20261129001", issued.code)
    # A second logical call is a new key: a new code, which supersedes the first.
    http.issue_code("C001", CodePurpose.OPERATION_UNLOCK, "20261129001")
    assert bank.codes("C001", "20261129001") == 2


def test_the_bank_down_is_unavailable(tmp_path: Path) -> None:
    http = HttpBank(HttpBankSettings(url="http://127.0.0.1:9", timeout=0.5, retries=1), sleep=lambda _s: None)
    with pytest.raises(BackendUnavailable, match="cannot be reached"):
        http.customer_by_phone("+34600000001")


# ---------------------------------------------------------------------- the command and a whole call


def test_a_console_recovery_against_voicebot_bank_serve(tmp_path: Path) -> None:
    bank_config = make_config(tmp_path / "bank")
    (tmp_path / "bank.yaml").write_text(yaml.safe_dump(json.loads(bank_config.model_dump_json())))
    with open_database(bank_config.database) as db:
        seed_bank(SqliteBank(db, bank_config.codes, bank_config.lockout, bank_config.security), load_seed(DEMO_SEED))
    env = {**os.environ, "VOICEBOT__BANK__HTTP__TOKEN": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "voicebot", "--config", str(tmp_path / "bank.yaml"),
                               "bank", "serve", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert "bearer token required" in banner and TOKEN not in banner, banner + (server.stderr.read() if server.stderr else "")
        url = re.search(r"(http://\S+)/v1", banner).group(1)  # type: ignore[union-attr]
        assert httpx.get(f"{url}/v1/customers/C001/contacts").status_code == 401
        config = make_config(tmp_path / "line", bank={"backend": "http", "http": {"url": url, "token": TOKEN}})
        line = Line.open(config, echo=io.StringIO())
        try:
            assert isinstance(line.bank, HttpBank) and line.ensure_demo_bank() == 0
            call = Caller(line).call(["1", "1", "1", "1", "12345678", "4567", "1234"])
            assert call.outcome == "credentials_sent", call.transcript
            assert "agarcia" in call.transcript and "[SMS to +34600000001]" in call.transcript
        finally:
            line.close()
        with open_database(bank_config.database) as db:
            ana = next(c for c in SqliteBank(db, bank_config.codes, bank_config.lockout,
                                             bank_config.security).list_customers() if c["id"] == "C001")
        assert ana["users"]["ebanking"]["must_change"]
    finally:
        server.terminate()
        server.wait(10)
    assert server.returncode == 0


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl."""
    files = {name: folder / name for name in ("ca.pem", "ca.key", "server.pem", "server.key",
                                               "client.pem", "client.key")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test bank CA")
    for name, extension in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        (folder / f"{name}.ext").write_text(extension + "\n")
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext")
    return files


def test_mutual_tls(tmp_path: Path) -> None:
    import shutil
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    files = _certificates(tmp_path)
    served = Bank(make_config(tmp_path / "bank"))
    try:
        # The bank's front asks for a client certificate from its CA (the test wraps the socket).
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files["server.pem"], files["server.key"])
        context.load_verify_locations(files["ca.pem"])
        context.verify_mode = ssl.CERT_REQUIRED
        served.server.socket = context.wrap_socket(served.server.socket, server_side=True)
        url = served.url.replace("http://", "https://")
        with_cert = served.client(url, ca_file=str(files["ca.pem"]), client_cert=str(files["client.pem"]),
                                  client_key=str(files["client.key"]))
        assert with_cert.customer_by_phone("+34950000004") == "C004"
        without = served.client(url, ca_file=str(files["ca.pem"]), retries=0)
        with pytest.raises(BackendUnavailable):
            without.contacts("C001")
        untrusted = served.client(url, client_cert=str(files["client.pem"]), client_key=str(files["client.key"]))
        with pytest.raises(BackendUnavailable):  # the system's CAs do not know the bank's
            untrusted.contacts("C001")
        with pytest.raises(BackendError, match="TLS files"):
            served.client(url, client_cert=str(tmp_path / "missing.pem"))
    finally:
        served.close()
