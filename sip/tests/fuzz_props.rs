//! Property tests: no input makes the parsers panic, and valid messages survive a round trip.
//! (The `fuzz/` folder holds the matching cargo-fuzz targets for longer runs.)

use proptest::prelude::*;
use voxdesk_sip::auth::DigestParams;
use voxdesk_sip::sdp::SessionDescription;
use voxdesk_sip::validate::{validate_request, validate_response, Capabilities};
use voxdesk_sip::{frame_stream, parse_datagram};

const SEED: &str = "INVITE sip:bot@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1;rport\r\n\
Max-Forwards: 70\r\nFrom: \"A\" <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: x@y\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:a@127.0.0.1:5062>\r\nContent-Type: application/sdp\r\n\r\n\
v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn exercise(bytes: &[u8]) {
    let _ = frame_stream(bytes);
    match parse_datagram(bytes) {
        Ok(m) => {
            let caps = Capabilities::default();
            if m.is_request() {
                let _ = validate_request(&m, &caps);
            } else {
                let _ = validate_response(&m);
            }
            let _ = m.vias();
            let _ = m.contacts();
            let _ = m.cseq();
            let _ = SessionDescription::parse(&m.body);
            if let Some(a) = m.header("Authorization") {
                let _ = DigestParams::parse(a);
            }
            // Anything we accept must re-serialize into something we accept again.
            let again = parse_datagram(&m.to_bytes()).expect("re-parse of a serialized message");
            assert_eq!(again.start, m.start);
        }
        Err(e) => {
            let _ = e.bad_request();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&bytes);
        let _ = SessionDescription::parse(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(pos in 0usize..SEED.len(), len in 0usize..12, fill in proptest::collection::vec(any::<u8>(), 0..12)) {
        let mut b = SEED.as_bytes().to_vec();
        let end = (pos + len).min(b.len());
        b.splice(pos..end, fill);
        exercise(&b);
    }

    #[test]
    fn sip_like_text_never_panics(s in "[A-Za-z0-9:;@<>\"=,./ \\[\\]%\\r\\n-]{0,300}") {
        exercise(s.as_bytes());
        exercise(format!("INVITE sip:x@y SIP/2.0\r\nVia: {s}\r\n\r\n").as_bytes());
        exercise(format!("INVITE {s} SIP/2.0\r\n\r\n").as_bytes());
        let _ = DigestParams::parse(&format!("Digest {s}"));
    }
}

#[test]
fn seed_is_valid() {
    let m = parse_datagram(SEED.as_bytes()).unwrap();
    validate_request(&m, &Capabilities::default()).unwrap();
    SessionDescription::parse(&m.body).unwrap();
}

/// Characters attackers reach for: escapes, quotes, separators, control characters, and
/// multi-byte UTF-8 (2, 3 and 4 bytes) right after a backslash or a quote.
const HOSTILE: &str =
    "[\\\\\"'<>,;:=@ \\t\\r\\n\\x00\\x01\\x1b\\x7fA-Za-z0-9é中😀\u{fffd}\u{200b}-]{0,120}";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn hostile_text_in_every_structured_header_never_panics(s in HOSTILE) {
        let _ = DigestParams::parse(&format!("Digest {s}"));
        let _ = DigestParams::parse(&format!("Digest username=\"{s}\", realm=\"{s}\""));
        let _ = DigestParams::parse(&format!("Digest username={s}"));
        for header in ["Authorization: Digest username=\"", "Proxy-Authorization: Digest realm=\"", "Via: SIP/2.0/UDP ", "From: \"", "To: ", "Contact: ", "CSeq: ", "Call-ID: "] {
            let head = SEED.split_once("\r\n\r\n").unwrap().0;
            exercise(format!("{head}\r\n{header}{s}\r\n\r\n").as_bytes());
        }
        exercise(format!("INVITE sip:{s}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n").as_bytes());
        let _ = SessionDescription::parse(format!("v=0\r\no=- 1 1 IN IP4 {s}\r\na={s}\r\nm=audio 4000 RTP/AVP {s}\r\na=rtpmap:{s}\r\n").as_bytes());
    }

    #[test]
    fn backslash_before_any_character_never_panics(c in any::<char>(), pre in "[a-z\\\\\"]{0,4}", post in "[a-z\\\\\"é]{0,4}") {
        let v = format!("{pre}\\{c}{post}");
        let _ = DigestParams::parse(&format!("Digest username=\"{v}\", realm=\"voxdesk\", nonce=\"abc\", uri=\"sip:x@y\", response=\"00\""));
        let _ = voxdesk_sip::header::NameAddr::parse(&format!("\"{v}\" <sip:a@b>"));
        let _ = voxdesk_sip::header::split_list(&format!("\"{v}\", <sip:a@b>"));
        let _ = voxdesk_sip::header::parse_params(&format!(";a=\"{v}\";b"));
    }
}

/// The datagram that stopped the server (a backslash before `é` in a digest username).
#[test]
fn the_digest_packet_that_crashed_the_server() {
    let msg = "INVITE sip:*21@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-x\r\nMax-Forwards: 70\r\n\
From: <sip:agent1@127.0.0.1>;tag=a\r\nTo: <sip:*21@127.0.0.1>\r\nCall-ID: crash@x\r\nCSeq: 1 INVITE\r\n\
Authorization: Digest username=\"\\é\", realm=\"voxdesk\", nonce=\"abc\", uri=\"sip:*21@127.0.0.1\", response=\"00\"\r\nContent-Length: 0\r\n\r\n";
    exercise(msg.as_bytes());
    let m = parse_datagram(msg.as_bytes()).unwrap();
    let p = DigestParams::parse(m.header("Authorization").unwrap()).unwrap();
    assert_eq!(p.get("username"), Some("é"));
}

#[test]
fn control_characters_in_headers_are_refused() {
    let head = SEED.split_once("\r\n\r\n").unwrap().0;
    let bad = head.replace("From: \"A\"", "From: \"A\rInjected: yes\"");
    let m = parse_datagram(format!("{bad}\r\nContent-Length: 0\r\n\r\n").as_bytes()).unwrap();
    let rej = validate_request(&m, &Capabilities::default()).unwrap_err();
    assert_eq!(rej.code, 400);
}

#[test]
fn huge_sdp_is_refused_or_answered_in_linear_time() {
    use voxdesk_sip::sdp::{answer, Codec, LocalMedia};
    let formats: Vec<String> = (0..5000).map(|i| (i % 128).to_string()).collect();
    let mut sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP {}\r\n", formats.join(" "));
    assert!(
        SessionDescription::parse(sdp.as_bytes()).is_err(),
        "too many formats"
    );
    // Within the caps: 128 formats and 1,000 rtpmaps still answer (one pass, a map).
    sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP {}\r\n", (0..128).map(|i| (i + 96).to_string()).collect::<Vec<_>>().join(" "));
    for i in 0..1000 {
        sdp.push_str(&format!("a=rtpmap:{} X{i}/8000\r\n", 96 + i % 128));
    }
    let sd = SessionDescription::parse(sdp.as_bytes()).unwrap();
    let local = LocalMedia {
        address: "127.0.0.1".into(),
        port: 4000,
        codecs: vec![Codec::Pcmu],
        session_id: 1,
        session_version: 1,
        srtp: voxdesk_sip::sdes::SrtpPolicy::Off,
        srtp_key: [7; 30],
    };
    assert!(answer(&sd, &local).is_err(), "no common codec");
}
