//! Escalation to people end to end: a sipp caller asks the bot for a person; voxdesk queues
//! the call and rings a real softphone (baresip, registered with digest auth, answering by
//! itself) with the handoff summary in its headers; the agent hears the summary spoken
//! ("whisper"), then the caller. Also: nobody available (callback ticket), and an agent who
//! does not answer (the next agent gets the call).

mod common;
use common::*;
use std::path::PathBuf;

#[derive(Debug)]
struct Escalation {
    trigger: String,
    queue: Option<String>,
    agent: Option<String>,
    outcome: Option<String>,
    wait_ms: Option<i64>,
}

fn escalations(server: &Server) -> Vec<Escalation> {
    let db = server.db();
    let mut st = db
        .prepare("SELECT trigger, queue, agent, outcome, wait_ms FROM escalations ORDER BY id")
        .unwrap();
    st.query_map([], |r| {
        Ok(Escalation {
            trigger: r.get(0)?,
            queue: r.get(1)?,
            agent: r.get(2)?,
            outcome: r.get(3)?,
            wait_ms: r.get(4)?,
        })
    })
    .unwrap()
    .map(|e| e.unwrap())
    .collect()
}

/// The caller asks for a person, then (after `then_ms`) speaks JFK's line to whoever is
/// there, waits `end_ms` and hangs up.
fn caller_scenario(server: &Server, then_ms: u32, end_ms: u32) -> PathBuf {
    let ask = spoken(
        server,
        "person.ul",
        &[("I want to talk to a real person, please.", 0.0)],
    );
    talk_scenario(server.dir.path(), 6500, &ask, then_ms, "jfk.ul", end_ms)
}

#[test]
fn a_person_is_asked_for_and_an_agent_takes_the_call() {
    let _g = serial();
    let server = Server::start_with_models("", "", "");
    let agent = Softphone::start(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        true,
    );
    let sc = caller_scenario(&server, 18000, 12000);
    let out = sipp(server.port, sc.to_str().unwrap(), &["-timeout", "90"]);
    if !out.status.success() {
        eprintln!("baresip:\n{}", agent.log());
    }
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("caller-bye"), "{row:?}");
    let log = server.log();
    for step in [
        "escalating to a person",
        "waiting for a person",
        "routing: ring agent",
        "agent took the escalated call",
        "whispering the summary",
        "caller and agent bridged",
    ] {
        assert!(log.contains(step), "{step}:\n{log}");
    }
    // The agent's phone got the summary in its headers.
    let phone = agent.log();
    assert!(phone.contains("X-Voxdesk-Summary: "), "{phone}");
    assert!(
        phone.contains("Subject: topic unclear; caller") || phone.contains("Subject: "),
        "{phone}"
    );
    assert!(
        phone.contains("purpose=info") && phone.contains(&format!("/api/calls/{}", row.id)),
        "Call-Info: {phone}"
    );
    // The escalation row: trigger, queue, agent, wait, outcome.
    let e = escalations(&server);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].trigger, "requested");
    assert_eq!(e[0].queue.as_deref(), Some("general"));
    assert_eq!(e[0].agent.as_deref(), Some("agent1"));
    assert_eq!(e[0].outcome.as_deref(), Some("answered"));
    assert!(
        e[0].wait_ms.unwrap() >= 0 && e[0].wait_ms.unwrap() < 15000,
        "{e:?}"
    );
    // What the agent heard: first the whisper (speech), then the caller's JFK line.
    let heard = agent.heard().expect("baresip recorded its call");
    let secs = wav_seconds(&heard);
    let first = first_frame_above(&heard, 0, 0.0, 0.01).expect("the agent heard something");
    assert!(
        first < 5.0,
        "the whisper starts {first:.2} s after the agent answered"
    );
    let whisper = wav_rms(&heard, first, first + 3.0)[0];
    assert!(
        whisper > 0.02,
        "the agent heard the summary first: rms {whisper}"
    );
    let later = wav_rms(&heard, secs - 10.0, secs)[0];
    assert!(
        later > 0.02,
        "then the caller: rms {later} ({secs:.1} s heard)"
    );
    // voxdesk's recording has both parties.
    let wav = PathBuf::from(row.recording_path.unwrap());
    let end = wav_seconds(&wav);
    let both = wav_rms(&wav, end - 10.0, end);
    assert!(both[0] > 0.02, "caller in the recording: {both:?}");
    // Both sides went on being transcribed after the handoff, speaker-labelled.
    let said = |who: &str, words: &str, rows: &[(String, String)]| {
        rows.iter()
            .any(|(w, text)| w == who && text.to_lowercase().contains(words))
    };
    let bridged = bridged_turns(&server, &row.id, |rows| {
        said("agent", "customer care", rows) && said("caller", "country", rows)
    });
    assert!(
        said("agent", "customer care", &bridged),
        "the agent's greeting: {bridged:?}"
    );
    assert!(
        said("caller", "country", &bridged),
        "the caller's words to the agent: {bridged:?}"
    );
    drop(agent);
}

/// The bridged call's transcript (speaker, text), once `done` says it is complete (the
/// recogniser works in the background; some seconds are allowed after the call ends).
fn bridged_turns(
    server: &Server,
    call: &str,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let db = server.db();
        let mut st = db
            .prepare("SELECT speaker, text FROM turns WHERE call_id = ?1 AND kind = 'bridged' ORDER BY seq")
            .unwrap();
        let rows: Vec<(String, String)> = st
            .query_map([call], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        if done(&rows) || std::time::Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn nobody_available_the_bot_answers_meanwhile_then_a_callback() {
    let _g = serial();
    // No softphone registers; the queue gives up after 25 s. While waiting the caller asks
    // the bot something the knowledge base answers.
    let server = Server::start_with_models(
        "",
        "",
        "[routing]\n[[routing.queues]]\nname = \"general\"\nskills = [\"general\"]\nmax_wait_secs = 25\n",
    );
    let ask = spoken(
        &server,
        "person.ul",
        &[("I want to talk to a real person, please.", 0.0)],
    );
    // Then silence (RTP keeps flowing) until the bot hangs up.
    let question = spoken(
        &server,
        "roaming.ul",
        &[("How do I turn on roaming?", 45.0)],
    );
    let sc = talk_scenario(server.dir.path(), 6500, &ask, 12000, &question, 0);
    let text = std::fs::read_to_string(&sc).unwrap();
    let cut = text.rfind("  <send retrans=\"500\">").unwrap();
    let hangup = BOT_HANGS_UP.replace("timeout=\"15000\"", "timeout=\"60000\"");
    std::fs::write(&sc, format!("{}{hangup}", &text[..cut])).unwrap();
    let out = sipp(server.port, sc.to_str().unwrap(), &["-timeout", "90"]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(
        row.end_reason.as_deref(),
        Some("bot-goodbye"),
        "{row:?}\n{}",
        server.log()
    );
    let e = escalations(&server);
    assert_eq!(e[0].queue.as_deref(), Some("general"), "{e:?}");
    assert_eq!(e[0].outcome.as_deref(), Some("callback"), "{e:?}");
    assert!(e[0].wait_ms.unwrap() >= 25000, "{e:?}");
    let answered: Vec<String> = {
        let db = server.db();
        let mut st = db
            .prepare("SELECT kind || ' ' || text FROM turns WHERE speaker = 'bot' AND kind LIKE 'queued-kb:%'")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert!(
        answered.len() == 1
            && answered[0].starts_with("queued-kb:roaming_activate Roaming is off by default.")
            && answered[0].ends_with("before you travel. You are still in line for a colleague."),
        "{answered:?}\n{}",
        server.log()
    );
    let (kind, caller): (String, String) = server
        .db()
        .query_row("SELECT kind, caller FROM tickets", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((kind.as_str(), caller.as_str()), ("callback", "+15550100"));
    assert!(server.log().contains("nobody could take the call in time"));
}

#[test]
fn an_agent_who_does_not_answer_passes_the_call_to_the_next() {
    let _g = serial();
    let server = Server::start_with_models("", "", "[routing]\nring_timeout_secs = 4\n");
    // agent1 registers first (longest idle) but never picks up; agent2 answers.
    let a1 = Softphone::start(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        false,
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let a2 = Softphone::start(
        &server,
        "agent2",
        "agent2pass",
        &fixtures().join("agent-hello.wav"),
        true,
    );
    let sc = caller_scenario(&server, 24000, 6000);
    let out = sipp(server.port, sc.to_str().unwrap(), &["-timeout", "90"]);
    assert_sipp_ok(&out, &server);
    server.wait_call_ended();
    let e = escalations(&server);
    assert_eq!(
        e[0].agent.as_deref(),
        Some("agent2"),
        "{e:?}\n{}",
        server.log()
    );
    assert_eq!(e[0].outcome.as_deref(), Some("answered"));
    let log = server.log();
    assert!(log.contains("agent did not answer in time"), "{log}");
    assert!(
        a1.log().contains("INVITE sip:agent1"),
        "agent1 was rung first"
    );
    assert!(a2.heard().is_some(), "agent2 took the call");
    // agent1 is paused for not answering; the API shows it.
    let (_, body) = http(&server.api_addr(), "GET", "/api/agents", None, None);
    assert!(body.contains("\"paused: no answer\""), "{body}");
}

#[test]
fn the_agent_hangs_up_and_the_caller_gets_a_bye() {
    let _g = serial();
    let server = Server::start_with_models("", "", "[routing]\nwhisper = false\n");
    // baresip hangs up when its audio ends: about 12 s after answering.
    let _agent = Softphone::start_padded(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        true,
        10,
    );
    let ask = spoken(
        &server,
        "person.ul",
        &[("I want to talk to a real person, please.", 0.0)],
    );
    let sc = talk_scenario(server.dir.path(), 6500, &ask, 2500, "jfk.ul", 0);
    let text = std::fs::read_to_string(&sc).unwrap();
    let cut = text.rfind("  <send retrans=\"500\">").unwrap();
    let hangup = BOT_HANGS_UP.replace("timeout=\"15000\"", "timeout=\"60000\"");
    std::fs::write(&sc, format!("{}{hangup}", &text[..cut])).unwrap();
    let out = sipp(server.port, sc.to_str().unwrap(), &["-timeout", "90"]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(
        row.end_reason.as_deref(),
        Some("agent-bye"),
        "{row:?}\n{}",
        server.log()
    );
    let e = escalations(&server);
    assert_eq!(e[0].outcome.as_deref(), Some("answered"), "{e:?}");
    assert!(server.log().contains("caller and agent bridged"));
}

#[test]
fn a_caller_who_hangs_up_in_the_queue_is_recorded_as_abandoned() {
    let _g = serial();
    let server = Server::start_with_models("", "", "[routing]\nring_timeout_secs = 30\n");
    // The agent's phone rings and nobody picks up; the caller gives up.
    let agent = Softphone::start(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        false,
    );
    let sc = caller_scenario(&server, 9000, 0);
    let out = sipp(server.port, sc.to_str().unwrap(), &[]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("caller-bye"), "{row:?}");
    let e = escalations(&server);
    assert_eq!(
        e[0].outcome.as_deref(),
        Some("abandoned"),
        "{e:?}\n{}",
        server.log()
    );
    assert!(e[0].agent.is_none());
    // The ringing phone was cancelled.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        agent.log().contains("CANCEL sip:agent1-"),
        "{}",
        agent.log()
    );
    let (_, body) = http(&server.api_addr(), "GET", "/api/agents", None, None);
    assert!(
        body.contains("\"id\":\"agent1\"") && body.contains("\"state\":\"available\""),
        "{body}"
    );
}

#[test]
fn a_call_nobody_in_its_queue_can_take_overflows_to_the_next_queue() {
    let _g = serial();
    // The first queue needs a skill no agent has; after its max wait the call moves on.
    let server = Server::start_with_models(
        "",
        "",
        "[routing]\n[[routing.queues]]\nname = \"front\"\nskills = [\"vip\"]\nmax_wait_secs = 5\noverflow = \"general\"\n\n\
[[routing.queues]]\nname = \"general\"\nskills = [\"general\"]\n",
    );
    let agent = Softphone::start(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        true,
    );
    let sc = caller_scenario(&server, 26000, 6000);
    let out = sipp(server.port, sc.to_str().unwrap(), &["-timeout", "90"]);
    if !out.status.success() {
        eprintln!("baresip:\n{}", agent.log());
    }
    assert_sipp_ok(&out, &server);
    server.wait_call_ended();
    let log = server.log();
    assert!(log.contains("routing: overflow"), "{log}");
    let (queue, from, agent_id, outcome, wait_ms): (String, String, String, String, i64) = server
        .db()
        .query_row(
            "SELECT queue, overflow_from, agent, outcome, wait_ms FROM escalations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (
            queue.as_str(),
            from.as_str(),
            agent_id.as_str(),
            outcome.as_str()
        ),
        ("general", "front", "agent1", "answered")
    );
    assert!(wait_ms >= 5000, "waited {wait_ms} ms");
}
