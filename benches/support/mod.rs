//! What the speech benches share: the machine's load, and the caller's lines they speak.
#![allow(dead_code)] // each bench uses a part of it

use std::path::Path;
use voxdesk::media::g711::ulaw_to_linear;

/// The two questions the benches speak in the Piper voice.
pub const QUESTIONS: [&str; 2] = [
    "What are your opening hours?",
    "I would like to check my balance, please.",
];

/// The 1-, 5- and 15-minute load averages, for the header line.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// "... ask not what your country can do for you": 3.9 s of the JFK recording, 8 kHz.
pub fn jfk_excerpt() -> Vec<i16> {
    let jfk: Vec<i16> =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jfk.ul"))
            .unwrap()
            .into_iter()
            .map(ulaw_to_linear)
            .collect();
    jfk[(6.5 * 8000.0) as usize..(10.4 * 8000.0) as usize].to_vec()
}
