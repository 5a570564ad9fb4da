"""Logging set-up: one file (path from the configuration), plain lines, secrets already masked.

Every secret travels as :class:`~voicebot.masking.Secret`, whose text is ``****``, and the
engine writes masked values only; so a log line cannot hold a PIN unless code reveals one
on purpose. The filter below is the second line of defence for that mistake.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from .config import Config

# A free-standing run of 4+ digits in a log message is most likely a PIN, card digits or a code
# (ids and dates, which mix digits with letters or dashes, are left alone).
_DIGIT_RUN = re.compile(r"(?<![\w-])\d{4,}(?![\w-])")


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


def configure_logging(config: Config) -> None:
    root = logging.getLogger("voicebot")
    root.setLevel(config.logging.level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if config.logging.file is None:
        root.addHandler(logging.NullHandler())
        return
    path = Path(config.logging.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(DigitRunScrubber())
    root.addHandler(handler)
    root.propagate = False
