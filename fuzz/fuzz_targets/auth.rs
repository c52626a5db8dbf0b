#![no_main]
//! Digest credentials (Authorization / Proxy-Authorization values) and the whole check.
use libfuzzer_sys::fuzz_target;
use voxdesk_sip::auth::{self, Algorithm, DigestParams, NonceKeeper};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = DigestParams::parse(text);
    let keeper = NonceKeeper::new(b"fuzz", 300);
    let _ = auth::verify(Some(text), "REGISTER", "sip:127.0.0.1", "voxdesk", &keeper, 1000, |u, a| {
        Some(auth::ha1(a, u, "voxdesk", "pw"))
    });
    let _ = auth::respond(text, "REGISTER", "sip:127.0.0.1", "u", "p", "c", 1);
    let _ = auth::uri_matches(text, "sip:127.0.0.1");
    let _ = Algorithm::parse(text);
});
