//! The HTTP API on a running server: knowledge-base CRUD and search, calls, tickets, the
//! token check. Real server, real SQLite file, plain HTTP/1.1 on loopback.

mod common;
use common::*;
use serde_json::Value;

#[test]
fn knowledge_base_over_http() {
    let server = Server::start();
    let api = server.api_addr();
    assert_eq!(
        http(&api, "GET", "/healthz", None, None),
        (200, "ok".into())
    );
    // The bundled sample is there from the first start.
    let (st, body) = http(&api, "GET", "/api/kb", None, None);
    assert_eq!(st, 200, "{body}");
    let all: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(all.len(), 16);
    assert!(all
        .iter()
        .any(|e| e["key"] == "roaming_rates" && e["answers"]["zh"].is_string()));
    // Create, read, update, delete one entry.
    let entry = r#"{"key":"lounge_wifi","intent":"lounge_wifi","tags":["stores"],"questions":{"en":["What is the wifi password in the store?"]},"answers":{"en":"It is voxdesk-guest."}}"#;
    assert_eq!(
        http(&api, "PUT", "/api/kb/lounge_wifi", Some(entry), None).0,
        201
    );
    let counts = |body: String| -> (i64, i64, i64) {
        let v: Value = serde_json::from_str(&body).unwrap();
        (
            v["added"].as_i64().unwrap(),
            v["updated"].as_i64().unwrap(),
            v["unchanged"].as_i64().unwrap(),
        )
    };
    assert_eq!(
        counts(http(&api, "PUT", "/api/kb/lounge_wifi", Some(entry), None).1),
        (0, 0, 1)
    );
    let (st, body) = http(&api, "GET", "/api/kb/lounge_wifi", None, None);
    assert_eq!(st, 200);
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["answers"]["en"], "It is voxdesk-guest.");
    let changed = entry.replace("It is voxdesk-guest.", "It is voxdesk-guest-2.");
    assert_eq!(
        counts(http(&api, "PUT", "/api/kb/lounge_wifi", Some(&changed), None).1),
        (0, 1, 0)
    );
    let (st, body) = http(&api, "GET", "/api/kb/search?q=wifi%20password", None, None);
    assert_eq!(st, 200, "{body}");
    let hits: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(hits[0]["key"], "lounge_wifi", "{body}");
    assert_eq!(hits[0]["answer"], "It is voxdesk-guest-2.");
    // Bad bodies: a clear 400, nothing stored.
    let (st, body) = http(&api, "PUT", "/api/kb/other", Some(entry), None);
    assert!(st == 400 && body.contains("not the path's"), "{st} {body}");
    let (st, body) = http(&api, "PUT", "/api/kb/x", Some("{not json"), None);
    assert!(st == 400 && body.contains("error"), "{st} {body}");
    let (st, body) = http(
        &api,
        "PUT",
        "/api/kb/x",
        Some(r#"{"key":"x","questions":{"en":["q?"]}}"#),
        None,
    );
    assert!(st == 400 && body.contains("no answer"), "{st} {body}");
    assert_eq!(
        http(&api, "DELETE", "/api/kb/lounge_wifi", None, None).0,
        204
    );
    assert_eq!(
        http(&api, "DELETE", "/api/kb/lounge_wifi", None, None).0,
        404
    );
    assert_eq!(http(&api, "GET", "/api/kb/lounge_wifi", None, None).0, 404);
    let (_, body) = http(&api, "GET", "/api/kb/search?q=wifi%20password", None, None);
    assert!(
        !body.contains("lounge_wifi"),
        "deleted from the index too: {body}"
    );
    // Calls and tickets (none yet), an unknown call, training without the encoder.
    assert_eq!(
        http(&api, "GET", "/api/tickets", None, None),
        (200, "[]".into())
    );
    assert_eq!(http(&api, "GET", "/api/calls/nope", None, None).0, 404);
    assert_eq!(
        http(
            &api,
            "POST",
            "/api/calls/nope/wrapup",
            Some(r#"{"disposition":"resolved"}"#),
            None
        )
        .0,
        404
    );
    assert_eq!(
        http(
            &api,
            "POST",
            "/api/calls/nope/wrapup",
            Some(r#"{"notes":"x"}"#),
            None
        )
        .0,
        400
    );
    assert_eq!(
        http(&api, "GET", "/api/kb/suggestions", None, None),
        (200, "[]".into())
    );
    assert_eq!(http(&api, "POST", "/api/nlu/train", None, None).0, 409);
}

#[test]
fn a_token_guards_the_api() {
    let server = Server::start_with("", "", "[api]\nport = 0\ntoken = \"s3cret\"\n");
    let api = server.api_addr();
    let (st, body) = http(&api, "GET", "/api/kb", None, None);
    assert!(st == 401 && body.contains("Bearer"), "{st} {body}");
    assert_eq!(http(&api, "GET", "/api/kb", None, Some("wrong")).0, 401);
    assert_eq!(http(&api, "GET", "/api/kb", None, Some("s3cret")).0, 200);
    assert_eq!(
        http(&api, "GET", "/healthz", None, None).0,
        200,
        "health needs no token"
    );
}

#[test]
fn a_running_server_picks_up_knowledge_base_changes_and_new_heads() {
    let server = Server::start_with_models("", "", "[nlu]\nreload_secs = 1\n");
    let api = server.api_addr();
    let wait_log = |needle: &str| {
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_secs(20) {
            if server.log().contains(needle) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("no {needle:?} in the log:\n{}", server.log());
    };
    let entry = r#"{"key":"lounge_wifi","intent":"lounge_wifi","questions":{"en":["What is the wifi password in the store?"]},"answers":{"en":"It is voxdesk-guest."}}"#;
    assert_eq!(
        http(&api, "PUT", "/api/kb/lounge_wifi", Some(entry), None).0,
        201
    );
    wait_log("knowledge base changed: reloaded");
    // Training over the API (seconds): the heads now know the new intent, and the server
    // loads them by itself.
    let (st, body) = http(&api, "POST", "/api/nlu/train", None, None);
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("25 intents"), "{body}");
    wait_log("loaded newly trained intent and emotion heads");
}

#[test]
fn agent_states_over_http() {
    let server = Server::start();
    let api = server.api_addr();
    let (st, body) = http(&api, "GET", "/api/agents", None, None);
    assert_eq!(st, 200);
    let agents: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(agents.len(), 2, "the demo agents: {body}");
    assert!(
        agents
            .iter()
            .all(|a| a["state"] == "offline" && a["registered"] == false),
        "{body}"
    );
    // Not registered: cannot be made available; can be paused.
    let (st, body) = http(
        &api,
        "POST",
        "/api/agents/agent1/state",
        Some(r#"{"state":"available"}"#),
        None,
    );
    assert!(st == 400 && body.contains("not registered"), "{st} {body}");
    assert_eq!(
        http(
            &api,
            "POST",
            "/api/agents/agent1/state",
            Some(r#"{"state":"paused","reason":"lunch"}"#),
            None
        )
        .0,
        204
    );
    let (_, body) = http(&api, "GET", "/api/agents", None, None);
    assert!(body.contains("paused: lunch"), "{body}");
    let (st, body) = http(
        &api,
        "POST",
        "/api/agents/agent1/state",
        Some(r#"{"state":"dancing"}"#),
        None,
    );
    assert!(st == 400 && body.contains("dancing"), "{st} {body}");
    assert_eq!(
        http(
            &api,
            "POST",
            "/api/agents/nobody/state",
            Some(r#"{"state":"paused"}"#),
            None
        )
        .0,
        400
    );
}
