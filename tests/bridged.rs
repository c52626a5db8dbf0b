//! A bridged call (caller <-> voxdesk <-> agent's softphone) and what the people on it can
//! do: keys pass through both ways, an agent transfers the caller to a colleague (REFER),
//! a supervisor listens in, whispers to the agent or barges in. Real baresip softphones
//! (driven over their control socket) and sipp callers on loopback.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// A caller who presses 0 (a person, please) after 4 s, then `rest` (sipp XML: pauses,
/// keys), then hangs up.
fn press0_then(server: &Server, rest: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(scenario("uac_press0.xml")).unwrap();
    let sc = server.dir.path().join("press0then.xml");
    std::fs::write(
        &sc,
        text.replace("@wait_ms@", "4000")
            .replace("<pause milliseconds=\"@talk_ms@\"/>", rest),
    )
    .unwrap();
    sc
}

/// Waits until the server's log has had `what` `n` times (or 40 s).
fn wait_log(server: &Server, what: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while server.log().matches(what).count() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (trigger, reason, queue, agent, outcome) per escalation row.
type EscalationRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn escalations(server: &Server) -> Vec<EscalationRow> {
    let db = server.db();
    let mut st = db
        .prepare("SELECT trigger, reason, queue, agent, outcome FROM escalations ORDER BY id")
        .unwrap();
    st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .map(|e| e.unwrap())
    .collect()
}

#[test]
fn keys_pressed_by_the_caller_reach_the_agent_across_the_bridge() {
    let _g = serial();
    let server = Server::start_with_models("", "", "[routing]\nwhisper = false\n");
    let agent = Softphone::start(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        true,
    );
    // 0 asks for a person; 5, pressed once the agent is there, is meant for the agent.
    let sc = press0_then(
        &server,
        "<pause milliseconds=\"14000\"/>\n  <nop><action><exec play_pcap_audio=\"/usr/share/sip-tester/dtmf_2833_5.pcap\"/></action></nop>\n  <pause milliseconds=\"3000\"/>",
    );
    // Once the call is bridged, the agent keys 7 on the softphone (for the caller's side).
    let out = std::thread::scope(|sc_| {
        sc_.spawn(|| {
            wait_log(&server, "caller and agent bridged", 1);
            std::thread::sleep(Duration::from_millis(500));
            agent.command("sndcode", "7");
        });
        sipp(server.port, sc.to_str().unwrap(), &["-timeout", "60"])
    });
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    let log = server.log();
    assert!(log.contains("caller and agent bridged"), "{log}");
    let db = server.db();
    let digits: String = db
        .query_row("SELECT dtmf FROM calls WHERE id = ?1", [&row.id], |r| {
            r.get(0)
        })
        .unwrap();
    // The 0 went to the bot; the 5, typed while a person had the call (an agent's payment
    // line, a card number), is stored as x, never in clear.
    assert_eq!(digits, "0x", "the caller's keys");
    // The agent's phone got the 5 as RFC 4733 events (and never the 0, which was the bot's).
    let events = agent.events();
    assert!(
        events.contains("CALL_DTMF_START") && events.contains("\"param\":\"5\""),
        "{events}\n{}",
        agent.log()
    );
    assert!(!events.contains("\"param\":\"0\""), "{events}");
    // The agent's 7 was passed to the caller's leg.
    assert!(
        log.contains("agent DTMF passed to the caller digit=7"),
        "{log}"
    );
}

#[test]
fn an_agent_transfers_the_caller_to_a_colleague() {
    let _g = serial();
    let server = Server::start_with_models("", "", "[routing]\nwhisper = false\n");
    let agent1 = Softphone::start(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        true,
    );
    let agent2 = Softphone::start(
        &server,
        "agent2",
        "agent2pass",
        &fixtures().join("agent-hello.wav"),
        true,
    );
    // Both are available; agent1 registered first, so has been idle longest and gets the
    // call, then transfers it (blind REFER) to agent2.
    let sc = press0_then(&server, "<pause milliseconds=\"30000\"/>");
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            wait_log(&server, "caller and agent bridged", 1);
            std::thread::sleep(Duration::from_millis(1500));
            agent1.command("transfer", &format!("sip:agent2@127.0.0.1:{}", server.port));
        });
        sipp(server.port, sc.to_str().unwrap(), &["-timeout", "60"])
    });
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("caller-bye"), "{row:?}");
    let log = server.log();
    assert!(log.contains("agent transferred the call (blind)"), "{log}");
    assert_eq!(log.matches("caller and agent bridged").count(), 2, "{log}");
    // agent1 sent REFER, was told it worked (202, NOTIFY sipfrag 200) and left the call.
    let phone1 = agent1.log();
    assert!(phone1.contains("REFER sip:"), "{phone1}");
    assert!(phone1.contains("SIP/2.0 202 Accepted"), "{phone1}");
    assert!(
        phone1.contains("NOTIFY sip:") && phone1.contains("message/sipfrag"),
        "{phone1}"
    );
    // agent2's phone rang with the summary and took the call.
    let phone2 = agent2.log();
    assert!(phone2.contains("X-Voxdesk-Summary: "), "{phone2}");
    // Records: agent1's escalation ends transferred; a new one, trigger transfer, answered
    // by agent2.
    let e = escalations(&server);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].3.as_deref(), Some("agent1"), "{e:?}");
    assert_eq!(e[0].4.as_deref(), Some("transferred"), "{e:?}");
    assert_eq!(e[1].0, "transfer", "{e:?}");
    assert_eq!(e[1].1, "transferred by agent1 to agent2", "{e:?}");
    assert_eq!(e[1].3.as_deref(), Some("agent2"), "{e:?}");
    assert_eq!(e[1].4.as_deref(), Some("answered"), "{e:?}");
    // agent1 went to wrap-up (or is already available again), not on a call.
    let (_, body) = http(&server.api_addr(), "GET", "/api/agents", None, None);
    assert!(
        !body.contains("\"id\":\"agent1\",\"state\":\"on-call\""),
        "{body}"
    );
}

/// A 1 kHz tone (half scale), `secs` long, 8 kHz mono: the supervisor's "voice", easy to
/// find in what the others heard.
fn tone_wav(path: &std::path::Path, secs: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..8000 * secs {
        let t = i as f32 / 8000.0;
        w.write_sample((16000.0 * (2.0 * std::f32::consts::PI * 1000.0 * t).sin()) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// Seconds before the end of `path` (channel `channel`) at which the 1 kHz tone is first
/// heard (a 20 ms frame whose power is mostly at 1 kHz), or None.
fn tone_from_end(path: &std::path::Path, channel: usize) -> Option<f32> {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let ch = spec.channels as usize;
    let x: Vec<f32> = r
        .samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect::<Vec<_>>()
        .chunks(ch)
        .map(|f| f[channel])
        .collect();
    let n = (spec.sample_rate / 50) as usize;
    let w = 2.0 * std::f32::consts::PI * 1000.0 / spec.sample_rate as f32;
    let frames = x.len() / n;
    (0..frames)
        .find(|&i| {
            let f = &x[i * n..(i + 1) * n];
            let total: f32 = f.iter().map(|v| v * v).sum::<f32>() / n as f32;
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for &v in f {
                let s0 = v + 2.0 * w.cos() * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let power = (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) * 2.0 / (n * n) as f32;
            total > 1e-3 && power / total > 0.5
        })
        .map(|i| (frames - i) as f32 / 50.0)
}

#[test]
fn a_supervisor_listens_then_whispers_to_the_agent_then_barges_in() {
    let _g = serial();
    let server = Server::start_with_models("", "", "[routing]\nwhisper = false\n");
    let agent = Softphone::start(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        true,
    );
    let tone = server.dir.path().join("tone.wav");
    tone_wav(&tone, 90);
    // The demo supervisor account: no skills, so never offered calls itself.
    let sup = Softphone::start(&server, "supervisor", "supervisorpass", &tone, true);
    let api = server.api_addr();
    let supervise = |call: &str, who: &str, mode: &str| {
        http(
            &api,
            "POST",
            &format!("/api/calls/{call}/supervise"),
            Some(&format!("{{\"supervisor\":\"{who}\",\"mode\":\"{mode}\"}}")),
            None,
        )
    };
    // The caller asks for a person, then talks (JFK, three times over).
    let sc = press0_then(
        &server,
        "<pause milliseconds=\"3000\"/>\n  <nop><action><exec rtp_stream=\"jfk.ul,3,0\"/></action></nop>\n  <pause milliseconds=\"30000\"/>",
    );
    let (out, whisper_at, barge_at) = std::thread::scope(|s| {
        let modes = s.spawn(|| {
            wait_log(&server, "caller and agent bridged", 1);
            let call = server.last_call().expect("a live call").id;
            // Only supervisor accounts; a live call; a known mode.
            assert_eq!(supervise(&call, "agent2", "listen").0, 403);
            assert_eq!(supervise("nosuchcall", "supervisor", "listen").0, 404);
            assert_eq!(supervise(&call, "supervisor", "shout").0, 400);
            let (st, body) = supervise(&call, "supervisor", "listen");
            assert_eq!(st, 200, "{body}");
            assert!(body.contains("\"state\":\"ringing\""), "{body}");
            wait_log(&server, "supervisor audio routed", 1);
            std::thread::sleep(Duration::from_secs(6));
            let (st, body) = supervise(&call, "supervisor", "whisper");
            assert!(
                st == 200 && body.contains("\"state\":\"connected\""),
                "{body}"
            );
            let whisper_at = Instant::now();
            std::thread::sleep(Duration::from_secs(6));
            let (st, body) = supervise(&call, "supervisor", "barge");
            assert!(
                st == 200 && body.contains("\"state\":\"connected\""),
                "{body}"
            );
            (whisper_at, Instant::now())
        });
        let out = sipp(server.port, sc.to_str().unwrap(), &["-timeout", "90"]);
        let (w, b) = modes.join().unwrap();
        (out, w, b)
    });
    let ended = Instant::now();
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    let log = server.log();
    assert!(log.contains("supervisor connected"), "{log}");
    assert!(log.contains("supervision ended"), "{log}");
    // The supervisor heard the call.
    let heard = sup
        .heard()
        .expect("the supervisor's phone recorded its call");
    let secs = wav_seconds(&heard);
    assert!(
        wav_rms(&heard, 0.0, secs)[0] > 0.01,
        "the supervisor heard nothing"
    );
    assert!(tone_from_end(&heard, 0).is_none(), "own voice echoed back");
    // The agent heard the supervisor from the whisper on, not while they only listened.
    let slack = 2.0;
    let agent_heard = agent.heard().expect("the agent's phone recorded its call");
    let since_whisper = (ended - whisper_at).as_secs_f32();
    let t = tone_from_end(&agent_heard, 0).expect("the agent heard the whisper");
    assert!(
        t <= since_whisper + slack,
        "the agent heard the supervisor {t:.1} s before the end; whisper began {since_whisper:.1} s before"
    );
    // The caller heard the supervisor only once they barged in (right channel of the
    // call's recording: what the caller heard).
    let wav = std::path::PathBuf::from(row.recording_path.unwrap());
    let since_barge = (ended - barge_at).as_secs_f32();
    let t = tone_from_end(&wav, 1).expect("the caller heard the barge-in");
    assert!(
        t <= since_barge + slack,
        "the caller heard the supervisor {t:.1} s before the end; barge began {since_barge:.1} s before"
    );
}

/// A running PJSUA2 agent, ended (killed and reaped) when dropped.
struct Pjsua(std::process::Child);

impl Drop for Pjsua {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The PJSUA2 agent (tests/peers/pjsua_agent.py, from scripts/peers.sh's .venv-peers).
fn pjsua_agent(server: &Server, user: &str, password: &str, extra: &[&str]) -> Pjsua {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-peers/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/peers.sh (PJSUA2 from PyPI)",
        python.display()
    );
    let out = std::fs::File::create(server.dir.path().join("pjsua.out")).unwrap();
    let child = Pjsua(
        std::process::Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/pjsua_agent.py"
            ))
            .args(["--server", &format!("127.0.0.1:{}", server.port)])
            .args(["--user", user, "--password", password])
            .args([
                "--log",
                server.dir.path().join("pjsua.log").to_str().unwrap(),
            ])
            .args(extra)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    if !server.wait_registered(user, Duration::from_secs(20)) {
        drop(child);
        panic!(
            "PJSUA2 {user} did not register:\n{}",
            std::fs::read_to_string(server.dir.path().join("pjsua.out")).unwrap_or_default()
        );
    }
    child
}

#[test]
fn an_agent_consults_a_colleague_then_transfers_the_caller_attended() {
    let _g = serial();
    let server = Server::start_with_models("", "", "[routing]\nwhisper = false\n");
    // agent1 (PJSUA2) registers first, so it is the longest idle and takes the call; 3 s
    // later it calls agent2 through voxdesk, and 3 s into that consultation it transfers
    // the caller onto it (REFER with Replaces).
    let agent1 = pjsua_agent(
        &server,
        "agent1",
        "agent1pass",
        &[
            "--consult",
            "agent2",
            "--after",
            "3",
            "--talk",
            "3",
            "--secs",
            "70",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let agent2 = Softphone::start(
        &server,
        "agent2",
        "agent2pass",
        &fixtures().join("agent-hello.wav"),
        true,
    );
    let sc = press0_then(
        &server,
        "<pause milliseconds=\"3000\"/>\n  <nop><action><exec rtp_stream=\"jfk.ul,4,0\"/></action></nop>\n  <pause milliseconds=\"40000\"/>",
    );
    let out = sipp(server.port, sc.to_str().unwrap(), &["-timeout", "90"]);
    drop(agent1);
    let pjsua = std::fs::read_to_string(server.dir.path().join("pjsua.out")).unwrap_or_default();
    assert_sipp_ok(&out, &server);
    let log = server.log();
    assert!(
        log.contains("agent transferred the call (attended)"),
        "{log}\n{pjsua}"
    );
    assert!(log.contains("consultation taken over by an attended transfer"));
    // agent1 was told the transfer worked.
    assert!(pjsua.contains("transfer-status 200"), "{pjsua}");
    // The consultation call (agent1 -> agent2) ended as transferred; the caller's call
    // ended when the caller hung up, with agent2 on it.
    let db = server.db();
    let reasons: Vec<String> = db
        .prepare("SELECT COALESCE(end_reason, '') FROM calls ORDER BY started_at_ms")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(reasons.contains(&"transferred".to_string()), "{reasons:?}");
    assert!(reasons.contains(&"caller-bye".to_string()), "{reasons:?}");
    let e = escalations(&server);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].3.as_deref(), Some("agent1"), "{e:?}");
    assert_eq!(e[0].4.as_deref(), Some("transferred"), "{e:?}");
    assert_eq!(e[1].0, "transfer", "{e:?}");
    assert_eq!(
        e[1].1, "transferred by agent1 to agent2 (attended)",
        "{e:?}"
    );
    assert_eq!(e[1].3.as_deref(), Some("agent2"), "{e:?}");
    assert_eq!(e[1].4.as_deref(), Some("answered"), "{e:?}");
    // agent2 kept its dialog with voxdesk and heard the caller to the end.
    let heard = agent2.heard().expect("agent2 recorded its call");
    let secs = wav_seconds(&heard);
    let rms = wav_rms(&heard, secs - 10.0, secs)[0];
    assert!(
        rms > 0.02,
        "agent2 heard the caller at the end: rms {rms} ({secs:.1} s)"
    );
}
