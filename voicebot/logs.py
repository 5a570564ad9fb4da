"""Logging set-up: one destination (a file, or standard error), plain lines or JSON, secrets masked.

Every secret travels as :class:`~voicebot.masking.Secret`, whose text is ``****``, and the
engine writes masked values only; so a log line cannot hold a PIN unless code reveals one
on purpose. The digit-run scrubber below is the second line of defence for that mistake:
the filter scrubs the message and the traceback of every record, and the JSON formatter
scrubs again every field it writes (message, exception, stack, ``extra`` values), so a
value cannot slip into the JSON by a field the filter does not know.

``logging.format: json`` writes one object per line, for a log collector (journald's
``journalctl -o cat``, Vector, Promtail, Filebeat)::

    {"time": "2025-05-04T10:31:02.117Z", "level": "INFO", "logger": "voicebot.app",
     "message": "call qkxwhbtrmzpnjfda ended: credentials_sent", "call_id": "qkxwhbtrmzpnjfda"}

``call_id`` is the call record's id (``voicebot calls``): the record's ``extra={"call_id": …}``,
else the call whose work the thread is doing (:func:`call_context`, set by the SIP front
around each step of a call and carried to its backend actions by
:class:`ContextThreadPoolExecutor`). ``exception`` holds the traceback when there is one.
With json, warnings of other libraries (asyncio, the SIP stack) go to the same place as
JSON too, so every line there parses.

Standard library only: a formatter of thirty lines does not need python-json-logger, whose
value (field renaming, ``extra`` merging) is what we must *not* do blindly here: every field
has to pass the scrubber.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .config import Config

# A free-standing run of 4+ digits in a log message is most likely a PIN, card digits or a code
# (ids and dates, which mix digits with letters or dashes, are left alone).
_DIGIT_RUN = re.compile(r"(?<![\w-])\d{4,}(?![\w-])")

STDERR = "-"  # logging.file: standard error (the journal, under systemd)
HANDLER_NAME = "voicebot"

# The call a thread is working for (the call record's id): stamped on JSON log lines.
CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("voicebot_call_id", default=None)


def scrub_digits(text: str) -> str:
    return _DIGIT_RUN.sub(lambda m: "#" * len(m.group()), text)


class DigitRunScrubber(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub_digits(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            # A traceback quotes the exception's text (and a line of code may quote a value):
            # formatted once here, scrubbed, and kept where the formatter looks for it.
            record.exc_text = scrub_digits(_TRACEBACKS.formatException(record.exc_info))
        return True


_TRACEBACKS = logging.Formatter()

# Attributes every LogRecord has: anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, every text in it through :func:`scrub_digits`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub_digits(record.getMessage()),
        }
        call_id = record.__dict__.get("call_id") or CALL_ID.get()
        if call_id:
            entry["call_id"] = scrub_digits(str(call_id))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = scrub_digits(record.exc_text)
        if record.stack_info:
            entry["stack"] = scrub_digits(self.formatStack(record.stack_info))
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and name not in entry and not name.startswith("_"):
                entry[name] = _scrubbed(value)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _scrubbed(value: Any) -> Any:
    """An ``extra`` value as JSON may carry it: booleans and None as they are, a number if
    no digit run hides in it, anything else as its scrubbed text (a Secret's text is ****)."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value)
    if isinstance(value, (int, float)) and scrub_digits(text) == text:
        return value
    return scrub_digits(text)


@contextmanager
def call_context(call_id: str | None) -> Iterator[None]:
    """Log lines written inside carry ``call_id`` (this thread, and work it hands to a
    :class:`ContextThreadPoolExecutor`)."""
    token = CALL_ID.set(call_id)
    try:
        yield
    finally:
        CALL_ID.reset(token)


T = TypeVar("T")


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in the submitter's context (its call id, for the logs),
    as ``asyncio.to_thread`` does; a plain pool runs them in the worker's own."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def configure_logging(config: Config) -> None:
    root = logging.getLogger("voicebot")
    root.setLevel(config.logging.level)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    everything = logging.getLogger()
    for old in list(everything.handlers):
        if old.name == HANDLER_NAME:  # ours, from an earlier call
            everything.removeHandler(old)
            old.close()
    target = config.logging.file
    if target is None:
        root.addHandler(logging.NullHandler())
        return
    handler: logging.Handler
    if str(target) == STDERR:
        handler = logging.StreamHandler(sys.stderr)
    else:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    if config.logging.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(DigitRunScrubber())
    root.addHandler(handler)
    root.propagate = False
    if config.logging.format == "json":
        # Other libraries' warnings (asyncio, the SIP stack) as JSON in the same place, rather
        # than as plain text on standard error by logging's last resort.
        handler.addFilter(_ours_or_warnings)
        handler.set_name(HANDLER_NAME)
        everything.addHandler(handler)


def _ours_or_warnings(record: logging.LogRecord) -> bool:
    return record.name == "voicebot" or record.name.startswith("voicebot.") or record.levelno >= logging.WARNING
