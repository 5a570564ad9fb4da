"""Configuration (file, environment, checks) and the `voicebot` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from voicebot.config import Config, load_config
from voicebot.errors import ConfigError


def voicebot(*args: str, stdin: str = "", env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "voicebot", *args], input=stdin, capture_output=True,
                          text=True, timeout=120, env=full_env, cwd=cwd)


def test_defaults_work_with_no_file() -> None:
    config = load_config(None, environ={})
    assert config.entry_point_for("950 183 313") == "unlock_line"
    assert config.entry_point_for("+34 901 511 000") == "support_line"
    assert config.entry_point_for("950210191") == "support_line"
    assert config.entry_point_for("123") == "unlock_line"
    assert config.lockout.max_pin_attempts == 3 and config.retries.max_attempts == 3


def test_every_key_is_optional_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("timeouts:\n  first_input: 7\nlockout:\n  max_pin_attempts: 5\n")
    config = load_config(path, environ={})
    assert config.timeouts.first_input == 7 and config.timeouts.inter_digit == 3
    assert config.lockout.max_pin_attempts == 5


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("timeouts:\n  first_input: 7\n")
    config = load_config(path, environ={"VOICEBOT__TIMEOUTS__FIRST_INPUT": "9.5", "VOICEBOT__DATABASE": "/srv/x.db"})
    assert config.timeouts.first_input == 9.5
    assert str(config.database) == "/srv/x.db"


@pytest.mark.parametrize("text,expected", [
    ("timeouts:\n  first_imput: 7\n", "c.yaml:2: timeouts.first_imput: unknown key (misspelt?)"),
    ("retries:\n  max_attempts: lots\n", "c.yaml:2: retries.max_attempts: Input should be a valid integer"),
    ("lockout:\n  max_pin_attempts: 0\n", "c.yaml:2: lockout.max_pin_attempts: Input should be greater than or equal to 1"),
    ("security:\n  scrypt_n: 3000\n", "c.yaml:2: security.scrypt_n: Value error, must be a power of two"),
    ("timeouts: [1, 2]\n", "c.yaml:1: timeouts: Input should be a valid dictionary"),
])
def test_bad_values_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    [problem] = info.value.problems
    assert problem.startswith(f"{tmp_path}/{expected}"), problem


def test_config_check_cli(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("agent:\n  target: sip:desk@pbx.bank.example\n")
    run = voicebot("config", "check", str(good))
    assert run.returncode == 0 and "OK" in run.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("dialed_numbers:\n  '950183313': unlok_line\n")
    run = voicebot("config", "check", str(bad))
    assert run.returncode == 2
    assert "dialed_numbers.950183313: unknown entry point 'unlok_line'" in run.stderr
    missing_lang = tmp_path / "lang.yaml"
    missing_lang.write_text("languages: [es, fr]\n")
    run = voicebot("config", "check", str(missing_lang))
    assert run.returncode == 2 and "the menu has no prompts in 'fr'" in run.stderr


def test_help_lists_the_subcommands() -> None:
    run = voicebot("--help")
    assert run.returncode == 0
    for name in ("run", "chat", "bank", "outbox", "calls", "config"):
        assert name in run.stdout


@pytest.fixture
def cli_config(tmp_path: Path) -> Path:
    path = tmp_path / "voicebot.yaml"
    path.write_text(f"database: {tmp_path / 'db.sqlite3'}\nlogging: {{file: {tmp_path / 'log'}}}\nsecurity: {{scrypt_n: 1024}}\n")
    return path


def test_bank_seed_show_and_password_changed(cli_config: Path) -> None:
    assert voicebot("--config", str(cli_config), "bank", "seed").returncode == 0
    shown = voicebot("--config", str(cli_config), "bank", "show")
    assert "C001  Ana García López  DNI 12345678Z" in shown.stdout
    data = json.loads(voicebot("--config", str(cli_config), "bank", "show", "--json").stdout)
    assert len(data) == 5 and all("pin" not in json.dumps(c).lower() for c in data)
    changed = voicebot("--config", str(cli_config), "bank", "password-changed", "12345678Z")
    assert changed.returncode == 0 and "[SMS to +34600000001]" in changed.stdout
    outbox = voicebot("--config", str(cli_config), "outbox")
    assert "Ha cambiado sus contraseñas de Banca Electrónica" in outbox.stdout
    unknown = voicebot("--config", str(cli_config), "bank", "password-changed", "C999")
    assert unknown.returncode == 1 and "no customer 'C999'" in unknown.stderr


def test_malformed_seed_names_the_place(cli_config: Path, tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("customers:\n  - id: X1\n    name: A\n    document: {type: dni, number: '12345678A'}\n    language: es\n")
    run = voicebot("--config", str(cli_config), "bank", "seed", str(seed))
    assert run.returncode == 2
    assert f"{seed}:4:" in run.stderr and "control letter" in run.stderr


def test_chat_json_prints_the_call_record(cli_config: Path) -> None:
    run = voicebot("--config", str(cli_config), "chat", "--json", "--caller-id", "+34600000001",
                   stdin="1\n1\n1\n3\n")
    record = json.loads(run.stdout)
    assert record["outcome"] == "transferred" and record["outcome_reason"] == "document_type_not_supported"
    assert record["path"] == ["language", "main", "user_channel", "document_type", "document_not_supported"]
    assert "IVR ›" in run.stderr  # the conversation went to stderr
    calls = voicebot("--config", str(cli_config), "calls", "--last", "1")
    assert "transferred (document_type_not_supported)" in calls.stdout


def test_chat_from_a_pipe_ends_cleanly_on_end_of_input(cli_config: Path) -> None:
    run = voicebot("--config", str(cli_config), "chat", stdin="")
    assert run.returncode == 0
    assert "caller hung up" in run.stdout


def test_bad_config_file_is_a_clear_error() -> None:
    run = voicebot("--config", "/nonexistent/voicebot.yaml", "calls")
    assert run.returncode == 2 and "/nonexistent/voicebot.yaml: file not found" in run.stderr


def test_a_menu_option_with_an_intent_the_nlu_data_lacks_is_refused(tmp_path: Path) -> None:
    from voicebot.app import load_dialog
    from voicebot.config import DEFAULT_MENU

    menu = tmp_path / "menu.yaml"
    menu.write_text(DEFAULT_MENU.read_text().replace("intent: sms_key", "intent: sms_keyy", 1))
    config = Config.model_validate({"menu": str(menu)})
    with pytest.raises(ConfigError, match="intent 'sms_keyy' is not an intent of the training data"):
        load_dialog(config)
