//! End-to-end tests with real SIP peers (sipp, baresip) against the real voxdesk binary on
//! loopback, a real SQLite file and real recordings.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn call_with_rtp_dtmf_and_hangup_on_pound() {
    let _g = serial();
    let server = Server::start_with_models("", "", "");
    let out = sipp(server.port, "uac_call.xml", &[]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("caller-hash"), "{row:?}");
    assert_eq!(row.dtmf, "1#");
    assert_eq!(row.codec.as_deref(), Some("PCMU"));
    assert!(row.from_uri.contains("+15550100"));
    let answered = row.answered_at_ms.expect("answered");
    let talk_s = (row.ended_at_ms.unwrap() - answered) as f32 / 1000.0;
    assert!(
        row.rtp_packets_in.unwrap_or(0) > 150,
        "caller RTP counted: {row:?}"
    );
    // The recording covers the answered call: left = caller, right = greeting.
    let wav = std::path::PathBuf::from(row.recording_path.expect("recording"));
    let secs = wav_seconds(&wav);
    assert!(
        (secs - talk_s).abs() < 1.0,
        "recording {secs:.2} s vs call {talk_s:.2} s"
    );
    // Left = caller, right = greeting. The greeting plays until the caller talks over it
    // (barge-in), then stops in the same media tick: only comfort noise follows.
    let greeting = wav_rms(&wav, 0.2, 1.3);
    assert!(
        greeting[1] > 0.02,
        "greeting recorded before the caller spoke: {greeting:?}"
    );
    let onset = first_frame_above(&wav, 0, 1.0, 0.003).expect("caller speech in the left channel");
    let stopped = first_quiet_frame(&wav, 1, onset).expect("the greeting stopped");
    // The left channel is recorded after the 60 ms jitter buffer; the VAD listens at arrival.
    // So the caller's speech reached us 60 ms before its recorded onset.
    let latency_ms = ((stopped - onset) * 1000.0).round() + 60.0;
    eprintln!("barge-in: greeting stopped {latency_ms} ms after the caller's speech arrived");
    assert!(
        latency_ms <= 100.0,
        "greeting stopped {latency_ms} ms after the caller's speech arrived"
    );
    let after = wav_rms(&wav, onset + 0.3, onset + 3.0);
    assert!(after[0] > 0.02, "caller speech recorded: {after:?}");
    assert!(
        after[1] < 0.003,
        "no greeting after the barge-in: {after:?}"
    );
    assert!(server.log().contains("caller barged in"), "barge-in logged");
    assert!(
        server
            .log()
            .contains("greeting rendered source=Piper voice"),
        "the greeting is spoken by the TTS voice"
    );
    let quiet = wav_rms(&wav, secs - 0.4, secs);
    assert!(
        quiet[0] < 0.01,
        "caller channel silent after the speech ends: {quiet:?}"
    );
}

#[test]
fn reinvite_hold_resume_and_caller_bye_with_pcma() {
    let _g = serial();
    let server = Server::start();
    let out = sipp(server.port, "uac_bye.xml", &["-s", "bot", "-d", "1500"]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("caller-bye"), "{row:?}");
    assert_eq!(row.codec.as_deref(), Some("PCMA"));
    assert!(
        server.log().contains("direction=\"recvonly\"")
            || server.log().contains("direction=recvonly"),
        "hold seen"
    );
}

#[test]
fn cancel_before_answer_gets_487() {
    let _g = serial();
    let server = Server::start_with("ring_ms = 5000", "", "");
    let out = sipp(server.port, "uac_cancel.xml", &[]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("caller-cancel"), "{row:?}");
    assert!(row.answered_at_ms.is_none());
    assert!(row.recording_path.is_none());
    let recordings = server.dir.path().join("data/recordings");
    let n = std::fs::read_dir(&recordings)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(n, 0, "an unanswered call leaves no recording");
}

#[test]
fn rtp_timeout_ends_the_call_with_bye() {
    let _g = serial();
    let server = Server::start_with("", "rtp_timeout_secs = 2", "");
    let out = sipp(
        server.port,
        "uac_wait_bye.xml",
        &["-key", "session_expires", "1800"],
    );
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("rtp-timeout"), "{row:?}");
}

#[test]
fn tcp_call_and_bye() {
    let _g = serial();
    let server = Server::start();
    let out = sipp(
        server.port,
        "uac_bye.xml",
        &["-t", "t1", "-s", "bot", "-d", "500"],
    );
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("caller-bye"));
    let transport: String = server
        .db()
        .query_row(
            "SELECT transport FROM calls WHERE id = ?1",
            [&row.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(transport, "TCP");
}

#[test]
fn register_with_digest_good_and_bad_password() {
    let _g = serial();
    let server = Server::start();
    let bad = sipp(
        server.port,
        "register_bad.xml",
        &["-s", "agent1", "-au", "agent1", "-ap", "not-the-password"],
    );
    assert_sipp_ok(&bad, &server);
    let n: i64 = server
        .db()
        .query_row("SELECT COUNT(*) FROM registrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "a wrong password registers nothing");
    let good = sipp(
        server.port,
        "register.xml",
        &["-s", "agent1", "-au", "agent1", "-ap", "agent1pass"],
    );
    assert_sipp_ok(&good, &server);
    std::thread::sleep(Duration::from_millis(300));
    let (aor, expires): (String, i64) = server
        .db()
        .query_row("SELECT aor, expires_at_ms FROM registrations", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(aor, "agent1");
    let left = expires
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
    assert!((290_000..=300_500).contains(&left), "expiry {left} ms");
    let gone = sipp(
        server.port,
        "unregister.xml",
        &["-s", "agent1", "-au", "agent1", "-ap", "agent1pass"],
    );
    assert_sipp_ok(&gone, &server);
    std::thread::sleep(Duration::from_millis(300));
    let n: i64 = server
        .db()
        .query_row("SELECT COUNT(*) FROM registrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "Expires: 0 removes the binding");
}

#[test]
fn graceful_shutdown_sends_bye_and_flushes_cdr() {
    let _g = serial();
    let mut server = Server::start();
    let port = server.port;
    let caller = std::thread::spawn(move || {
        sipp(
            port,
            "uac_wait_bye.xml",
            &["-key", "session_expires", "1800"],
        )
    });
    // Wait until the call is up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.last_call().and_then(|c| c.answered_at_ms).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "call not answered:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = server.terminate();
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status:?}\n{}",
        server.log()
    );
    let out = caller.join().unwrap();
    assert_sipp_ok(&out, &server);
    let row = server.last_call().unwrap();
    assert_eq!(
        row.end_reason.as_deref(),
        Some("server-shutdown"),
        "{row:?}"
    );
}

/// A real softphone (baresip) registers as agent1 with digest auth; a sipp caller dials the
/// agent's extension; voxdesk rings the agent's registered contact, bridges the two legs and
/// records both sides. The agent hears the caller; the caller hears the agent. The caller's
/// leg is PCMA, the agent's PCMU: transcoded through the bridge.
#[test]
fn baresip_agent_registers_and_is_called_through_the_bridge() {
    let _g = serial();
    require("baresip");
    let server = Server::start();
    let mut agent = Softphone::start_padded(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        true,
        40,
    );
    let out = sipp(server.port, "uac_bye.xml", &["-s", "agent1", "-d", "4000"]);
    agent.stop();
    if !out.status.success() {
        eprintln!("baresip log:\n{}", agent.log());
    }
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("caller-bye"), "{row:?}");
    let log = server.log();
    assert!(
        log.contains("agent answered") && log.contains("caller and agent bridged"),
        "{log}"
    );
    // The caller speaks PCMA only, the agent's leg runs PCMU: the bridge transcodes (it
    // relays decoded audio), and both directions carry speech (checked below).
    assert_eq!(row.codec.as_deref(), Some("PCMA"), "{row:?}");
    assert!(
        log.contains("agent answered agent=agent1 codec=\"PCMU\""),
        "{log}"
    );
    // What the agent heard (baresip's decoded-audio dump) carries the caller's speech.
    let heard = agent.heard().expect("baresip recorded the call");
    let agent_rms = wav_rms(&heard, 0.0, 4.0)[0];
    assert!(agent_rms > 0.02, "agent heard the caller: rms {agent_rms}");
    // voxdesk's stereo recording: left = caller, right = what the caller heard (the agent).
    let wav = std::path::PathBuf::from(row.recording_path.unwrap());
    let rms = wav_rms(&wav, 0.3, 3.5);
    assert!(
        rms[0] > 0.02 && rms[1] > 0.02,
        "both parties recorded: {rms:?}"
    );
}

#[test]
fn calling_an_unregistered_agent_gets_480() {
    let _g = serial();
    let server = Server::start();
    let inv = format!(
        "INVITE sip:agent2@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKa480{r}\r\nMax-Forwards: 70\r\n\
From: <sip:c@127.0.0.1>;tag=x\r\nTo: <sip:agent2@127.0.0.1>\r\nCall-ID: {r}@a480\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n",
        p = server.port,
        r = rand_u32()
    );
    let r = server.udp_exchange(&inv, Duration::from_secs(2)).unwrap();
    assert!(r.starts_with("SIP/2.0 480"), "{r}");
}

/// RFC 4028: the caller asked to refresh every 90 s and never does; voxdesk ends the call
/// with BYE after 90 - min(32, 90/3) = 60 s. Runs beside the other peer tests (own ports,
/// no media), so it does not take the serial lock.
#[test]
fn session_timer_expiry_sends_bye() {
    let server = Server::start_with("", "rtp_timeout_secs = 600", "");
    let out = sipp(
        server.port,
        "uac_wait_bye.xml",
        &["-key", "session_expires", "90", "-timeout", "120"],
    );
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(
        row.end_reason.as_deref(),
        Some("session-expired"),
        "{row:?}"
    );
    let secs = (row.ended_at_ms.unwrap() - row.answered_at_ms.unwrap()) as f64 / 1000.0;
    assert!((59.0..65.0).contains(&secs), "BYE after {secs} s");
}
