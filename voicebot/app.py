"""Wiring: one :class:`Line` holds what every call shares (menu, NLU, backends, call log).

Built once per process from the configuration; each call gets its own engine from
:meth:`Line.new_engine` and leaves its record through :meth:`Line.finish_call`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from .actions import UnlockActions
from .backends.http_bank import HttpBank
from .backends.seed import DEMO_SEED, load_seed, seed_bank
from .backends.sqlite import (
    Database,
    SqliteAgentDesk,
    SqliteBank,
    SqliteCallLog,
    SqliteOutbox,
    open_database,
)
from .config import Config
from .dialog import DialogEngine, EngineSettings
from .errors import ConfigError
from .menu import Menu, load_menu
from .nlu import TextInterpreter
from .outbox import ByChannel, DemoPhone, MessageTransport, OutboxSender

log = logging.getLogger(__name__)


IN_PROGRESS = "in_progress"  # the outcome of a call record until the call ends


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


CALL_ID_LETTERS = "abcdefghjkmnpqrstuvwxyz"  # no digits: an id never holds a run that reads as a PIN


def new_call_id() -> str:
    """16 random letters (23**16, about 2**72): names a call's record, transcript and recording."""
    return "".join(secrets.choice(CALL_ID_LETTERS) for _ in range(16))


@dataclass
class CallMeta:
    """What the host knows of a call that the engine does not: who, where, when."""

    transport: str
    caller_id: str | None = None
    dialed: str | None = None
    call_id: str = field(default_factory=lambda: new_call_id())
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    _started_monotonic: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self._started_monotonic


class Line:
    def __init__(
        self,
        config: Config,
        menu: Menu,
        interpreter: TextInterpreter,
        db: Database,
        bank: SqliteBank | HttpBank,
        outbox: SqliteOutbox,
        desk: SqliteAgentDesk,
        call_log: SqliteCallLog,
        transport: MessageTransport | None = None,
        phone: DemoPhone | None = None,
    ) -> None:
        self.config = config
        self.menu = menu
        self.interpreter = interpreter
        self.db = db
        self.bank = bank
        self.outbox = outbox
        self.desk = desk
        self.call_log = call_log
        # The demo phone prints SMS and e-mails (into the console, with ``echo``) unless a real
        # transport is given. A step's messages are sent as soon as the step commits: by the
        # background sender once start_sender() ran (it also retries), else in the step's thread.
        self.phone = phone or (transport if isinstance(transport, DemoPhone) else DemoPhone())
        self.transport = transport if transport is not None else self.phone
        self.sender = OutboxSender(outbox, self.transport, config.outbox)
        self.actions = UnlockActions(bank, outbox, outbox, config, messages_queued=self.sender.queued)
        self.settings = EngineSettings.from_config(config)
        # Calls a dead line process of this host had left in progress, marked interrupted by open().
        self.interrupted_at_open = 0

    @classmethod
    def open(cls, config: Config, echo: TextIO | None = None, transport: MessageTransport | None = None) -> "Line":
        """The line of ``config``: SMS and e-mails go to ``transport``, else to the demo phone
        (printed to ``echo``, if given)."""
        menu, interpreter = load_dialog(config)
        db = open_database(config.database)
        # The outbox, desk and call log stay in the line's database (the SQLite file, or the
        # PostgreSQL server several instances share) whichever bank: they are the line's own.
        bank: SqliteBank | HttpBank
        if config.bank.backend == "http":
            bank = HttpBank(config.bank.http)
        else:
            bank = SqliteBank(db, config.codes, config.lockout, config.security)
        interrupted = SqliteCallLog(db).mark_interrupted(socket.gethostname(), process_alive)
        if interrupted:
            log.warning("%d call(s) were cut off when a line process stopped; recorded as interrupted", interrupted)
        outbox = SqliteOutbox(db)
        line = cls(
            config,
            menu,
            interpreter,
            db,
            bank,
            outbox,
            SqliteAgentDesk(db, config.agent.target),
            SqliteCallLog(db),
            *message_transports(config, echo, transport, outbox),
        )
        line.interrupted_at_open = interrupted
        return line

    def start_sender(self) -> None:
        """Retry unsent messages in the background (long-running hosts: serve, run)."""
        self.sender.start()

    def begin_call(self, meta: CallMeta) -> None:
        """Record the call as in progress, with this process's identity: if the process dies
        (SIGKILL, a power cut), the next one to open the line marks it interrupted."""
        self.call_log.save({
            "call_id": meta.call_id, "transport": meta.transport,
            "started_at": meta.started_at.isoformat(timespec="seconds"), "ended_at": None, "duration_s": None,
            "caller_id": meta.caller_id, "dialed": meta.dialed, "outcome": IN_PROGRESS, "outcome_reason": None,
            "language": None, "path": [], "inputs": [], "actions": [],
            "process": {"host": socket.gethostname(), "pid": os.getpid()},
        })

    def ensure_demo_bank(self) -> int:
        """Seed the demo customers into an empty bank (first start); returns how many were added."""
        if not isinstance(self.bank, SqliteBank):
            return 0  # a bank over HTTP is seeded where it runs (`voicebot bank seed` beside `bank serve`)
        if self.bank.has_customers():  # every start but the first: no lock taken
            return 0
        seed = load_seed(DEMO_SEED)
        # The writers' lock from the start (not atomic()'s, taken at the first write): instances
        # that start together on a new database seed it once. (Only then does the seed's scrypt
        # run under the lock.)
        with self.db.transaction(write=True):
            if self.bank.has_customers():
                return 0
            return seed_bank(self.bank, seed)

    def new_engine(self) -> DialogEngine:
        return DialogEngine(self.menu, self.interpreter, self.settings)

    def finish_call(self, engine: DialogEngine, meta: CallMeta, duration: float | None = None) -> dict[str, Any]:
        """Save and return the call's record; ``duration``: seconds of call audio, when the call
        ran on its audio's clock rather than the wall's (a file call)."""
        ended = datetime.now(timezone.utc)
        record = {
            "call_id": meta.call_id,
            "transport": meta.transport,
            "started_at": meta.started_at.isoformat(timespec="seconds"),
            "ended_at": ended.isoformat(timespec="seconds"),
            "duration_s": round(meta.elapsed() if duration is None else duration, 1),
            "caller_id": meta.caller_id,
            "dialed": meta.dialed,
            **engine.record.as_dict(),
        }
        if record["outcome"] is None:  # the host stopped before the engine ended the call
            record["outcome"], record["outcome_reason"] = "failed", "host stopped the call"
        self.call_log.save(record)
        log.info("call %s ended: %s %s", meta.call_id, record["outcome"], record["outcome_reason"] or "")
        return record

    def close(self) -> None:
        self.sender.stop()
        close = getattr(self.transport, "close", None)
        if close is not None:  # a transport that holds a connection (an SMSC bind)
            close()
        if isinstance(self.bank, HttpBank):
            self.bank.close()
        self.db.close()


def message_transports(config: Config, echo: TextIO | None, given: MessageTransport | None,
                outbox: SqliteOutbox) -> tuple[MessageTransport, DemoPhone]:
    """Where the outbox's messages go (``given``, else the configuration's), and the demo phone."""
    phone = DemoPhone(echo)
    if given is not None:
        return given, phone
    sms: MessageTransport = phone
    if config.sms.transport == "smpp":
        from .senders.smpp import SmppSender

        sms = SmppSender(config.sms.smpp, on_receipt=outbox.record_receipt)
    elif config.sms.transport == "http":
        from .senders.http_sms import HttpSmsSender

        sms = HttpSmsSender(config.sms.http)
    email: MessageTransport = phone
    if config.email.transport == "smtp":
        from .senders.smtp import SmtpMailer

        email = SmtpMailer(config.email.smtp)
    if sms is phone and email is phone:
        return phone, phone
    return ByChannel(sms=sms, email=email), phone


def load_dialog(config: Config) -> tuple[Menu, TextInterpreter]:
    """Menu and interpreter, checked against the configuration and the actions."""
    menu = load_menu(config.menu, known_actions=UnlockActions.NAMES)
    problems = config.check_against_menu(set(menu.entry_points), set(menu.languages))
    if problems:
        raise ConfigError([f"configuration: {p}" for p in problems])
    data_dir = Path(config.nlu.data_dir)
    interpreter = TextInterpreter.from_folder(data_dir, config.languages, config.nlu.out_of_scope_threshold)
    unknown = [f"{config.menu}: nodes.{name}: option {option.key}: intent {option.intent!r} is not an intent of "
               f"the training data in {data_dir}/{lang}"
               for name, node in menu.nodes.items() for option in getattr(node, "options", [])
               for lang in config.languages
               if option.intent is not None and option.intent not in interpreter.intents(lang)]
    if unknown:
        raise ConfigError(unknown)
    return menu, interpreter
