#![no_main]
use libfuzzer_sys::fuzz_target;
use voxdesk_sip::auth::DigestParams;
use voxdesk_sip::validate::{validate_request, validate_response, Capabilities};

fuzz_target!(|data: &[u8]| {
    let _ = voxdesk_sip::frame_stream(data);
    let _ = voxdesk_sip::frame_stream_limited(data, 4096);
    if let Ok(m) = voxdesk_sip::parse_datagram(data) {
        let caps = Capabilities::default();
        let _ = if m.is_request() { validate_request(&m, &caps).map_err(|_| ()) } else { validate_response(&m).map_err(|_| ()) };
        let _ = m.vias();
        let _ = m.contacts();
        let _ = m.from_addr();
        let _ = m.to_addr();
        for name in ["Authorization", "Proxy-Authorization", "WWW-Authenticate"] {
            for v in m.header_lines(name) {
                let _ = DigestParams::parse(v);
            }
        }
        let again = voxdesk_sip::parse_datagram(&m.to_bytes()).expect("re-parse");
        assert_eq!(again.start, m.start);
    }
});
