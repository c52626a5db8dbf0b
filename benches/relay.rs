//! Bridged-call capacity with sipp on loopback, through the real server: a sipp agent
//! (`tests/sipp/uas_agent_stream.xml`) registers as agent1 with digest authentication, a
//! sipp caller (`tests/sipp/uac_relay.xml`) places N calls to agent1's extension, and voxdesk
//! bridges each one (B2BUA: two SIP dialogs, two RTP legs, audio relayed through its media
//! clock). Both sides stream a looped G.711 recording for the whole call (sipp
//! `rtp_stream`), so every leg carries 50 packets a second each way.
//!
//! Once all N calls are up, voxdesk's CPU is read from /proc over a steady window: the whole
//! process and its media threads (`voxdesk-media-*`) alone. Speech, recording and bridged
//! transcription are off: this is the relay's own cost. Prints calls per core.
//!
//! cargo bench --bench relay
//! VOXDESK_BENCH_RELAY_CALLS=200,500   how many concurrent calls (default 200,500)
//! VOXDESK_BENCH_RELAY_PCMA=1          the agent answers PCMA: every packet is transcoded
//! VOXDESK_BENCH_BIN=path              another voxdesk binary (to compare two builds)

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{cpu_seconds, free_port, sipp_count, sipp_installed};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The stat files of a process's threads whose name starts with `prefix`.
fn threads(pid: u32, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            out.push(e.path().join("stat"));
        }
    }
    out
}

fn sipp(server: u16, scenario: &str, local: u16, media: u16, extra: &[&str]) -> Command {
    let mut c = Command::new("sipp");
    c.current_dir(Path::new(ROOT).join("tests/fixtures"))
        .arg(format!("127.0.0.1:{server}"))
        .args([
            "-sf",
            &if scenario.starts_with('/') {
                scenario.to_string()
            } else {
                format!("{ROOT}/tests/sipp/{scenario}")
            },
        ])
        .args(["-i", "127.0.0.1", "-p", &local.to_string()])
        .args(["-mp", &media.to_string(), "-nostdin"])
        .args(extra);
    c
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(calls: usize, pcma: bool) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("voxdesk.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sip]\nbind = \"127.0.0.1\"\nport = {port}\nring_ms = 0\n[media]\nrtp_port_min = 20000\nrtp_port_max = 39999\nrecord = false\n[speech]\nenabled = false\n[routing]\ntranscribe_bridged = false\nwhisper = false\n[api]\nport = 0\n[limits]\ninvites_per_sec = 0\nregisters_per_sec = 0\nmax_calls = 2000\n[paths]\ndata_dir = \"{}\"\nmodels_dir = \"{}\"\n",
            dir.path().join("data").display(),
            dir.path().join("no-models").display()
        ),
    )
    .unwrap();
    let server = Killed(
        Command::new(
            std::env::var("VOXDESK_BENCH_BIN")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_voxdesk").into()),
        )
        .args(["serve", "--log", "warn", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
        .spawn()
        .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1000));
    let pid = server.0.id();

    // The agent: register its port, then answer on it.
    let agent_port = free_port();
    let reg = sipp(port, "register.xml", agent_port, 9000, &[])
        .args(["-s", "agent1", "-au", "agent1", "-ap", "agent1pass"])
        .args(["-m", "1", "-timeout", "10", "-timeout_error"])
        .output()
        .unwrap();
    if !reg.status.success() {
        println!(
            "agent registration failed: {}",
            String::from_utf8_lossy(&reg.stdout)
        );
        return;
    }
    let (pt, codec, file) = if pcma {
        ("8", "PCMA", "caller-hello.al")
    } else {
        ("0", "PCMU", "caller-hello.ul")
    };
    let scenario = std::fs::read_to_string(format!("{ROOT}/tests/sipp/uas_agent_stream.xml"))
        .unwrap()
        .replace("@pt@", pt)
        .replace("@codec@", codec)
        .replace("@file@", file);
    let agent_scenario = dir.path().join("uas_agent_stream.xml");
    std::fs::write(&agent_scenario, scenario).unwrap();
    let threads_per_sipp = "50";
    let _agent = Killed(
        sipp(
            port,
            agent_scenario.to_str().unwrap(),
            agent_port,
            10000,
            &[],
        )
        .args(["-rtp_threadtasks", threads_per_sipp])
        .args(["-max_socket", "8000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));

    // The callers: all N up at 100 calls/s, held long enough for a steady window.
    let ramp = calls as f64 / 100.0;
    let window = 10.0;
    let hold_ms = ((ramp + 3.0 + window + 2.0) * 1000.0) as u64;
    let caller_port = free_port();
    let t0 = Instant::now();
    let caller = sipp(port, "uac_relay.xml", caller_port, 45000, &[])
        .args(["-s", "agent1", "-d", &hold_ms.to_string()])
        .args([
            "-r",
            "100",
            "-l",
            &calls.to_string(),
            "-m",
            &calls.to_string(),
        ])
        .args(["-rtp_threadtasks", threads_per_sipp, "-max_socket", "8000"])
        .args(["-timeout", &format!("{}", hold_ms / 1000 + 60)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs_f64(ramp + 3.0));
    let media = threads(pid, "voxdesk-media");
    let proc_stat = Path::new(&format!("/proc/{pid}/stat")).to_path_buf();
    let (p0, m0) = (
        cpu_seconds(&proc_stat),
        media.iter().map(cpu_seconds).sum::<f64>(),
    );
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(window));
    let wall = w0.elapsed().as_secs_f64();
    let (p1, m1) = (
        cpu_seconds(&proc_stat),
        media.iter().map(cpu_seconds).sum::<f64>(),
    );
    let out = caller.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let ok = sipp_count(&text, "Successful call");
    let failed = sipp_count(&text, "Failed call");
    let (proc_cores, media_cores) = ((p1 - p0) / wall, (m1 - m0) / wall);
    // A build without the media clock's threads has no separate media figure.
    let media_part = if media.is_empty() {
        String::new()
    } else {
        format!(
            " (media threads alone {media_cores:.2} cores -> {:.0} calls per core)",
            calls as f64 / media_cores.max(1e-9)
        )
    };
    println!(
        "{calls:>5} bridged calls{}: {ok} completed, {failed} failed ({:.0} s); voxdesk CPU {:.2} cores -> {:.0} calls per core{media_part}",
        if pcma { " (PCMU caller, PCMA agent)" } else { "" },
        t0.elapsed().as_secs_f64(),
        proc_cores,
        calls as f64 / proc_cores.max(1e-9),
    );
    // What the caller legs carried, from the CDRs (the caller's packets in; out is what
    // voxdesk sent the caller, which is the agent's relayed audio once bridged).
    std::thread::sleep(Duration::from_secs(2));
    if let Ok(db) = rusqlite::Connection::open(dir.path().join("data/voxdesk.sqlite")) {
        let row = db.query_row(
            "SELECT COUNT(*), AVG(rtp_packets_in), AVG(rtp_packets_out), SUM(rtp_lost), MAX(jitter_ms) FROM calls WHERE ended_at_ms IS NOT NULL",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<f64>>(1)?.unwrap_or(0.0),
                    r.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
                    r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                    r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
                ))
            },
        );
        if let Ok((n, pin, pout, lost, jitter)) = row {
            println!(
                "  CDRs: {n} calls ended; caller leg on average {pin:.0} packets in, {pout:.0} out ({:.0} s of audio each way), {lost} lost in all, worst interarrival jitter {jitter:.1} ms",
                pin / 50.0
            );
        }
    }
    if ok < calls as u64 {
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        println!("  server log (last lines): {tail:?}");
    }
}

fn main() {
    support::print_machine();
    if !sipp_installed() {
        return;
    }
    println!("== bridged-call relay through voxdesk, sipp caller and sipp agent on loopback ==");
    let sizes: Vec<usize> = std::env::var("VOXDESK_BENCH_RELAY_CALLS")
        .unwrap_or_else(|_| "200,500".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let pcma = std::env::var_os("VOXDESK_BENCH_RELAY_PCMA").is_some();
    for n in sizes {
        run(n, pcma);
    }
}
