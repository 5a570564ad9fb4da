"""The console call: prompts are printed, the caller types keys or phrases.

A line of only keypad characters (``1``, ``4567#``, ``*``) is keys, pressed one after the
other; any other line is a phrase, understood as speech would be. An empty line is
silence: the running timer (no-input, inter-digit) expires. End of input is the caller
hanging up. ``/hangup`` hangs up, ``/wait`` is silence too.

With a terminal, timers run on the real clock (type nothing and the no-input prompt comes);
with a script on standard input, time passes only at an empty line, so a script replays
exactly, whatever the machine's speed.
"""

from __future__ import annotations

import logging
import re
import select
import sys
import time
from collections import deque
from typing import Any, TextIO

from ..app import CallMeta, Line
from ..errors import EngineError
from ..dialog import (
    ActionCompleted,
    CallerHungUp,
    CallStarted,
    CancelTimer,
    DigitPressed,
    Event,
    HangUp,
    Key,
    Listen,
    PlayPrompt,
    PromptFinished,
    RunAction,
    SpeechRecognized,
    StartTimer,
    TimerExpired,
    Transfer,
    TransferFailed,
)

log = logging.getLogger(__name__)
KEYS_ONLY = re.compile(r"^[0-9*#A-D\s]+$")


class ConsoleCall:
    def __init__(
        self,
        line: Line,
        *,
        caller_id: str | None,
        dialed: str | None,
        language: str | None = None,
        stdin: TextIO = sys.stdin,
        out: TextIO = sys.stdout,
        interactive: bool | None = None,
    ) -> None:
        self.line = line
        self.engine = line.new_engine()
        self.meta = CallMeta(transport="console", caller_id=caller_id, dialed=dialed)
        self.language = language
        self.stdin = stdin
        self.out = out
        self.interactive = stdin.isatty() if interactive is None else interactive
        self._events: deque[Event] = deque()
        self._timers: dict[str, float] = {}  # timer id -> deadline (real or virtual clock)
        self._virtual_now = 0.0
        self._listening: Listen | None = None
        self._done = False

    def run(self) -> dict[str, Any]:
        self._say("call", f"from {self.meta.caller_id or 'unknown'} to {self.meta.dialed or 'the unlock line'}")
        self.line.begin_call(self.meta)  # so a call cut off by a killed process is still on record
        self._events.append(CallStarted(self.meta.caller_id, self.meta.dialed, self.language))
        try:
            while not self._done:
                if not self._events:
                    self._events.extend(self._read_caller())
                    continue
                for command in self.engine.feed(self._events.popleft()):
                    self._execute(command)
                if self.engine.finished:
                    self._done = True
        except KeyboardInterrupt:
            self.engine.feed(CallerHungUp())
            self._say("call", "caller hung up")
        except EngineError:
            # A bug, not the caller's doing: say so, keep the record, never leave them in silence.
            log.exception("call %s: dialog engine failed", self.meta.call_id)
            self._say("call", "internal error: the call cannot go on (it is in the call log)")
        return self.line.finish_call(self.engine, self.meta)

    # ---------------------------------------------------------------- commands

    def _execute(self, command: Any) -> None:
        if isinstance(command, PlayPrompt):
            self._say("IVR", command.text)
            # Printing is instant: the prompt has finished as soon as it is on screen.
            self._events.append(PromptFinished(command.play_id))
        elif isinstance(command, Listen):
            self._listening = command
        elif isinstance(command, StartTimer):
            self._timers[command.timer_id] = self._now() + command.seconds
        elif isinstance(command, CancelTimer):
            self._timers.pop(command.timer_id, None)
        elif isinstance(command, RunAction):
            outcome = self.line.actions.run(command.name, command.args, self.engine.language)
            self._events.append(ActionCompleted(command.action_id, outcome.result, outcome.data, outcome.detail))
        elif isinstance(command, Transfer):
            try:
                ticket = self.line.desk.hand_off(command.reason, command.context)
            except Exception as exc:  # the desk is down: the caller must still be told what to do
                self._say("call", f"transfer failed ({type(exc).__name__})")
                self._events.append(TransferFailed(command.reason))
                return
            self._say("call", f"transferred to an agent at {ticket.target} ({command.reason}, {ticket.ticket_id})")
            self._done = True
        elif isinstance(command, HangUp):
            reason = f" ({command.reason})" if command.reason else ""
            self._say("call", f"ended: {command.outcome.value}{reason}")
            self._done = True
        # StopPrompt, StopListening: nothing to stop on a screen.

    # ---------------------------------------------------------------- caller input

    def _read_caller(self) -> list[Event]:
        line = self._read_line()
        if line is None:
            if self.interactive:
                self.out.write("\n")  # Ctrl-D leaves the cursor after the input prompt
            self._say("call", "caller hung up")
            return [CallerHungUp()]
        text = line.strip()
        if not self.interactive:
            self._say("caller", text or "(silence)")
        if text in ("", "/wait"):
            return self._expire_next_timer()
        if text == "/hangup":
            return [CallerHungUp()]
        if KEYS_ONLY.match(text):
            return [DigitPressed(Key(ch)) for ch in text if not ch.isspace()]
        return [SpeechRecognized(text, 1.0)]

    def _read_line(self) -> str | None:
        if not self.interactive:
            line = self.stdin.readline()
            return line if line else None
        while True:
            self.out.write("you › ")
            self.out.flush()
            deadline = min(self._timers.values(), default=None)
            timeout = None if deadline is None else max(0.0, deadline - self._now())
            ready, _, _ = select.select([self.stdin], [], [], timeout)
            if ready:
                line = self.stdin.readline()
                return line if line else None
            self.out.write("\n")
            self._events.extend(self._expire_next_timer())
            if self._events:
                return ""  # the timer's event is queued; an empty line adds nothing more

    def _expire_next_timer(self) -> list[Event]:
        if not self._timers:
            return []
        timer_id = min(self._timers, key=self._timers.__getitem__)
        self._virtual_now = max(self._virtual_now, self._timers.pop(timer_id))
        return [TimerExpired(timer_id)]

    def _now(self) -> float:
        return time.monotonic() if self.interactive else self._virtual_now

    def _say(self, who: str, text: str) -> None:
        self.out.write(f"{who:>6} › {text}\n")
        self.out.flush()
