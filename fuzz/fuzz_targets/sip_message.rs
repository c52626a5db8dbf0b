#![no_main]
use libfuzzer_sys::fuzz_target;
use voxdesk_sip::validate::{validate_request, validate_response, Capabilities};

fuzz_target!(|data: &[u8]| {
    let _ = voxdesk_sip::frame_stream(data);
    if let Ok(m) = voxdesk_sip::parse_datagram(data) {
        let caps = Capabilities::default();
        let _ = if m.is_request() { validate_request(&m, &caps).map_err(|_| ()) } else { validate_response(&m).map_err(|_| ()) };
        let again = voxdesk_sip::parse_datagram(&m.to_bytes()).expect("re-parse");
        assert_eq!(again.start, m.start);
    }
});
