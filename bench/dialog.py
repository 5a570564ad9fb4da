"""How much of a call's time the text core takes: engine, NLU, bank.

Rows:
- engine, keys only: a whole user-recovery call fed as events, backends answered in-process;
- engine, phrases: the same call said in words (adds the rule-based NLU and text2num);
- console call + SQLite bank: the real path of `voicebot chat`, with scrypt at the
  configured cost (the slow part, on purpose: a PIN hash must be costly to brute-force).
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

from voicebot.app import Line
from voicebot.config import DEFAULT_MENU, DEFAULT_NLU_DATA, Config
from voicebot.dialog import (
    ActionCompleted,
    CallStarted,
    DialogEngine,
    DigitPressed,
    EngineSettings,
    PlayPrompt,
    PromptFinished,
    RunAction,
    SpeechRecognized,
)
from voicebot.menu import load_menu
from voicebot.nlu import TextInterpreter
from voicebot.transports.console import ConsoleCall

KEYS = ["1", "1", "1", "1", *"12345678", *"4567", *"1234"]
PHRASES = ["castellano", "usuario", "banca electrónica", "DNI", "uno dos tres cuatro cinco seis siete ocho",
           "cuatro cinco seis siete", "uno dos tres cuatro"]
RESULTS = {"verify_card": ("ok", {"customer_id": "C001"}), "recover_user": ("sent", {})}


def engine_call(menu, nlu, inputs, as_speech: bool) -> int:
    engine = DialogEngine(menu, nlu, EngineSettings())
    events = 0
    queue = [CallStarted("+34600000001", "950183313")]
    pending = list(inputs)
    while queue or (pending and not engine.finished):
        event = queue.pop(0) if queue else (SpeechRecognized(pending.pop(0)) if as_speech else DigitPressed(pending.pop(0)))
        events += 1
        for command in engine.feed(event):
            if isinstance(command, PlayPrompt):
                queue.append(PromptFinished(command.play_id))
            elif isinstance(command, RunAction):
                result, data = RESULTS[command.name]
                queue.append(ActionCompleted(command.action_id, result, data))
    assert engine.record.outcome and engine.record.outcome.value == "credentials_sent"
    return events


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    menu = load_menu(DEFAULT_MENU)
    nlu = TextInterpreter.from_folder(DEFAULT_NLU_DATA, ["es", "en"])
    rows = []
    events = engine_call(menu, nlu, KEYS, False)
    samples = timed(lambda: engine_call(menu, nlu, KEYS, False), 200)
    rows.append(("engine, keys only", events, statistics.median(samples)))
    events = engine_call(menu, nlu, PHRASES, True)
    samples = timed(lambda: engine_call(menu, nlu, PHRASES, True), 200)
    rows.append(("engine + NLU, phrases", events, statistics.median(samples)))
    with tempfile.TemporaryDirectory() as folder:
        config = Config.model_validate({"database": str(Path(folder) / "b.sqlite3"), "logging": {"file": None}})
        line = Line.open(config, echo=io.StringIO())
        line.ensure_demo_bank()
        script = "1\n1\n1\n1\n12345678\n4567\n1234\n"

        def console_call() -> None:
            ConsoleCall(line, caller_id="+34600000001", dialed="950183313", stdin=io.StringIO(script),
                        out=io.StringIO(), interactive=False).run()

        samples = timed(console_call, 30)
        rows.append((f"console call + SQLite bank (scrypt n={config.security.scrypt_n})", None, statistics.median(samples)))
        line.close()
    print("\nText core: one complete user-recovery call (median)")
    print(f"{'path':<52} {'events':>7} {'ms/call':>9} {'calls/s':>9}")
    for name, count, seconds in rows:
        print(f"{name:<52} {count if count is not None else '-':>7} {seconds * 1000:>9.2f} {1 / seconds:>9.0f}")


if __name__ == "__main__":
    main()
