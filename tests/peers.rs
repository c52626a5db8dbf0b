//! End-to-end tests with real SIP peers (sipp, baresip) against the real voxdesk binary on
//! loopback, a real SQLite file and real recordings.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn call_with_rtp_dtmf_and_hangup_on_pound() {
    let _g = serial();
    let server = Server::start();
    let out = sipp(server.port, "uac_call.xml", &[]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("caller-hash"), "{row:?}");
    assert_eq!(row.dtmf, "1#");
    assert_eq!(row.codec.as_deref(), Some("PCMU"));
    assert!(row.from_uri.contains("+15550100"));
    let answered = row.answered_at_ms.expect("answered");
    let talk_s = (row.ended_at_ms.unwrap() - answered) as f32 / 1000.0;
    assert!(row.rtp_packets_in.unwrap_or(0) > 150, "caller RTP counted: {row:?}");
    // The recording covers the answered call: left = caller, right = greeting.
    let wav = std::path::PathBuf::from(row.recording_path.expect("recording"));
    let secs = wav_seconds(&wav);
    assert!((secs - talk_s).abs() < 1.0, "recording {secs:.2} s vs call {talk_s:.2} s");
    let rms = wav_rms(&wav, 0.5, 3.5);
    assert!(rms[0] > 0.02, "caller speech recorded: rms {rms:?}");
    assert!(rms[1] > 0.02, "greeting recorded: rms {rms:?}");
    let quiet = wav_rms(&wav, secs - 0.4, secs);
    assert!(quiet[0] < 0.01, "caller channel silent after the speech ends: {quiet:?}");
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
    assert!(server.log().contains("direction=\"recvonly\"") || server.log().contains("direction=recvonly"), "hold seen");
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
}

#[test]
fn rtp_timeout_ends_the_call_with_bye() {
    let _g = serial();
    let server = Server::start_with("", "rtp_timeout_secs = 2", "");
    let out = sipp(server.port, "uac_wait_bye.xml", &[]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("rtp-timeout"), "{row:?}");
}

#[test]
fn tcp_call_and_bye() {
    let _g = serial();
    let server = Server::start();
    let out = sipp(server.port, "uac_bye.xml", &["-t", "t1", "-s", "bot", "-d", "500"]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("caller-bye"));
    let transport: String = server.db().query_row("SELECT transport FROM calls WHERE id = ?1", [&row.id], |r| r.get(0)).unwrap();
    assert_eq!(transport, "TCP");
}

#[test]
fn register_with_digest_good_and_bad_password() {
    let _g = serial();
    let server = Server::start();
    let bad = sipp(server.port, "register_bad.xml", &["-s", "agent1", "-au", "agent1", "-ap", "not-the-password"]);
    assert_sipp_ok(&bad, &server);
    let n: i64 = server.db().query_row("SELECT COUNT(*) FROM registrations", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "a wrong password registers nothing");
    let good = sipp(server.port, "register.xml", &["-s", "agent1", "-au", "agent1", "-ap", "agent1pass"]);
    assert_sipp_ok(&good, &server);
    std::thread::sleep(Duration::from_millis(300));
    let (aor, expires): (String, i64) = server.db().query_row("SELECT aor, expires_at_ms FROM registrations", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(aor, "agent1");
    let left = expires - std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((290_000..=300_500).contains(&left), "expiry {left} ms");
    let gone = sipp(server.port, "unregister.xml", &["-s", "agent1", "-au", "agent1", "-ap", "agent1pass"]);
    assert_sipp_ok(&gone, &server);
    std::thread::sleep(Duration::from_millis(300));
    let n: i64 = server.db().query_row("SELECT COUNT(*) FROM registrations", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "Expires: 0 removes the binding");
}

#[test]
fn graceful_shutdown_sends_bye_and_flushes_cdr() {
    let _g = serial();
    let mut server = Server::start();
    let port = server.port;
    let caller = std::thread::spawn(move || sipp(port, "uac_wait_bye.xml", &[]));
    // Wait until the call is up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.last_call().and_then(|c| c.answered_at_ms).is_none() {
        assert!(std::time::Instant::now() < deadline, "call not answered:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{}", server.log());
    let out = caller.join().unwrap();
    assert_sipp_ok(&out, &server);
    let row = server.last_call().unwrap();
    assert_eq!(row.end_reason.as_deref(), Some("server-shutdown"), "{row:?}");
}
