"""The sans-I/O dialog engine: ``DialogEngine.feed(event) -> list[command]``.

It owns no clock, audio, thread or backend: time arrives as ``TimerExpired``, speech as
``SpeechRecognized``, backend results as ``ActionCompleted``. Hosts (console, WAV file,
headset, SIP) turn its commands into sound, timers and backend calls.
"""

from .commands import (
    CancelTimer,
    Command,
    Expect,
    HangUp,
    Listen,
    PlayPrompt,
    RunAction,
    SpokenDigits,
    StartTimer,
    StopListening,
    StopPrompt,
    Text,
    TimerKind,
    Transfer,
)
from .engine import DialogEngine, EngineSettings, Phase
from .events import (
    ActionCompleted,
    CallerHungUp,
    CallStarted,
    DigitPressed,
    Event,
    Key,
    PromptFinished,
    SpeechRecognized,
    TimerExpired,
    TransferFailed,
)

__all__ = [
    "ActionCompleted", "CallStarted", "CallerHungUp", "CancelTimer", "Command", "DialogEngine",
    "DigitPressed", "EngineSettings", "Event", "Expect", "HangUp", "Key", "Listen", "Phase",
    "PlayPrompt", "PromptFinished", "RunAction", "SpeechRecognized", "SpokenDigits", "StartTimer",
    "StopListening", "StopPrompt", "Text", "TimerExpired", "TimerKind", "Transfer", "TransferFailed",
]
