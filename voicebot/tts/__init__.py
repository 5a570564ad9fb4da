"""Prompts as audio: pyttsx3 voices, a clip cache, and prompts put together from clips.

    Pyttsx3Synthesizer(voices)            text -> samples (eSpeak NG on Linux), one engine per process
    PromptCache(folder)                   finished clips on disk, the most used in memory
    PromptRenderer(synth, cache, tts)     PlayPrompt -> float32 samples at the line's rate;
                                          build(menu, …) renders the menu and digits ahead of calls
    prompt_renderer(config)               the line's renderer, digit clips loaded

Errors: :mod:`voicebot.tts.errors` (``TtsUnavailable`` names what to install,
``PromptCacheError`` the folder); an unknown voice id is a ``ConfigError``.
"""

from .audio import Level, active_level_dbfs, finish_clip
from .cache import ClipKey, PromptCache
from .errors import PromptCacheError, TtsError, TtsUnavailable
from .renderer import BuildReport, PromptRenderer, menu_texts, prompt_renderer
from .synthesizer import Pyttsx3Synthesizer, Synthesizer, VoiceInfo

__all__ = [
    "BuildReport",
    "ClipKey",
    "Level",
    "PromptCache",
    "PromptCacheError",
    "PromptRenderer",
    "Pyttsx3Synthesizer",
    "Synthesizer",
    "TtsError",
    "TtsUnavailable",
    "VoiceInfo",
    "active_level_dbfs",
    "finish_clip",
    "menu_texts",
    "prompt_renderer",
]
