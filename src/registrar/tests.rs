//! The registrar's unit tests: REGISTER with digest auth, expiry, replay, caps, lockout.
use super::*;
use voxdesk_sip::parse_datagram;

fn reg(extra: &str, cseq: u32) -> Message {
    let s = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{cseq}\r\nMax-Forwards: 70\r\n\
From: <sip:agent1@127.0.0.1>;tag=r1\r\nTo: <sip:agent1@127.0.0.1>\r\nCall-ID: reg1\r\nCSeq: {cseq} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    parse_datagram(s.as_bytes()).unwrap()
}

fn registrar() -> Registrar {
    let cfg = RegistrarConfig {
        digest_algorithms: vec!["SHA-256".into(), "MD5".into()],
        ..RegistrarConfig::default()
    };
    Registrar::new(
        "voxdesk",
        cfg,
        &LimitsConfig::default(),
        &crate::config::demo_agents(),
        b"k",
    )
}

fn authed(r: &mut Registrar, extra: &str, cseq: u32, pw: &str) -> Message {
    let flow = Flow::Udp("127.0.0.1:5070".parse().unwrap());
    let (ch, _) = r.handle(&reg(extra, cseq), &flow, 1_000_000, "t");
    assert_eq!(ch.status(), Some(401));
    let www: Vec<&str> = ch.header_lines("WWW-Authenticate").collect();
    assert!(
        www[0].contains("SHA-256") && www[1].contains("MD5"),
        "configured order"
    );
    // A SHA-256 capable client answers the first challenge.
    let a = auth::respond(www[0], "REGISTER", "sip:127.0.0.1", "agent1", pw, "cn", 1).unwrap();
    r.handle(
        &reg(&format!("{extra}Authorization: {a}\r\n"), cseq + 1),
        &flow,
        1_001_000,
        "t",
    )
    .0
}

#[test]
fn register_multiple_contacts_and_unregister() {
    let mut r = registrar();
    let ok = authed(&mut r, "Contact: <sip:agent1@127.0.0.1:5070>, <sip:agent1@127.0.0.1:5071>;expires=120\r\nExpires: 300\r\n", 1, "agent1pass");
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.header_values("Contact").len(), 2);
    assert!(ok.header("Date").unwrap().ends_with("GMT"));
    assert_eq!(r.lookup("agent1", 1_001_000).len(), 2);
    assert_eq!(
        r.lookup("agent1", 1_001_000 + 121_000).len(),
        1,
        "per-contact expiry"
    );
    let bye = authed(&mut r, "Contact: *\r\nExpires: 0\r\n", 10, "agent1pass");
    assert_eq!(bye.status(), Some(200));
    assert!(r.lookup("agent1", 1_001_000).is_empty());
}

#[test]
fn wrong_password_short_interval_unknown_user() {
    let mut r = registrar();
    assert_eq!(
        authed(
            &mut r,
            "Contact: <sip:agent1@127.0.0.1:5070>\r\n",
            1,
            "wrong"
        )
        .status(),
        Some(401)
    );
    let brief = authed(
        &mut r,
        "Contact: <sip:agent1@127.0.0.1:5070>\r\nExpires: 10\r\n",
        3,
        "agent1pass",
    );
    assert_eq!(brief.status(), Some(423));
    assert_eq!(brief.header("Min-Expires"), Some("60"));
    let flow = Flow::Udp("127.0.0.1:5070".parse().unwrap());
    let mut m = reg("", 1);
    m.set_header("To", "<sip:nobody@127.0.0.1>");
    // An unknown user is challenged like a known one (no 404: names stay secret).
    assert_eq!(r.handle(&m, &flow, 0, "t").0.status(), Some(401));
}

#[test]
fn replayed_credentials_and_foreign_uri_are_refused() {
    let mut r = registrar();
    let flow = Flow::Udp("127.0.0.1:5070".parse().unwrap());
    let contact = "Contact: <sip:agent1@127.0.0.1:5070>\r\n";
    let (ch, _) = r.handle(&reg(contact, 1), &flow, 1_000_000, "t");
    let www = ch.header("WWW-Authenticate").unwrap().to_string();
    let a = auth::respond(
        &www,
        "REGISTER",
        "sip:127.0.0.1",
        "agent1",
        "agent1pass",
        "cn",
        1,
    )
    .unwrap();
    let good = reg(&format!("{contact}Authorization: {a}\r\n"), 2);
    assert_eq!(r.handle(&good, &flow, 1_001_000, "t").0.status(), Some(200));
    // The same credentials again (a sniffed REGISTER), with another Contact.
    let evil = reg(
        &format!("Contact: <sip:agent1@203.0.113.66:5060>\r\nAuthorization: {a}\r\n"),
        3,
    );
    let (resp, ops) = r.handle(&evil, &flow, 1_002_000, "t");
    assert_eq!(resp.status(), Some(401), "a replayed nonce count");
    assert!(ops.is_empty());
    // Credentials computed for another Request-URI.
    let (ch, _) = r.handle(&reg(contact, 4), &flow, 1_003_000, "t");
    let www = ch.header("WWW-Authenticate").unwrap().to_string();
    let a = auth::respond(
        &www,
        "REGISTER",
        "sip:other.example",
        "agent1",
        "agent1pass",
        "cn",
        1,
    )
    .unwrap();
    let wrong_uri = reg(&format!("{contact}Authorization: {a}\r\n"), 5);
    assert_eq!(
        r.handle(&wrong_uri, &flow, 1_004_000, "t").0.status(),
        Some(400)
    );
}

#[test]
fn contacts_per_agent_are_capped() {
    let mut r = registrar();
    for i in 0..8u32 {
        let contact = format!("Contact: <sip:agent1@127.0.0.1:{}>\r\n", 6000 + i);
        let ok = authed(&mut r, &contact, 10 * i + 1, "agent1pass");
        assert_eq!(ok.status(), Some(200));
    }
    assert_eq!(r.lookup("agent1", 1_001_000).len(), 5);
}

#[test]
fn brute_force_locks_the_source_out() {
    let mut r = registrar();
    let codes: Vec<_> = (0..5)
        .map(|i| {
            authed(
                &mut r,
                "Contact: <sip:agent1@127.0.0.1:5070>\r\n",
                10 * i + 1,
                "guess",
            )
            .status()
        })
        .collect();
    assert_eq!(
        codes,
        [Some(401); 5],
        "wrong passwords are challenged again"
    );
    let flow = Flow::Udp("127.0.0.1:5070".parse().unwrap());
    let (locked, _) = r.handle(&reg("", 100), &flow, 1_002_000, "t");
    assert_eq!(locked.status(), Some(403), "locked out after 5 failures");
    let elsewhere = Flow::Udp("127.0.0.2:5070".parse().unwrap());
    let (other, _) = r.handle(&reg("", 101), &elsewhere, 1_002_000, "t");
    assert_eq!(other.status(), Some(401), "another source is not");
}

#[test]
fn dates() {
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
}
