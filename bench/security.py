"""Enumeration by timing (issue 8): can a caller tell which identity factor was wrong by how long the line takes?

Run by ``make bench`` (all benches) or ``.venv/bin/python bench/run.py security``. Prints its
tables and writes them to ``bench/results/security.md``.

The line answers an unknown document, a card the customer does not have and a wrong PIN
with the same words; the bank computes one scrypt on every path (a dummy hash when there is
no card to check). This bench measures whether the time says more than the words.

1. The bank alone: the wall time of ``SqliteBank.verify_card`` on the real SQLite file with
   the line's scrypt cost (``security.scrypt_n``, default), for each case below; and of
   ``redeem_code`` with no live code against a wrong code.
2. Through the call, as a caller hears it: a file call (``CallSession`` on the virtual
   clock, actions inline, the line's prompts) keyed up to the PIN; the wall time of the
   20 ms frame that hears the PIN's last key, which holds everything between that key and
   the next prompt's first sample: the engine, the action through rasa_sdk's executor, the
   bank, the next prompt rendered and its first frame handed back. (A live call does the
   same work on its action thread and starts the prompt at the next 20 ms frame after it.)
3. The work on each path, counted once per case: scrypt computations and SQL statements.
4. The same bank after ``security.scrypt_n`` is doubled over PINs hashed at the old cost
   (a configuration changed after the first start, or PIN hashes imported with the seed's
   ``pin_hash`` at another cost): the dummy hash follows the setting, the cards' do not.

Samples are taken round-robin, the cases shuffled in each round, so the machine's noise
falls on all of them alike. Between samples the bank is put back as it was (the failure
counts of the rate limit, the cards' wrong-PIN counters, the live code's tries), so every
sample of a case meets the same bank; the reset is not timed.

Each row is compared with "known card, wrong PIN": the ratio of the medians, the
difference of the medians, P(slower) (the chance that one call of the row takes longer
than one wrong-PIN call: 50 % when a single timing says nothing) and the two-sided
Mann-Whitney U test's p (scipy). p < 0.01 is reported as a difference.
"""

from __future__ import annotations

import gc
import io
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import OthersCpu, machine_lines, table

from voicebot.app import CallMeta, Line
from voicebot.backends import sqlite as sqlite_backend
from voicebot.backends.base import CodePurpose, Document, DocumentType, VerifyResult
from voicebot.backends.sqlite import SqliteBank
from voicebot.call.session import CallSession
from voicebot.config import Config, Security
from voicebot.dialog import PlayPrompt
from voicebot.errors import ConfigError
from voicebot.masking import Secret

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "security.md"
COMMAND = "`make bench` (every bench) or `.venv/bin/python bench/run.py security` (this one)"

ROUNDS = 100  # samples of every case (a round takes 0.7 to 1 s at the default scrypt cost)
COST_ROUNDS = 40  # samples of every case of section 4
SEED = 8
RATE = 8000
UNLOCK_LINE = "950183313"
SIGNIFICANT = 0.01
REFERENCE_CASE = "wrong_pin"

# The demo bank (voicebot/data/demo_bank.yaml): C001, DNI 12345678Z, cards 4567 / 1234 and 9012 / 4321.
KNOWN_DNI, CARD, PIN = "12345678", "4567", "1234"
LOCKED_CARD, LOCKED_CARD_PIN = "9012", "4321"
NO_SUCH_CARD, WRONG_PIN = "7777", "0000"
DEMO_DNIS = {"12345678", "87654321", "11111111"}
OPERATION = "20261129001"
PAUSED_CALLER = "+34611000099"


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    dni: str | None  # None: a random DNI that is no customer's, new for every sample
    card: str
    pin: str
    result: VerifyResult
    answer: str  # the prompt the caller hears next
    caller_id: str

    def document(self, rng: random.Random) -> str:
        if self.dni is not None:
            return self.dni
        while True:
            number = f"{rng.randrange(10**7, 10**8)}"
            if number not in DEMO_DNIS:
                return number


CASES = [
    Case("unknown_document", "unknown document", None, CARD, PIN, VerifyResult.MISMATCH,
         "verify_mismatch.prompt", "+34611000001"),
    Case("unknown_card", "known document, unknown card", KNOWN_DNI, NO_SUCH_CARD, PIN, VerifyResult.MISMATCH,
         "verify_mismatch.prompt", "+34611000002"),
    Case("wrong_pin", "known card, wrong PIN", KNOWN_DNI, CARD, WRONG_PIN, VerifyResult.MISMATCH,
         "verify_mismatch.prompt", "+34611000003"),
    Case("right_pin", "right PIN", KNOWN_DNI, CARD, PIN, VerifyResult.OK,
         "credentials_sent.prompt", "+34611000004"),
    Case("locked_card", "locked card (a wrong PIN)", KNOWN_DNI, LOCKED_CARD, WRONG_PIN, VerifyResult.LOCKED,
         "card_locked.prompt", "+34611000005"),
    Case("paused_caller", "paused caller (the right answers)", KNOWN_DNI, CARD, PIN, VerifyResult.PAUSED,
         "verification_paused.prompt", PAUSED_CALLER),
]

# redeem_code (the e-banking side of an operation unlock code): no live code vs a wrong one.
REDEEM_CASES = [
    ("no_live_code", "redeem_code: no live code", CodePurpose.SMS_SIGNATURE_KEY),
    ("wrong_code", "redeem_code: live code, wrong code", CodePurpose.OPERATION_UNLOCK),
]
REDEEM_REFERENCE_CASE = "wrong_code"


# ======================================================================== the line and its bank


class StandInRenderer:
    """Without eSpeak NG: each prompt a quiet hum as long as its words would take to say."""

    def render(self, play: PlayPrompt, sample_rate: int) -> np.ndarray:
        seconds = max(0.3, len(play.masked_text().split()) / 3.0)
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        return (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _renderer(config: Config, line: Line) -> tuple[Any, str]:
    from voicebot.tts import TtsError, prompt_renderer

    try:
        renderer = prompt_renderer(config)
        report = renderer.build(line.menu, config.languages, (RATE,))
    except (TtsError, ConfigError) as exc:
        return StandInRenderer(), f"**stand-in hums** (the line's prompts could not be rendered: {exc})"
    return renderer, (f"the line's (pyttsx3 + eSpeak NG) from its cache `{config.tts.cache_dir}` "
                      f"({report.clips} clips, {report.rendered} rendered now)")


@dataclass
class Bench:
    line: Line
    renderer: Any
    prompts: str
    paused_rows: list[tuple[str, str, str]]  # the failures that pause PAUSED_CALLER
    live_code: int  # the codes row of the live operation unlock code
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))

    @classmethod
    def create(cls, folder: Path) -> Bench:
        # The line's defaults (scrypt cost and lockout limits included), on a scratch file.
        config = Config.model_validate({
            "database": str(folder / "bank.sqlite3"), "logging": {"file": None},
            "tts": {"cache_dir": str(ROOT / "var" / "prompts")},
        })
        line = Line.open(config, echo=io.StringIO())
        line.ensure_demo_bank()
        bank = line.bank
        # A card locked by wrong PINs (no caller ID: only the document's count, cleared below).
        for _ in range(config.lockout.max_pin_attempts):
            bank.verify_card(_dni(KNOWN_DNI), Secret(LOCKED_CARD), Secret(WRONG_PIN))
        assert bank.verify_card(_dni(KNOWN_DNI), Secret(LOCKED_CARD), Secret(LOCKED_CARD_PIN)).result \
            is VerifyResult.LOCKED
        # A caller past lockout.failures_per_caller: the real failures, kept and put back before each sample.
        for number in range(config.lockout.failures_per_caller):
            bank.verify_card(_dni(f"{55500000 + number}"), Secret(CARD), Secret(PIN), caller_id=PAUSED_CALLER)
        with line.db.transaction() as conn:
            paused_rows = [tuple(row) for row in conn.execute(
                "SELECT scope, subject, failed_at FROM verification_failures WHERE scope = 'caller'")]
        bank.issue_code("C001", CodePurpose.OPERATION_UNLOCK, OPERATION)
        with line.db.transaction() as conn:
            live_code = conn.execute("SELECT MAX(id) FROM codes").fetchone()[0]
        renderer, prompts = _renderer(config, line)
        bench = cls(line, renderer, prompts, paused_rows, live_code)
        bench.reset()
        assert bank.verify_card(_dni(KNOWN_DNI), Secret(CARD), Secret(PIN), caller_id=PAUSED_CALLER).result \
            is VerifyResult.PAUSED
        return bench

    def reset(self) -> None:
        """The bank as every sample must meet it (not timed)."""
        with self.line.db.transaction() as conn:
            conn.execute("DELETE FROM verification_failures")
            conn.executemany("INSERT INTO verification_failures (scope, subject, failed_at) VALUES (?, ?, ?)",
                             self.paused_rows)
            conn.execute("UPDATE cards SET failed_attempts = 0 WHERE locked_at IS NULL")
            conn.execute("UPDATE codes SET failed_tries = 0, superseded_at = NULL WHERE id = ?", (self.live_code,))


def _dni(number: str) -> Document:
    return Document.parse(DocumentType.DNI, number)


@contextmanager
def _no_gc() -> Iterator[None]:
    """A collection inside a timed call would land on whichever case ran into it."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# ======================================================================== the samples


def verify_once(bench: Bench, case: Case) -> float:
    document = _dni(case.document(bench.rng))
    card, pin = Secret(case.card), Secret(case.pin)
    with _no_gc():
        began = time.perf_counter()
        verification = bench.line.bank.verify_card(document, card, pin, caller_id=case.caller_id)
        wall = time.perf_counter() - began
    if verification.result is not case.result:
        raise RuntimeError(f"{case.name}: the bank said {verification.result}, not {case.result}")
    return wall


def redeem_once(bench: Bench, purpose: CodePurpose) -> float:
    code = Secret(f"{bench.rng.randrange(10**6):06d}")  # a guess (a 1-in-a-million hit is still a miss below)
    with _no_gc():
        began = time.perf_counter()
        redeemed = bench.line.bank.redeem_code("C001", purpose, OPERATION, code)
        wall = time.perf_counter() - began
    if redeemed:
        raise RuntimeError("a guessed code was redeemed")
    return wall


def call_once(bench: Bench, case: Case) -> float:
    """A keyed file call up to the PIN; the wall time of the frame that hears its last key."""
    keys = "1111" + case.document(bench.rng) + case.card + case.pin
    session = CallSession(bench.line, CallMeta("file", case.caller_id, UNLOCK_LINE), bench.renderer, None, RATE,
                          virtual=True)
    silence = np.zeros(session.frame_len, dtype=np.float32)
    session.start()
    for key in keys[:-1]:
        session.press(key)
        session.step(silence)
    heard = len(session.transcript)
    session.press(keys[-1])
    with _no_gc():
        began = time.perf_counter()
        session.step(silence)
        wall = time.perf_counter() - began
    after = [e.as_dict() for e in session.transcript[heard:]]
    session.finish()
    prompts = [e["prompt"] for e in after if e["kind"] == "prompt"]
    if not prompts or prompts[0] != case.answer:
        raise RuntimeError(f"call {case.name}: the frame of the last PIN key started {prompts}, not {case.answer}: {after}")
    return wall


# ======================================================================== the work on each path


@dataclass
class Work:
    checks: int = 0  # scrypt: a stored hash checked (or the dummy)
    hashes: int = 0  # scrypt: a new hash made (a temporary password, a code)
    statements: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return sum(s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) for s in self.statements)

    @property
    def write_transactions(self) -> int:
        return sum(s.strip().upper() == "BEGIN IMMEDIATE" for s in self.statements)

    def shape(self) -> str:
        return (f"{self.checks + self.hashes} ({self.checks} check{'s' * (self.checks != 1)}"
                f"{f', {self.hashes} new' if self.hashes else ''})")


@contextmanager
def counting(bench: Bench) -> Iterator[Work]:
    """scrypt computations and the SQL statements of this process's connection, while inside."""
    work = Work()
    real_check, real_hash = sqlite_backend.check_secret, sqlite_backend.hash_secret

    def check(clear: str, stored: str) -> bool:
        work.checks += 1
        return real_check(clear, stored)

    def make(clear: str, scrypt_n: int) -> str:
        work.hashes += 1
        return real_hash(clear, scrypt_n)

    connection = getattr(bench.line.db, "_connection", None)
    sqlite_backend.check_secret, sqlite_backend.hash_secret = check, make  # type: ignore[assignment]
    if connection is not None:
        connection.set_trace_callback(work.statements.append)
    try:
        yield work
    finally:
        sqlite_backend.check_secret, sqlite_backend.hash_secret = real_check, real_hash  # type: ignore[assignment]
        if connection is not None:
            connection.set_trace_callback(None)


def work_of(bench: Bench, run: Callable[[], object]) -> Work:
    bench.reset()
    with counting(bench) as work:
        run()
    return work


# ======================================================================== figures


@dataclass
class Row:
    name: str
    label: str
    samples: list[float]


def _compare(row: Sequence[float], reference: Sequence[float]) -> tuple[float, float | None]:
    """P(a sample of ``row`` is slower than one of ``reference``) and the Mann-Whitney U p (None without scipy)."""
    a, b = np.asarray(row), np.asarray(reference)
    try:
        from scipy.stats import mannwhitneyu
    except ImportError:
        greater = (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
        return float(greater), None
    test = mannwhitneyu(a, b, alternative="two-sided")
    return float(test.statistic) / (len(a) * len(b)), float(test.pvalue)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def figures(rows: Sequence[Row], reference: str) -> tuple[str, list[str]]:
    """The table, and a line for every row that differs from the reference."""
    base = next(r for r in rows if r.name == reference)
    base_median = float(np.median(base.samples))
    lines, differ = [], []
    for row in rows:
        values = np.asarray(row.samples)
        median = float(np.median(values))
        p10, p90 = np.percentile(values, [10, 90])
        if row.name == reference:
            lines.append([row.label, len(values), _ms(median), _ms(p10), _ms(p90), "1", "—", "—", "—", "(reference)"])
            continue
        slower, p = _compare(values, base.samples)
        delta = (median - base_median) * 1e6
        found = p is not None and p < SIGNIFICANT
        verdict = ("differs" if found else "no difference found") if p is not None else "see P(slower)"
        if found:
            differ.append(f"{row.label}: {delta:+,.0f} µs on the median ({100 * (median / base_median - 1):+.2f} %), "
                          f"P(slower) {100 * slower:.0f} %")
        lines.append([row.label, len(values), _ms(median), _ms(p10), _ms(p90), f"{median / base_median:.4f}",
                      f"{delta:+,.0f} µs", f"{100 * slower:.0f} %", "—" if p is None else f"{p:.2g}", verdict])
    headers = ["case", "n", "median ms", "p10 ms", "p90 ms", "median ÷ reference", "Δ median",
               "P(slower)", "Mann-Whitney p", "a caller could tell"]
    return table(headers, lines, "lrrrrrrrrl"), differ


def work_table(works: dict[str, Work], labels: dict[str, str], reference: str) -> tuple[str, list[str]]:
    """The work of each path, and a line for each path whose statements are not the reference's."""
    rows, notes = [], []
    base = works[reference]
    for name, work in works.items():
        statements = "; ".join(_statement_kinds(work.statements))
        rows.append([labels[name], work.shape(), len(work.statements), work.writes, work.write_transactions,
                     statements])
        if name != reference and _statement_kinds(work.statements) != _statement_kinds(base.statements):
            notes.append(f"{labels[name]}: {work.write_transactions} write transaction(s), {work.writes} "
                         f"INSERT/UPDATE statement(s); {labels[reference]}: {base.write_transactions} and "
                         f"{base.writes}")
    headers = ["path", "scrypt", "SQL statements", "of them writes", "write transactions", "statements in order"]
    return table(headers, rows, "lrrrrl"), notes


def _statement_kinds(statements: Sequence[str]) -> list[str]:
    """Each statement by its verb and table (``SELECT cards``), runs of one kind counted."""
    kinds: list[str] = []
    for text in statements:
        words = text.split()
        verb = words[0].upper() if words else ""
        if verb == "BEGIN":
            kind = " ".join(words).upper()
        elif verb in ("INSERT", "DELETE"):
            kind = f"{verb} {words[2]}"
        elif verb == "UPDATE":
            kind = f"UPDATE {words[1]}"
        elif verb == "SELECT":
            tables = [w for i, w in enumerate(words) if i and words[i - 1].upper() == "FROM"]
            kind = f"SELECT {tables[0] if tables else '?'}"
        else:
            kind = verb
        if kinds and kinds[-1].rsplit(" ×", 1)[0] == kind:
            count = int(kinds[-1].rsplit(" ×", 1)[1]) if " ×" in kinds[-1] else 1
            kinds[-1] = f"{kind} ×{count + 1}"
        else:
            kinds.append(kind)
    return kinds


# ======================================================================== main


def main() -> None:
    started = time.perf_counter()
    others, load_before = OthersCpu(), os.getloadavg()[0]
    machine = machine_lines(COMMAND, ["numpy", "scipy"], ["espeak-ng"])
    print("\nSecurity: can the time of an answer tell which identity factor was wrong?\n" + "\n".join(machine))
    with tempfile.TemporaryDirectory(prefix="voicebot-bench-security-") as scratch:
        bench = Bench.create(Path(scratch))
        try:
            results = measure(bench)
        finally:
            bench.line.close()
    elapsed = time.perf_counter() - started
    write_results(results, machine, elapsed, others.share(), load_before, bench.prompts,
                  bench.line.config.security.scrypt_n)


@dataclass
class Results:
    bank: list[Row]
    redeem: list[Row]
    call: list[Row]
    bank_work: dict[str, Work]
    redeem_work: dict[str, Work]
    call_work: dict[str, Work]
    cost_rows: list[Row]
    stored_n: int
    raised_n: int


def cost_changed(bench: Bench) -> tuple[int, int, list[Row]]:
    """verify_card on the same file through a bank whose scrypt_n is twice the one the PINs were hashed at."""
    config = bench.line.config
    stored = config.security.scrypt_n
    raised = SqliteBank(bench.line.db, config.codes, config.lockout, Security(scrypt_n=2 * stored))
    cases = [c for c in CASES if c.result is VerifyResult.MISMATCH]
    samples: dict[str, list[float]] = {c.name: [] for c in cases}
    order = random.Random(SEED + 1)
    for _ in range(COST_ROUNDS):
        order.shuffle(cases)
        for case in cases:
            bench.reset()
            document, card, pin = _dni(case.document(bench.rng)), Secret(case.card), Secret(case.pin)
            with _no_gc():
                began = time.perf_counter()
                raised.verify_card(document, card, pin, caller_id=case.caller_id)
                samples[case.name].append(time.perf_counter() - began)
    return stored, 2 * stored, [Row(c.name, c.label, samples[c.name]) for c in CASES if c.name in samples]


def measure(bench: Bench) -> Results:
    samples: dict[str, list[float]] = {}
    jobs: list[tuple[str, Callable[[], float]]] = []
    for case in CASES:
        jobs.append((f"bank:{case.name}", lambda case=case: verify_once(bench, case)))
        jobs.append((f"call:{case.name}", lambda case=case: call_once(bench, case)))
    for name, _, purpose in REDEEM_CASES:
        jobs.append((f"redeem:{name}", lambda purpose=purpose: redeem_once(bench, purpose)))
    # Warm-up: code paths, caches and the prompt clips in memory.
    for _ in range(2):
        for _, job in jobs:
            bench.reset()
            job()
    order = random.Random(SEED)
    report_every = max(1, ROUNDS // 5)
    began = time.perf_counter()
    for number in range(ROUNDS):
        order.shuffle(jobs)
        for name, job in jobs:
            bench.reset()
            samples.setdefault(name, []).append(job())
        gc.collect()
        if (number + 1) % report_every == 0:
            print(f"  round {number + 1}/{ROUNDS} ({time.perf_counter() - began:.0f} s)", flush=True)
    works_bank = {c.name: work_of(bench, lambda c=c: verify_once(bench, c)) for c in CASES}
    works_call = {c.name: work_of(bench, lambda c=c: call_once(bench, c)) for c in CASES}
    works_redeem = {n: work_of(bench, lambda p=p: redeem_once(bench, p)) for n, _, p in REDEEM_CASES}
    print("  section 4: the cost raised over PINs hashed at the old one", flush=True)
    stored, raised, cost_rows = cost_changed(bench)
    return Results(
        bank=[Row(c.name, c.label, samples[f"bank:{c.name}"]) for c in CASES],
        redeem=[Row(n, label, samples[f"redeem:{n}"]) for n, label, _ in REDEEM_CASES],
        call=[Row(c.name, c.label, samples[f"call:{c.name}"]) for c in CASES],
        bank_work=works_bank, redeem_work=works_redeem, call_work=works_call,
        cost_rows=cost_rows, stored_n=stored, raised_n=raised,
    )


def write_results(results: Results, machine: list[str], elapsed: float, others: float, load_before: float,
                  prompts: str, scrypt_n: int) -> None:
    labels = {c.name: c.label for c in CASES} | {n: label for n, label, _ in REDEEM_CASES}
    reference = labels[REFERENCE_CASE]
    bank_table, bank_differ = figures(results.bank, REFERENCE_CASE)
    redeem_table, redeem_differ = figures(results.redeem, REDEEM_REFERENCE_CASE)
    call_table, call_differ = figures(results.call, REFERENCE_CASE)
    bank_work, bank_notes = work_table(results.bank_work, labels, REFERENCE_CASE)
    redeem_work, redeem_notes = work_table(results.redeem_work, labels, REDEEM_REFERENCE_CASE)
    call_work = table(["path (the frame of the last PIN key)", "scrypt", "SQL statements", "of them writes"],
                      [[labels[n], w.shape(), len(w.statements), w.writes] for n, w in results.call_work.items()],
                      "lrrr")
    cost_table, cost_differ = figures(results.cost_rows, REFERENCE_CASE)
    mismatch = [c.name for c in CASES if c.result is VerifyResult.MISMATCH]
    same_words = [labels[n] for n in mismatch]

    def differing(lines: list[str]) -> str:
        return "\n".join(f"- {line}" for line in lines) if lines else "- none (p ≥ 0.01 for every row)"

    mismatch_differ = [line for line in bank_differ + call_differ
                       if any(line.startswith(labels[n] + ":") for n in mismatch)]
    verdict = ("**A timing difference was found between paths a caller hears as the same mismatch**"
               if mismatch_differ else
               "**No timing difference was found between the paths a caller hears as the same mismatch** "
               f"({', '.join(same_words)}) at the line's settings")
    verdict += (". **With `security.scrypt_n` raised over PINs hashed at the old cost, they differ** (section 4)"
                if cost_differ else ". With `security.scrypt_n` raised over PINs hashed at the old cost: no "
                "difference found either (section 4)")
    text = [
        "# Security: enumeration by timing",
        "",
        "Generated by `bench/security.py`; do not edit by hand.",
        "",
        *machine,
        f"- Bench wall time: {elapsed:.0f} s; {ROUNDS} samples of every case, round-robin",
        f"- Other processes used {100 * others:.0f} % of the cores during the bench "
        f"(load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f})",
        f"- scrypt n = {scrypt_n} (the line's default cost); prompts: {prompts}",
        "",
        (__doc__ or "").split("\n\n", 1)[1].strip(),
        "",
        verdict + ".",
        "",
        f"## The bank: `SqliteBank.verify_card` (reference: {reference})",
        "",
        bank_table,
        "",
        "Rows that differ from the reference (p < 0.01):",
        "",
        differing(bank_differ),
        "",
        f"## Through the call: the last PIN key to the next prompt's first sample (reference: {reference})",
        "",
        call_table,
        "",
        "Rows that differ from the reference (p < 0.01):",
        "",
        differing(call_differ),
        "",
        "The right PIN's frame also runs `recover_user` (a temporary password hashed with scrypt, the e-mail "
        "and the SMS queued and sent) before its prompt: its answer is slower by design, and what it says is "
        "different anyway. A locked card and a paused caller are also answered with their own words.",
        "",
        f"## The bank: `SqliteBank.redeem_code` (reference: {labels[REDEEM_REFERENCE_CASE]})",
        "",
        redeem_table,
        "",
        "Rows that differ from the reference (p < 0.01):",
        "",
        differing(redeem_differ),
        "",
        f"## After `security.scrypt_n` is raised from {results.stored_n} to {results.raised_n} over the PINs "
        f"hashed at {results.stored_n} (`verify_card`, {COST_ROUNDS} samples, reference: {reference})",
        "",
        cost_table,
        "",
        "Rows that differ from the reference (p < 0.01):",
        "",
        differing(cost_differ),
        "",
        "One scrypt on every path is not enough: the dummy hash that stands in for a missing card is made "
        "at the configured cost, while a real card is checked at the cost its hash was made with. Whenever "
        "the two part (the setting changed after the cards were hashed, or `pin_hash` imported from a seed at "
        "another cost), an unknown document or card is answered in a different time from a known card.",
        "",
        "## The work on each path (one sample of each, counted)",
        "",
        bank_work,
        "",
        redeem_work,
        "",
        call_work,
        "",
        "Paths whose database work is not the reference's:",
        "",
        differing(bank_notes + redeem_notes).replace("p ≥ 0.01 for every row", "every path does the same statements"),
        "",
        NOTE,
        "",
    ]
    document = "\n".join(text)
    print("\n" + document)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(document)
    print(f"\nwritten: {RESULTS.relative_to(ROOT)}")


NOTE = """\
How to read it: every path costs one scrypt computation (about 40 ms at the default cost),
and the rest of the work differs by a few SQLite statements, microseconds each, with the
database in WAL mode and `synchronous = NORMAL` (no disk sync at a commit). A caller also
hears the answer through the 20 ms frames of the line's audio and the network's jitter
(milliseconds). A row's "P(slower)" is the chance that one call of it takes longer than one
wrong-PIN call; at 50 % a timing tells a caller nothing, and a difference found only over
hundreds of interleaved samples on this machine is far below what a caller's clock can see.
When other processes share the cores, the samples fall in two groups (scrypt with a core
to itself, about 37 ms, or sharing one, about twice that); a median then lands between
them and moves by milliseconds from run to run, on every row alike: read P(slower), p and
the p10 column (the unshared time), not a median's ratio alone."""


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
