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
