//! What the benches share: the machine's load, CPU time from /proc, free ports, sipp, and
//! the caller's lines the speech benches speak.
#![allow(dead_code)] // each bench uses a part of it

use std::path::Path;
use std::process::{Command, Stdio};
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

/// utime + stime of a process or thread, in seconds, from its /proc stat file.
pub fn cpu_seconds(stat_path: impl AsRef<Path>) -> f64 {
    let s = std::fs::read_to_string(stat_path).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (ut + st) / 100.0 // USER_HZ
}

/// A UDP port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether sipp can be run (says why not when it cannot).
pub fn sipp_installed() -> bool {
    let ok = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        println!("sipp not installed (scripts/setup.sh): skipped");
    }
    ok
}

/// The number on one of sipp's final statistics lines ("Successful call | 12 | 200").
pub fn sipp_count(text: &str, label: &str) -> u64 {
    text.lines()
        .rfind(|l| l.contains(label))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The header line: cores and the full /proc/loadavg.
pub fn print_machine() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} cores, load average {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        load.trim()
    );
}
