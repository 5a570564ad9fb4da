"""Secrets that cannot leak by accident.

A PIN, card digits, a temporary password or a code travels through the program wrapped in
:class:`Secret`. Its ``str()`` and ``repr()`` are masked, so an f-string, a log call, a
traceback or a ``json.dumps(default=str)`` shows ``****``; the clear value is reachable only
through :meth:`Secret.reveal`, which makes every place that needs it visible in the code.
"""

from __future__ import annotations

import hmac
from typing import Any

MASK = "****"


class Secret:
    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Secret is immutable")

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return hmac.compare_digest(self._value.encode(), other._value.encode())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        # Pickling would write the clear value to wherever the pickle goes.
        raise TypeError("a Secret cannot be pickled")


def reveal(value: "str | Secret") -> str:
    """The clear text of ``value``, whether it is wrapped or not."""
    return value.reveal() if isinstance(value, Secret) else value


def mask_tail(value: str, keep: int = 3) -> str:
    """Personal data shown partly, e.g. a document number ``*****678Z``."""
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]
