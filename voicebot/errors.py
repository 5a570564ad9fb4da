"""The project's exceptions.

    VoicebotError
    ├── ConfigError          a configuration, menu or seed file is wrong (names file, line, key)
    ├── BackendError         a backend could not do what was asked (the call goes to an agent)
    │   ├── BackendUnavailable   the backend is down or timed out
    │   └── BackendReplyError    the backend answered with something unusable
    └── EngineError          the dialog engine was misused; it refuses further input afterwards

Bad *caller* input is never an exception: the engine answers it with a re-prompt.
"""

from __future__ import annotations


class VoicebotError(Exception):
    """Base of every exception this package raises on purpose."""


class ConfigError(VoicebotError):
    """A file the operator wrote is wrong. The message says where and why."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class BackendError(VoicebotError):
    """A backend refused or failed an operation."""


class BackendUnavailable(BackendError):
    """A backend could not be reached in time."""


class BackendReplyError(BackendError):
    """A backend answered, but with a reply of the wrong shape (garbage): nothing of it is used."""


class EngineError(VoicebotError):
    """The dialog engine was fed something it cannot accept in its state."""
