"""What can go wrong with prompts as audio.

    VoicebotError
    └── TtsError                 synthesis failed (the message never holds the text)
        ├── TtsUnavailable       pyttsx3 or the eSpeak NG library is not installed
        └── PromptCacheError     the prompt cache folder cannot be written

A voice id the engine does not have is a :class:`~voicebot.errors.ConfigError`: the
operator's configuration names it.
"""

from __future__ import annotations

from ..errors import VoicebotError


class TtsError(VoicebotError):
    """The speech synthesiser failed. Messages name the voice, never the text (it may be a secret)."""


class TtsUnavailable(TtsError):
    """pyttsx3, or the speech engine it drives, is missing: the message says what to install."""


class PromptCacheError(TtsError):
    """A clip could not be written to the prompt cache folder."""
