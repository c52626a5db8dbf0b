#![no_main]
use libfuzzer_sys::fuzz_target;
use voxdesk_sip::sdp::{answer, Codec, LocalMedia, SessionDescription};

fuzz_target!(|data: &[u8]| {
    if let Ok(sd) = SessionDescription::parse(data) {
        let local = LocalMedia { address: "127.0.0.1".into(), port: 4000, codecs: vec![Codec::Pcmu, Codec::Pcma], session_id: 1, session_version: 1, srtp: voxdesk_sip::sdes::SrtpPolicy::Optional, srtp_key: [7; 30] };
        if let Ok((a, _)) = answer(&sd, &local) {
            SessionDescription::parse(&a.to_bytes()).expect("our answer parses");
        }
    }
});
