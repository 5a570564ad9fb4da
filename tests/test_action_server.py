"""`voicebot actions serve`: the real rasa_sdk action server in a subprocess on a loopback
port, called over HTTP with the JSON Rasa sends to its action endpoint."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import rasa_sdk

from voicebot.rasa_actions import load_domain

PINS = ("1234", "9876")  # Ana's PIN, and a wrong one
CARD = "4567"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path) -> Path:
    config = folder / "voicebot.yaml"
    config.write_text(f"database: {folder / 'bank.sqlite3'}\nlogging: {{file: {folder / 'voicebot.log'}, level: DEBUG}}\n"
                      "security: {scrypt_n: 1024}\n")
    return config


class Server:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.config = write_config(folder)
        self.log = folder / "voicebot.log"
        self.stdout, self.stderr = folder / "stdout", folder / "stderr"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "voicebot", "--config", str(self.config), "actions", "serve",
                 "--port", str(self.port)], stdout=out, stderr=err, env=env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.output()}")
            try:
                if self.get("/health") == (200, {"status": "ok"}):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"no /health in {timeout} s: {self.output()}")

    def get(self, path: str) -> tuple[int, Any]:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.status, json.loads(response.read())

    def post(self, body: dict[str, Any]) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + "/webhook", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def stop(self) -> int:
        self.process.terminate()
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("action_server"))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def rasa_request(action: str, slots: dict[str, Any], text: str = "1234") -> dict[str, Any]:
    """What Rasa 3 POSTs to its action endpoint (rasa/core/actions/action.py, RemoteAction)."""
    now = time.time()
    all_slots = {"language": "es", "requested_slot": None, "document_type": None, "document_number": None,
                 "card_last4": None, "pin": None, "customer_id": None, "channel": None, "operation_reference": None,
                 "caller_id": None, "message_id": None, "unlock_result": None, "unlock_detail": None, **slots}
    return {
        "next_action": action,
        "sender_id": "5e1b2c0a9f",
        "tracker": {
            "sender_id": "5e1b2c0a9f",
            "slots": all_slots,
            "latest_message": {"intent": {"name": "inform_number", "confidence": 0.97}, "entities": [],
                               "text": text, "message_id": "a1b2", "metadata": {}},
            "latest_event_time": now,
            "followup_action": None,
            "paused": False,
            "events": [
                {"event": "action", "timestamp": now - 3, "name": "action_session_start"},
                {"event": "session_started", "timestamp": now - 3},
                {"event": "action", "timestamp": now - 3, "name": "action_listen"},
                {"event": "user", "timestamp": now - 1, "text": text,
                 "parse_data": {"intent": {"name": "inform_number", "confidence": 0.97}, "entities": []}},
            ] + [{"event": "slot", "timestamp": now, "name": k, "value": v} for k, v in slots.items()],
            "latest_input_channel": "rest",
            "active_loop": {},
            "latest_action": {"action_name": "action_listen"},
            "latest_action_name": "action_listen",
        },
        "domain": load_domain(),
        "version": rasa_sdk.__version__,
    }


ANA = {"document_type": "dni", "document_number": "12345678Z", "card_last4": CARD, "pin": PINS[0]}


def slots_of(body: dict[str, Any]) -> dict[str, Any]:
    return {event["name"]: event["value"] for event in body["events"] if event["event"] == "slot"}


def test_health_and_actions(server: Server) -> None:
    assert server.get("/health") == (200, {"status": "ok"})
    status, actions = server.get("/actions")
    assert status == 200
    assert [a["name"] for a in actions] == load_domain()["actions"]


def test_verify_card_over_http(server: Server) -> None:
    status, body = server.post(rasa_request("action_verify_card", ANA))
    assert status == 200
    assert slots_of(body) == {"unlock_result": "ok", "unlock_detail": None, "customer_id": "C001",
                              "card_last4": None, "pin": None}
    assert [r["response"] for r in body["responses"]] == ["utter_verify_card_ok"]

    status, body = server.post(rasa_request("action_verify_card", {**ANA, "pin": PINS[1]}, text=PINS[1]))
    assert status == 200 and slots_of(body)["unlock_result"] == "mismatch" and slots_of(body)["pin"] is None


def test_the_other_steps_over_http(server: Server) -> None:
    status, body = server.post(rasa_request("action_sms_signature_key",
                                            {"customer_id": "C002", "operation_reference": "555000111"}))
    assert status == 200 and slots_of(body) == {"unlock_result": "issued", "unlock_detail": None}
    (response,) = body["responses"]
    assert response["response"] == "utter_sms_signature_key_issued" and response["sms_key"].isdigit()

    status, body = server.post(rasa_request("action_recover_user", {"customer_id": "C003", "channel": "ebanking"}))
    assert status == 200 and slots_of(body) == {"unlock_result": "contact_missing", "unlock_detail": "missing email"}

    status, body = server.post(rasa_request("action_identify_caller", {"caller_id": "+34600000002"}))
    assert slots_of(body) == {"unlock_result": "registered", "unlock_detail": None, "customer_id": "C002"}


def test_a_form_validation_over_http(server: Server) -> None:
    request = rasa_request("validate_unlock_identity_form", {"document_type": "nie", "document_number": "01234567"})
    request["tracker"]["active_loop"] = {"name": "unlock_identity_form"}
    status, body = server.post(request)
    assert status == 200 and slots_of(body) == {"document_type": "nie", "document_number": "X1234567L"}


def test_unknown_action_is_404(server: Server) -> None:
    status, body = server.post(rasa_request("action_transfer_money", {}))
    assert status == 404 and body["action_name"] == "action_transfer_money"


def test_rejected_action_is_400(server: Server) -> None:
    status, body = server.post(rasa_request("action_verify_card", {**ANA, "pin": None}))
    assert status == 400
    assert body == {"error": "action_verify_card needs the slot(s) pin", "action_name": "action_verify_card"}


def test_no_pin_in_the_servers_log_or_output(server: Server) -> None:
    server.post(rasa_request("action_verify_card", ANA))
    server.post(rasa_request("action_verify_card", {**ANA, "pin": PINS[1]}, text=PINS[1]))
    server.post(rasa_request("action_verify_card", {**ANA, "pin": None}))
    server.post(rasa_request("action_nope", ANA))
    time.sleep(0.3)
    log, output = server.log.read_text(), server.output()
    assert "/webhook" in log and "action_verify_card" in output  # the server did log and print
    for secret in (*PINS, CARD):  # on its own: the random port or a PID may hold the same digits
        assert not re.search(rf"(?<!\d){secret}(?!\d)", log + output), secret


def test_sigterm_stops_the_server(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.wait_healthy()
    assert server.stop() == 0
    assert "action server stopped" in server.output()


def test_a_taken_port_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "voicebot", "--config", str(write_config(tmp_path)), "actions", "serve",
                              "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert f"error: cannot serve on 127.0.0.1:{port}: Address already in use" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("break_it", [
    lambda r: r["tracker"].update(events=[{"event": "slot", "name": None, "value": PINS[0]}, 42]),
    lambda r: r["tracker"].update(slots=[PINS[0]]),
    lambda r: r.update(domain=PINS[0]),
], ids=["events", "slots", "domain"])
def test_a_request_the_server_cannot_handle_is_not_echoed_back(server: Server, break_it: Any) -> None:
    request = rasa_request("action_verify_card", ANA)
    break_it(request)
    status, body = server.post(request)
    assert status != 500  # rasa_sdk's 500 handler would echo the request, PIN included
    assert PINS[0] not in json.dumps(body) and "request_body" not in body
