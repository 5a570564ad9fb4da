"""The operator's configuration: one YAML file, every key optional.

Defaults make the line work on a fresh machine (an SQLite file under ``var/``, the menu
shipped in the package, the two numbers of the leaflet). A deployment overrides keys in its
file (``voicebot --config FILE``, or ``VOICEBOT_CONFIG``) and, where a container or a unit
file is easier, in the environment: ``VOICEBOT__SECTION__KEY=value`` (value read as YAML),
e.g. ``VOICEBOT__TIMEOUTS__FIRST_INPUT=8`` or ``VOICEBOT__DATABASE=/srv/ivr.sqlite3``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from . import yamlfile
from .errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MENU = PACKAGE_DIR / "data" / "menu.yaml"
# A clone keeps the Rasa-format training data at the top level, beside the package.
DEFAULT_NLU_DATA = PACKAGE_DIR.parent / "nlu_data"
# Vosk models live beside the package in a clone (`voicebot models download` puts them there).
DEFAULT_MODELS_DIR = PACKAGE_DIR.parent / "models"
ENV_PREFIX = "VOICEBOT__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Section):
    first_input: float = Field(5.0, gt=0, le=120, description="seconds of silence after a prompt before a no-input")
    inter_digit: float = Field(3.0, gt=0, le=60, description="seconds allowed between two keys of one entry")
    long_entry_first_input: float = Field(
        8.0, gt=0, le=120, description="first-input timeout for entries of more than 4 digits (a document, a reference)"
    )
    patience_step: float = Field(
        0.5, ge=0, le=5,
        description="after each no-input (or entry left incomplete) in a call, its timeouts grow by this share of their usual value",
    )
    max_first_input: float = Field(15.0, gt=0, le=120, description="the first-input timeout never grows past this")
    max_inter_digit: float = Field(8.0, gt=0, le=60, description="the inter-digit timeout never grows past this")
    more_time: float = Field(30.0, gt=0, le=300, description='seconds the line waits after the caller says "one moment"')
    action: float = Field(
        15.0, gt=0, le=120,
        description="seconds a backend step may take; past it nothing of the step is kept and the caller is offered an agent",
    )


class Outbox(_Section):
    """How queued SMS and e-mails are sent: the outbox is the source of truth, a sender retries."""

    retry_first_seconds: float = Field(5.0, gt=0, le=3600, description="wait before the first retry of a failed send")
    retry_max_seconds: float = Field(600.0, gt=0, le=86400, description="longest wait between two retries (the wait doubles)")
    give_up_minutes: int = Field(1440, ge=1, description="a message not sent by then is marked failed and its clear text erased")
    lease_seconds: float = Field(
        60.0, gt=0, le=3600,
        description="a message being sent is reserved this long; a sender that died leaves it to be retried after",
    )


class Smtp(_Section):
    host: str = Field("localhost", min_length=1, description="the bank's mail server")
    port: int = Field(587, ge=1, le=65535, description="587 for STARTTLS, 465 for implicit TLS, 25 inside a trusted network")
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls: upgrade after connecting; tls: TLS from the start; none: plain (trusted network only)"
    )
    username: str | None = Field(None, description="login, when the server asks for one")
    password: SecretStr | None = Field(None, description="its password (better from VOICEBOT__EMAIL__SMTP__PASSWORD)")
    sender: str = Field("Banca Electrónica <no-reply@bank.invalid>", description="the From of every e-mail")
    ca_file: Path | None = Field(None, description="CA certificates to trust besides the system's (a bank's own CA)")
    timeout: float = Field(10.0, gt=0, le=120, description="seconds for each step of an SMTP session")


class Email(_Section):
    transport: Literal["demo", "smtp"] = Field(
        "demo", description="demo: the demo mailbox prints them; smtp: the mail server of email.smtp"
    )
    smtp: Smtp = Smtp()


class Smpp(_Section):
    """SMS over SMPP 3.4, the protocol of operators' SMSCs."""

    host: str = Field("localhost", min_length=1, description="the SMSC")
    port: int = Field(2775, ge=1, le=65535)
    system_id: str = Field("voicebot", min_length=1, max_length=15, description="the account the SMSC gave the bank")
    password: SecretStr | None = Field(None, description="its password (better from VOICEBOT__SMS__SMPP__PASSWORD)")
    system_type: str = Field("", max_length=12)
    source_addr: str = Field("BANCO", min_length=1, max_length=20, description="the sender the customer sees")
    source_addr_ton: int = Field(5, ge=0, le=6, description="5: alphanumeric sender; 1: international number")
    source_addr_npi: int = Field(0, ge=0, le=18)
    dest_addr_ton: int = Field(1, ge=0, le=6, description="1: international (+34…)")
    dest_addr_npi: int = Field(1, ge=0, le=18, description="1: E.164")
    max_per_second: float = Field(10.0, gt=0, le=1000, description="submits per second, below the SMSC's throttle")
    timeout: float = Field(10.0, gt=0, le=120, description="seconds to wait for a bind or a submit's answer")
    delivery_receipts: bool = Field(True, description="ask for delivery receipts and record them in the outbox")


class HttpSms(_Section):
    """SMS through a provider's HTTP API: a JSON body built from a template."""

    url: str = Field("https://sms.bank.invalid/v1/messages", description="where a message is POSTed")
    token: SecretStr | None = Field(None, description="bearer token (better from VOICEBOT__SMS__HTTP__TOKEN)")
    username: str | None = Field(None, description="basic authentication, instead of a token")
    password: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="more headers, e.g. an account id")
    body: dict[str, Any] = Field(
        default_factory=lambda: {"to": "{to}", "from": "BANCO", "text": "{text}", "reference": "{id}"},
        description="the JSON body; strings may hold {to}, {text}, {id} (the outbox's idempotency key)",
    )
    id_field: str = Field("id", description="where the reply's JSON has the provider's message id (dots for nesting)")
    idempotency_header: str | None = Field("Idempotency-Key", description="header carrying the idempotency key")
    ca_file: Path | None = Field(None, description="CA certificates to trust besides the system's")
    timeout: float = Field(10.0, gt=0, le=120)


class Sms(_Section):
    transport: Literal["demo", "smpp", "http"] = Field(
        "demo", description="demo: the demo phone prints them; smpp: an SMSC (sms.smpp); http: a provider's API (sms.http)"
    )
    smpp: Smpp = Smpp()
    http: HttpSms = HttpSms()


class HttpBankSettings(_Section):
    """The bank's REST API of ``voicebot/data/bank_api.yaml`` (``voicebot bank serve`` serves the demo one)."""

    url: str = Field("http://127.0.0.1:8085", description="the API's base URL (paths start /v1/…)")
    token: SecretStr | None = Field(None, description="bearer token (better from VOICEBOT__BANK__HTTP__TOKEN)")
    client_cert: Path | None = Field(None, description="mutual TLS: the line's certificate (PEM)")
    client_key: Path | None = Field(None, description="mutual TLS: its private key (PEM), if not in client_cert")
    ca_file: Path | None = Field(None, description="CA certificates to trust besides the system's (a bank's own CA)")
    timeout: float = Field(4.0, gt=0, le=60, description="seconds for each try of a request")
    retries: int = Field(
        2, ge=0, le=5,
        description="retries of a request that is safe to repeat (GET, PUT, and POSTs with an Idempotency-Key) "
                    "after a time-out, a lost connection or a 5xx; keep timeout x (retries+1) below timeouts.action")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r}: expected an http:// or https:// URL")
        return value.rstrip("/")


class Bank(_Section):
    backend: Literal["sqlite", "http"] = Field(
        "sqlite", description="sqlite: the embedded bank in `database`; http: the bank's REST API (bank.http)")
    http: HttpBankSettings = HttpBankSettings()


class Recording(_Section):
    folder: Path | None = Field(
        None,
        description="where calls keep a two-channel recording (caller, line); secret steps are silence on the "
                    "caller's side; none kept by default",
    )


class Retries(_Section):
    max_attempts: int = Field(3, ge=1, le=10, description="no-input/no-match failures at one step before an agent")


class Lockout(_Section):
    max_pin_attempts: int = Field(3, ge=1, le=10, description="wrong PINs per card, across calls, before it is locked")
    max_verifications_per_call: int = Field(
        3, ge=1, le=10, description="failed identity checks in one call before an agent"
    )
    # (inferred) Across calls: a guesser who hangs up and calls again, from one number or many.
    failures_per_caller: int = Field(
        6, ge=1, le=1000, description="failed identity checks from one caller ID in the window, before a pause")
    caller_window_minutes: int = Field(60, ge=1, le=10080, description="the caller ID's window")
    failures_per_document: int = Field(
        6, ge=1, le=1000, description="failed identity checks for one document (any card, any caller) in the window")
    document_window_minutes: int = Field(1440, ge=1, le=10080, description="the document's window")


class Codes(_Section):
    temporary_password_minutes: int = Field(1440, ge=1, description="lifetime of a temporary password")
    unlock_code_minutes: int = Field(10, ge=1, description="lifetime of an operation unlock code")
    sms_key_minutes: int = Field(5, ge=1, description="lifetime of a spoken SMS signature key")
    temporary_password_length: int = Field(8, ge=6, le=32)
    unlock_code_length: int = Field(6, ge=4, le=12)
    sms_key_length: int = Field(6, ge=4, le=12)


class Agent(_Section):
    target: str = Field("sip:agents@bank.invalid", description="where calls are transferred (SIP URI or number)")
    phone_number: str = Field("950 210 191", description="number read to the caller when a transfer cannot be made")


class Nlu(_Section):
    data_dir: Path = Field(DEFAULT_NLU_DATA, description="folder of Rasa-format training data")
    min_confidence: float = Field(0.5, ge=0, le=1, description="speech below this confidence counts as no-match")
    out_of_scope_threshold: float = Field(
        0.45, ge=0, le=1, description="an intent guessed with less confidence than this is out of scope")
    confirm_below: float = Field(
        0.8, ge=0, le=1, description="spoken digits heard with less confidence than this are read back to confirm")


class Speech(_Section):
    enabled: bool = Field(True, description="false: the line is keys-only in every language")
    models_dir: Path = Field(DEFAULT_MODELS_DIR, description="where `voicebot models download` unpacks models")
    models: dict[str, Path] = Field(
        default_factory=dict,
        description="language -> Vosk model folder; a language not listed uses the manifest's model under models_dir",
    )
    end_silence_choice: float = Field(0.25, gt=0, le=3, description="seconds of silence that end a menu choice")
    end_silence_digits: float = Field(
        0.25, gt=0, le=3, description="seconds of silence that end spoken digits of a fixed length (card, PIN, DNI)")
    end_silence_open_digits: float = Field(
        0.5, gt=0, le=3, description="… of a length not known in advance (a reference): callers pause between groups")
    end_silence_sentence: float = Field(0.6, gt=0, le=3, description="seconds of silence that end a free sentence")
    max_utterance: float = Field(12.0, gt=1, le=60, description="seconds of speech after which the result is taken")
    vad_aggressiveness: int = Field(2, ge=0, le=3, description="WebRTC VAD mode: 0 lets most sound in, 3 least")
    min_voice: float = Field(0.12, gt=0, le=1, description="seconds of voice before speech counts as begun (not a click)")
    voice_confirmation: float | None = Field(
        0.5, gt=0, lt=1, description="Silero VAD score a voice's onset must reach to count (keeps a cough, a breath, "
        "hum or line noise from cutting a prompt short); null: WebRTC's VAD alone")
    decoder_threads: int = Field(2, ge=1, le=64, description="threads decoding speech for all calls (Vosk releases the GIL)")
    alternatives: int = Field(
        0, ge=0, le=10, description="n-best list for a doubtful result (a second decoding: costs CPU); 0 for none")


class Sip(_Section):
    """`voicebot serve`: the SIP/RTP front (softphones, a PBX or a trunk)."""

    listen: str = Field("127.0.0.1:5060", description="host:port where SIP is answered (UDP, and TCP if enabled)")
    tcp: bool = Field(False, description="also answer SIP over TCP on the same port")
    media_address: str | None = Field(None, description="IP address put in the SDP (default: the listen host)")
    rtp_ports: tuple[int, int] = Field((20000, 20999), description="even RTP ports are taken from this range")
    codecs: tuple[str, ...] = Field(
        ("G722", "PCMA", "PCMU"), min_length=1,
        description="preferred first: G722 (wideband, better for speech recognition), PCMA, PCMU")
    allow: tuple[str, ...] = Field(
        ("127.0.0.0/8", "::1/128"), description="source networks allowed to call (CIDR); [] for any source")
    users: dict[str, str] = Field(
        default_factory=dict, description="digest authentication for trunks: user -> password; {} for none")
    realm: str = Field("voicebot", description="digest realm")
    max_calls: int = Field(100, ge=1, le=10000, description="simultaneous calls; past it new calls get 503")
    max_calls_per_source: int = Field(50, ge=1, le=10000, description="simultaneous calls from one IP address")
    rtp_timeout: float = Field(10.0, gt=0, le=600, description="seconds without RTP (not on hold) before hanging up")
    transfer_timeout: float = Field(8.0, gt=0, le=120, description="seconds the agent side has to accept a REFER")
    drain_seconds: float = Field(
        300.0, ge=0, le=3600, description="on SIGTERM: seconds calls in progress may take to finish")

    @field_validator("codecs")
    @classmethod
    def _known_codecs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = {"G722", "PCMA", "PCMU"}
        upper = tuple(codec.upper() for codec in value)
        unknown = [codec for codec in upper if codec not in known]
        if unknown:
            raise ValueError(f"unknown codec(s) {unknown}: one of {sorted(known)}")
        return upper

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an IP network (e.g. 10.0.0.0/8 or 192.0.2.7)") from None
        return value

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r}: expected host:port, e.g. 127.0.0.1:5060")
        return value


class Ops(_Section):
    """`voicebot serve`'s operations endpoint: /healthz for a balancer or an orchestrator, /metrics for Prometheus."""

    listen: str | None = Field(
        "127.0.0.1:9464",
        description="host:port of /healthz and /metrics (port 0: any free port); null: none. The default is "
                    "best-effort (taken: a warning, the line goes on); an address set here or by --ops must be had")
    database_timeout: float = Field(
        2.0, gt=0, le=30, description="seconds /healthz waits for the database to answer a SELECT 1 before 503")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"{value!r}: expected host:port, e.g. 127.0.0.1:9464 (port 0: any free port)")
        return value


class Logging(_Section):
    file: Path | None = Field(
        Path("var/voicebot.log"),
        description='log file (secrets are masked); "-" for standard error (under systemd: the journal); null for none')
    level: str = Field("INFO")
    format: Literal["text", "json"] = Field(
        "text", description="text: one plain line per event; json: one JSON object per line (time, level, logger, "
                            "message, call_id, exception), for a log collector")

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return value


class Security(_Section):
    scrypt_n: int = Field(2**14, ge=2**10, le=2**20, description="scrypt cost for PIN and password hashes (power of two)")

    @field_validator("scrypt_n")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError("must be a power of two")
        return value


class Tts(_Section):
    """Prompts as audio: pyttsx3 voices, speech rate, level, and the clip cache."""

    voices: dict[str, str] = Field(
        default_factory=lambda: {"es": "roa/es", "en": "gmw/en-us"},
        description="language -> pyttsx3/eSpeak NG voice id (`voicebot prompts voices` lists them)",
    )
    rate_wpm: int = Field(160, ge=80, le=450, description="speech rate of the prompts, words per minute")
    slower_step: float = Field(
        0.8, ge=0.5, lt=1, description='"more slowly" (or its key) multiplies the speech rate by this for the rest of the call'
    )
    slowest: float = Field(0.6, ge=0.5, le=1, description="the speech rate never goes below this share of rate_wpm")
    language_pace: dict[str, Annotated[float, Field(ge=0.5, le=1.5)]] = Field(
        default_factory=lambda: {"es": 0.9, "en": 0.8},
        description="rate_wpm (and digits_rate_wpm) times this per language: eSpeak NG's voices say more words "
                    "per minute than asked, English most (measured by `voicebot a11y report`)",
    )
    digits_rate_wpm: int = Field(
        140, ge=80, le=450, description="speech rate of digits read out (a key, a phone number): slower")
    level_dbfs: float = Field(-20.0, ge=-40, le=-6, description="active speech level of every clip, dBFS")
    peak_dbfs: float = Field(-1.0, ge=-20, le=0, description="no sample of a clip goes above this, dBFS")
    sample_rates: tuple[int, ...] = Field(
        (8000, 16000), min_length=1, description="rates `voicebot prompts build` renders (8 kHz phone, 16 kHz headset)")
    cache_dir: Path = Field(Path("var/prompts"), description="folder of rendered clips")
    memory_mb: float = Field(64, ge=0, description="clips kept in memory besides the folder (least recently used go)")
    digit_pause: float = Field(0.15, ge=0, le=2, description="seconds between two digits of a group")
    group_pause: float = Field(0.5, ge=0, le=3, description="seconds between groups of digits, and at a comma")
    sentence_pause: float = Field(
        0.35, ge=0, le=3, description="seconds at a full stop or colon next to digits, and between joined prompts")

    @field_validator("sample_rates")
    @classmethod
    def _rates(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(rate < 8000 or rate > 192000 for rate in value):
            raise ValueError("sample rates are between 8000 and 192000 Hz")
        return tuple(dict.fromkeys(value))


def normalise_number(number: str) -> str:
    """Digits of a dialled or calling number, without spaces, dashes or the Spanish +34/0034."""
    digits = re.sub(r"[^\d+]", "", number)
    for prefix in ("+34", "0034"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 9:
            return digits[len(prefix):]
    return digits.lstrip("+")


def masked_database(target: str | Path) -> str:
    """A ``database`` setting as it may be printed or logged: a server URL's password masked."""
    text = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1****@", str(target))
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1****", text)


class Config(_Section):
    database: Path | str = Field(
        Path("var/voicebot.sqlite3"),
        description="bank, outbox, call records: a SQLite file (one machine), or a PostgreSQL server shared by "
        "several line instances, as postgresql://user@host:port/dbname (a password is better in PGPASSWORD or "
        "~/.pgpass than in the URL)")
    menu: Path = Field(DEFAULT_MENU, description="the menu tree (YAML)")
    languages: tuple[str, ...] = Field(("es", "en"), min_length=1)
    default_language: str = "es"
    dialed_numbers: dict[str, str] = Field(
        default_factory=lambda: {
            "950183313": "unlock_line",
            "901511000": "support_line",
            "950210191": "support_line",
        },
        description="dialled number -> entry point of the menu",
    )
    default_entry_point: str = "unlock_line"
    timeouts: Timeouts = Timeouts()
    retries: Retries = Retries()
    lockout: Lockout = Lockout()
    codes: Codes = Codes()
    agent: Agent = Agent()
    nlu: Nlu = Nlu()
    speech: Speech = Speech()
    logging: Logging = Logging()
    security: Security = Security()
    tts: Tts = Tts()
    sip: Sip = Sip()
    ops: Ops = Ops()
    outbox: Outbox = Outbox()
    email: Email = Email()
    sms: Sms = Sms()
    recording: Recording = Recording()
    bank: Bank = Bank()

    @field_validator("database", mode="before")
    @classmethod
    def _file_or_server(cls, value: Any) -> Any:
        if isinstance(value, str) and re.match(r"(?i)^postgres(ql)?://", value):
            from psycopg import ProgrammingError, conninfo

            try:
                conninfo.conninfo_to_dict(value)
            except ProgrammingError:
                # Not libpq's message: it quotes the URL, password and all.
                raise ValueError("not a PostgreSQL URL libpq can read (postgresql://user@host:port/dbname)") from None
            return value
        if isinstance(value, str) and re.match(r"^[a-z][a-z0-9+.-]*://", value, re.IGNORECASE):
            raise ValueError("a database URL must be postgresql://…; anything else is a SQLite file's path")
        if not isinstance(value, (str, Path)):
            # Said here, once: left to the union, pydantic would name each of its branches.
            raise ValueError("expected a SQLite file's path or a postgresql:// URL")
        return Path(value) if isinstance(value, str) else value

    @property
    def database_shown(self) -> str:
        """The ``database`` setting to print: a password in a server URL is masked."""
        return masked_database(self.database)

    @field_validator("dialed_numbers")
    @classmethod
    def _normalise_numbers(cls, value: dict[str, str]) -> dict[str, str]:
        return {normalise_number(str(number)): entry for number, entry in value.items()}

    @field_validator("default_language")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    def entry_point_for(self, dialed: str | None) -> str:
        if dialed is None:
            return self.default_entry_point
        return self.dialed_numbers.get(normalise_number(dialed), self.default_entry_point)

    def check_against_menu(self, entry_points: set[str], languages: set[str]) -> list[str]:
        """Problems that only show once the menu is known (entry points, languages)."""
        problems = []
        for number, entry in self.dialed_numbers.items():
            if entry not in entry_points:
                problems.append(f"dialed_numbers.{number}: unknown entry point {entry!r} (menu has {sorted(entry_points)})")
        if self.default_entry_point not in entry_points:
            problems.append(f"default_entry_point: unknown entry point {self.default_entry_point!r}")
        for lang in self.languages:
            if lang not in languages:
                problems.append(f"languages: the menu has no prompts in {lang!r}")
        if self.default_language not in self.languages:
            problems.append(f"default_language: {self.default_language!r} is not one of languages {list(self.languages)}")
        return problems


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (or ``$VOICEBOT_CONFIG``, or nothing: defaults), then the environment."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("VOICEBOT_CONFIG")
    if path:
        located = yamlfile.load(path)
        if not isinstance(located.data, dict):
            raise ConfigError(f"{path}: the configuration must be a mapping of keys")
    else:
        located = yamlfile.Located(data={}, source="<defaults>")
    data: dict[str, Any] = dict(located.data)
    for name, raw in environ.items():
        if name.startswith(ENV_PREFIX):
            _apply_env(data, name, raw)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(yamlfile.validation_problems(exc, located)) from None


def _apply_env(data: dict[str, Any], name: str, raw: str) -> None:
    keys = [part.lower() for part in name[len(ENV_PREFIX):].split("__") if part]
    if not keys:
        return
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    target = data
    for key in keys[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = {}
            target[key] = child
        target = child
    target[keys[-1]] = value
