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
        srtp: voxdesk_sip::sdes::SrtpPolicy::Off,
        srtp_key: [7; 30],
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

mod sdes {
    use super::*;
    use voxdesk_sip::sdes::{Crypto, SrtpPolicy, Suite};

    const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    fn offer(proto: &str, crypto: bool) -> SessionDescription {
        let c = if crypto {
            format!("a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:{KEY}\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^31\r\n")
        } else {
            String::new()
        };
        let s = format!("v=0\r\no=a 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 4000 {proto} 0\r\n{c}");
        SessionDescription::parse(s.as_bytes()).unwrap()
    }

    fn with(policy: SrtpPolicy) -> LocalMedia {
        LocalMedia {
            srtp: policy,
            ..local()
        }
    }

    #[test]
    fn answers_by_policy() {
        // SAVP with keys: encrypted under optional and required, refused when off.
        for p in [SrtpPolicy::Optional, SrtpPolicy::Required] {
            let (a, n) = answer(&offer("RTP/SAVP", true), &with(p)).unwrap();
            let k = n.srtp.expect("encrypted");
            // The first line we implement wins (RFC 4568: in preference order), tag kept.
            assert_eq!(k.suite, Suite::AesCm128HmacSha1_32);
            assert_eq!(a.media[0].proto, "RTP/SAVP");
            let ours = Crypto::parse(a.media[0].attr("crypto").flatten().unwrap()).unwrap();
            assert_eq!((ours.tag, ours.key), (3, [7; 30]));
        }
        assert!(matches!(
            answer(&offer("RTP/SAVP", true), &with(SrtpPolicy::Off)),
            Err(SdpError::Srtp(_))
        ));
        // SAVP without keys is never answered.
        assert!(matches!(
            answer(&offer("RTP/SAVP", false), &with(SrtpPolicy::Optional)),
            Err(SdpError::Srtp(_))
        ));
        // Plain RTP: fine unless required.
        assert!(
            answer(&offer("RTP/AVP", false), &with(SrtpPolicy::Optional))
                .unwrap()
                .1
                .srtp
                .is_none()
        );
        assert!(matches!(
            answer(&offer("RTP/AVP", false), &with(SrtpPolicy::Required)),
            Err(SdpError::Srtp(_))
        ));
        // Best effort (RTP/AVP with a crypto line) is taken when allowed, ignored when off.
        assert!(answer(&offer("RTP/AVP", true), &with(SrtpPolicy::Optional))
            .unwrap()
            .1
            .srtp
            .is_some());
        let (a, n) = answer(&offer("RTP/AVP", true), &with(SrtpPolicy::Off)).unwrap();
        assert!(n.srtp.is_none() && a.media[0].attr("crypto").is_none());
    }

    #[test]
    fn our_offer_and_their_answer() {
        let o = voxdesk_sip::sdp::offer(&with(SrtpPolicy::Required), 101);
        assert_eq!(o.media[0].proto, "RTP/SAVP");
        let back = format!(
            "v=0\r\no=b 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 5000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
        );
        let ans = SessionDescription::parse(back.as_bytes()).unwrap();
        let n = voxdesk_sip::sdp::accept_answer(&ans, &with(SrtpPolicy::Required)).unwrap();
        assert_eq!(n.srtp.unwrap().local, [7; 30]);
        let plain = "v=0\r\no=b 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";
        let ans = SessionDescription::parse(plain.as_bytes()).unwrap();
        assert!(voxdesk_sip::sdp::accept_answer(&ans, &with(SrtpPolicy::Required)).is_err());
        assert!(
            voxdesk_sip::sdp::accept_answer(&ans, &with(SrtpPolicy::Optional))
                .unwrap()
                .srtp
                .is_none()
        );
        let o = voxdesk_sip::sdp::offer(&with(SrtpPolicy::Optional), 101);
        assert_eq!(o.media[0].proto, "RTP/AVP");
        assert!(o.media[0].attr("crypto").is_some(), "best effort");
    }
}
