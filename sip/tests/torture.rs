//! Runs the canonical RFC 4475 / RFC 5118 torture messages through the parser and the
//! validator when the shared test-data folder is present (it is not part of the project).
//! Set VOXDESK_TORTURE_DIR to point elsewhere.

use std::path::PathBuf;
use voxdesk_sip::validate::{validate_request, validate_response, Capabilities};
use voxdesk_sip::{parse_datagram, Message};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// A request a UAS must accept and process.
    Valid,
    /// A well-formed response.
    Response,
    /// A request refused with this status.
    Reject(u16),
    /// A response that must be discarded.
    Drop,
}
use Expect::*;

const RFC4475: &[(&str, Expect)] = &[
    // §3.1.1 valid messages
    ("wsinv", Valid), ("intmeth", Valid), ("esc01", Valid), ("escnull", Valid), ("esc02", Valid),
    ("lwsdisp", Valid), ("longreq", Valid), ("dblreq", Valid), ("semiuri", Valid),
    ("transports", Valid), ("mpart01", Valid), ("unreason", Response), ("noreason", Response),
    // §3.1.2 invalid messages
    ("badinv01", Reject(400)), ("clerr", Reject(400)), ("ncl", Reject(400)), ("scalar02", Reject(400)),
    ("scalarlg", Drop), ("quotbal", Reject(400)), ("ltgtruri", Reject(400)), ("lwsruri", Reject(400)),
    ("lwsstart", Reject(400)), ("trws", Reject(400)), ("escruri", Reject(400)), ("baddate", Reject(400)),
    ("regbadct", Reject(400)), ("badaspec", Reject(400)), ("baddn", Reject(400)), ("badvers", Reject(505)),
    ("mismatch01", Reject(400)), ("mismatch02", Reject(400)), ("bigcode", Drop),
    // §3.1.3 transaction layer
    ("badbranch", Valid),
    // §3.1.4 application layer
    ("insuf", Reject(400)), ("unkscm", Reject(416)), ("novelsc", Reject(416)), ("unksm2", Valid),
    ("bext01", Reject(420)), ("invut", Reject(415)), ("regaut01", Valid), ("multi01", Reject(400)),
    ("mcl01", Reject(400)), ("bcast", Response), ("zeromf", Valid), ("cparam01", Valid),
    ("cparam02", Valid), ("regescrt", Valid), ("sdp01", Reject(406)),
    // §3.1.5 backward compatibility
    ("inv2543", Valid),
    // in the archive but not referenced by the RFC: no SIP version on the request line
    ("test", Reject(400)),
];

const RFC5118: &[(&str, Expect)] = &[
    ("ipv6-good", Valid), ("port-ambiguous", Valid), ("port-unambiguous", Valid),
    ("via-received-param-with-delim", Valid), ("via-received-param-no-delim", Valid),
    ("ipv6-in-sdp", Valid), ("mult-ip-in-header", Valid), ("mult-ip-in-sdp", Valid),
    ("ipv4-mapped-ipv6", Valid), ("ipv6-bug-abnf-3-colons", Valid), ("ipv6-correct-abnf-2-colons", Valid),
    ("ipv6-bad", Reject(400)),
];

fn torture_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("VOXDESK_TORTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/sip-torture"));
    dir.is_dir().then_some(dir)
}

/// What the stack does with these bytes.
fn outcome(bytes: &[u8]) -> (Expect, Option<Message>, String) {
    let caps = Capabilities::default();
    match parse_datagram(bytes) {
        Err(e) => {
            let kind = if e.looks_like_request { Reject(400) } else { Drop };
            (kind, None, e.reason)
        }
        Ok(m) if m.is_request() => match validate_request(&m, &caps) {
            Ok(()) => (Valid, Some(m), String::new()),
            Err(r) => (Reject(r.code), Some(m), r.reason),
        },
        Ok(m) => match validate_response(&m) {
            Ok(()) => (Response, Some(m), String::new()),
            Err(e) => (Drop, Some(m), e),
        },
    }
}

fn run(sub: &str, cases: &[(&str, Expect)], ext: &str) -> Vec<String> {
    let Some(dir) = torture_dir() else {
        eprintln!("torture corpus not present; skipped");
        return Vec::new();
    };
    let mut failures = Vec::new();
    for (name, want) in cases {
        let path = dir.join(sub).join(format!("{name}{ext}"));
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if sub.starts_with("rfc5118") {
            bytes = fix_content_length(&bytes);
        }
        let (got, msg, why) = outcome(&bytes);
        if got != *want {
            failures.push(format!("{sub}/{name}: expected {want:?}, got {got:?} ({why})"));
            continue;
        }
        if let (Some(m), Valid | Response) = (msg, got) {
            // Serializing and re-parsing must give the same message.
            let again = parse_datagram(&m.to_bytes()).expect("re-parse");
            if again.start != m.start || again.body != m.body {
                failures.push(format!("{sub}/{name}: round trip changed the message"));
            }
            let is_sdp = m.content_type().and_then(|c| c.ok()).map(|c| c.is("application", "sdp")).unwrap_or(false);
            if is_sdp {
                if let Err(e) = voxdesk_sip::sdp::SessionDescription::parse(&m.body) {
                    failures.push(format!("{sub}/{name}: SDP body rejected: {e}"));
                }
            }
        }
    }
    failures
}

/// RFC 5118's archive declares Content-Length values that match neither its LF nor its CRLF
/// bodies (ipv6-in-sdp: 268 for a 242/251-octet body; mult-ip-in-sdp: 181 for 180/189).
/// Framing on those numbers would test the RFC's arithmetic, not IPv6 handling, so the length
/// is set to the body actually present. `rfc5118_declared_length_is_refused` pins what the
/// parser does with the archive's bytes as they are.
fn fix_content_length(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let sep = if text.contains("\r\n\r\n") { "\r\n\r\n" } else { "\n\n" };
    let Some((head, body)) = text.split_once(sep) else { return bytes.to_vec() };
    let nl = if sep.len() == 4 { "\r\n" } else { "\n" };
    let head: Vec<String> = head
        .split(nl)
        .map(|l| if l.starts_with("Content-Length:") { format!("Content-Length: {}", body.len()) } else { l.to_string() })
        .collect();
    format!("{}{sep}{body}", head.join(nl)).into_bytes()
}

#[test]
fn rfc5118_declared_length_is_refused() {
    let Some(dir) = torture_dir() else { return };
    let bytes = std::fs::read(dir.join("rfc5118-crlf/ipv6-in-sdp")).unwrap();
    // Content-Length 268 > 251 octets in a datagram: RFC 3261 §18.3 says discard / 400.
    assert_eq!(outcome(&bytes).0, Reject(400));
}

#[test]
fn rfc4475_torture_corpus() {
    let f = run("rfc4475", RFC4475, ".dat");
    assert!(f.is_empty(), "{} failures:\n{}", f.len(), f.join("\n"));
}

#[test]
fn rfc5118_torture_corpus_crlf() {
    let f = run("rfc5118-crlf", RFC5118, "");
    assert!(f.is_empty(), "{} failures:\n{}", f.len(), f.join("\n"));
}

#[test]
fn rfc5118_torture_corpus_as_archived() {
    let f = run("rfc5118", RFC5118, "");
    assert!(f.is_empty(), "{} failures:\n{}", f.len(), f.join("\n"));
}
