//! Bad input against the running server: torture messages, garbage datagrams and streams,
//! unsupported methods and extensions, broken SDP. The server must answer per RFC or drop,
//! and keep serving.

mod common;
use common::*;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

fn status(resp: &Option<String>) -> Option<u16> {
    resp.as_ref()
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
}

fn alive(server: &Server) {
    // Like a real client (timer E), retransmit: a burst may have filled the socket buffer.
    let msg = options(server.port, "alive");
    let ok =
        (0..4).any(|_| status(&server.udp_exchange(&msg, Duration::from_millis(800))) == Some(200));
    assert!(ok, "server stopped answering:\n{}", server.log());
}

include!("../sip/tests/support/torture_fix.rs");

/// What the running server must answer for each corpus file (the table in
/// sip/tests/torture_expect.txt): a valid request gets a non-syntax-error response, an
/// invalid one its exact status (when it has a Via to answer on), a response nothing.
fn expected(outcome: &str, bytes: &[u8]) -> Expect {
    let has_via = String::from_utf8_lossy(bytes)
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("via:") || l.starts_with("v:"));
    let mut it = outcome.split_whitespace();
    match (it.next(), it.next()) {
        (Some("valid"), _) => Expect::Processed,
        (Some("reject"), Some(code)) if has_via => Expect::Status(code.parse().unwrap()),
        _ => Expect::Silence,
    }
}

#[derive(Debug, PartialEq)]
enum Expect {
    Processed,
    Status(u16),
    Silence,
}

/// Makes transaction and dialog identifiers unique per file (the corpus reuses them, and a
/// reused branch is a retransmission to a transaction layer).
fn uniquify(bytes: &[u8], n: usize) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let end = text
        .find("\r\n\r\n")
        .or_else(|| text.find("\n\n"))
        .unwrap_or(text.len());
    let (head, body) = text.split_at(end);
    let head = head
        .replace("branch=z9hG4bK", &format!("branch=z9hG4bKu{n}x"))
        .replace("branch=390skdjuw", &format!("branch=u{n}390skdjuw"));
    let head: Vec<String> = head
        .split('\n')
        .map(|l| {
            let lower = l.to_ascii_lowercase();
            if lower.starts_with("call-id") || lower.starts_with("i:") || lower.starts_with("i ") {
                match l.find(':') {
                    Some(c) => format!("{}: u{n}-{}", &l[..c], l[c + 1..].trim_start()),
                    None => l.to_string(),
                }
            } else {
                l.to_string()
            }
        })
        .collect();
    let mut out = head.join("\n").into_bytes();
    out.extend_from_slice(body.as_bytes());
    // Non-UTF-8 bytes (none in the corpus headers) would have been replaced: keep the body raw.
    if String::from_utf8(bytes.to_vec()).is_err() {
        return bytes.to_vec();
    }
    out
}

fn torture_dir() -> Option<PathBuf> {
    let d = std::env::var_os("VOXDESK_TORTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/sip-torture")
        });
    d.is_dir().then_some(d)
}

#[test]
fn torture_messages_against_the_running_server() {
    let Some(dir) = torture_dir() else {
        eprintln!("torture corpus not present; skipped");
        return;
    };
    let _g = serial();
    // Never answer: no call reaches 200, so no media goes to the messages' documentation
    // addresses (192.0.2.x); everything we send goes back to the loopback source.
    let server = Server::start_with("ring_ms = 600000", "", "");
    let table = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sip/tests/torture_expect.txt"),
    )
    .unwrap();
    let mut failures = Vec::new();
    let mut n = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (file, outcome) = line.split_once(' ').unwrap();
        // The CRLF copy of RFC 5118 is what travels on the wire.
        let file = file.replace("rfc5118/", "rfc5118-crlf/");
        let mut raw = std::fs::read(dir.join(&file)).unwrap();
        if file.starts_with("rfc5118") {
            raw = fix_content_length(&raw);
        }
        n += 1;
        let bytes = uniquify(&raw, n);
        let want = expected(outcome, &raw);
        let wait = Duration::from_millis(if want == Expect::Silence { 500 } else { 3000 });
        let got = status(&server.udp_exchange_bytes(&bytes, wait));
        let ok = match (&want, got) {
            (Expect::Processed, Some(c)) => ![400, 415, 416, 420, 505].contains(&c),
            (Expect::Status(w), Some(c)) => *w == c,
            (Expect::Silence, None) => true,
            _ => false,
        };
        if !ok {
            failures.push(format!("{file}: expected {want:?}, got {got:?}"));
        }
    }
    assert_eq!(n, 62);
    alive(&server);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn garbage_datagrams_and_streams_do_not_hurt() {
    let _g = serial();
    let server = Server::start();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seed = 0x9e37_79b9u32;
    for i in 0..300 {
        let len = (i * 7) % 900 + 1;
        let mut b: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        if i % 3 == 0 {
            // Half-valid: a real start line then garbage.
            let mut v = b"INVITE sip:bot@127.0.0.1 SIP/2.0\r\nVia: ".to_vec();
            v.append(&mut b);
            b = v;
        }
        sock.send_to(&b, ("127.0.0.1", server.port)).unwrap();
    }
    alive(&server);
    // A stream that cannot be framed is closed; the listener keeps accepting.
    let mut t = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    t.write_all(b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1\r\n\r\n")
        .unwrap();
    t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = Vec::new();
    let _ = t.read_to_end(&mut buf);
    let mut t = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    t.write_all(
        options(server.port, "tcp")
            .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
            .as_bytes(),
    )
    .unwrap();
    t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut resp = vec![0u8; 4096];
    let n = t.read(&mut resp).unwrap();
    assert!(
        String::from_utf8_lossy(&resp[..n]).starts_with("SIP/2.0 200"),
        "OPTIONS over TCP"
    );
    alive(&server);
}

fn request(port: u16, method: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} sip:bot@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{}\r\nMax-Forwards: 70\r\n\
From: <sip:t@127.0.0.1>;tag=t1\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: {}@test\r\nCSeq: 1 {method}\r\nContact: <sip:t@127.0.0.1:9>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        rand_u32(),
        rand_u32(),
        body.len()
    )
}

#[test]
fn unsupported_methods_extensions_and_bad_sdp() {
    let _g = serial();
    let server = Server::start_with("ring_ms = 600000", "", "");
    let p = server.port;
    let w = Duration::from_secs(2);
    let r = server.udp_exchange(&request(p, "FROB", "", ""), w);
    assert_eq!(status(&r), Some(501));
    assert!(r.unwrap().contains("Allow: INVITE"));
    assert_eq!(
        status(&server.udp_exchange(&request(p, "SUBSCRIBE", "Event: presence\r\n", ""), w)),
        Some(405)
    );
    let r = server.udp_exchange(&request(p, "OPTIONS", "Require: 100rel, foo\r\n", ""), w);
    assert_eq!(status(&r), Some(420));
    assert!(r.unwrap().contains("Unsupported: 100rel, foo"));
    let r = server
        .udp_exchange(&request(p, "OPTIONS", "", ""), w)
        .unwrap();
    assert!(r.contains("Allow: ") && r.contains("Accept: application/sdp"));
    assert_eq!(
        status(&server.udp_exchange(&request(p, "BYE", "", ""), w)),
        Some(481)
    );
    let mut no_tag = request(
        p,
        "INVITE",
        "Content-Type: application/sdp\r\n",
        "v=0\r\nthis is not sdp\r\n",
    );
    assert_eq!(
        status(&server.udp_exchange(&no_tag, w)),
        Some(400),
        "broken SDP"
    );
    let video_only = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 31\r\n";
    no_tag = request(p, "INVITE", "Content-Type: application/sdp\r\n", video_only);
    assert_eq!(
        status(&server.udp_exchange(&no_tag, w)),
        Some(488),
        "no audio"
    );
    let g722 = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 9\r\n";
    let r = server.udp_exchange(
        &request(p, "INVITE", "Content-Type: application/sdp\r\n", g722),
        w,
    );
    assert_eq!(status(&r), Some(488), "no common codec");
    assert!(r.unwrap().contains("Warning: 305"));
    let small = request(
        p,
        "INVITE",
        "Supported: timer\r\nSession-Expires: 30\r\nContent-Type: application/sdp\r\n",
        g722,
    );
    let r = server.udp_exchange(&small, w);
    assert_eq!(status(&r), Some(422));
    assert!(r.unwrap().contains("Min-SE: 90"));
    alive(&server);
}
