"""SIPp UAC scenarios for the SIP tests, written from Python so every variant stays consistent.

    .venv/bin/python -m tests.sip.make_scenarios    # from the repo root: (re)writes tests/sip/scenarios/

``scenario(kind, groups, ...)`` returns the XML of one scenario; tests/sipp.py calls it to
write variants (another key sequence) into a temporary folder. Conventions of every scenario:

* run with ``-s <dialed number>`` (Request-URI user: 950183313 unlock line, 901511000 support
  line) and ``-key caller <caller ID>`` (From user, e.g. +34600000005);
* in-dialog requests go to the line's Contact (taken from its 200 OK), with its To-tag;
* when the flow ends on the line's side the scenario waits for the line's BYE and answers
  200: no fixed long pauses. Meanwhile it replays 1 s of silence every second (as a phone
  keeps sending audio, so the line's RTP timeout does not end the call first); such a wait
  lasts until SIPp's -timeout. INFO scenarios stream silence all along (rtp_stream); the
  vanishing caller sends none and waits up to ``bye_timeout_ms``;
* an early BYE from the line is an "unexpected message": SIPp answers it 200 and counts the
  call as failed (which is what a BYE at that point means);
* RTP comes only from ``play_pcap_audio`` (never mixed with ``rtp_stream``: SIPp sends those
  from different source ports, which confuses a symmetric-RTP server). The sip-tester pcaps
  are named by absolute path; ours relative to the scenario (``../pcaps/``), except the
  silence rtp_stream loops in the INFO scenarios: ``pcaps/silence_8k.alaw``, relative to
  SIPp's working directory (SIPp 3.6.1 does not look for rtp_stream files beside the scenario).
"""

from __future__ import annotations

import struct
from pathlib import Path

from tests.sip.flows import FLOWS

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
PCAPS = HERE / "pcaps"
SIP_TESTER = Path("/usr/share/sip-tester")  # Debian sip-tester: RFC 4733 pcaps, g711a.pcap

KEY_GAP_MS = 250  # between two keys of a group (a person keying)
GROUP_GAP_MS = 1000  # between key groups: the line keeps keys typed ahead
LEAD_MS = 1000  # after the ACK, before the first key
BYE_TIMEOUT_MS = 120_000  # the line's closing message, transfer message, RTP timeout...
DTMF_PCAP_MS = 140  # each /usr/share/sip-tester/dtmf_2833_*.pcap lasts 140 ms

SDP = """v=0
      o=caller 1000 {version} IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {formats} 101
{rtpmaps}      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=ptime:20
      a={direction}"""
RTPMAP = {8: "PCMA/8000", 0: "PCMU/8000"}

FROM = "From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]"
CONTACT = "Contact: <sip:[caller]@[local_ip]:[local_port];transport=[transport]>"
# the line's Contact from its 200 OK: the Request-URI of our in-dialog requests
TAKE_CONTACT = """
    <action>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" check_it="true" assign_to="line_contact"/>
    </action>"""


def sdp(formats: tuple[int, ...] = (8, 0), version: int = 1, direction: str = "sendrecv") -> str:
    rtpmaps = "".join(f"      a=rtpmap:{pt} {RTPMAP[pt]}\n" for pt in formats)
    return SDP.format(formats=" ".join(map(str, formats)), rtpmaps=rtpmaps, version=version, direction=direction)


def message(start_line: str, headers: list[str], body: str = "", attrs: str = "") -> str:
    lines = "\n      ".join([start_line, *headers, "Content-Length: [len]"])
    return f"""  <send{attrs}>
    <![CDATA[
      {lines}

      {body}
    ]]>
  </send>
"""


def invite(formats: tuple[int, ...], txn: str = "") -> str:
    """The initial INVITE; ``txn`` names its transaction (then every response to it must say so)."""
    return message("INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0", [
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]", FROM,
        "To: <sip:[service]@[remote_ip]:[remote_port]>", "Call-ID: [call_id]", "CSeq: 1 INVITE",
        CONTACT, "Max-Forwards: 70", "Content-Type: application/sdp"], sdp(formats),
        attrs=' retrans="500"' + (f' start_txn="{txn}"' if txn else ""))


def in_dialog(method: str, cseq: int, body: str = "", headers: tuple[str, ...] = (),
              uri: str = "[$line_contact]") -> str:
    """A request of ours inside the dialog (after the line's 200 OK), to the line's Contact
    (``uri``: another target, e.g. the INVITE's own Request-URI)."""
    return message(f"{method} {uri} SIP/2.0", [
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]", FROM,
        "To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]", "Call-ID: [call_id]",
        f"CSeq: {cseq} {method}", CONTACT, "Max-Forwards: 70", *headers], body,
        attrs="" if method == "ACK" else ' retrans="500"')


def reply(code: int, reason: str, body: str = "", headers: tuple[str, ...] = ()) -> str:
    """Our answer to the line's last request (BYE, REFER)."""
    return message(f"SIP/2.0 {code} {reason}", [
        "[last_Via:]", "[last_From:]", "[last_To:]", "[last_Call-ID:]", "[last_CSeq:]", CONTACT, *headers], body)


def answered() -> str:
    """Provisional responses, the 200 OK (keeping the line's Contact) and our ACK."""
    return f"""  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true">{TAKE_CONTACT}
  </recv>
""" + in_dialog("ACK", 1)


def pause(ms: int) -> str:
    return f'  <pause milliseconds="{ms}"/>\n' if ms > 0 else ""


def play(pcap: str) -> str:
    return f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'


def rfc4733_keys(groups: tuple[str, ...]) -> str:
    """One sip-tester pcap per key (140 ms each), KEY_GAP_MS apart, GROUP_GAP_MS between groups.
    NB: a key repeated replays the same pcap: same RTP timestamp and sequence numbers."""
    names = {"#": "pound", "*": "star"}
    out = []
    for g, group in enumerate(groups):
        if g:
            out.append(pause(DTMF_PCAP_MS + GROUP_GAP_MS))
        for k, key in enumerate(group):
            if k:
                out.append(pause(DTMF_PCAP_MS + KEY_GAP_MS))
            out.append(play(f"{SIP_TESTER}/dtmf_2833_{names.get(key, key)}.pcap"))
    # no pause after the last key: a request of the line (BYE, REFER) that arrives while SIPp
    # is in a <pause> is "unexpected" and aborts the call; the next <recv> waits instead
    return "".join(out)


def info_keys(groups: tuple[str, ...], cseq: int) -> tuple[str, int]:
    """One SIP INFO application/dtmf-relay per key; returns the XML and the next CSeq."""
    out = []
    for g, group in enumerate(groups):
        if g:
            out.append(pause(GROUP_GAP_MS))
        for k, key in enumerate(group):
            if k:
                out.append(pause(KEY_GAP_MS))
            out.append(in_dialog("INFO", cseq, f"Signal={key}\n      Duration=160",
                                 ("Content-Type: application/dtmf-relay",)))
            out.append('  <recv response="200"/>\n')
            cseq += 1
    return "".join(out), cseq


def pcap_ms(path: Path) -> int:
    """Length of one of our 20 ms-packet pcaps (packet count x 20 ms)."""
    data, off, count = path.read_bytes(), 24, 0
    while off < len(data):
        off += 16 + struct.unpack("<I", data[off + 8:off + 12])[0]
        count += 1
    return count * 20


def wait_for_bye(timeout_ms: int = BYE_TIMEOUT_MS, silence: str = "") -> str:
    return wait_for("BYE", timeout_ms, silence) + reply(200, "OK")


def wait_for(request: str, timeout_ms: int, silence: str = "") -> str:
    """Wait for the line's request. With ``silence`` (a 1 s pcap), replay it every second
    meanwhile, as a phone keeps sending audio (SIPp then waits as long as its -timeout).
    The first DTMF_PCAP_MS + 20 ms are a plain wait: a play started at once would cut off
    the last key's pcap (a new play_pcap_audio cancels the running one)."""
    if not silence:
        return f'  <recv request="{request}" timeout="{timeout_ms}"/>\n'
    idle, got = f"idle_{request.lower()}", f"got_{request.lower()}"
    return (f'  <recv request="{request}" timeout="{DTMF_PCAP_MS + 20}" ontimeout="{idle}" next="{got}"/>\n'
            f'  <label id="{idle}"/>\n' + play(silence)
            + f'  <recv request="{request}" timeout="1000" ontimeout="{idle}"/>\n'
            f'  <label id="{got}"/>\n')


def our_bye(cseq: int, uri: str = "[$line_contact]") -> str:
    return in_dialog("BYE", cseq, uri=uri) + '  <recv response="200"/>\n'


def document(name: str, comment: str, body: str) -> str:
    # a variable assigned and never used is an error for SIPp: the line's Contact may go unused
    reference = '  <Reference variables="line_contact"/>\n' if "line_contact" in body else ""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- {comment} -->
<!-- Generated by tests/sip/make_scenarios.py: edit that, not this file. -->
<scenario name="{name}">
{body}{reference}</scenario>
"""


def scenario(kind: str, groups: tuple[str, ...] = (), extra_rfc4733: tuple[str, ...] = (),
             inband_pcap: str = "", bye_timeout_ms: int = BYE_TIMEOUT_MS, name: str = "",
             silence_file: str = "pcaps/silence_8k.alaw", silence_dir: str = "../pcaps") -> str:
    """The XML of one scenario.

    kind: rfc4733 | inband | info | hold | bye_mid_flow | refer_accept | refer_decline |
          cancel | options | rejected | unauthorized | vanish
    groups: the key groups (not used by inband, whose keys are in ``inband_pcap``).
    extra_rfc4733: groups keyed by RFC 4733 after the flow (e.g. "#" for the prototype,
          which only hangs up on "#").
    inband_pcap: for inband, the pcap path as SIPp should find it (relative to the scenario).
    silence_dir: where the silence_pcma/pcmu.pcap files are, as SIPp should find them.
    silence_file: for info, the raw A-law file rtp_stream loops. SIPp 3.6.1 opens rtp_stream
          files relative to its working directory (play_pcap_audio ones relative to the
          scenario): run it from tests/sip/, or beside a link "pcaps" (tests/sipp.py does).
    """
    name = name or f"uac_{kind}"
    if kind == "options":
        body = message("OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0", [
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]", FROM,
            "To: <sip:[service]@[remote_ip]:[remote_port]>", "Call-ID: [call_id]", "CSeq: 1 OPTIONS",
            CONTACT, "Max-Forwards: 70", "Accept: application/sdp"], attrs=' retrans="500"')
        body += '  <recv response="200"/>\n'
        return document(name, "OPTIONS ping: expects 200", body)
    if kind in ("rejected", "unauthorized"):
        # a final error answers the INVITE: ACK it inside its transaction (same branch: [last_Via:])
        codes = ('  <recv response="403"/>\n' if kind == "rejected" else
                 '  <recv response="401" optional="true" next="ack"/>\n  <recv response="407"/>\n'
                 '  <label id="ack"/>\n')
        ack = message("ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0", [
            "[last_Via:]", FROM, "[last_To:]", "Call-ID: [call_id]", "CSeq: 1 ACK", "Max-Forwards: 70"])
        provisional = "".join(f'  <recv response="{c}" optional="true"/>\n' for c in (100, 180, 183))
        body = invite((8, 0)) + provisional + codes + ack
        what = "403 Forbidden (source not allowed)" if kind == "rejected" else "401/407 (digest required, none sent)"
        return document(name, f"an INVITE the line refuses: expects {what}", body)
    if kind == "cancel":
        return document(name, CANCEL_COMMENT, invite((8, 0), txn="invite") + CANCEL_BODY)

    formats: tuple[int, ...] = (8, 0)
    cseq = 2
    # after the keys: silence in the codec the line will pick (the first offered), except with
    # INFO (rtp_stream already sends silence; the two must not mix) and for the vanishing caller
    silence = "" if kind in ("info", "vanish") else f"{silence_dir}/silence_{'pcmu' if 'pcmu' in inband_pcap else 'pcma'}.pcap"
    if kind == "inband":
        formats = (0,) if "pcmu" in inband_pcap else (8,)
    elif kind == "info":
        formats = (8,)  # the silence streamed is A-law
    body = invite(formats) + answered() + pause(LEAD_MS)
    if kind in ("rfc4733", "refer_accept", "refer_decline", "bye_mid_flow"):
        body += rfc4733_keys(groups + extra_rfc4733)
    elif kind == "inband":
        # a play runs in the background: wait for its end before the next (keys or silence)
        body += play(inband_pcap) + pause(pcap_ms(PCAPS / Path(inband_pcap).name) - 200)
        body += rfc4733_keys(extra_rfc4733)
    elif kind == "info":
        # a phone keying by INFO still sends audio: A-law silence, looped until the call ends
        # (rtp_stream; never in a scenario that also uses play_pcap_audio)
        body += f'  <nop><action><exec rtp_stream="{silence_file},-1,8"/></action></nop>\n'
        keys, cseq = info_keys(groups + extra_rfc4733, cseq)
        body += keys
    elif kind == "hold":
        half = len(groups) // 2
        body += rfc4733_keys(groups[:half]) + pause(GROUP_GAP_MS)
        for version, direction in ((2, "sendonly"), (3, "sendrecv")):
            body += in_dialog("INVITE", cseq, sdp(formats, version, direction), ("Content-Type: application/sdp",))
            body += '  <recv response="100" optional="true"/>\n  <recv response="200"/>\n'
            body += in_dialog("ACK", cseq) + pause(1500)
            cseq += 1
        body += rfc4733_keys(groups[half:] + extra_rfc4733)
    elif kind == "vanish":
        body += play(f"{SIP_TESTER}/g711a.pcap")  # 7 s of speech, then no RTP at all
    else:
        raise ValueError(f"unknown scenario kind {kind!r}")

    if kind == "bye_mid_flow":
        body += pause(1000) + our_bye(cseq)
    elif kind in ("refer_accept", "refer_decline"):
        body += wait_for("REFER", bye_timeout_ms, silence)
        if kind == "refer_accept":
            body += reply(202, "Accepted")
            body += in_dialog("NOTIFY", cseq, "SIP/2.0 200 OK", (
                "Event: refer", "Subscription-State: terminated;reason=noresource",
                "Content-Type: message/sipfrag;version=2.0"))
            # the line may hang up before its 200 to our NOTIFY reaches us
            body += '  <recv response="200" optional="true"/>\n'
        else:
            body += reply(603, "Declined")  # the line then says the agent's number and hangs up
        body += wait_for_bye(bye_timeout_ms, silence)
    else:
        body += wait_for_bye(bye_timeout_ms, silence)
    return document(name, COMMENTS[kind], body)


COMMENTS = {
    "rfc4733": "keyed flow by RFC 4733 events (sip-tester pcaps), then waits for the line's BYE",
    "inband": "keyed flow by in-band DTMF tones in the G.711 audio (tests/sip/pcaps), then waits for the line's BYE",
    "info": "keyed flow by SIP INFO application/dtmf-relay (Signal=N, Duration=160), then waits for the line's BYE",
    "hold": "keyed flow with hold (re-INVITE a=sendonly) and resume (a=sendrecv) halfway; waits for the line's BYE",
    "bye_mid_flow": "keys part of a flow (e.g. two PIN digits), then the caller hangs up (BYE, expects 200)",
    "refer_accept": "keys a flow that ends in transfer: answers the line's REFER 202, NOTIFY sipfrag 200, waits for BYE",
    "refer_decline": "keys a flow that ends in transfer: answers the REFER 603; the line says the agent's number and hangs up",
    "vanish": "the caller vanishes: 7 s of RTP, then none and no BYE; expects the line's BYE after its RTP timeout",
}

CANCEL_COMMENT = """CANCEL before answer. The CANCEL leaves as soon as the first provisional
     response (100 or 180) arrives. Then either the line cancels (487 to the INVITE, which
     we ACK: logged "cancel: 487") or its 200 OK crossed our CANCEL (we ACK and hang up
     with BYE: logged "cancel: answered first"). Both are successful calls; run with
     -trace_logs to see which happened. A 200 with no provisional before it goes the
     second way without any CANCEL."""

# The crossing branch targets the INVITE's own Request-URI: which of the two 200s (the
# INVITE's, the CANCEL's) SIPp matched last is not certain, so the line's Contact may be unknown.
INVITE_URI = "sip:[service]@[remote_ip]:[remote_port]"
CANCEL_BODY = """  <recv response="100" optional="true" response_txn="invite" next="cancel"/>
  <recv response="180" optional="true" response_txn="invite" next="cancel"/>
  <recv response="183" optional="true" response_txn="invite" next="cancel"/>
  <recv response="200" response_txn="invite" next="answered"/>
  <label id="cancel"/>
""" + message("CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0", [
    "[last_Via:]", FROM, "To: <sip:[service]@[remote_ip]:[remote_port]>", "Call-ID: [call_id]",
    "CSeq: 1 CANCEL", "Max-Forwards: 70"], attrs=' start_txn="cancel"') + """  <recv response="100" optional="true" response_txn="invite"/>
  <recv response="180" optional="true" response_txn="invite"/>
  <recv response="183" optional="true" response_txn="invite"/>
  <recv response="200" optional="true" response_txn="cancel"/>
  <recv response="481" optional="true" response_txn="cancel"/>
  <recv response="487" optional="true" response_txn="invite" next="cancelled"/>
  <recv response="200" response_txn="invite"/>
  <label id="answered"/>
  <nop><action><log message="cancel: answered first"/></action></nop>
""" + in_dialog("ACK", 1, uri=INVITE_URI) + pause(200) + our_bye(2, uri=INVITE_URI) + """  <nop next="end"/>
  <label id="cancelled"/>
  <nop><action><log message="cancel: 487"/></action></nop>
""" + message("ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0", [
    "[last_Via:]", FROM, "[last_To:]", "Call-ID: [call_id]", "CSeq: 1 ACK", "Max-Forwards: 70"],
    attrs=' ack_txn="invite"') + """  <label id="end"/>
"""


def committed() -> dict[str, str]:
    """File name -> XML of the scenarios kept in tests/sip/scenarios/."""
    f = FLOWS
    out = {
        "uac_options.xml": scenario("options"),
        "uac_rejected_403.xml": scenario("rejected", name="uac_rejected_403"),
        "uac_unauthorized.xml": scenario("unauthorized"),
        "uac_cancel.xml": scenario("cancel"),
        "uac_vanish.xml": scenario("vanish"),
        "uac_hold_signature_unlock.xml": scenario("hold", f["signature_unlock"].groups, name="uac_hold_signature_unlock"),
        "uac_bye_mid_pin.xml": scenario("bye_mid_flow", f["bye_mid_pin"].groups, name="uac_bye_mid_pin"),
        "uac_refer_accept_agent.xml": scenario("refer_accept", f["agent_request"].groups, name="uac_refer_accept_agent"),
        "uac_refer_decline_agent.xml": scenario("refer_decline", f["agent_request"].groups, name="uac_refer_decline_agent"),
    }
    for flow in ("signature_unlock", "recover_user", "operation_unlock"):
        out[f"uac_rfc4733_{flow}.xml"] = scenario("rfc4733", f[flow].groups, name=f"uac_rfc4733_{flow}")
        out[f"uac_info_{flow}.xml"] = scenario("info", f[flow].groups, name=f"uac_info_{flow}")
        for codec in ("pcma", "pcmu"):
            out[f"uac_inband_{codec}_{flow}.xml"] = scenario(
                "inband", inband_pcap=f"../pcaps/{flow}_{codec}.pcap", name=f"uac_inband_{codec}_{flow}")
    return out


def main() -> None:
    SCENARIOS.mkdir(exist_ok=True)
    for old in SCENARIOS.glob("uac_*.xml"):
        if "Generated by tests/sip/make_scenarios.py" in old.read_text():  # (hand-written ones stay)
            old.unlink()
    for file_name, xml in sorted(committed().items()):
        (SCENARIOS / file_name).write_text(xml)
        print(f"tests/sip/scenarios/{file_name}")


if __name__ == "__main__":
    main()
