//! Parser unit tests: compact forms, folding, lists, Content-Length, request-line
//! strictness, 400 construction, stream framing.

use voxdesk_sip::parse::*;
use voxdesk_sip::Method;

const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
t: Bob <sip:bob@example.com>\r\n\
f: Alice <sip:alice@example.com>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Subject: I know you're there,\r\n   pick up the phone\r\n\tand talk to me!\r\n\
c: application/sdp\r\n\
l: 4\r\n\r\nv=0\r\n";

#[test]
fn compact_forms_folding_and_body() {
    let m = parse_datagram(INVITE.as_bytes()).unwrap();
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(m.call_id(), Some("a84b4c76e66710@pc33.example.com"));
    assert_eq!(
        m.header("subject"),
        Some("I know you're there, pick up the phone and talk to me!")
    );
    assert_eq!(m.body, b"v=0\r");
    assert_eq!(m.from_addr().unwrap().tag(), Some("1928301774"));
}

#[test]
fn multiple_values_on_one_line() {
    let msg = "OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b:5070;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP c;branch=z9hG4bK3\r\n\r\n";
    let m = parse_datagram(msg.as_bytes()).unwrap();
    let v = m.vias().unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[1].port, Some(5070));
}

#[test]
fn content_length_rules() {
    let base = "MESSAGE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n";
    let short = format!("{base}Content-Length: 10\r\n\r\nabc");
    assert!(parse_datagram(short.as_bytes()).is_err());
    let extra = format!("{base}Content-Length: 3\r\n\r\nabcdef");
    assert_eq!(parse_datagram(extra.as_bytes()).unwrap().body, b"abc");
    let neg = format!("{base}Content-Length: -3\r\n\r\nabc");
    assert!(parse_datagram(neg.as_bytes()).is_err());
    let two = format!("{base}Content-Length: 3\r\nl: 3\r\n\r\nabc");
    assert!(parse_datagram(two.as_bytes()).is_err());
}

#[test]
fn request_line_strictness() {
    for bad in [
        "INVITE  sip:x@y SIP/2.0\r\n\r\n",
        "INVITE sip:x@y SIP/2.0 \r\n\r\n",
        "INVITE <sip:x@y> SIP/2.0\r\n\r\n",
        "INVITE sip:x@y; lr SIP/2.0\r\n\r\n",
        "SIP/2.0 4294967301 Bad\r\n\r\n",
    ] {
        assert!(parse_datagram(bad.as_bytes()).is_err(), "{bad:?}");
    }
    let m = parse_datagram(b"SIP/2.0 100\r\nVia: SIP/2.0/UDP a\r\n\r\n").unwrap();
    assert_eq!(m.status(), Some(100));
}

#[test]
fn bad_request_reply_carries_dialog_headers() {
    let msg = "INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\nContent-Length: 99\r\n\r\n";
    let e = parse_datagram(msg.as_bytes()).unwrap_err();
    let r = e.bad_request().unwrap();
    assert_eq!(r.status(), Some(400));
    assert_eq!(r.call_id(), Some("1"));
}

#[test]
fn stream_framing() {
    let msg = "OPTIONS sip:x@y SIP/2.0\r\nl: 2\r\n\r\nhi";
    let mut buf = b"\r\n\r\n".to_vec();
    assert_eq!(
        frame_stream(&buf).unwrap(),
        Frame::KeepAlive {
            consumed: 4,
            pong: true
        }
    );
    buf.extend_from_slice(&msg.as_bytes()[..10]);
    assert_eq!(frame_stream(&buf).unwrap(), Frame::Incomplete);
    buf.extend_from_slice(&msg.as_bytes()[10..]);
    buf.extend_from_slice(b"OPT");
    assert_eq!(
        frame_stream(&buf).unwrap(),
        Frame::Message {
            skip: 4,
            len: msg.len()
        }
    );
    assert!(frame_stream(b"OPTIONS sip:x@y SIP/2.0\r\n\r\n").is_err());
}

/// RFC 3261 9.1: a CANCEL copies the INVITE's Request-URI, Call-ID, From, To, top Via and
/// CSeq number; only the method changes.
#[test]
fn cancel_for_an_invite() {
    let inv = parse_datagram(INVITE.as_bytes()).unwrap();
    let c = inv.cancel_for().unwrap();
    assert_eq!(c.method(), Some(&Method::Cancel));
    assert_eq!(c.request_uri(), inv.request_uri());
    assert_eq!(c.header("CSeq"), Some("314159 CANCEL"));
    for h in ["Via", "From", "To", "Call-ID"] {
        assert_eq!(c.header(h), inv.header(h), "{h}");
    }
}
