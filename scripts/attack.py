#!/usr/bin/env python3
"""Before/after figures for the hostile-network work: four of tests/hostile.rs's attacks
(the digest packet, reflection to a sink, an INVITE flood from one source, liveness) against
any voxdesk binary, on loopback. Usage: scripts/attack.py path/to/voxdesk
Not part of CI: tests/hostile.rs asserts these (and more) against the current build."""
import socket, subprocess, sys, time, os, tempfile, random

binary = sys.argv[1]
d = tempfile.mkdtemp()
port = random.randint(40000, 50000)
open(f"{d}/voxdesk.toml", "w").write(f"""[sip]
bind = "127.0.0.1"
port = {port}
[media]
rtp_port_min = 31000
rtp_port_max = 31398
[paths]
data_dir = "{d}/data"
models_dir = "{d}/none"
[speech]
enabled = false
[api]
port = 0
""")
log = open(f"{d}/log", "w")
p = subprocess.Popen([binary, "serve", "--config", f"{d}/voxdesk.toml"], stdout=log, stderr=log)
time.sleep(1.5)

def sock(ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0)); s.settimeout(0.3)
    return s

def req(method, ruri, src, n, extra="", body=""):
    ip, sp = src
    return (f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{sp};branch=z9hG4bKb{n}x{random.randint(0,1<<30)}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:attacker@{ip}>;tag=h{n}\r\nTo: <{ruri}>\r\nCall-ID: b{n}-{random.randint(0,1<<30)}@x\r\nCSeq: {n} {method}\r\n"
            f"Contact: <sip:attacker@{ip}:{sp}>\r\n{extra}Content-Length: {len(body.encode())}\r\n\r\n{body}").encode()

def alive():
    s = sock("127.0.0.9")
    for _ in range(3):
        s.sendto(req("OPTIONS", f"sip:bot@127.0.0.1:{port}", s.getsockname(), 1), ("127.0.0.1", port))
        try:
            while True:
                r = s.recv(65535).decode(errors="replace")
                if r.startswith("SIP/2.0 200"):
                    return True
        except socket.timeout:
            pass
    return False

def sdp(ip, p):
    return f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {p} RTP/AVP 0\r\n"

print("alive at start:", alive())
# Reflection: an INVITE whose SDP names a sink, never ACKed; count what the sink gets in 6 s.
sink = sock("127.0.0.10"); sink.settimeout(0.05)
refl = sock("127.0.0.11")
refl.sendto(req("INVITE", "sip:bot@127.0.0.1", refl.getsockname(), 7, "Content-Type: application/sdp\r\n", sdp("127.0.0.10", sink.getsockname()[1])), ("127.0.0.1", port))
n = 0; t0 = time.time()
while time.time() - t0 < 6:
    try:
        sink.recv(2048); n += 1
    except socket.timeout:
        pass
print("reflection: sink received", n, "packets in 6 s")
# INVITE flood from one source: 400 INVITEs, count 503s.
f = sock("127.0.0.5"); f.settimeout(0.02)
for i in range(400):
    f.sendto(req("INVITE", "sip:bot@127.0.0.1", f.getsockname(), 1000 + i, "Content-Type: application/sdp\r\n", sdp("127.0.0.5", 9)), ("127.0.0.1", port))
final = {}; t0 = time.time()
while time.time() - t0 < 4:
    try:
        r = f.recv(65535).decode(errors="replace")
        code = r.split(" ", 2)[1]
        cid = [l for l in r.split("\r\n") if l.lower().startswith("call-id:")][0]
        if code >= "200": final[cid] = code
    except socket.timeout:
        pass
from collections import Counter
print("flood: final answers to 400 INVITEs from one source, by status:", dict(Counter(final.values())))
print("alive after flood:", alive())
# The digest packet.
c = sock("127.0.0.3")
auth = 'Authorization: Digest username="\\\u00e9", realm="voxdesk", nonce="abc", uri="sip:*21@127.0.0.1", response="00"\r\n'
c.sendto(req("INVITE", "sip:*21@127.0.0.1", c.getsockname(), 5, auth), ("127.0.0.1", port))
time.sleep(1)
print("process running after the digest packet:", p.poll() is None, "| answers OPTIONS:", alive())
p.kill()
