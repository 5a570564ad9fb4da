"""What each prompt of the menu is like to hear: length, pace, options, and what it tells.

Every text a node says (``prompt``, ``reprompt``, ``help``, ``invalid``) and every shared
text is put together as the engine would (``<en>…</en>`` in that language's voice,
``{x:digits}`` read out from the digit clips) and rendered by the line's renderer, so the
duration is the audio's, pauses included; words per minute are the words said (each digit
read out counts as one) over that duration.

**Both modes announced** — the rule, decided from how the menu's texts are written
("Para desbloquear su usuario, pulse 1 o diga usuario"): the prompt is cut into sentences
(at ``. ; : ? !``); an option's sentence is the one that names its key (the digit, or the
digit's word) next to a keypad verb (*pulse, marque, teclee, press, key, dial…*) or as a
short label ("Usuario, 1."). Its key is announced if there is such a sentence; its phrase is
announced if that sentence has a saying verb (*diga, decir, say, tell…*) and one of the
option's phrases, or has one of its phrases while another sentence of the prompt says, for
all options, that they can be said ("Puede decir la opción que quiera"). A short label
("Usuario, 1." in a reprompt) names both: the words are what to say. An option without any
phrase cannot be announced by voice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

from ..config import Config
from ..dialog.commands import PlayPrompt, Segment, SpokenDigits, Text
from ..menu.model import ActionNode, DigitsNode, EndNode, Menu, MenuNode, MessageNode, TransferNode, language_spans
from ..nlu.classifier import normalise
from ..nlu.numbers import LANGUAGE_WORDS
from .caller import word_count

RATE = 8000
NODE_FIELDS = ("prompt", "reprompt", "help", "invalid")
KEY_VERBS = frozenset({
    "pulse", "pulsa", "pulsar", "marque", "marca", "marcar", "teclee", "teclea", "presione", "oprima", "pulsando",
    "press", "key", "dial", "push", "enter", "pressing", "type",
})
SAY_VERBS = frozenset({
    "diga", "di", "decir", "digalo", "digala", "diciendo", "dilo", "hable",
    "say", "saying", "tell", "speak",
})
SENTENCE = re.compile(r"[.;:?!]+")


@dataclass
class PromptInfo:
    id: str  # node.field or texts.name
    node: str | None
    part: str  # prompt, reprompt, help, invalid; a shared text's name
    kind: str  # the node's type, or "text" for a shared text
    language: str
    text: str
    seconds: float
    words: int
    options: int | None = None  # a menu's options
    keys_announced: bool | None = None
    phrases_announced: bool | None = None
    missing: list[str] = field(default_factory=list)  # what the prompt does not tell, per option
    barge_in: bool | None = None

    @property
    def wpm(self) -> float:
        return round(self.words / self.seconds * 60, 1) if self.seconds > 0 else 0.0

    @property
    def both_modes(self) -> bool | None:
        if self.keys_announced is None:
            return None
        return bool(self.keys_announced and self.phrases_announced)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "node": self.node, "field": self.part, "kind": self.kind, "language": self.language,
            "text": self.text, "seconds": round(self.seconds, 2), "words": self.words, "wpm": self.wpm,
            "options": self.options, "both_modes_announced": self.both_modes, "keys_announced": self.keys_announced,
            "phrases_announced": self.phrases_announced, "missing": self.missing, "barge_in": self.barge_in,
        }


# ---------------------------------------------------------------------- the rule


def _key_tokens(key: str) -> set[str]:
    tokens = {key}
    for words in LANGUAGE_WORDS.values():
        tokens.update(word for word, digit in words.digit_words.items() if digit == key)
    return tokens


def _sentences(text: str) -> list[list[str]]:
    return [normalise(part).split() for part in SENTENCE.split(re.sub(r"</?[a-z]{2,3}>", " ", text))
            if normalise(part)]


def _has_phrase(words: list[str], phrase: str) -> bool:
    wanted = normalise(phrase).split()
    n = len(wanted)
    return bool(wanted) and any(words[i:i + n] == wanted for i in range(len(words) - n + 1))


def _label(words: list[str], key_tokens: set[str]) -> bool:
    """A short label: the words to say, then the key ("Usuario, 1." / "English, 2.")."""
    return 2 <= len(words) <= 5 and words[-1] in key_tokens and not KEY_VERBS & set(words)


def announcements(node: MenuNode, text: str, language: str, name: str = "") -> tuple[bool, bool, list[str]]:
    """(every key announced, every phrase announced, what is missing) for the text of menu
    ``name``. An option that only switches to the language being heard and stays at the menu
    ("Para castellano, pulse 8" said in Spanish) need not be announced."""
    sentences = _sentences(text)
    all_keys = {option.key for option in node.options}
    key_sets = {key: _key_tokens(key) for key in all_keys}

    def names_key(words: list[str], key: str) -> bool:
        if not key_sets[key] & set(words):
            return False
        return bool(KEY_VERBS & set(words)) or _label(words, key_sets[key])

    general_say = any(SAY_VERBS & set(words) and not any(key_sets[k] & set(words) for k in all_keys)
                      for words in sentences)
    keys_ok = phrases_ok = True
    missing: list[str] = []
    for option in node.options:
        if option.set.get("language") == language and option.next == name:
            continue  # "switch to the language you are hearing": nothing to announce
        own = [words for words in sentences if names_key(words, option.key)]
        if not own:
            keys_ok = False
            missing.append(f"option {option.key}: its key is not said")
        languages = list(option.say) if node.any_language else [language]
        phrases = [p for lang in languages for p in option.say.get(lang, [])]
        if not phrases:
            phrases_ok = False
            missing.append(f"option {option.key}: has no phrase to say in {language!r}")
            continue
        where = own or sentences
        said = any(any(_has_phrase(words, p) for p in phrases)
                   and (SAY_VERBS & set(words) or general_say or _label(words, key_sets[option.key]))
                   for words in where)
        if not said:
            phrases_ok = False
            missing.append(f"option {option.key}: no phrase announced (e.g. \u201c{phrases[0]}\u201d)")
    return keys_ok, phrases_ok, missing


# ---------------------------------------------------------------------- rendering


def sample_value(name: str, spec: str, config: Config) -> str:
    if name == "agent_phone":
        return config.agent.phone_number
    if spec == "digits":
        length = config.codes.sms_key_length if "key" in name or "code" in name else 8
        return "1234567890123456"[:length]
    return "8"


def play_for(template: str, language: str, prompt_id: str, config: Config, barge_in: bool = True) -> PlayPrompt:
    """The prompt as the engine would hand it over, fields filled with sample values."""
    segments: list[Segment] = []
    for part_language, part in language_spans(template, language):
        voice = None if part_language == language else part_language
        for literal, name, spec, _ in Formatter().parse(part):
            if literal:
                segments.append(Text(f"{prompt_id}.{language}", literal, voice))
            if name is None:
                continue
            value = sample_value(name, spec or "", config)
            if spec == "digits":
                segments.append(SpokenDigits(value))
            else:
                segments.append(Text(f"{prompt_id}.{language}.{name}", value, voice))
    return PlayPrompt(0, prompt_id, language, tuple(segments), barge_in)


def spoken_words(play: PlayPrompt) -> int:
    words = 0
    for segment in play.segments:
        if isinstance(segment, SpokenDigits):
            words += sum(ch.isdigit() for ch in segment.words())
        else:
            words += word_count(segment.text)
    return words


def analyse(menu: Menu, config: Config, renderer: Any, languages: list[str]) -> list[PromptInfo]:
    found: list[PromptInfo] = []
    for language in languages:
        for name, node in menu.nodes.items():
            if isinstance(node, ActionNode) and not node.prompt:
                continue
            for field_name in NODE_FIELDS:
                texts = getattr(node, field_name, None)
                if not texts:
                    continue
                template = texts.get(language) or next(iter(texts.values()))
                barge_in = getattr(node, "barge_in", True) if field_name != "invalid" else None
                play = play_for(template, language, f"{name}.{field_name}", config, bool(barge_in))
                info = PromptInfo(
                    id=f"{name}.{field_name}", node=name, part=field_name, kind=_kind(node), language=language,
                    text=play.text, seconds=len(renderer.render(play, RATE)) / RATE, words=spoken_words(play),
                    barge_in=barge_in if isinstance(node, (MenuNode, DigitsNode)) or field_name == "prompt" else None,
                )
                if isinstance(node, MenuNode):
                    info.options = len(node.options)
                    info.keys_announced, info.phrases_announced, info.missing = announcements(
                        node, template, language, name)
                found.append(info)
        for key, texts in menu.texts.items():
            template = texts.get(language) or next(iter(texts.values()))
            play = play_for(template, language, f"texts.{key}", config)
            found.append(PromptInfo(id=f"texts.{key}", node=None, part=key, kind="text", language=language,
                                    text=play.text, seconds=len(renderer.render(play, RATE)) / RATE,
                                    words=spoken_words(play)))
    return found


def _kind(node: Any) -> str:
    for cls, name in ((MenuNode, "menu"), (DigitsNode, "digits"), (ActionNode, "action"), (MessageNode, "message"),
                      (TransferNode, "transfer"), (EndNode, "end")):
        if isinstance(node, cls):
            return name
    return "node"
