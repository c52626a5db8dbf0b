//! Agents change their own state from their softphone: a real baresip dials the feature
//! codes (`*22` pause, `*21` available); voxdesk checks the agent's digest credentials on
//! the INVITE, changes the state the router uses, confirms (tones here: no voice loaded)
//! and hangs up. Strangers and wrong passwords change nothing.

mod common;
use common::*;

fn agent_state(server: &Server, agent: &str) -> String {
    let (st, body) = http(&server.api_addr(), "GET", "/api/agents", None, None);
    assert_eq!(st, 200, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    list.iter()
        .find(|a| a["id"] == agent)
        .map(|a| a["state"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {agent} in {body}"))
}

fn feature_calls(server: &Server) -> i64 {
    server
        .db()
        .query_row(
            "SELECT COUNT(*) FROM calls WHERE end_reason = 'feature-code'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn an_agent_pauses_and_resumes_with_feature_codes() {
    let _g = serial();
    let server = Server::start();
    let _phone = Softphone::start(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        true,
    );
    assert_eq!(agent_state(&server, "agent1"), "available");

    let log = dial_feature(&server, "agent1", "agent1pass", "*22", 5);
    assert_eq!(
        agent_state(&server, "agent1"),
        "paused: feature code",
        "{log}\n{}",
        server.log()
    );
    // The INVITE was challenged, answered, and voxdesk ended the call after the tones.
    assert!(log.contains("SIP/2.0 401 Unauthorized"), "{log}");
    assert!(log.contains("Call established"), "{log}");
    assert!(log.contains("BYE sip:"), "voxdesk hangs up: {log}");
    assert_eq!(feature_calls(&server), 1);

    dial_feature(&server, "agent1", "agent1pass", "*21", 5);
    assert_eq!(agent_state(&server, "agent1"), "available");
    assert_eq!(feature_calls(&server), 2);

    // A wrong password: challenged again, never answered, nothing changes.
    let log = dial_feature(&server, "agent1", "not-the-password", "*22", 4);
    assert!(!log.contains("Call established"), "{log}");
    assert_eq!(agent_state(&server, "agent1"), "available");
    assert_eq!(feature_calls(&server), 2);
}

#[test]
fn a_stranger_dialling_a_feature_code_is_refused() {
    let _g = serial();
    let server = Server::start();
    let invite = |from: &str, tag: &str| {
        format!(
            "INVITE sip:*22@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{tag}{r}\r\nMax-Forwards: 70\r\n\
From: <sip:{from}@127.0.0.1>;tag={tag}\r\nTo: <sip:*22@127.0.0.1>\r\nCall-ID: {tag}-{r}@probe\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:{from}@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n",
            port = server.port,
            r = rand_u32()
        )
    };
    let wait = std::time::Duration::from_secs(2);
    // Not an agent account, and an agent's name without credentials: the same digest
    // challenge (which names exist is not revealed), no call.
    for (from, tag) in [("mallory", "fc1"), ("agent1", "fc2")] {
        let r = server.udp_exchange(&invite(from, tag), wait).unwrap();
        assert!(r.starts_with("SIP/2.0 401"), "{r}");
        assert!(r.contains("WWW-Authenticate: Digest"), "{r}");
    }
    assert_eq!(feature_calls(&server), 0);
    assert!(server.last_call().is_none());
}

fn wait_state(server: &Server, agent: &str, want: &str, secs: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let st = agent_state(server, agent);
        if st == want || std::time::Instant::now() > deadline {
            return st;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A call dialled to an agent's extension (not offered by the queues) makes the agent busy
/// for the ACD while it lasts, and wrap-up follows it as after a queued call.
#[test]
fn an_agent_on_a_call_to_their_extension_is_busy_for_the_queues() {
    let _g = serial();
    require("baresip");
    let server = Server::start_with("", "", "[routing]\nwrap_up_secs = 30\n");
    let mut phone = Softphone::start(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        true,
    );
    assert_eq!(agent_state(&server, "agent1"), "available");
    let port = server.port;
    let caller =
        std::thread::spawn(move || sipp(port, "uac_bye.xml", &["-s", "agent1", "-d", "4000"]));
    let during = wait_state(&server, "agent1", "on-call", 10);
    let out = caller.join().unwrap();
    phone.stop();
    assert_sipp_ok(&out, &server);
    assert_eq!(during, "on-call", "{}", server.log());
    server.wait_call_ended();
    assert_eq!(
        wait_state(&server, "agent1", "wrap-up", 5),
        "wrap-up",
        "{}",
        server.log()
    );
}
