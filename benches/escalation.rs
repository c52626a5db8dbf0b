//! Time from an escalation trigger to the agent's phone ringing, end to end: the real
//! server (models, routing), a real softphone (baresip) registered as an idle agent, and
//! sipp callers who press 0 (RFC 4733) after the greeting. Measured from the server's own
//! log: the DTMF event's arrival to the INVITE towards the agent being sent. Prints
//! p50/p95/max over VOXDESK_BENCH_CALLS calls (default 10). Needs ./models and baresip.
//!
//! cargo bench --bench escalation

#[path = "../tests/common/mod.rs"]
mod common;
use common::*;

/// Seconds since midnight of a log line's timestamp ("2026-11-22T06:57:01.281774Z ...").
fn stamp(line: &str) -> Option<f64> {
    let t = line
        .split_whitespace()
        .next()?
        .split('T')
        .nth(1)?
        .trim_end_matches('Z');
    let mut parts = t.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

fn call_id(line: &str) -> Option<&str> {
    let at = line.find("call{id=")? + 8;
    line[at..].split('}').next()
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if !std::path::Path::new(&models_dir())
        .join("encoder/tokenizer.json")
        .is_file()
    {
        println!("models missing: run scripts/fetch-models.sh");
        return;
    }
    if std::process::Command::new("baresip")
        .arg("-h")
        .output()
        .is_err()
    {
        println!("baresip missing: run scripts/setup.sh");
        return;
    }
    let calls: usize = std::env::var("VOXDESK_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let server = Server::start_with_models(
        "ring_ms = 0",
        "",
        "[routing]\nwrap_up_secs = 0\nwhisper = false\n",
    );
    let _agent = Softphone::start(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        true,
    );
    let scenario_text = std::fs::read_to_string(scenario("uac_press0.xml")).unwrap();
    let sc = server.dir.path().join("press0.xml");
    std::fs::write(
        &sc,
        scenario_text
            .replace("@wait_ms@", "1500")
            .replace("@talk_ms@", "2500"),
    )
    .unwrap();
    for i in 0..calls {
        let out = sipp(server.port, sc.to_str().unwrap(), &[]);
        if !out.status.success() {
            println!(
                "call {i}: sipp failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The agent leaves wrap-up at once; give the BYEs a moment.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let log = server.log();
    let mut pressed = std::collections::HashMap::new();
    let mut ms = Vec::new();
    for line in log.lines() {
        let (Some(id), Some(t)) = (call_id(line), stamp(line)) else {
            continue;
        };
        if line.contains("DTMF digit=0") {
            pressed.entry(id.to_string()).or_insert(t);
        } else if line.contains("ringing agent") {
            if let Some(t0) = pressed.remove(id) {
                ms.push((t - t0) * 1000.0);
            }
        }
    }
    ms.sort_by(f64::total_cmp);
    let answered = log.matches("caller and agent bridged").count();
    println!("trigger (keypad 0 arrives) -> INVITE to the idle agent's phone, {} of {calls} calls ({answered} bridged):", ms.len());
    if ms.is_empty() {
        println!(
            "   no measurement: see {}",
            server.dir.path().join("server.log").display()
        );
        return;
    }
    println!(
        "   p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        pct(&ms, 0.5),
        pct(&ms, 0.95),
        pct(&ms, 1.0)
    );
}
