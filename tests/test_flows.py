"""Every leaf of the unlock menu, in both languages, by keys only and by phrases only.

Each call runs through the console transport over the real engine, the rule-based NLU and
the embedded SQLite bank with the demo customers (voicebot/data/demo_bank.yaml).
"""

from __future__ import annotations

import re

import pytest

from voicebot.backends.base import CodePurpose
from voicebot.masking import Secret

from .conftest import SUPPORT_LINE, Caller

LANGUAGE = {
    ("es", "keys"): "1", ("en", "keys"): "2",
    ("es", "phrases"): "castellano", ("en", "phrases"): "english",
}

# flow -> (language, mode) -> the caller's lines after the language choice
SCRIPTS: dict[str, dict[tuple[str, str], list[str]]] = {
    # C001, DNI 12345678Z, card 4567 / PIN 1234, e-banking user
    "recover_user_ebanking_dni": {
        ("es", "keys"): ["1", "1", "1", "12345678", "4567", "1234"],
        ("en", "keys"): ["1", "1", "1", "12345678", "4567", "1234"],
        ("es", "phrases"): ["usuario", "banca electrónica", "DNI", "uno dos tres cuatro cinco seis siete ocho",
                            "cuatro cinco seis siete", "uno dos tres cuatro"],
        ("en", "phrases"): ["user", "online banking", "DNI", "one two three four five six seven eight",
                            "four five six seven", "one two three four"],
    },
    # C002, NIE X1234567L (X keyed as 0), card 1111 / PIN 2222, telephone-banking user
    "recover_user_phone_nie": {
        ("es", "keys"): ["1", "2", "2", "01234567", "1111", "2222"],
        ("en", "keys"): ["1", "2", "2", "01234567", "1111", "2222"],
        ("es", "phrases"): ["usuario", "banca telefónica", "NIE", "equis uno dos tres cuatro cinco seis siete",
                            "uno uno uno uno", "dos dos dos dos"],
        ("en", "phrases"): ["user", "telephone banking", "NIE", "ex one two three four five six seven",
                            "one one one one", "two two two two"],
    },
    # C005, NIE Y7654321G (Y keyed as 1), card 5555 / PIN 5555
    "signature_unlock": {
        ("es", "keys"): ["3", "1", "2", "17654321", "5555", "5555"],
        ("en", "keys"): ["3", "1", "2", "17654321", "5555", "5555"],
        ("es", "phrases"): ["otras gestiones", "firma", "NIE", "i griega siete seis cinco cuatro tres dos uno ge",
                            "cinco cinco cinco cinco", "cinco cinco cinco cinco"],
        ("en", "phrases"): ["other procedures", "signature", "NIE", "why seven six five four three two one",
                            "five five five five", "five five five five"],
    },
    # C001: operation 20261129001 on screen, card 9012 / PIN 4321
    "sms_key": {
        ("es", "keys"): ["3", "2", "1", "12345678", "20261129001#", "9012", "4321"],
        ("en", "keys"): ["3", "2", "1", "12345678", "20261129001#", "9012", "4321"],
        ("es", "phrases"): ["otras gestiones", "clave de firma SMS", "DNI",
                            "doce millones trescientos cuarenta y cinco mil seiscientos setenta y ocho",
                            "dos cero dos seis uno uno dos nueve cero cero uno", "nueve cero uno dos",
                            "cuatro tres dos uno"],
        ("en", "phrases"): ["other procedures", "SMS signature key", "DNI",
                            "one two three four five six seven eight",
                            "two zero two six one one two nine zero zero one", "nine zero one two",
                            "four three two one"],
    },
    # C001 calls from the registered +34600000001
    "operation_unlock": {
        ("es", "keys"): ["2", "20261129001#"],
        ("en", "keys"): ["2", "20261129001#"],
        ("es", "phrases"): ["operación", "dos cero dos seis uno uno dos nueve cero cero uno"],
        ("en", "phrases"): ["operation", "two zero two six one one two nine zero zero one"],
    },
    "cif_passport": {
        ("es", "keys"): ["1", "1", "3"],
        ("en", "keys"): ["1", "1", "3"],
        ("es", "phrases"): ["usuario", "banca electrónica", "pasaporte"],
        ("en", "phrases"): ["user", "online banking", "passport"],
    },
    "cif_passport_signature": {
        ("es", "keys"): ["3", "1", "3"],
        ("en", "keys"): ["3", "1", "3"],
        ("es", "phrases"): ["otras gestiones", "firma", "CIF"],
        ("en", "phrases"): ["other procedures", "signature", "CIF"],
    },
    # C003 has no e-mail
    "contact_missing_email": {
        ("es", "keys"): ["1", "1", "1", "87654321", "3333", "3333"],
        ("en", "keys"): ["1", "1", "1", "87654321", "3333", "3333"],
        ("es", "phrases"): ["usuario", "banca electrónica", "DNI", "ocho siete seis cinco cuatro tres dos uno",
                            "tres tres tres tres", "tres tres tres tres"],
        ("en", "phrases"): ["user", "online banking", "DNI", "eight seven six five four three two one",
                            "three three three three", "three three three three"],
    },
    "cif_passport_sms_key": {
        ("es", "keys"): ["3", "2", "3"],
        ("en", "keys"): ["3", "2", "3"],
        ("es", "phrases"): ["otras gestiones", "clave sms", "pasaporte"],
        ("en", "phrases"): ["other procedures", "sms key", "passport"],
    },
    # C004 calls from its registered landline but has no mobile for the code
    "contact_missing_mobile": {
        ("es", "keys"): ["2", "444000444#"],
        ("en", "keys"): ["2", "444000444#"],
        ("es", "phrases"): ["operación", "cuatro cuatro cuatro cero cero cero cuatro cuatro cuatro"],
        ("en", "phrases"): ["operation", "four four four zero zero zero four four four"],
    },
    "operation_not_found": {
        ("es", "keys"): ["2", "1111#", "2222#", "3333#"],
        ("en", "keys"): ["2", "1111#", "2222#", "3333#"],
        ("es", "phrases"): ["operación", "uno uno uno uno", "dos dos dos dos", "tres tres tres tres"],
        ("en", "phrases"): ["operation", "one one one one", "two two two two", "three three three three"],
    },
    "verification_failed": {
        # Three different cards: the same one three times would lock it, as a real card locks.
        ("es", "keys"): ["3", "1", "1", *[part for card in ("4567", "4568", "4569")
                                          for part in ("11223344", card, "1234")]],
        ("en", "keys"): ["3", "1", "1", *[part for card in ("4567", "4568", "4569")
                                          for part in ("11223344", card, "1234")]],
        ("es", "phrases"): ["otras gestiones", "firma", "DNI",
                            *[part for card in ("siete", "ocho", "nueve") for part in
                              ("uno uno dos dos tres tres cuatro cuatro", f"cuatro cinco seis {card}", "uno dos tres cuatro")]],
        ("en", "phrases"): ["other procedures", "signature", "DNI",
                            *[part for card in ("seven", "eight", "nine") for part in
                              ("one one two two three three four four", f"four five six {card}", "one two three four")]],
    },
    "no_input": {
        ("es", "keys"): ["", "", ""],
        ("en", "keys"): ["", "", ""],
        ("es", "phrases"): ["", "", ""],
        ("en", "phrases"): ["", "", ""],
    },
    "no_match": {
        ("es", "keys"): ["5", "8", "9"],
        ("en", "keys"): ["5", "8", "9"],
        ("es", "phrases"): ["una pizza", "el tiempo", "nada"],
        ("en", "phrases"): ["a pizza", "the weather", "nothing"],
    },
    "caller_not_registered": {
        ("es", "keys"): ["2"],
        ("en", "keys"): ["2"],
        ("es", "phrases"): ["desbloquear una operación"],
        ("en", "phrases"): ["unlock an operation"],
    },
    "agent_request": {
        ("es", "keys"): ["0"],
        ("en", "keys"): ["0"],
        ("es", "phrases"): ["quiero hablar con un operador"],
        ("en", "phrases"): ["I want to speak to an agent"],
    },
}

EXPECTED = {
    "recover_user_ebanking_dni": ("credentials_sent", None),
    "recover_user_phone_nie": ("credentials_sent", None),
    "signature_unlock": ("signature_unlocked", None),
    "sms_key": ("sms_key_spoken", None),
    "operation_unlock": ("operation_code_sent", None),
    "cif_passport": ("transferred", "document_type_not_supported"),
    "cif_passport_signature": ("transferred", "document_type_not_supported"),
    "contact_missing_email": ("transferred", "contact_missing"),
    "caller_not_registered": ("transferred", "caller_not_registered"),
    "cif_passport_sms_key": ("transferred", "document_type_not_supported"),
    "contact_missing_mobile": ("transferred", "contact_missing"),
    "operation_not_found": ("transferred", "operation_not_found"),
    "verification_failed": ("transferred", "verification_failed"),
    "no_input": ("transferred", "no_input"),
    "no_match": ("transferred", "no_match"),
    "agent_request": ("transferred", "caller_request"),
}
CALLER_IDS = {"caller_not_registered": "+34699999999", "contact_missing_mobile": "+34950000004"}
CASES = [(flow, lang, mode) for flow in SCRIPTS for lang in ("es", "en") for mode in ("keys", "phrases")]


@pytest.mark.parametrize("flow,lang,mode", CASES, ids=["-".join(case) for case in CASES])
def test_every_leaf(caller: Caller, flow: str, lang: str, mode: str) -> None:
    script = [LANGUAGE[(lang, mode)], *SCRIPTS[flow][(lang, mode)]]
    result = caller.call(script, caller_id=CALLER_IDS.get(flow, "+34600000001"))
    assert (result.outcome, result.reason) == EXPECTED[flow], result.transcript
    assert result.record["language"] == lang
    inputs = result.record["inputs"]
    modes = {item["mode"] for item in inputs} - {"timeout"}
    assert modes == ({"key"} if mode == "keys" else {"speech"}), inputs


SUPPORT_SCRIPTS = {
    # (language, mode) -> script on the support line, and the outcome
    ("es", "keys"): (["4", "2", "20261129001#"], "operation_code_sent"),
    ("en", "keys"): (["9", "4", "2", "20261129001#"], "operation_code_sent"),
    ("es", "phrases"): (["desbloqueo de claves", "operación", "dos cero dos seis uno uno dos nueve cero cero uno"],
                        "operation_code_sent"),
    ("en", "phrases"): (["unlock my credentials", "operation", "two zero two six one one two nine zero zero one"],
                        "operation_code_sent"),
}


@pytest.mark.parametrize("lang,mode", list(SUPPORT_SCRIPTS), ids=["-".join(k) for k in SUPPORT_SCRIPTS])
def test_support_line_leaves(caller: Caller, lang: str, mode: str) -> None:
    script, outcome = SUPPORT_SCRIPTS[(lang, mode)]
    result = caller.call(script, dialed=SUPPORT_LINE)
    assert result.outcome == outcome, result.transcript
    assert result.record["language"] == lang
    other = caller.call(["9" if lang == "en" else "8", "1"] if mode == "keys" else
                        ["other enquiries" if lang == "en" else "otras consultas"], dialed=SUPPORT_LINE)
    assert (other.outcome, other.reason) == ("transferred", "support_other")
    assert other.record["language"] == lang


def test_recovered_credentials_reach_email_and_sms(caller: Caller) -> None:
    result = caller.call(["1", *SCRIPTS["recover_user_ebanking_dni"][("es", "keys")]])
    assert result.outcome == "credentials_sent"
    assert "[E-mail to ana.garcia@example.com]" in result.transcript
    assert "Su usuario de Banca Electrónica es: agarcia" in result.transcript
    sms = re.search(r"\[SMS to \+34600000001\] .* es (\S+)\. Caduca", result.transcript)
    assert sms, result.transcript
    users = {c["id"]: c for c in caller.line.bank.list_customers()}["C001"]["users"]
    assert users["ebanking"]["must_change"] is True or users["ebanking"]["must_change"] == 1


def test_spoken_sms_key_is_the_issued_key(caller: Caller) -> None:
    result = caller.call(["1", *SCRIPTS["sms_key"][("es", "keys")]])
    assert result.outcome == "sms_key_spoken"
    spoken = result.prompts()[-1]
    match = re.search(r"clave de firma SMS es: ([\d ,]+)\.", spoken)
    assert match, spoken
    key = re.sub(r"\D", "", match.group(1))
    assert len(key) == caller.line.config.codes.sms_key_length
    bank = caller.line.bank
    assert bank.redeem_code("C001", CodePurpose.SMS_SIGNATURE_KEY, "20261129001", Secret(key))
    assert not bank.redeem_code("C001", CodePurpose.SMS_SIGNATURE_KEY, "20261129001", Secret(key))  # single use


def test_sms_key_can_be_heard_again(caller: Caller) -> None:
    result = caller.call(["1", *SCRIPTS["sms_key"][("es", "keys")], "*", ""])
    assert result.outcome == "sms_key_spoken"
    spoken = [p for p in result.prompts() if "clave de firma SMS es" in p]
    assert len(spoken) == 2 and spoken[0] == spoken[1]
    assert result.transcript.rstrip().endswith("ended: sms_key_spoken")


def test_operation_code_goes_by_sms_and_unlocks_once(caller: Caller) -> None:
    result = caller.call(["1", *SCRIPTS["operation_unlock"][("es", "keys")]])
    code = re.search(r"operación 20261129001: (\d+)\.", result.transcript)
    assert code, result.transcript
    bank = caller.line.bank
    assert bank.redeem_code("C001", CodePurpose.OPERATION_UNLOCK, "20261129001", Secret(code.group(1)))
    assert not bank.redeem_code("C001", CodePurpose.OPERATION_UNLOCK, "20261129001", Secret(code.group(1)))


def test_signature_is_unlocked_in_the_bank(caller: Caller) -> None:
    before = {c["id"]: c for c in caller.line.bank.list_customers()}["C005"]
    assert before["signature_blocked"]
    caller.call(["1", *SCRIPTS["signature_unlock"][("es", "keys")]])
    after = {c["id"]: c for c in caller.line.bank.list_customers()}["C005"]
    assert not after["signature_blocked"]


def test_customer_without_mobile_is_told_and_offered_an_agent(caller: Caller) -> None:
    # C004 calls from its registered landline but has no mobile for the unlock code.
    result = caller.call(["1", "2", "444000444#"], caller_id="+34950000004")
    assert (result.outcome, result.reason) == ("transferred", "contact_missing")
    assert any("correo electrónico y su móvil actualizados" in p for p in result.prompts())


def test_unregistered_caller_hears_why(caller: Caller) -> None:
    result = caller.call(["2", "2"], caller_id="+34699999999")
    assert any("registered with the bank" in p for p in result.prompts())
    result = caller.call(["1", "2"], caller_id=None)
    assert result.reason == "caller_not_registered"


def test_unknown_operation_reference_is_asked_again(caller: Caller) -> None:
    result = caller.call(["1", "2", "99999999#", "20261129001#"])
    assert result.outcome == "operation_code_sent"
    assert any("No encontramos ninguna operación bloqueada" in p for p in result.prompts())


def test_wrong_pin_three_times_across_two_calls_locks_the_card(caller: Caller) -> None:
    first = caller.call(["1", "1", "1", "1", "12345678", "4567", "0000", "12345678", "4567", "9999"])
    assert first.outcome == "caller_hung_up"
    assert first.record["actions"] == [{"action": "verify_card", "result": "mismatch"}] * 2
    second = caller.call(["1", "1", "1", "1", "12345678", "4567", "0001"])
    assert (second.outcome, second.reason) == ("transferred", "card_locked")
    # Locked stays locked, even with the right PIN.
    third = caller.call(["1", "1", "1", "1", "12345678", "4567", "1234"])
    assert (third.outcome, third.reason) == ("transferred", "card_locked")
    # The customer's other card still works.
    fourth = caller.call(["1", "1", "1", "1", "12345678", "9012", "4321"])
    assert fourth.outcome == "credentials_sent"


def test_mismatch_never_says_which_factor(caller: Caller) -> None:
    unknown_document = caller.call(["1", "1", "1", "1", "11223344", "4567", "1234"])
    wrong_card = caller.call(["1", "1", "1", "1", "12345678", "7777", "1234"])
    wrong_pin = caller.call(["1", "1", "1", "1", "12345678", "4567", "1235"])
    said = {tuple(result.prompts()) for result in (unknown_document, wrong_card, wrong_pin)}
    assert len(said) == 1


def test_three_failed_verifications_in_one_call_go_to_an_agent(caller: Caller) -> None:
    attempts = [part for card in ("4567", "4568", "4569") for part in ("11223344", card, "1234")]
    result = caller.call(["1", "1", "1", "1", *attempts])
    assert (result.outcome, result.reason) == ("transferred", "verification_failed")


def test_a_made_up_card_tried_three_times_locks_like_a_real_one(caller: Caller) -> None:
    attempt = ["11223344", "4567", "1234"]  # a document the bank does not have
    made_up = caller.call(["1", "1", "1", "1", *attempt * 3], caller_id="+34699000001")
    real = caller.call(["1", "1", "1", "1", "12345678", "9012", "0000", "12345678", "9012", "0001",
                        "12345678", "9012", "0002"], caller_id="+34699000002")
    assert (made_up.outcome, made_up.reason) == (real.outcome, real.reason) == ("transferred", "card_locked")
    again = caller.call(["1", "1", "1", "1", *attempt], caller_id="+34699000003")
    assert again.reason == "card_locked"  # and it stays locked, as a real card does


def test_invalid_dni_is_re_asked(caller: Caller) -> None:
    result = caller.call(["1", "1", "1", "1", "1234567#", "12345678", "4567", "1234"])
    assert result.outcome == "credentials_sent"
    assert "Perdone, no le he entendido." in result.transcript or "no es válido" in result.transcript


def test_spoken_dni_with_wrong_letter_is_refused(caller: Caller) -> None:
    result = caller.call(["1", "1", "1", "1", "doce millones trescientos cuarenta y cinco mil seiscientos setenta y ocho a"])
    assert any(p.startswith("Ese número de DNI no es válido") for p in result.prompts())


def test_no_input_three_times_goes_to_an_agent(caller: Caller) -> None:
    result = caller.call(["", "", ""])
    assert (result.outcome, result.reason) == ("transferred", "no_input")
    prompts = result.prompts()
    assert prompts[1].startswith("No le he oído.") and prompts[2].startswith("No le he oído.")
    assert prompts[-1].startswith("Le paso con un operador")


def test_invalid_option_re_prompts_then_works(caller: Caller) -> None:
    result = caller.call(["1", "5", "1", "1", "3"])
    assert result.reason == "document_type_not_supported"
    assert "Perdone, no le he entendido. Usuario, 1. Operación, 2. Otras gestiones, 3." in result.prompts()


def test_invalid_option_three_times_goes_to_an_agent(caller: Caller) -> None:
    result = caller.call(["1", "5", "8", "quiero una pizza"])
    assert (result.outcome, result.reason) == ("transferred", "no_match")


def test_star_repeats_the_menu(caller: Caller) -> None:
    result = caller.call(["1", "*", "repite", "1", "1", "3"])
    prompts = result.prompts()
    assert prompts[1] == prompts[2] == prompts[3]
    assert prompts[1].startswith("Para desbloquear o recuperar su usuario")
    assert result.reason == "document_type_not_supported"


def test_star_restarts_a_digit_entry(caller: Caller) -> None:
    result = caller.call(["1", "1", "1", "1", "1299*", "12345678", "4567", "1234"])
    assert result.outcome == "credentials_sent"


def test_back_returns_to_the_previous_menu(caller: Caller) -> None:
    result = caller.call(["1", "1", "#", "3", "atrás", "volver", "#", "1", "2", "20261129001#"])
    assert result.outcome == "operation_code_sent"
    assert result.record["path"][:8] == ["language", "main", "user_channel", "main", "other", "main", "language", "main"]
    assert "Ya está en el menú inicial." in " ".join(result.prompts())


def test_back_by_voice_in_english(caller: Caller) -> None:
    result = caller.call(["2", "user", "go back", "operation", "two zero two six one one two nine zero zero one"])
    assert result.outcome == "operation_code_sent"


def test_type_ahead_keys_on_one_line(caller: Caller) -> None:
    # All keys typed at once, while the first prompt is still on: none is lost.
    result = caller.call(["1 1 1 1 12345678 4567 1234"])
    assert result.outcome == "credentials_sent"
    assert result.record["path"][:5] == ["language", "main", "user_channel", "document_type", "dni_number"]


@pytest.mark.parametrize("lang,sentence", [
    ("es", "quiero recuperar mi usuario de banca electrónica, tengo DNI"),
    ("en", "I want to recover my username for online banking, I have a DNI"),
])
def test_one_sentence_shortcut(caller: Caller, lang: str, sentence: str) -> None:
    result = caller.call([sentence, "12345678", "4567", "1234"])
    assert result.outcome == "credentials_sent", result.transcript
    assert result.record["language"] == lang
    assert [i["mode"] for i in result.record["inputs"][:4]] == ["speech", "shortcut", "shortcut", "shortcut"]
    # The caller heard the document question straight after the sentence.
    assert result.prompts()[1].startswith(("Teclee los 8 números de su DNI", "Key in the 8 digits of your DNI"))


def test_shortcut_with_the_document_number(caller: Caller) -> None:
    result = caller.call(["1", "quiero desbloquear la firma, mi DNI es el 12345678 Z", "4567", "1234"])
    assert result.outcome == "signature_unlocked", result.transcript


def test_support_line_option_4_leads_to_the_unlock_menu(caller: Caller) -> None:
    result = caller.call(["4", "2", "20261129001#"], dialed=SUPPORT_LINE)
    assert result.record["entry_point"] == "support_line"
    assert result.outcome == "operation_code_sent"


def test_support_line_other_enquiries_go_to_an_agent(caller: Caller) -> None:
    result = caller.call(["1"], dialed="950 210 191")
    assert (result.outcome, result.reason) == ("transferred", "support_other")


def test_support_line_in_english(caller: Caller) -> None:
    result = caller.call(["english", "unlock", "operation", "20261129001#"], dialed=SUPPORT_LINE)
    assert result.record["language"] == "en"
    assert result.outcome == "operation_code_sent"


def test_language_given_in_advance_skips_the_choice(caller: Caller) -> None:
    result = caller.call(["1", "1", "3"], lang="en")
    assert result.prompts()[0].startswith("To unlock or recover your user")
    assert result.reason == "document_type_not_supported"


def test_caller_hangs_up_mid_call(caller: Caller) -> None:
    result = caller.call(["1", "1"])
    assert result.outcome == "caller_hung_up"
    assert result.record["path"] == ["language", "main", "user_channel"]


def test_goodbye_ends_the_call(caller: Caller) -> None:
    result = caller.call(["1", "adiós"])
    assert (result.outcome, result.reason) == ("caller_hung_up", "goodbye")
    assert result.prompts()[-1] == "Gracias por llamar. Adiós."


def test_help_explains_the_menu(caller: Caller) -> None:
    result = caller.call(["1", "ayuda", "1", "ayuda"])
    prompts = result.prompts()
    assert prompts[2].startswith("Puede decir lo que necesita con sus palabras")
    assert prompts[4].startswith("Puede pulsar la tecla de cada opción o decirla")


def test_every_call_is_recorded(caller: Caller) -> None:
    caller.call(["1", "0"])
    caller.call(["2", "2", "20261129001#"])
    records = caller.line.call_log.recent(5)
    assert [r["outcome"] for r in records] == ["operation_code_sent", "transferred"]
    assert records[0]["caller_id"] == "+34600000001" and records[0]["dialed"] == "950183313"
    assert records[1]["transfer_context"]["reason"] == "caller_request"


def test_a_guesser_who_keeps_calling_is_paused_and_put_through_to_an_agent(caller: Caller) -> None:
    # Two calls of 3 failed checks each (one wrong PIN on the real card, so it never locks,
    # and two cards the customer does not have), then a third call with the right answers:
    # 6 failures for this caller ID (and this document) pause the checks for the window,
    # and the caller is put through to an agent, not told which factor was wrong.
    limits = caller.line.config.lockout
    assert limits.failures_per_caller == 6 and limits.failures_per_document == 6
    wrong = ["1", "1", "1", "1", "12345678", "4567", "9999"]
    for made_up in (("1111", "2222"), ("3333", "5555")):  # cards this customer does not have: mismatches too
        others = [part for card in made_up for part in ("12345678", card, "9999")]
        result = caller.call(wrong + others, caller_id="+34699000111")
        assert (result.outcome, result.reason) == ("transferred", "verification_failed")
    third = caller.call(["1", "1", "1", "1", "12345678", "4567", "1234"], caller_id="+34699000111")
    assert third.outcome == "transferred" and third.reason == "verification_paused", third.transcript
    assert "no podemos seguir con la verificación" in third.transcript
