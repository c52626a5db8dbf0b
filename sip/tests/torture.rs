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

/// The expected outcome of every corpus file, shared with the server-level test.
fn cases(prefix: &str) -> Vec<(String, Expect)> {
    include_str!("torture_expect.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let file = it.next()?;
            let want = match (it.next()?, it.next()) {
                ("valid", _) => Valid,
                ("response", _) => Response,
                ("drop", _) => Drop,
                ("reject", Some(code)) => Reject(code.parse().ok()?),
                other => panic!("bad line in torture_expect.txt: {other:?}"),
            };
            file.strip_prefix(prefix).map(|f| (f.to_string(), want))
        })
        .collect()
}

fn torture_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("VOXDESK_TORTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/sip-torture")
        });
    dir.is_dir().then_some(dir)
}

/// What the stack does with these bytes.
fn outcome(bytes: &[u8]) -> (Expect, Option<Message>, String) {
    let caps = Capabilities::default();
    match parse_datagram(bytes) {
        Err(e) => {
            let kind = if e.looks_like_request {
                Reject(400)
            } else {
                Drop
            };
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

fn run(sub: &str, cases: &[(String, Expect)]) -> Vec<String> {
    let Some(dir) = torture_dir() else {
        eprintln!("torture corpus not present; skipped");
        return Vec::new();
    };
    let mut failures = Vec::new();
    for (name, want) in cases {
        let path = dir.join(sub).join(name);
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if sub.starts_with("rfc5118") {
            bytes = fix_content_length(&bytes);
        }
        let (got, msg, why) = outcome(&bytes);
        if got != *want {
            failures.push(format!(
                "{sub}/{name}: expected {want:?}, got {got:?} ({why})"
            ));
            continue;
        }
        if let (Some(m), Valid | Response) = (msg, got) {
            // Serializing and re-parsing must give the same message.
            let again = parse_datagram(&m.to_bytes()).expect("re-parse");
            if again.start != m.start || again.body != m.body {
                failures.push(format!("{sub}/{name}: round trip changed the message"));
            }
            let is_sdp = m
                .content_type()
                .and_then(|c| c.ok())
                .map(|c| c.is("application", "sdp"))
                .unwrap_or(false);
            if is_sdp {
                if let Err(e) = voxdesk_sip::sdp::SessionDescription::parse(&m.body) {
                    failures.push(format!("{sub}/{name}: SDP body rejected: {e}"));
                }
            }
        }
    }
    failures
}

include!("support/torture_fix.rs");

#[test]
fn rfc5118_declared_length_is_refused() {
    let Some(dir) = torture_dir() else { return };
    let bytes = std::fs::read(dir.join("rfc5118-crlf/ipv6-in-sdp")).unwrap();
    // Content-Length 268 > 251 octets in a datagram: RFC 3261 §18.3 says discard / 400.
    assert_eq!(outcome(&bytes).0, Reject(400));
}

#[test]
fn rfc4475_torture_corpus() {
    let c = cases("rfc4475/");
    assert_eq!(c.len(), 50);
    let f = run("rfc4475", &c);
    assert!(f.is_empty(), "{} failures:\n{}", f.len(), f.join("\n"));
}

#[test]
fn rfc5118_torture_corpus_crlf() {
    let c = cases("rfc5118/");
    assert_eq!(c.len(), 12);
    let f = run("rfc5118-crlf", &c);
    assert!(f.is_empty(), "{} failures:\n{}", f.len(), f.join("\n"));
}

#[test]
fn rfc5118_torture_corpus_as_archived() {
    let f = run("rfc5118", &cases("rfc5118/"));
    assert!(f.is_empty(), "{} failures:\n{}", f.len(), f.join("\n"));
}
