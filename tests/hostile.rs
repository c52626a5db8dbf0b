//! A hostile network against the running server while a legitimate bridged call (a sipp
//! caller, voxdesk, a baresip agent) is in progress: crafted packets, oversized SDP and TCP
//! bodies, idle connections, an INVITE flood, REGISTER brute force and replay, an RTP spray
//! over the whole port range, and an INVITE whose SDP points at a third party. Every attack
//! comes from its own loopback address (127.0.0.x), so per-source rules can be seen at
//! work; every loop is bounded in count and time.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn status(r: &str) -> Option<u16> {
    r.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

/// A UDP socket on a loopback address of its own.
fn udp_from(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

/// Sends `msg` from `sock` and returns the first final (non-1xx) response within `wait`.
fn exchange(sock: &UdpSocket, port: u16, msg: &[u8], wait: Duration) -> Option<String> {
    sock.send_to(msg, ("127.0.0.1", port)).ok()?;
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65535];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let t = String::from_utf8_lossy(&buf[..n]).to_string();
            if !t.starts_with("SIP/2.0 1") {
                return Some(t);
            }
        }
    }
    None
}

fn request(method: &str, ruri: &str, src: SocketAddr, n: u32, extra: &str, body: &str) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bKh{n}x{r}\r\nMax-Forwards: 70\r\n\
From: <sip:attacker@{ip}>;tag=h{n}\r\nTo: <{ruri}>\r\nCall-ID: h{n}-{r}@hostile\r\nCSeq: {n} {method}\r\n\
Contact: <sip:attacker@{src}>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len(),
        ip = src.ip(),
        r = rand_u32(),
    )
}

fn sdp(ip: &str, port: u16, formats: &str) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}\r\n")
}

/// Probes the server with OPTIONS from its own source every 100 ms until stopped; returns
/// (probes, unanswered, slowest answer).
fn prober(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u32, u32, Duration)> {
    std::thread::spawn(move || {
        let s = udp_from("127.0.0.9");
        let (mut n, mut lost, mut worst) = (0, 0, Duration::ZERO);
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let t0 = Instant::now();
            let msg = options(port, &format!("probe{n}"));
            // Like a real client, retransmit once (timer E) before counting it lost.
            let ok = (0..2).any(|_| {
                exchange(&s, port, msg.as_bytes(), Duration::from_millis(500))
                    .is_some_and(|r| status(&r) == Some(200))
            });
            if ok {
                worst = worst.max(t0.elapsed());
            } else {
                lost += 1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (n, lost, worst)
    })
}

/// The datagram that stopped the server, and other char-boundary cases around escapes.
fn char_boundary_corpus(port: u16) -> Vec<Vec<u8>> {
    let src: SocketAddr = "127.0.0.3:5999".parse().unwrap();
    let creds = [
        "username=\"\\é\"",
        "username=\"\\中\"",
        "username=\"\\😀x\"",
        "username=\"é\\",
        "username=\"\\",
        "realm=\"\\\u{7f}\"",
        "username=\"a\\\"b\\中\\\\\"",
    ];
    let mut out: Vec<Vec<u8>> = creds
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let auth = format!("Authorization: Digest {c}, realm=\"voxdesk\", nonce=\"abc\", uri=\"sip:*21@127.0.0.1\", response=\"00\"\r\n");
            request("INVITE", "sip:*21@127.0.0.1", src, i as u32 + 1, &auth, "")
                .into_bytes()
        })
        .collect();
    for (i, h) in [
        "From: \"\\é\" <sip:a@127.0.0.1>;tag=1\r\n",
        "Proxy-Authorization: Digest username=\"\\中\"\r\n",
        "Via: SIP/2.0/UDP 127.0.0.3:5999;branch=z9hG4bK\\é\r\n",
        "From: \"A\rInjected: x\" <sip:a@127.0.0.1>;tag=1\r\n",
    ]
    .iter()
    .enumerate()
    {
        let base = request(
            "OPTIONS",
            &format!("sip:bot@127.0.0.1:{port}"),
            src,
            50 + i as u32,
            h,
            "",
        );
        out.push(base.into_bytes());
    }
    out
}

#[test]
fn a_hostile_network_neither_stops_the_server_nor_touches_a_legitimate_call() {
    let _g = serial();
    require("sipp");
    require("baresip");
    let server = Server::start_with("", "", "");
    let port = server.port;
    let mut agent = Softphone::start_padded(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        true,
        40,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let probe = prober(port, stop.clone());
    // The legitimate call: a sipp caller bridged to the agent for 10 s.
    let caller =
        std::thread::spawn(move || sipp(port, "uac_bye.xml", &["-s", "agent1", "-d", "10000"]));
    std::thread::sleep(Duration::from_millis(2500));

    // 1. The digest packet and the char-boundary corpus: answered (refused, or an OPTIONS
    //    that ignores the odd header), never fatal.
    let s = udp_from("127.0.0.3");
    for (i, msg) in char_boundary_corpus(port).iter().enumerate() {
        let r = exchange(&s, port, msg, Duration::from_secs(2));
        let code = r.as_deref().and_then(status);
        assert!(
            matches!(code, Some(200..=499)),
            "corpus case {i} got {r:?}\n{}",
            server.log()
        );
    }

    // 2. A 60 KB SDP with thousands of formats: refused at once.
    let formats: Vec<String> = (0..16_000).map(|i| (i % 128).to_string()).collect();
    let big = sdp("127.0.0.3", 4000, &formats.join(" "));
    assert!(big.len() > 50_000);
    let t0 = Instant::now();
    let r = exchange(
        &s,
        port,
        request(
            "INVITE",
            "sip:bot@127.0.0.1",
            "127.0.0.3:5999".parse().unwrap(),
            90,
            "Content-Type: application/sdp\r\n",
            &big,
        )
        .as_bytes(),
        Duration::from_secs(3),
    );
    assert_eq!(r.as_deref().and_then(status), Some(400), "{r:?}");
    eprintln!("60 KB SDP answered in {:?}", t0.elapsed());

    // 3. A 16 MiB body on TCP: 513 and the connection closed, long before 16 MiB.
    let mut t = TcpStream::connect(("127.0.0.1", port)).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let head = request(
        "INVITE",
        "sip:bot@127.0.0.1",
        t.local_addr().unwrap(),
        91,
        "",
        "",
    )
    .replace("Content-Length: 0", "Content-Length: 16777216")
    .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    t.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0usize;
    while sent < 16 << 20 {
        match t.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
        if sent > 4 << 20 {
            break;
        }
    }
    let mut reply = Vec::new();
    let _ = t.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("SIP/2.0 513"), "TCP reply: {reply:?}");

    // 4. 2,000 idle TCP connections from one source: the per-IP cap closes the rest.
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..2000 {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&"127.0.0.4:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        match sock.connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)).into(),
            Duration::from_secs(1),
        ) {
            Ok(()) => idle.push(TcpStream::from(sock)),
            Err(_) => refused += 1,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // Still open: a read would block. Closed by the server: end of stream or a reset.
    let mut open = 0;
    for c in idle.iter_mut() {
        c.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        open += usize::from(
            matches!(c.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        );
    }
    assert!(
        open <= 32,
        "{open} idle connections still open ({refused} refused at connect)"
    );

    // 5. An INVITE whose SDP names a sink (a third party), never ACKed (before the flood
    //    takes the bot's call slots).
    let sink = udp_from("127.0.0.10");
    sink.set_nonblocking(true).unwrap();
    let sink_port = sink.local_addr().unwrap().port();
    let reflector = udp_from("127.0.0.11");
    let inv = request(
        "INVITE",
        "sip:bot@127.0.0.1",
        reflector.local_addr().unwrap(),
        7,
        "Content-Type: application/sdp\r\n",
        &sdp("127.0.0.10", sink_port, "0"),
    );
    let r = exchange(&reflector, port, inv.as_bytes(), Duration::from_secs(3));
    assert_eq!(r.as_deref().and_then(status), Some(200), "{r:?}");
    let received = Arc::new(AtomicU64::new(0));
    let mut buf = vec![0u8; 65535];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(6) {
        while sink.recv_from(&mut buf).is_ok() {
            received.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let to_sink = received.load(Ordering::Relaxed);
    assert!(
        to_sink <= 55,
        "the sink got {to_sink} packets (1 s burst is 50)"
    );

    // 6. An INVITE flood from one source: all but the burst get 503 with Retry-After.
    let f = udp_from("127.0.0.5");
    f.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let src: SocketAddr = f.local_addr().unwrap();
    for i in 0..400u32 {
        let body = sdp("127.0.0.5", 9, "0");
        let msg = request(
            "INVITE",
            "sip:bot@127.0.0.1",
            src,
            1000 + i,
            "Content-Type: application/sdp\r\n",
            &body,
        );
        f.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
    }
    let (mut busy, mut retry_after) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok((n, _)) = f.recv_from(&mut buf) {
            let t = String::from_utf8_lossy(&buf[..n]);
            if status(&t) == Some(503) {
                busy += 1;
                retry_after += usize::from(t.contains("Retry-After:"));
            }
        }
    }
    assert!(busy >= 300, "only {busy} of 400 flooded INVITEs got 503");
    assert_eq!(busy, retry_after, "every 503 says when to retry");

    // 7. REGISTER brute force against agent2: failures logged, then the source is locked out.
    let b = udp_from("127.0.0.6");
    let bsrc = b.local_addr().unwrap();
    let mut codes = Vec::new();
    for i in 0..8u32 {
        let reg = request("REGISTER", "sip:127.0.0.1", bsrc, 1, "", "")
            .replace("<sip:127.0.0.1>", "<sip:agent2@127.0.0.1>")
            .replace("attacker@127.0.0.6>;tag", "agent2@127.0.0.6>;tag");
        let ch = exchange(&b, port, reg.as_bytes(), Duration::from_secs(2)).unwrap_or_default();
        let www = ch
            .lines()
            .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
            .map(str::to_string);
        let Some(www) = www else {
            codes.push(status(&ch));
            continue;
        };
        let a = voxdesk_sip::auth::respond(
            &www,
            "REGISTER",
            "sip:127.0.0.1",
            "agent2",
            &format!("guess{i}"),
            "c",
            1,
        )
        .unwrap();
        let with = reg
            .replace(
                "Content-Length: 0",
                &format!("Authorization: {a}\r\nContent-Length: 0"),
            )
            .replace("branch=z9hG4bKh1x", &format!("branch=z9hG4bKb{i}x"));
        codes.push(
            exchange(&b, port, with.as_bytes(), Duration::from_secs(2))
                .as_deref()
                .and_then(status),
        );
    }
    assert_eq!(&codes[..5], &[Some(401); 5], "{codes:?}");
    assert!(
        codes[5..].iter().all(|c| *c == Some(403)),
        "locked out: {codes:?}"
    );

    // 8. A good REGISTER (agent2's real password), sniffed and replayed with another Contact.
    let g = udp_from("127.0.0.7");
    let gsrc = g.local_addr().unwrap();
    let reg = request("REGISTER", "sip:127.0.0.1", gsrc, 1, "", "")
        .replace("<sip:127.0.0.1>", "<sip:agent2@127.0.0.1>")
        .replace("attacker@127.0.0.7>;tag", "agent2@127.0.0.7>;tag");
    let ch = exchange(&g, port, reg.as_bytes(), Duration::from_secs(2)).unwrap();
    let www = ch
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .unwrap();
    let a = voxdesk_sip::auth::respond(
        www,
        "REGISTER",
        "sip:127.0.0.1",
        "agent2",
        "agent2pass",
        "c",
        1,
    )
    .unwrap();
    let good = reg
        .replace(
            "Content-Length: 0",
            &format!("Authorization: {a}\r\nContent-Length: 0"),
        )
        .replace("branch=z9hG4bKh1x", "branch=z9hG4bKgood");
    let ok = exchange(&g, port, good.as_bytes(), Duration::from_secs(2)).unwrap();
    assert_eq!(status(&ok), Some(200), "{ok}");
    let thief = udp_from("127.0.0.8");
    let replay = good
        .replace("branch=z9hG4bKgood", "branch=z9hG4bKreplay")
        .replace(&gsrc.to_string(), &thief.local_addr().unwrap().to_string());
    let r = exchange(&thief, port, replay.as_bytes(), Duration::from_secs(2)).unwrap();
    assert_eq!(status(&r), Some(401), "the replay is refused: {r}");

    // 9. RTP sprayed at every port of the range during the bridged call (loud full-scale
    //    PCMU and PCMA), and anything sent back counted.
    let spray = udp_from("127.0.0.8");
    spray.set_nonblocking(true).unwrap();
    let (lo, hi) = server.rtp_range();
    let mut pkt = vec![0x80u8, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
    pkt.extend(std::iter::repeat_n(0x00u8, 160));
    let t0 = Instant::now();
    let mut got_back = 0;
    let mut seq = 0u16;
    while t0.elapsed() < Duration::from_secs(3) {
        for p in lo..=hi {
            seq = seq.wrapping_add(1);
            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
            pkt[1] = if p % 2 == 0 { 0 } else { 8 };
            let _ = spray.send_to(&pkt, ("127.0.0.1", p));
        }
        while spray.recv_from(&mut buf).is_ok() {
            got_back += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(got_back, 0, "the spray got {got_back} packets back");

    // The legitimate call completes with audio both ways, and nothing of the spray.
    let out = caller.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (probes, lost, worst) = probe.join().unwrap();
    agent.stop();
    drop(idle);
    if !out.status.success() {
        eprintln!("baresip log:\n{}", agent.log());
    }
    assert_sipp_ok(&out, &server);
    assert!(
        lost == 0,
        "{lost} of {probes} OPTIONS probes unanswered (slowest {worst:?})"
    );
    eprintln!("OPTIONS probes: {probes}, slowest answer {worst:?}; sink got {to_sink}; TCP refused at connect {refused}, open {open}");
    let call = server
        .db()
        .query_row(
            "SELECT recording_path FROM calls WHERE to_uri LIKE 'sip:agent1@%' ORDER BY started_at_ms DESC LIMIT 1",
            [],
            |r| r.get::<_, Option<String>>(0),
        )
        .unwrap()
        .expect("the bridged call was recorded");
    let wav = std::path::PathBuf::from(call);
    let rms = wav_rms(&wav, 0.3, 8.0);
    assert!(
        rms[0] > 0.02 && rms[1] > 0.02,
        "both parties recorded: {rms:?}"
    );
    // Full-scale PCMU/PCMA zeros decode to a constant near -32,000: a spray heard or
    // recorded shows as runs of it. Speech never holds one value for 20 ms.
    for path in [Some(wav), agent.heard()].into_iter().flatten() {
        assert_eq!(constant_runs(&path), 0, "spray audio in {}", path.display());
    }
    let log = server.log();
    assert!(
        log.contains("authentication failed: source=127.0.0.6"),
        "fail2ban line"
    );
    assert!(
        log.contains("authentication lockout: source=127.0.0.6"),
        "lockout line"
    );
    assert!(
        log.contains("not this call's peer ignored"),
        "spray seen and ignored"
    );
}

/// 20 ms stretches (160 samples at 8 kHz, in any channel) holding one loud value.
fn constant_runs(path: &std::path::Path) -> usize {
    let mut r = hound::WavReader::open(path).unwrap();
    let ch = r.spec().channels as usize;
    let rate = r.spec().sample_rate as usize;
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let need = rate / 50;
    let mut runs = 0;
    for c in 0..ch {
        let (mut len, mut last) = (0usize, 0i16);
        for s in samples.iter().skip(c).step_by(ch) {
            if *s == last && s.unsigned_abs() > 20_000 {
                len += 1;
                if len == need {
                    runs += 1;
                }
            } else {
                len = 0;
            }
            last = *s;
        }
    }
    runs
}

/// `sip.accept_calls_from = "trunks"` (the default off loopback): a trunk's address calls
/// the bot but not an agent's extension; anyone else is challenged, and only an agent's
/// credentials get a call through.
#[test]
fn only_trunks_and_authenticated_agents_may_call() {
    let _g = serial();
    let server = Server::start_with(
        "accept_calls_from = \"trunks\"",
        "",
        "[[trunks]]\nname = \"carrier\"\nsources = [\"127.0.0.20/32\"]\n",
    );
    let port = server.port;
    let call = |from: &UdpSocket, user: &str, n: u32, extra: &str| {
        let msg = request(
            "INVITE",
            &format!("sip:{user}@127.0.0.1"),
            from.local_addr().unwrap(),
            n,
            &format!("{extra}Content-Type: application/sdp\r\n"),
            &sdp(&from.local_addr().unwrap().ip().to_string(), 9, "0"),
        );
        exchange(from, port, msg.as_bytes(), Duration::from_secs(3)).unwrap_or_default()
    };
    let trunk = udp_from("127.0.0.20");
    assert_eq!(
        status(&call(&trunk, "bot", 1, "")),
        Some(200),
        "a trunk reaches the bot"
    );
    assert_eq!(
        status(&call(&trunk, "agent1", 2, "")),
        Some(403),
        "not an agent's extension"
    );
    let stranger = udp_from("127.0.0.21");
    let ch = call(&stranger, "bot", 3, "");
    assert_eq!(status(&ch), Some(401), "{ch}");
    let www = ch
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .unwrap();
    let wrong =
        voxdesk_sip::auth::respond(www, "INVITE", "sip:bot@127.0.0.1", "agent2", "nope", "c", 1)
            .unwrap();
    let r = call(&stranger, "bot", 4, &format!("Authorization: {wrong}\r\n"));
    assert_eq!(status(&r), Some(401), "{r}");
    // The same source with an agent's real credentials (From is the agent).
    let agent = udp_from("127.0.0.22");
    let ch = call(&agent, "bot", 5, "");
    let www = ch
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .unwrap();
    let good = voxdesk_sip::auth::respond(
        www,
        "INVITE",
        "sip:bot@127.0.0.1",
        "agent2",
        "agent2pass",
        "c",
        1,
    )
    .unwrap();
    let msg = request(
        "INVITE",
        "sip:bot@127.0.0.1",
        agent.local_addr().unwrap(),
        6,
        &format!("Authorization: {good}\r\nContent-Type: application/sdp\r\n"),
        &sdp("127.0.0.22", 9, "0"),
    )
    .replace("attacker@127.0.0.22>;tag", "agent2@127.0.0.22>;tag");
    let r = exchange(&agent, port, msg.as_bytes(), Duration::from_secs(3)).unwrap_or_default();
    assert_eq!(status(&r), Some(200), "{r}\n{}", server.log());
    assert!(server
        .log()
        .contains("authentication failed: source=127.0.0.21"));
}

/// Transactions are capped: beyond `limits.max_transactions` a new request is answered 503
/// without one (each lives up to 32 s, holding its request).
#[test]
fn transactions_are_capped() {
    let _g = serial();
    let server = Server::start_with("", "", "[limits]\nmax_transactions = 100\n");
    let s = udp_from("127.0.0.30");
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    for i in 0..300u32 {
        let msg = request(
            "OPTIONS",
            &format!("sip:bot@127.0.0.1:{}", server.port),
            s.local_addr().unwrap(),
            2000 + i,
            "",
            "",
        );
        s.send_to(msg.as_bytes(), ("127.0.0.1", server.port))
            .unwrap();
    }
    let (mut ok, mut busy) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = vec![0u8; 65535];
    while Instant::now() < deadline {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            match status(&String::from_utf8_lossy(&buf[..n])) {
                Some(200) => ok += 1,
                Some(503) => busy += 1,
                _ => {}
            }
        }
    }
    assert!(
        (95..=105).contains(&ok),
        "{ok} answered 200 with a transaction"
    );
    assert!(busy >= 190, "only {busy} got 503");
    assert!(server.log().contains("limits.max_transactions reached"));
}
