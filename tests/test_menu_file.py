"""The menu file: the shipped one is complete; typos are reported with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.actions import UnlockActions
from voicebot.config import DEFAULT_MENU
from voicebot.errors import ConfigError
from voicebot.menu import DigitsNode, MenuNode, load_menu

MENU_TEXT = DEFAULT_MENU.read_text(encoding="utf-8")


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    start = -1
    for _ in range(occurrence):
        start = text.index(needle, start + 1)
    return text.count("\n", 0, start) + 1


def broken_menu(tmp_path: Path, old: str, new: str) -> tuple[Path, str]:
    assert old in MENU_TEXT, old
    text = MENU_TEXT.replace(old, new, 1)
    path = tmp_path / "menu.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_menu(path, known_actions=UnlockActions.NAMES)
    return info.value.problems


def test_shipped_menu_loads_with_every_branch_of_the_spec() -> None:
    menu = load_menu(DEFAULT_MENU, known_actions=UnlockActions.NAMES)
    assert menu.entry_points == {"unlock_line": "language", "support_line": "support"}
    main = menu.nodes["main"]
    assert isinstance(main, MenuNode) and [o.key for o in main.options] == ["1", "2", "3"]
    doc = menu.nodes["document_type"]
    assert isinstance(doc, MenuNode) and [o.next for o in doc.options] == ["dni_number", "nie_number", "document_not_supported"]
    for name in ("card_last4", "card_pin"):
        node = menu.nodes[name]
        assert isinstance(node, DigitsNode) and node.mask.value == "full" and (node.min, node.max) == (4, 4)
    for node in menu.nodes.values():
        for lang in ("es", "en"):
            assert not node.prompt or node.prompt[lang]


def test_unknown_node_names_file_and_line(tmp_path: Path) -> None:
    path, text = broken_menu(tmp_path, "        set: {channel: phone}\n        next: document_type",
                             "        set: {channel: phone}\n        next: documnet_type")
    [problem] = problems(path)
    line = line_of(text, "next: documnet_type")
    assert problem == f"{path}:{line}: nodes.user_channel.options[1].next: unknown node 'documnet_type'"


def test_unknown_node_in_a_route(tmp_path: Path) -> None:
    path, text = broken_menu(tmp_path, "{go: card_last4}", "{go: card_last5}")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:{line_of(text, 'card_last5')}: nodes.dni_number.next[1].go: unknown node")


def test_missing_prompt_in_one_language(tmp_path: Path) -> None:
    old = '      en: "For your e-banking user, press 1 or say e-banking. For your telephone banking user, press 2 or say telephone."\n'
    path, text = broken_menu(tmp_path, old, "")
    [problem] = problems(path)
    line = line_of(text, "  user_channel:") + 2  # the `prompt:` key
    assert problem == f"{path}:{line}: nodes.user_channel.prompt: no text in language 'en'"


def test_unreachable_node(tmp_path: Path) -> None:
    path, text = broken_menu(tmp_path, "      - key: \"3\"\n        say:\n          es: [otras gestiones",
                             "      - key: \"3\"\n        say:\n          es: [otras gestiones")
    text = text + "\n  orphan:\n    type: transfer\n    reason: x\n    prompt: {es: a, en: b}\n"
    path.write_text(text, encoding="utf-8")
    [problem] = problems(path)
    assert problem == f"{path}:{line_of(text, '  orphan:')}: nodes.orphan: node 'orphan' cannot be reached from any entry point"


def test_misspelt_key_and_bad_type(tmp_path: Path) -> None:
    path, text = broken_menu(tmp_path, "    slot: card_last4\n    min: 4", "    slot: card_last4\n    mni: 4")
    found = problems(path)
    assert f"{path}:{line_of(text, 'mni: 4')}: nodes.card_last4.mni: unknown key (misspelt?)" in found
    assert any(p.startswith(f"{path}:") and "nodes.card_last4.min: required key is missing" in p for p in found)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path, text = broken_menu(tmp_path, "    slot: pin\n", "    slot: [pin\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:") and "not valid YAML" in problem


def test_duplicate_option_key_and_universal_key_clash(tmp_path: Path) -> None:
    path, text = broken_menu(tmp_path, "      - key: \"2\"\n        say:\n          es: [operación", "      - key: \"0\"\n        say:\n          es: [operación")
    [problem] = problems(path)
    assert problem.endswith("nodes.main.options[1].key: key 0 is the universal 'agent' key")


def test_unknown_action(tmp_path: Path) -> None:
    path, text = broken_menu(tmp_path, "action: unlock_signature", "action: unlock_signatur")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:{line_of(text, 'action: unlock_signatur')}: nodes.unlock_signature.action: unknown action")


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    path, text = broken_menu(tmp_path, "next: card_pin", "next: card_pni")
    text = text.replace("next: verify\n", "next: verfiy\n", 1)
    path.write_text(text, encoding="utf-8")
    found = problems(path)
    assert any("unknown node 'card_pni'" in p for p in found)
    assert any("unknown node 'verfiy'" in p for p in found)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="nowhere.yaml: file not found"):
        load_menu("nowhere.yaml")
