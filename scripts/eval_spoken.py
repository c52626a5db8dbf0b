#!/usr/bin/env python3
"""Spoken replays of the scripted conversations (eval/calls/*.txt): every caller turn is
spoken by espeak-ng (en-us; Chinese by `voxdesk say` with another Kokoro voice than the
bot's, zm_yunxi, or with --zh-speaker espeak by espeak-ng's cmn), the turns are joined with `--reply-s` seconds of silence
between them (room for the bot's answer) after `--greeting-s` of silence (the greeting), and
the conversation is played
  - through `voxdesk talk --wav` (as `voxdesk eval calls` does for a script with a `# wav:`
    line: voice activity, turn-taking, Whisper, NLU, dialog), and
  - through sipp: a real SIP call on loopback to `voxdesk serve`, G.711 mu-law RTP, the
    outcome read from the server's SQLite file (escalations, end reason).
Chinese scripts run against a deployment with speech.language = "zh".

Usage: scripts/eval_spoken.py path/to/voxdesk [--calls eval/calls] [--match calm]
                                [--via talk,sipp] [--reply-s 12] [--out DIR]
Needs espeak-ng and sipp (scripts/setup.sh installs both) and the fetched models. Not run by
CI (a conversation takes its real length over sipp); tests/conversation.rs covers spoken
calls in CI. Prints one line per conversation and a summary per route."""
import warnings
warnings.filterwarnings("ignore", category=DeprecationWarning)
import argparse, audioop, glob, os, random, re, shutil, socket, sqlite3, subprocess, sys
import tempfile, time, wave

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Debian's espeak-ng (1.51) reads Chinese characters badly (tone digits in English); it reads
# tone-numbered pinyin well with the cmn-latn-pinyin voice. pypinyin converts: it lives in a
# private venv, .venv-eval, made here on first use.
try:
    from pypinyin import lazy_pinyin, Style
except ImportError:
    venv = os.path.join(ROOT, ".venv-eval")
    py = os.path.join(venv, "bin", "python")
    if os.path.abspath(sys.executable) == os.path.abspath(py):
        sys.exit("pypinyin did not install in .venv-eval")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "pypinyin==0.55.0"], check=True)
    os.execv(py, [py] + sys.argv)
ap = argparse.ArgumentParser()
ap.add_argument("binary")
ap.add_argument("--calls", default=os.path.join(ROOT, "eval/calls"))
ap.add_argument("--match", default="", help="only scripts whose name contains this")
ap.add_argument("--via", default="talk,sipp")
ap.add_argument("--reply-s", type=float, default=12.0)
ap.add_argument("--greeting-s", type=float, default=10.0)
ap.add_argument("--out", default="")
ap.add_argument("--models", default=os.path.join(ROOT, "models"))
ap.add_argument("--zh-speaker", default="zm_yunxi",
                help="Kokoro voice that speaks the Chinese caller turns, or 'espeak'")
args = ap.parse_args()
binary = os.path.abspath(args.binary)
out = args.out or tempfile.mkdtemp(prefix="vx-spoken-")
os.makedirs(out, exist_ok=True)


def parse(path):
    lang, expect, turns = None, "any", []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line:
            continue
        m = re.match(r"#\s*(\w+)\s*:\s*(.*)", line)
        if m:
            if m.group(1) == "lang":
                lang = m.group(2).strip()
            elif m.group(1) == "expect":
                expect = m.group(2).strip()
            continue
        if not line.startswith("#"):
            turns.append(line)
    if lang is None:
        lang = "zh" if any(re.search("[\u4e00-\u9fff]", t) for t in turns) else "en"
    return lang, expect, turns


PUNCT = {"，": ", ", "。": ". ", "？": "? ", "！": "! ", "、": ", ", "；": "; ", "：": ": "}


def say_kokoro(text, path):
    """The caller's Chinese turn in a Kokoro voice (voxdesk say: 8 kHz mono)."""
    cfg = os.path.join(out, "caller-voice.toml")
    open(cfg, "w").write(f"""[paths]
data_dir = "{os.path.join(out, 'caller-data')}"
models_dir = "{os.path.abspath(args.models)}"
[models]
tts_voice_zh = "kokoro/voices/{args.zh_speaker}.bin"
""")
    subprocess.run([binary, "-c", cfg, "--log", "warn", "say", text, "--out", path],
                   check=True, stdout=subprocess.DEVNULL)
    w = wave.open(path)
    pcm = w.readframes(w.getnframes())
    w.close()
    return pcm


def speak(text, lang, path):
    voice = "en-us"
    if lang == "zh" and args.zh_speaker != "espeak":
        return say_kokoro(text, path)
    if lang == "zh":
        voice = "cmn-latn-pinyin"
        text = "".join(PUNCT.get(c, c) for c in text)
        text = " ".join(lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True))
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", path, text], check=True)
    w = wave.open(path)
    pcm, rate = w.readframes(w.getnframes()), w.getframerate()
    w.close()
    pcm, _ = audioop.ratecv(pcm, 2, 1, rate, 8000, None)
    return pcm


def conversation(name, lang, turns):
    """One 8 kHz 16-bit WAV and the same audio as raw mu-law (for sipp's rtp_stream)."""
    silence = lambda s: b"\0\0" * int(s * 8000)
    pcm = silence(args.greeting_s)
    for i, t in enumerate(turns):
        pcm += speak(t, lang, os.path.join(out, f"{name}-{i}.wav")) + silence(args.reply_s)
    wav = os.path.join(out, f"{name}.wav")
    with wave.open(wav, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm)
    raw = os.path.join(out, f"{name}.ul")
    open(raw, "wb").write(audioop.lin2ulaw(pcm, 2))
    return wav, raw, len(pcm) / 16000.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def config(lang, data):
    port = free_port()
    base = random.randrange(30000, 39000, 2)
    path = os.path.join(out, f"voxdesk-{lang}-{port}.toml")
    open(path, "w").write(f"""[sip]
bind = "127.0.0.1"
port = {port}
[media]
rtp_port_min = {base}
rtp_port_max = {base + 200}
[paths]
data_dir = "{data}"
models_dir = "{os.path.abspath(args.models)}"
[speech]
language = "{lang}"
[api]
port = 0
""")
    return path, port


def outcome_line(name, expect, escalated, trigger, detail):
    got = f"escalated:{trigger}" if escalated else "contained"
    ok = (expect == "any" or (expect == "contained" and not escalated)
          or (expect.startswith("escalated") and escalated
              and (expect == "escalated" or expect == got)))
    print(f"  {name:<34} expect {expect:<22} got {got:<24} {'ok' if ok else 'MISS'}  {detail}",
          flush=True)
    return ok, escalated


def via_talk(scripts):
    results = []
    for lang in ("en", "zh"):
        mine = [s for s in scripts if s[1] == lang]
        if not mine:
            continue
        d = os.path.join(out, f"talk-{lang}")
        os.makedirs(d, exist_ok=True)
        for name, _, expect, _, wav, _, _ in mine:
            open(os.path.join(d, f"{name}.txt"), "w").write(
                f"# lang: {lang}\n# expect: {expect}\n# wav: {wav}\n")
        cfg, _ = config(lang, os.path.join(out, f"talk-data-{lang}"))
        r = subprocess.run([binary, "-c", cfg, "eval", "calls", d], capture_output=True,
                           text=True)
        print(r.stdout, file=open(os.path.join(out, f"talk-{lang}.txt"), "w"))
        if r.returncode not in (0, 1) or "as expected:" not in r.stdout:
            print(r.stdout, r.stderr, file=sys.stderr)
            sys.exit(f"voxdesk eval calls failed ({r.returncode})")
        # The report lists the conversations that did not end as expected, turn by turn.
        report = r.stdout[r.stdout.rfind("eval calls:"):]
        blocks = {}
        for m in re.finditer(r"^(\S+): expected .*?(?=^\S+: expected |^calls: )", report,
                             re.M | re.S):
            blocks[m.group(1)] = m.group(0)
        for name, _, expect, _, _, _, _ in mine:
            if name in blocks:
                esc = re.search(r"-> escalate:(\S+)", blocks[name])
                escalated, trigger = bool(esc), esc.group(1) if esc else ""
            else:
                escalated = expect.startswith("escalated")
                trigger = expect.split(":", 1)[1] if ":" in expect else "(as expected)"
            results.append(outcome_line(name, expect, escalated, trigger, ""))
    return results


SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="voxdesk spoken conversation">
  <send retrans="500"><![CDATA[
INVITE sip:bot@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: "Caller" <sip:+15550123@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:bot@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [rtpstream_audio_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=ptime:20
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: "Caller" <sip:+15550123@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:bot@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0
]]></send>
  <nop><action><exec rtp_stream="@raw@,1,0"/></action></nop>
  <recv request="BYE" timeout="@wait_ms@" ontimeout="hangup"/>
  <send next="done"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
  <label id="hangup"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: "Caller" <sip:+15550123@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:bot@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Content-Length: 0
]]></send>
  <recv response="200"/>
  <label id="done"/>
</scenario>
"""


def via_sipp(scripts):
    results = []
    for lang in ("en", "zh"):
        mine = [s for s in scripts if s[1] == lang]
        if not mine:
            continue
        data = os.path.join(out, f"sipp-data-{lang}")
        cfg, port = config(lang, data)
        log = open(os.path.join(out, f"serve-{lang}.log"), "w")
        srv = subprocess.Popen([binary, "serve", "--config", cfg], stdout=log, stderr=log)
        try:
            for _ in range(240):  # models load, heads train
                time.sleep(0.5)
                if "voxdesk ready" in open(log.name).read() or srv.poll() is not None:
                    break
            time.sleep(1)
            for name, _, expect, turns, _, raw, secs in mine:
                sf = os.path.join(out, f"{name}.xml")
                # Once the audio has played, up to 30 s more for the bot to finish and hang up.
                open(sf, "w").write(SCENARIO.replace("@raw@", raw).replace(
                    "@wait_ms@", str(int((secs + 30) * 1000))))
                db = sqlite3.connect(os.path.join(data, "voxdesk.sqlite"))
                before = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
                r = subprocess.run(
                    ["timeout", str(int(secs + 90)), "sipp", f"127.0.0.1:{port}", "-sf", sf,
                     "-m", "1", "-i", "127.0.0.1", "-p", str(free_port()), "-mp",
                     str(random.randrange(41000, 49000, 2)), "-nostdin", "-timeout",
                     str(int(secs + 80)), "-timeout_error"], capture_output=True, text=True)
                call = None
                for _ in range(40):
                    row = db.execute("SELECT id, end_reason FROM calls ORDER BY started_at_ms "
                                     "DESC LIMIT 1 OFFSET 0").fetchone()
                    n = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
                    if n > before and row and row[1]:
                        call = row
                        break
                    time.sleep(0.5)
                if call is None:
                    results.append(outcome_line(name, expect, False, "",
                                                f"no call row (sipp rc {r.returncode})"))
                    continue
                esc = db.execute("SELECT trigger FROM escalations WHERE call_id = ?",
                                 (call[0],)).fetchone()
                heard = [t for (t,) in db.execute(
                    "SELECT text FROM turns WHERE call_id = ? AND speaker = 'caller' "
                    "ORDER BY seq", (call[0],))]
                results.append(outcome_line(name, expect, esc is not None,
                                            esc[0] if esc else "",
                                            f"end {call[1]}; heard {heard}"))
                db.close()
        finally:
            srv.terminate()
            srv.wait()
    return results


def summary(route, results, scripts):
    calm = [(r, s) for r, s in zip(results, scripts) if s[2] == "contained"]
    rest = [(r, s) for r, s in zip(results, scripts) if s[2] != "contained"]
    ok = sum(r[0] for r in results)
    print(f"{route}: {ok}/{len(results)} as expected; calm conversations escalated "
          f"{sum(r[1] for r, _ in calm)}/{len(calm)} (contained {sum(not r[1] for r, _ in calm)}"
          f"/{len(calm)}); others escalated {sum(r[1] for r, _ in rest)}/{len(rest)}",
          flush=True)


if __name__ == "__main__":
    for tool in ("espeak-ng",) + (("sipp",) if "sipp" in args.via else ()):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (scripts/setup.sh installs it)")
    scripts = []
    for p in sorted(glob.glob(os.path.join(args.calls, "*.txt"))):
        name = os.path.splitext(os.path.basename(p))[0]
        if args.match not in name:
            continue
        lang, expect, turns = parse(p)
        if not turns:
            continue
        wav, raw, secs = conversation(name, lang, turns)
        scripts.append((name, lang, expect, turns, wav, raw, secs))
    zh_by = "espeak-ng" if args.zh_speaker == "espeak" else f"Kokoro {args.zh_speaker}"
    print(f"{len(scripts)} conversations, spoken by espeak-ng (English) and {zh_by} (Chinese), in {out}",
          flush=True)
    for route in args.via.split(","):
        print(f"via {route}:", flush=True)
        ordered = [s for lang in ("en", "zh") for s in scripts if s[1] == lang]
        res = via_talk(ordered) if route == "talk" else via_sipp(ordered)
        summary(route, res, ordered)
