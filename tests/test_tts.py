"""Prompts as audio with the real pyttsx3 and eSpeak NG: voices, rates, level, the clip cache,
``voicebot prompts build``, prompts put together from clips, secrets, and the errors.

Skipped, with the reason, where the eSpeak NG library is not installed.
"""

from __future__ import annotations

import ctypes.util
import logging
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from voicebot.config import DEFAULT_MENU, DEFAULT_NLU_DATA, Config, Tts, load_config
from voicebot.dialog import (
    CallStarted,
    DialogEngine,
    DigitPressed,
    EngineSettings,
    PlayPrompt,
    PromptFinished,
    StartTimer,
    TimerExpired,
    TransferFailed,
)
from voicebot.dialog.commands import SpokenDigits, Text
from voicebot.errors import ConfigError
from voicebot.masking import Secret
from voicebot.menu import load_menu
from voicebot.menu.model import Menu
from voicebot.tts import (
    Level,
    PromptCache,
    PromptCacheError,
    PromptRenderer,
    Pyttsx3Synthesizer,
    TtsError,
    TtsUnavailable,
    active_level_dbfs,
    menu_texts,
)
from voicebot.tts.renderer import DIGITS

pytestmark = pytest.mark.skipif(
    ctypes.util.find_library("espeak-ng") is None,
    reason="the eSpeak NG library is not installed (apt-get install espeak-ng): pyttsx3 has no engine",
)

VOICES = {"es": "roa/es", "en": "gmw/en-us"}
SENTENCES = {
    "es": "Para desbloquear o recuperar su usuario, pulse 1 o diga usuario.",  # 10 words
    "en": "To unlock or recover your user, press 1 or say user.",  # 11 words
}
LEVEL = Level()  # the configuration's default: -20 dBFS active speech, peaks at most -1 dBFS


@pytest.fixture(scope="module")
def menu() -> Menu:
    return load_menu(DEFAULT_MENU)


@pytest.fixture(scope="module")
def synthesizer() -> Pyttsx3Synthesizer:
    return Pyttsx3Synthesizer(VOICES)


def renderer_on(folder: Path, synthesizer: Pyttsx3Synthesizer | None = None, **settings: object) -> PromptRenderer:
    tts = Tts.model_validate({"cache_dir": str(folder), **settings})
    return PromptRenderer(synthesizer or Pyttsx3Synthesizer(VOICES), PromptCache(folder), tts)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, menu: Menu) -> Path:
    """A cache folder holding the whole menu and the digits at 8 and 16 kHz."""
    folder = tmp_path_factory.mktemp("prompts")
    renderer_on(folder).build(menu, ["es", "en"], [8000, 16000])
    return folder


def level_ok(samples: np.ndarray, rate: int, level: Level = LEVEL) -> bool:
    """At the target active level, or below it only because the peaks reached the ceiling."""
    active = active_level_dbfs(samples, rate)
    peak = 20 * np.log10(np.max(np.abs(samples)))
    return peak <= level.peak_dbfs + 0.01 and (abs(active - level.target_dbfs) <= 0.5 or (
        active < level.target_dbfs and peak >= level.peak_dbfs - 0.1))


def gaps(samples: np.ndarray, rate: int, floor_dbfs: float = -60.0) -> list[float]:
    """Lengths in seconds of the silent stretches between sounds (5 ms resolution)."""
    frame = rate // 200
    n = len(samples) // frame
    power = np.mean(samples[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    loud = power > 10 ** (floor_dbfs / 10)
    out, run, seen = [], 0, False
    for is_loud in loud:
        if is_loud:
            if seen and run:
                out.append(run * frame / rate)
            run, seen = 0, True
        else:
            run += 1
    return out


# ---------------------------------------------------------------------- the synthesizer


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("language", ["es", "en"])
def test_each_language_renders_at_the_line_rate_and_level(synthesizer: Pyttsx3Synthesizer, language: str,
                                                          rate: int) -> None:
    text = SENTENCES[language]
    samples = synthesizer.render(text, language, rate, wpm=160, level=LEVEL)
    assert samples.dtype == np.float32 and samples.ndim == 1
    seconds = len(samples) / rate
    expected = len(text.split()) / 160 * 60  # 3.75-4.1 s at 160 words per minute
    assert 0.6 * expected < seconds < 1.6 * expected, seconds
    assert level_ok(samples, rate), (active_level_dbfs(samples, rate), np.abs(samples).max())
    # Speech, not a tone or noise: well over half of the 20 ms frames carry sound.
    assert active_level_dbfs(samples, rate) > -30
    # Trimmed: the engine's half second of silence at the end is gone.
    tail = samples[-int(0.1 * rate):]
    assert np.max(np.abs(tail)) > 1e-3


def test_the_rate_changes_the_samples_not_the_duration(synthesizer: Pyttsx3Synthesizer) -> None:
    low = synthesizer.render(SENTENCES["es"], "es", 8000)
    high = synthesizer.render(SENTENCES["es"], "es", 16000)
    assert abs(len(low) / 8000 - len(high) / 16000) < 0.03
    # 8 kHz holds nothing above 4 kHz; 16 kHz keeps the sibilants up to 8 kHz.
    spectrum = np.abs(np.fft.rfft(high)) ** 2
    frequencies = np.fft.rfftfreq(len(high), 1 / 16000)
    assert spectrum[frequencies > 4200].sum() / spectrum.sum() > 0.001


def test_words_per_minute_set_the_pace(synthesizer: Pyttsx3Synthesizer) -> None:
    slow = synthesizer.render(SENTENCES["en"], "en", 8000, wpm=120)
    fast = synthesizer.render(SENTENCES["en"], "en", 8000, wpm=240)
    assert len(slow) > 1.5 * len(fast)


def test_the_engine_prints_nothing_on_the_console(synthesizer: Pyttsx3Synthesizer,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    synthesizer.render("Gracias por llamar.", "es", 8000)
    out, err = capfd.readouterr()
    assert "Audio saved" not in out + err and out == ""


def test_each_language_speaks_with_its_own_voice(synthesizer: Pyttsx3Synthesizer) -> None:
    # The shared engine keeps the last voice and rate set (and a change of voice resets the
    # rate): every synthesis sets its own. eSpeak NG varies by a few samples from run to run.
    first = synthesizer.render(SENTENCES["es"], "es", 8000, wpm=120)
    for language, wpm in [("en", 240), ("es", 240), ("en", 120), ("es", 120), ("es", 120)]:
        synthesizer.render(SENTENCES[language], language, 8000, wpm=wpm)
        again = synthesizer.render(SENTENCES["es"], "es", 8000, wpm=120)
        assert abs(len(again) - len(first)) < 0.01 * len(first)


def test_an_unknown_voice_id_is_a_configuration_error_listing_the_voices(tmp_path: Path, menu: Menu) -> None:
    synthesizer = Pyttsx3Synthesizer({"es": "roa/xx", "en": "gmw/en-us"})
    with pytest.raises(ConfigError) as caught:
        synthesizer.check()
    message = str(caught.value)
    assert "tts.voices.es: unknown voice id 'roa/xx'" in message
    assert "voices for 'es': roa/es, roa/es-419" in message
    with pytest.raises(ConfigError):  # and nothing is rendered with the wrong voice
        renderer_on(tmp_path, synthesizer).build(menu, ["es"], [8000])
    assert not list(tmp_path.rglob("*.wav"))


def test_a_language_without_a_voice_is_a_configuration_error(synthesizer: Pyttsx3Synthesizer) -> None:
    with pytest.raises(ConfigError, match=r"tts.voices: no voice for language 'fr'"):
        synthesizer.synthesize("Bonjour", "fr", 160)


@pytest.fixture
def no_engine_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a process that has not loaded the speech engine yet."""
    import voicebot.tts.synthesizer as module

    monkeypatch.setattr(module, "_ENGINES", {})


def test_missing_pyttsx3_names_the_package(monkeypatch: pytest.MonkeyPatch, no_engine_yet: None) -> None:
    monkeypatch.setitem(sys.modules, "pyttsx3", None)  # as if not installed
    with pytest.raises(TtsUnavailable, match="pip install pyttsx3"):
        Pyttsx3Synthesizer(VOICES).check()


def test_a_missing_espeak_library_names_the_system_package(monkeypatch: pytest.MonkeyPatch,
                                                           no_engine_yet: None) -> None:
    import pyttsx3

    def no_library(driver: str | None = None, debug: bool = False) -> None:
        # What pyttsx3's espeak driver raises when libespeak-ng.so.1 cannot be loaded.
        raise RuntimeError("This means you probably do not have eSpeak or eSpeak-ng installed!")

    monkeypatch.setattr(pyttsx3, "init", no_library)
    with pytest.raises(TtsUnavailable, match="apt-get install espeak-ng"):
        Pyttsx3Synthesizer(VOICES).check()


def test_voices_and_rates_come_from_the_configuration(tmp_path: Path) -> None:
    config = load_config(None, environ={"VOICEBOT__TTS__RATE_WPM": "150", "VOICEBOT__TTS__VOICES": "{es: roa/es-419}",
                                        "VOICEBOT__TTS__CACHE_DIR": str(tmp_path)})
    assert config.tts.rate_wpm == 150 and config.tts.voices == {"es": "roa/es-419"}
    assert Config().tts.sample_rates == (8000, 16000) and Config().tts.voices == VOICES
    with pytest.raises(Exception, match="between 8000 and 192000"):
        Tts.model_validate({"sample_rates": [4000]})


# ---------------------------------------------------------------------- the cache


def test_a_second_render_is_a_cache_hit(tmp_path: Path) -> None:
    renderer = renderer_on(tmp_path)
    first = renderer.text_clip(SENTENCES["es"], "es", 8000)
    assert renderer.synthesizer.calls == 1  # type: ignore[attr-defined]
    again = renderer.text_clip(SENTENCES["es"], "es", 8000)
    assert renderer.synthesizer.calls == 1 and again is first  # type: ignore[attr-defined]
    assert renderer.cache.stats.memory_hits == 1
    # A new process (fresh memory) reads the file: still no synthesis.
    fresh = renderer_on(tmp_path)
    from_disk = fresh.text_clip(SENTENCES["es"], "es", 8000)
    assert fresh.synthesizer.calls == 0 and fresh.cache.stats.disk_hits == 1  # type: ignore[attr-defined]
    assert np.allclose(from_disk, first, atol=1 / 16384)  # 16-bit on disk
    assert not from_disk.flags.writeable  # shared by every call: nobody may change it


def test_the_key_is_text_voice_speech_rate_sample_rate_and_level(tmp_path: Path) -> None:
    renderer = renderer_on(tmp_path)
    renderer.text_clip("Gracias por llamar.", "es", 8000)
    renderer.text_clip("Gracias por llamar.", "es", 16000)  # another sample rate
    renderer.text_clip("Gracias por llamar.", "en", 8000)  # another voice
    assert renderer.synthesizer.calls == 3  # type: ignore[attr-defined]
    slower = renderer_on(tmp_path, rate_wpm=120)
    slower.text_clip("Gracias por llamar.", "es", 8000)
    quieter = renderer_on(tmp_path, level_dbfs=-26)
    quiet = quieter.text_clip("Gracias por llamar.", "es", 8000)
    assert slower.synthesizer.calls == 1 and quieter.synthesizer.calls == 1  # type: ignore[attr-defined]
    assert abs(active_level_dbfs(quiet, 8000) + 26) < 0.5
    assert len(list(tmp_path.rglob("*.wav"))) == 5
    # Whitespace and a leading stop are not part of what is said.
    renderer.text_clip("  Gracias   por llamar. ", "es", 8000)
    renderer.text_clip(". Gracias por llamar.", "es", 8000)
    assert renderer.synthesizer.calls == 3  # type: ignore[attr-defined]


def test_the_memory_keeps_the_most_recent_clips_within_its_budget(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, memory_bytes=100_000)
    renderer = PromptRenderer(Pyttsx3Synthesizer(VOICES), cache, Tts(cache_dir=tmp_path))
    for digit in DIGITS:
        renderer.digit_clip(digit, "en", 16000)
    held = sum(clip.nbytes for clip in cache._memory.values())
    assert held <= 100_000 and len(cache._memory) < 10
    renderer.digit_clip("9", "en", 16000)  # the last one is still in memory
    assert cache.stats.memory_hits == 1
    renderer.digit_clip("0", "en", 16000)  # the first one went: read from disk
    assert cache.stats.disk_hits == 1 and renderer.synthesizer.calls == 10  # type: ignore[attr-defined]


def test_an_unwritable_cache_folder_is_a_clear_error(tmp_path: Path, menu: Menu) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    renderer = renderer_on(blocker / "prompts")
    with pytest.raises(PromptCacheError, match=r"cannot write the prompt cache in .*not-a-folder/prompts: .*tts.cache_dir"):
        renderer.build(menu, ["es"], [8000])
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_call_goes_on_when_the_cache_cannot_be_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    renderer = renderer_on(blocker / "prompts")
    with caplog.at_level(logging.WARNING, logger="voicebot.tts"), _records_of("voicebot") as records:
        first = renderer.text_clip("Un momento, por favor.", "es", 8000)
        renderer.text_clip("Gracias.", "es", 8000)
    assert len(first) > 0 and renderer.synthesizer.calls == 2  # type: ignore[attr-defined]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot write the prompt cache" in warnings[0].getMessage()
    assert renderer.text_clip("Un momento, por favor.", "es", 8000) is first  # kept in memory


# ---------------------------------------------------------------------- voicebot prompts build


def voicebot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "voicebot", *args], capture_output=True, text=True, timeout=300)


def test_prompts_build_fills_the_cache_for_the_whole_menu_and_then_renders_nothing(tmp_path: Path,
                                                                                   menu: Menu) -> None:
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"logging: {{file: {tmp_path / 'log'}}}\ntts: {{cache_dir: {tmp_path / 'prompts'}}}\n")
    first = voicebot("--config", str(config), "prompts", "build")
    assert first.returncode == 0, first.stderr
    texts = menu_texts(menu, ["es", "en"])
    clips = (len(texts) + 2 * 10) * 2  # every text and the ten digits, per language, at 8 and 16 kHz
    assert f"{clips} prompt clips in {tmp_path / 'prompts'}: {clips} rendered, 0 already cached" in first.stdout
    assert "es, en at 8000 Hz, 16000 Hz" in first.stdout and "Audio saved" not in first.stdout
    assert len(list((tmp_path / "prompts").rglob("*.wav"))) == clips
    second = voicebot("--config", str(config), "prompts", "build")
    assert f"0 rendered, {clips} already cached" in second.stdout
    quiet = voicebot("--config", str(config), "prompts", "build", "--quiet", "--rate", "8000")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    # Every literal of the menu is there, as the renderer will look for it.
    renderer = renderer_on(tmp_path / "prompts")
    for language, text in texts:
        for rate in (8000, 16000):
            assert renderer.key(text, language, rate) in renderer.cache


def test_prompts_build_errors_are_clear(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"logging: {{file: null}}\ntts: {{cache_dir: {tmp_path / 'file' / 'prompts'}}}\n")
    unwritable = voicebot("--config", str(config), "prompts", "build", "--rate", "8000")
    assert unwritable.returncode == 1 and "error: cannot write the prompt cache in" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr
    config.write_text(f"logging: {{file: null}}\ntts: {{cache_dir: {tmp_path}, voices: {{es: roa/nope, en: gmw/en-us}}}}\n")
    bad_voice = voicebot("--config", str(config), "prompts", "build")
    assert bad_voice.returncode == 2 and "configuration error:" in bad_voice.stderr
    assert "tts.voices.es: unknown voice id 'roa/nope'" in bad_voice.stderr
    bad_rate = voicebot("--config", str(config), "prompts", "build", "--rate", "100")
    assert bad_rate.returncode == 2 and "--rate" in bad_rate.stderr


def test_prompts_say_writes_a_wav(tmp_path: Path) -> None:
    import soundfile

    out = tmp_path / "hello.wav"
    said = voicebot("prompts", "say", "Hello, thank you for calling.", "--lang", "en", "--rate", "8000",
                    "--out", str(out))
    assert said.returncode == 0, said.stderr
    info = soundfile.info(str(out))
    assert info.samplerate == 8000 and 1.0 < info.duration < 3.5
    voices = voicebot("prompts", "voices", "en")
    assert "gmw/en-us" in voices.stdout and "[tts.voices.en]" in voices.stdout


# ---------------------------------------------------------------------- whole prompts


class _Host:
    """Plays the engine's host: every prompt is rendered, then reported finished."""

    def __init__(self, menu: Menu, renderer: PromptRenderer, rate: int) -> None:
        from voicebot.nlu import TextInterpreter

        self.engine = DialogEngine(menu, TextInterpreter.from_folder(DEFAULT_NLU_DATA, ["es", "en"]), EngineSettings())
        self.renderer, self.rate = renderer, rate
        self.timer: str | None = None
        self.played: list[tuple[PlayPrompt, np.ndarray]] = []

    def feed(self, event: object) -> None:
        pending = [event]
        while pending:
            for command in self.engine.feed(pending.pop(0)):  # type: ignore[arg-type]
                if isinstance(command, PlayPrompt):
                    self.played.append((command, self.renderer.render(command, self.rate)))
                    pending.append(PromptFinished(command.play_id))
                elif isinstance(command, StartTimer):
                    self.timer = command.timer_id


@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_call_plays_every_prompt_from_the_built_cache(built: Path, menu: Menu, rate: int) -> None:
    renderer = renderer_on(built)
    host = _Host(menu, renderer, rate)
    host.feed(CallStarted(caller_id="+34600000001", dialed="950183313"))
    host.feed(DigitPressed("1"))  # Castellano
    assert host.timer
    host.feed(TimerExpired(host.timer))  # "No le he oído." joined to the reprompt
    host.feed(DigitPressed("0"))  # agent
    host.feed(TransferFailed("busy"))  # "Llame al 9 5 0, 2 1 0, 1 9 1."
    ids = [play.prompt_id for play, _ in host.played]
    assert ids == ["language.prompt", "main.prompt", "main.reprompt", "texts.agent", "texts.transfer_failed"]
    assert renderer.synthesizer.calls == 0  # type: ignore[attr-defined]
    for play, samples in host.played:
        assert len(samples) / rate > 1.0 and level_ok(samples, rate), play.prompt_id
    # The reprompt is two prompts joined with a pause between them.
    _, reprompt = host.played[2]
    assert max(gaps(reprompt, rate)) >= Tts().sentence_pause - 0.01


def test_digits_are_spoken_in_groups_with_longer_pauses_between_them(built: Path) -> None:
    renderer = renderer_on(built)
    play = PlayPrompt(1, "x", "en", (SpokenDigits("988168", group=3),))
    samples = renderer.render(play, 8000)
    assert renderer.synthesizer.calls == 0  # type: ignore[attr-defined]
    settings = Tts()
    silences = gaps(samples, 8000)
    long = [g for g in silences if g >= settings.group_pause - 0.01]
    assert len(long) == 1  # 9 8 8 | 1 6 8
    clips = [renderer.digit_clip(d, "en", 8000) for d in "988168"]
    expected = sum(len(c) for c in clips) + 8000 * (4 * settings.digit_pause + settings.group_pause)
    assert abs(len(samples) - expected) <= 5
    assert np.array_equal(samples[: len(clips[0])], clips[0])  # starts at once with the first digit


def test_spoken_secret_digits_reach_no_log_record_or_exception(built: Path, tmp_path: Path) -> None:
    secret = Secret("123456")
    play = PlayPrompt(7, "sms_key_spoken.prompt", "es", (
        Text("sms_key_spoken.prompt.es", "Su clave de firma SMS es: "), SpokenDigits(secret),
        Text("sms_key_spoken.prompt.es", ". Repito: "), SpokenDigits(secret), Text("sms_key_spoken.prompt.es", "."),
    ))
    with _records_of("") as records, _records_of("voicebot") as own:
        samples = renderer_on(built).render(play, 8000)
        # On an empty cache whose engine fails: the error names the voice, never the digits.
        failing = renderer_on(tmp_path)
        failing.synthesizer.check()  # type: ignore[attr-defined]
        engine = failing.synthesizer._engine  # type: ignore[attr-defined]

        def broken_save(text: str, filename: str, name: str | None = None) -> None:
            raise RuntimeError(f"cannot save {text!r}")

        original = engine.save_to_file
        engine.save_to_file = broken_save
        try:
            with pytest.raises(TtsError) as caught:
                failing.render(PlayPrompt(8, "x", "es", (SpokenDigits(secret),)), 8000)
        finally:
            engine.save_to_file = original
        logging.getLogger("voicebot.tts").exception("rendering failed", exc_info=caught.value)
    assert len(samples) / 8000 > 5
    shown = "\n".join([r.getMessage() for r in records + own] + traceback.format_exception(caught.value))
    assert "roa/es" in str(caught.value)
    for leak in ("123456", "1 2 3", "4 5 6", "123", "'1'", "456"):
        assert leak not in shown, leak
    assert not list(tmp_path.rglob("*.wav"))  # nothing of the secret was written either
    assert "123456" not in repr(play) and "123456" not in play.masked_text()


def test_a_dynamic_text_is_synthesised_once_then_cached(built: Path) -> None:
    renderer = renderer_on(built)
    play = PlayPrompt(3, "texts.wrong_count", "es", (
        Text("texts.wrong_count.es", "He entendido "), SpokenDigits("4567"),
        Text("texts.wrong_count.es", ", y necesito "), Text("texts.wrong_count.es.expected", "8"),
        Text("texts.wrong_count.es", " cifras. Dígalas o márquelas de nuevo."),
    ))
    key = renderer.key("8", "es", 8000)
    fresh = key not in renderer.cache  # another test may have said "8" already
    first = renderer.render(play, 8000)
    assert renderer.synthesizer.calls == (1 if fresh else 0)  # type: ignore[attr-defined]
    assert key in renderer.cache and renderer.cache.path(key).is_file()
    again = renderer_on(built).render(play, 8000)
    assert np.allclose(first, again, atol=1 / 16384)


def test_prompts_render_from_many_threads_at_once(tmp_path: Path) -> None:
    renderer = renderer_on(tmp_path)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def call(n: int) -> None:
        try:
            play = PlayPrompt(n, "x", "en" if n % 2 else "es",
                              (Text("t", f"Number {n}."), SpokenDigits(str(1000 + n))))
            results[n] = renderer.render(play, 16000)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 8
    assert all(len(samples) > 16000 for samples in results.values()), {n: len(s) for n, s in results.items()}


def test_the_line_s_renderer_has_its_digits_ready_before_the_first_call(tmp_path: Path) -> None:
    from voicebot.tts import prompt_renderer

    config = Config.model_validate({"tts": {"cache_dir": str(tmp_path)}})
    first = prompt_renderer(config)
    assert first.synthesizer.calls == 20  # type: ignore[attr-defined]  # ten digits per language, once for both rates
    line = prompt_renderer(config)
    assert line.synthesizer.calls == 0 and line.cache.stats.disk_hits == 40  # type: ignore[attr-defined]
    line.render(PlayPrompt(1, "x", "en", (SpokenDigits(Secret("4821")),)), 8000)
    line.render(PlayPrompt(2, "x", "es", (SpokenDigits("950210191"),)), 16000)
    # From memory: no synthesis, not even a file read.
    assert line.synthesizer.calls == 0 and line.cache.stats.disk_hits == 40  # type: ignore[attr-defined]


def test_silence_and_joins_need_no_synthesis(tmp_path: Path) -> None:
    renderer = renderer_on(tmp_path)
    play = PlayPrompt(1, "x", "es", (Text("pause", " "), Text("a", ". "), SpokenDigits("")))
    assert len(renderer.render(play, 8000)) == 0 and renderer.synthesizer.calls == 0  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- helpers


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _records_of(name: str) -> Iterator[list[logging.LogRecord]]:
    """Every record reaching logger ``name`` at any level (``voicebot`` may not propagate)."""
    logger = logging.getLogger(name)
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_slower_prompt_is_said_at_fewer_words_per_minute_with_longer_pauses(built: Path) -> None:
    renderer = renderer_on(built)
    segments = (Text("x", "Teclee los 4 últimos dígitos de su tarjeta."), SpokenDigits("4567"))
    usual = renderer.render(PlayPrompt(1, "x", "es", segments), 8000)
    slower = renderer.render(PlayPrompt(2, "x", "es", segments, rate=0.8), 8000)
    assert len(slower) > 1.15 * len(usual)  # words and pauses both stretch
    assert max(gaps(slower, 8000)) > max(gaps(usual, 8000))
    slow_digit = renderer.digit_clip("4", "es", 8000, rate=0.8)
    assert len(slow_digit) > len(renderer.digit_clip("4", "es", 8000))  # digits at 0.8 × digits_rate_wpm
