"""SMS over SMPP 3.4 (issue 11), against a real SMSC on loopback (tests/smsc.py, smpplib's PDUs).

The GSM-7 / UCS-2 choice for Spanish text, long messages in parts that rejoin exactly, a
refused bind that waits for the right password, throttling retried, the SMSC hanging up
(between messages and on one in flight), delivery receipts recorded in the outbox, the
pace, close(), nothing secret in logs or errors, and a console recovery whose password SMS
the SMSC receives."""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Caller, make_config
from tests.smsc import Smsc
from voicebot.app import Line
from voicebot.backends.base import OutgoingMessage
from voicebot.backends.sqlite import SqliteOutbox, open_database
from voicebot.config import Outbox, Smpp
from voicebot.outbox import DeliveryError, OutboxSender
from voicebot.senders.smpp import GSM7, UCS2, SmppSender, encode_sms, gsm7_septets

PASSWORD = "s3cret"
RECIPIENT = "+34600000001"
QUICK_RETRY = Outbox(retry_first_seconds=1)


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    with Smsc(password=PASSWORD) as server:
        yield server


def settings(smsc: Smsc, **changes: Any) -> Smpp:
    return Smpp.model_validate({"host": "127.0.0.1", "port": smsc.port, "password": PASSWORD, "timeout": 1,
                                "max_per_second": 1000, **changes})


@pytest.fixture
def outbox(tmp_path: Path) -> SqliteOutbox:
    return SqliteOutbox(open_database(tmp_path / "voicebot.sqlite3"))


@pytest.fixture
def sender(smsc: Smsc, outbox: SqliteOutbox) -> Iterator[SmppSender]:
    transport = SmppSender(settings(smsc), on_receipt=outbox.record_receipt)
    yield transport
    transport.close()


def queue(outbox: SqliteOutbox, text: str, to: str = RECIPIENT) -> None:
    outbox.send_sms(OutgoingMessage(to, text))


def only(outbox: SqliteOutbox) -> dict[str, Any]:
    [message] = outbox.list_messages()
    return message


# ---------------------------------------------------------------- the encoding rule


def test_gsm7_holds_n_u_and_e_with_accents_but_not_a_i_o_u_with_acute() -> None:
    spanish = "¿Qué? ¡Ñoño pingüino! É Ü ñ à è ì ò ù Ç ß"
    assert gsm7_septets(spanish) == len(spanish)
    for char in "áíóúÁÍÓÚçâ`ő":
        assert gsm7_septets(char) is None, char
    assert gsm7_septets("€") == 2 and gsm7_septets("[x]") == 5 and gsm7_septets("a^{}\\~|b") == 14
    assert gsm7_septets("§ ¤ @ £ ¥ Δ") == 11


@pytest.mark.parametrize(("text", "coding", "lengths"), [
    ("x" * 160, GSM7, [160]),
    ("x" * 161, GSM7, [153, 8]),
    ("x" * 158 + "€", GSM7, [160]),  # an extension character costs two septets...
    ("x" * 159 + "€", GSM7, [153, 8]),
    ("x" * 152 + "€" + "y" * 10, GSM7, [152, 12]),  # ...and its escape pair is never cut
    ("ó" * 70, UCS2, [140]),
    ("ó" * 71, UCS2, [134, 8]),
    ("ó" * 66 + "😀" + "ó" * 5, UCS2, [132, 14]),  # nor a surrogate pair
])
def test_one_sms_or_parts_by_septets_and_ucs2_units(text: str, coding: int, lengths: list[int]) -> None:
    parts = encode_sms(text, reference=7)
    assert parts.data_coding == coding
    if len(lengths) == 1:
        assert parts.esm_class == 0 and [len(p) for p in parts.payloads] == lengths
    else:
        assert parts.esm_class == 0x40
        assert [p[:6] for p in parts.payloads] == [bytes([5, 0, 3, 7, len(lengths), n]) for n in (1, 2)]
        assert [len(p) - 6 for p in parts.payloads] == lengths


# ---------------------------------------------------------------- through a real SMSC


def test_a_short_spanish_sms_arrives_in_gsm7_or_ucs2_as_it_must(smsc: Smsc, sender: SmppSender,
                                                               outbox: SqliteOutbox) -> None:
    gsm = "Su clave de firma SMS es 482913. ¿Dudas? ¡Pregunte en su oficina! Señal, pingüino, café."
    ucs2 = "Código de desbloqueo: 5521. Válido 10 min."
    queue(outbox, gsm)
    queue(outbox, ucs2)
    assert OutboxSender(outbox, sender).send_due().sent == 2
    first, second = smsc.received
    assert (first.text, first.data_coding, first.esm_class) == (gsm, GSM7, 0)
    assert len(first.short_message) == len(gsm)  # one septet an octet on the wire, unpacked
    assert (second.text, second.data_coding, second.esm_class) == (ucs2, UCS2, 0)
    assert second.short_message == ucs2.encode("utf-16-be")
    for sub in (first, second):
        assert (sub.destination_addr, sub.dest_addr_ton, sub.dest_addr_npi) == ("34600000001", 1, 1)
        assert (sub.source_addr, sub.source_addr_ton, sub.source_addr_npi) == ("BANCO", 5, 0)
        assert sub.registered_delivery == 1
    assert [m["provider_id"] for m in outbox.list_messages()] == [second.message_id, first.message_id]


def test_a_long_spanish_text_with_accents_goes_in_ucs2_parts_that_rejoin_exactly(
        smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox) -> None:
    text = ("Estimada clienta: su contraseña temporal de Banca Electrónica ya está activa. Al entrar, el sistema le "
            "pedirá que la cambie; elija una que no use en ningún otro sitio. Si usted no ha llamado, avísenos: "
            "¿dudas? ¡Llámenos!")
    queue(outbox, text)
    queue(outbox, text + " Gracias.")
    assert OutboxSender(outbox, sender).send_due().sent == 2
    first, second = smsc.messages()
    assert (first.text, first.data_coding, first.destination) == (text, UCS2, "34600000001")
    assert second.text == text + " Gracias."
    assert len(text) == 220 and [p.length for p in first.parts] == [67, 67, 67, 19]
    headers = [p.udh for p in first.parts]
    reference = headers[0][0]  # type: ignore[index]
    assert headers == [(reference, 4, 1), (reference, 4, 2), (reference, 4, 3), (reference, 4, 4)]
    assert all(p.esm_class == 0x40 and p.data_coding == UCS2 for p in first.parts)
    assert second.parts[0].udh[0] != reference  # type: ignore[index]  # each long SMS its own reference
    assert outbox.list_messages()[1]["provider_id"] == " ".join(p.message_id for p in first.parts)


def test_a_long_gsm7_text_is_split_at_153_septets(smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox) -> None:
    text = ("Su solicitud se ha registrado. " * 13)[:400]
    with_euro = "x" * 152 + "€ = 5 € de cargo. Señal ¿recibida? ¡Vale!"  # the € would straddle septet 153
    queue(outbox, text)
    queue(outbox, with_euro)
    assert OutboxSender(outbox, sender).send_due().sent == 2
    plain, euro = smsc.messages()
    assert plain.text == text and plain.data_coding == GSM7
    assert [p.length for p in plain.parts] == [153, 153, 94]
    assert euro.text == with_euro and euro.data_coding == GSM7
    assert euro.parts[0].length == 152 and euro.parts[1].text.startswith("€")


def test_a_refused_bind_waits_for_the_right_password_then_delivers_once(
        smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox) -> None:
    smsc.password = "changed"  # the SMSC's account was changed; the operator fixes it later
    queue(outbox, "Su código es 4821.")
    outboxes = OutboxSender(outbox, sender, QUICK_RETRY)
    assert outboxes.send_due().retrying == 1
    error = only(outbox)["last_error"]
    assert "the SMSC refused the bind as 'voicebot' (ESME_RINVPASWD 0x0E): check sms.smpp" in error
    assert PASSWORD not in error and only(outbox)["status"] == "queued" and smsc.received == []
    smsc.password = PASSWORD
    time.sleep(1.1)
    assert outboxes.send_due().sent == 1
    time.sleep(1.1)
    assert outboxes.send_due().sent == 0
    assert len(smsc.received) == 1 and smsc.binds == [0x0E, 0]
    assert only(outbox)["status"] == "delivered" and only(outbox)["attempts"] == 2


@pytest.mark.parametrize(("status", "name"), [(0x58, "ESME_RTHROTTLED 0x58"), (0x14, "ESME_RMSGQFUL 0x14")])
def test_throttling_is_retried_and_delivered_once(smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox,
                                                  status: int, name: str) -> None:
    smsc.refuse = {1: status}
    queue(outbox, "Su código es 4821.")
    outboxes = OutboxSender(outbox, sender, QUICK_RETRY)
    assert outboxes.send_due().retrying == 1
    assert f"the SMSC is throttling ({name})" in only(outbox)["last_error"]
    time.sleep(1.1)
    assert outboxes.send_due().sent == 1
    assert len(smsc.received) == 1 and smsc.submits == 2 and smsc.binds == [0]  # the bind was kept


def test_an_invalid_destination_fails_at_once(smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox) -> None:
    smsc.refuse = {1: 0x0B}
    queue(outbox, "Su código es 4821.")
    queue(outbox, "Su código es 4821.", to="not a number")
    assert OutboxSender(outbox, sender).send_due().failed == 2
    errors = sorted(m["last_error"] for m in outbox.list_messages())
    assert "the SMSC refused it (ESME_RINVDSTADR 0x0B)" in errors[0]
    assert "the recipient is not an international number" in errors[1]
    assert smsc.submits == 1


def test_an_smsc_that_hangs_up_gets_a_new_bind(smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox) -> None:
    outboxes = OutboxSender(outbox, sender, QUICK_RETRY)
    queue(outbox, "Primero.")
    assert outboxes.send_due().sent == 1
    smsc.hang_up()  # between two messages
    assert smsc.wait_until(lambda: not sender.bound)
    queue(outbox, "Segundo.")
    assert outboxes.send_due().sent == 1
    smsc.hang_up_at = {3}  # on the submit in flight, before answering it
    queue(outbox, "Tercero.")
    assert outboxes.send_due().retrying == 1
    assert "the connection to the SMSC was lost" in outbox.list_messages()[0]["last_error"]
    time.sleep(1.1)
    assert outboxes.send_due().sent == 1
    assert [m.text for m in smsc.messages()] == ["Primero.", "Segundo.", "Tercero."]
    assert smsc.binds == [0, 0, 0] and {m["status"] for m in outbox.list_messages()} == {"delivered"}


def test_an_smsc_that_is_down_or_silent(smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nobody = unused.getsockname()[1]
    queue(outbox, "Su código es 4821.")
    assert OutboxSender(outbox, SmppSender(settings(smsc, port=nobody)), QUICK_RETRY).send_due().retrying == 1
    assert "cannot reach the SMSC 127.0.0.1:" in only(outbox)["last_error"]  # (the outbox masks digit runs)
    smsc.silent_at = {1}  # takes the submit, never answers: the bind is dropped, the message retried
    outboxes = OutboxSender(outbox, sender, QUICK_RETRY)
    time.sleep(1.1)
    assert outboxes.send_due().retrying == 1
    assert "the SMSC did not answer in 1 s" in only(outbox)["last_error"] and not sender.bound
    time.sleep((outbox.next_due_in() or 0.0) + 0.1)
    assert outboxes.send_due().sent == 1 and smsc.binds == [0, 0]
    # SMPP has no idempotency key: an SMSC that took a message and lost its answer gets it twice
    assert [m.text for m in smsc.messages()] == ["Su código es 4821."] * 2


def test_a_quiet_bind_is_kept_alive_with_enquire_link(smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("voicebot.senders.smpp.ENQUIRE_LINK_SECONDS", 0.3)
    queue(outbox, "Uno.")
    assert OutboxSender(outbox, sender).send_due().sent == 1
    assert smsc.wait_until(lambda: smsc.enquire_links >= 2, timeout=2) and sender.bound


def test_a_long_sms_cut_off_midway_sends_only_the_rest_with_the_same_reference(
        smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox) -> None:
    text = "Señal recibida. " * 20  # 320 septets: three parts
    smsc.refuse = {2: 0x58}
    queue(outbox, text)
    outboxes = OutboxSender(outbox, sender, QUICK_RETRY)
    assert outboxes.send_due().retrying == 1
    assert "(part 2 of 3): the SMSC is throttling" in only(outbox)["last_error"]
    time.sleep(1.1)
    assert outboxes.send_due().sent == 1
    [sms] = smsc.messages()
    assert sms.text == text and [p.number for p in sms.parts] == [1, 3, 4]
    assert only(outbox)["provider_id"] == " ".join(p.message_id for p in sms.parts)


def test_delivery_receipts_are_recorded_in_the_outbox(smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox) -> None:
    queue(outbox, "Su código es 4821.")
    queue(outbox, "Código de firma: " + "ó" * 80)  # two parts
    assert OutboxSender(outbox, sender).send_due().sent == 2
    short, long = smsc.messages()
    assert smsc.send_receipt(short.parts[0].message_id, "DELIVRD") == 0  # with the receipt TLVs
    # the second part's id, in the text only, written in decimal (some SMSCs do)
    assert smsc.send_receipt(str(int(long.parts[1].message_id, 16)), "UNDELIV", tlvs=False) == 0
    assert smsc.send_receipt("ffff", "DELIVRD") == 0  # an id we never sent: answered, nothing recorded
    assert smsc.enquire_link() == 0  # the reader answers the SMSC's keep-alive too
    receipts = {m["body"][:9]: m["receipt"] for m in outbox.list_messages()}
    assert receipts == {"Su código": "DELIVRD", "Código de": "UNDELIV"}


def test_close_unbinds_and_stops_the_reader(smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox) -> None:
    queue(outbox, "Uno.")
    assert OutboxSender(outbox, sender).send_due().sent == 1
    assert sender.bound and any(t.name == "voicebot-smpp" for t in threading.enumerate())
    sender.close()
    assert smsc.unbinds == 1 and not sender.bound
    assert not any(t.name == "voicebot-smpp" for t in threading.enumerate())
    queue(outbox, "Dos.")  # a later message binds again
    assert OutboxSender(outbox, sender).send_due().sent == 1 and smsc.binds == [0, 0]


def test_submits_keep_to_max_per_second(smsc: Smsc, outbox: SqliteOutbox) -> None:
    paced = SmppSender(settings(smsc, max_per_second=5))
    try:
        for n in range(4):
            queue(outbox, f"Mensaje {n}.")
        assert OutboxSender(outbox, paced).send_due().sent == 4
    finally:
        paced.close()
    times = [sub.at for sub in smsc.received]
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.18


def test_no_message_body_or_password_in_logs_or_errors(smsc: Smsc, sender: SmppSender, outbox: SqliteOutbox) -> None:
    secret = "Kx9Qz7Wp"
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler, loggers = Keep(logging.DEBUG), [logging.getLogger("voicebot"), logging.getLogger("smpplib"),
                                             logging.getLogger()]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        smsc.password = "changed"
        smsc.refuse = {1: 0x58}
        smsc.hang_up_at = {2}
        outboxes = OutboxSender(outbox, sender, QUICK_RETRY)
        queue(outbox, f"Clave {secret}. Contraseña temporal.")  # UCS-2
        queue(outbox, f"Clave {secret}. " + "x" * 160)  # GSM-7, in parts
        assert outboxes.send_due().retrying == 2  # bind refused
        assert smsc.binds == [0x0E]  # tried once for both: the next try after sms.smpp.timeout
        smsc.password = PASSWORD
        for _ in range(5):  # throttled, then cut off, then sent: each after its retry wait
            if outbox.pending() == 0:
                break
            time.sleep(max(outbox.next_due_in() or 0.0, 0.1))
            outboxes.send_due()
        assert {m["status"] for m in outbox.list_messages()} == {"delivered"}
        for sms in smsc.messages():  # each receipt quotes the message's first 20 characters
            assert smsc.send_receipt(sms.parts[0].message_id, tlvs=False) == 0
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
    logged = "\n".join(r.getMessage() + (f" {r.exc_info[1]!r}" if r.exc_info else "") for r in records)
    assert "smpp: bound to" in logged and "delivery receipt DELIVRD" in logged  # the handler did see the sender
    # the errors (the outbox keeps each as last_error until the message is sent) are in the log
    assert "ESME_RINVPASWD" in logged and "ESME_RTHROTTLED" in logged and "SMSC was lost" in logged
    forms = [secret, secret.encode().hex(), secret.encode("utf-16-be").hex(), PASSWORD, PASSWORD.encode().hex()]
    leaked = [n for n, form in enumerate(forms) if form in logged]
    assert leaked == []


def test_a_message_that_is_not_an_sms_is_refused_for_good(smsc: Smsc, sender: SmppSender,
                                                          outbox: SqliteOutbox) -> None:
    outbox.send_email(OutgoingMessage("ana@bank.example", "hola", subject="x"))
    [message] = outbox.claim_due(60)
    with pytest.raises(DeliveryError) as refused:
        sender.deliver(message)
    assert refused.value.permanent and smsc.binds == []


def test_a_console_recovery_sends_its_password_sms_over_smpp(tmp_path: Path, smsc: Smsc) -> None:
    from voicebot.logs import configure_logging

    config = make_config(tmp_path, sms={"transport": "smpp", "smpp": {
        "host": "127.0.0.1", "port": smsc.port, "password": PASSWORD, "timeout": 1, "max_per_second": 100}})
    configure_logging(config)
    line = Line.open(config, echo=io.StringIO())
    try:
        line.ensure_demo_bank()
        result = Caller(line).call(["1", "1", "1", "1", "12345678", "4567", "1234"])
        assert result.outcome == "credentials_sent"
        sms = [m for m in smsc.messages() if m.destination == "34600000001"]
        prefix = "Su contraseña temporal de Banca Electrónica es "
        assert len(sms) == 1 and sms[0].text.startswith(prefix) and sms[0].data_coding == UCS2
        password = sms[0].text[len(prefix):].split(".")[0]  # never printed: only looked for
        assert len(password) >= 6
        assert "[E-mail to ana.garcia@example.com]" in result.transcript  # the e-mail still goes to the demo
        [queued] = [m for m in line.outbox.list_messages() if m["channel"] == "sms"]
        assert queued["status"] == "delivered"
        assert queued["provider_id"] == " ".join(p.message_id for p in sms[0].parts)
    finally:
        line.close()
    assert smsc.unbinds == 1  # the line's close() unbound
    log_text = Path(config.logging.file).read_text(encoding="utf-8")  # type: ignore[arg-type]
    leaked = password in log_text or password in result.transcript
    assert "smpp: bound to" in log_text and not leaked
