//! SDP parsing and offer/answer.

use voxdesk_sip::sdp::*;

const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 96 8 0 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n\
m=video 51372 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n";

fn local() -> LocalMedia {
    LocalMedia {
        address: "192.0.2.10".into(),
        port: 30000,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        session_id: 1,
        session_version: 1,
    }
}

#[test]
fn answer_picks_first_supported_and_rejects_video() {
    let o = SessionDescription::parse(OFFER.as_bytes()).unwrap();
    let (a, n) = answer(&o, &local()).unwrap();
    assert_eq!(n.codec, Codec::Pcma, "first offered supported codec wins");
    assert_eq!(n.dtmf_pt, Some(101));
    assert_eq!(n.remote, Some(("198.51.100.1".into(), 49170)));
    assert_eq!(a.media[1].port, 0);
    let again = SessionDescription::parse(&a.to_bytes()).unwrap();
    assert_eq!(again, a);
}

#[test]
fn hold_offers() {
    let held = OFFER.replace("a=ptime:20", "a=ptime:20\r\na=sendonly");
    let (_, n) = answer(
        &SessionDescription::parse(held.as_bytes()).unwrap(),
        &local(),
    )
    .unwrap();
    assert_eq!(n.direction, Direction::RecvOnly);
    let old = OFFER.replace("c=IN IP4 198.51.100.1", "c=IN IP4 0.0.0.0");
    let (_, n) = answer(
        &SessionDescription::parse(old.as_bytes()).unwrap(),
        &local(),
    )
    .unwrap();
    assert_eq!(n.remote, None);
}

#[test]
fn no_common_codec() {
    let o = OFFER.replace("96 8 0 101", "96");
    assert_eq!(
        answer(&SessionDescription::parse(o.as_bytes()).unwrap(), &local()).unwrap_err(),
        SdpError::NoCommonCodec
    );
}

#[test]
fn rejects_garbage() {
    assert!(SessionDescription::parse(b"hello").is_err());
    assert!(SessionDescription::parse(b"v=0\r\no=x\r\n").is_err());
    assert!(
        SessionDescription::parse(b"v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n")
            .is_err()
    );
    assert!(
        SessionDescription::parse(b"v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 999.1.1.1\r\n")
            .is_err()
    );
}

#[test]
fn offer_and_accept_round_trip() {
    let o = offer(&local(), 101);
    let (a, _) = answer(&SessionDescription::parse(&o.to_bytes()).unwrap(), &local()).unwrap();
    let n = accept_answer(&a, &local()).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
    assert_eq!(n.remote, Some(("192.0.2.10".into(), 30000)));
}
