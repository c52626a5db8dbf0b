//! Callers' personal data: a card number and a phone number said on a real call (espeak-ng's
//! voice, Whisper, the real pipeline) leave no trace in turns, the handoff summary, the
//! ticket, the log or the API; retention and erasure on a real SQLite file and real
//! recordings.

mod common;
use common::*;
use std::path::Path;

/// Whether `text` still holds any part of the caller's numbers (digits, or the same digits
/// as words). espeak-ng says them digit by digit; Whisper writes them back as digits.
fn leaks(text: &str) -> Option<String> {
    let squeezed: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
    // The card (a valid Luhn number) and the phone number, and long pieces of them.
    for secret in [
        "4523017859164323",
        "45230178",
        "01785916",
        "59164323",
        "4156270189",
        "6270189",
    ] {
        if squeezed.contains(secret) {
            return Some(secret.into());
        }
    }
    let lower = text.to_lowercase();
    ["four five two three", "six two seven"]
        .into_iter()
        .find(|w| lower.contains(w))
        .map(str::to_string)
}

#[test]
fn numbers_said_on_a_call_are_redacted_everywhere() {
    let _g = serial();
    // Routing off: asking for a person books a callback ticket with the summary.
    let server = Server::start_with_models(
        "",
        "",
        "[routing]\nenabled = false\n\n[dialog]\nmax_not_understood = 9\nanger_rising = false\n\n[nlu]\nanger_threshold = 1.0\n",
    );
    let first = espeak(
        &server,
        "card",
        "en-us",
        130,
        "My card number is 4 5 2 3, 0 1 7 8, 5 9 1 6, 4 3 2 3. And my phone number is 4 1 5, 6 2 7, 0 1 8 9.",
        1.0,
    );
    let second = espeak(
        &server,
        "person",
        "en-us",
        150,
        "I want to talk to a real person, please.",
        0.5,
    );
    let sc = talk_scenario(server.dir.path(), 6500, &first, 9000, &second, 0);
    let text = std::fs::read_to_string(&sc).unwrap();
    let cut = text.rfind("  <send retrans=\"500\">").unwrap();
    let hangup = BOT_HANGS_UP.replace("timeout=\"15000\"", "timeout=\"45000\"");
    std::fs::write(&sc, format!("{}{hangup}", &text[..cut])).unwrap();
    // The numbers take 12 s to say, the handoff and the callback booking 15 s.
    let out = sipp(server.port, sc.to_str().unwrap(), &["-timeout", "120"]);
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    let db = server.db();
    let texts: Vec<String> = db
        .prepare("SELECT text FROM turns UNION ALL SELECT summary_json FROM escalations UNION ALL SELECT summary_line FROM escalations UNION ALL SELECT subject || details_json FROM tickets")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let caller: Vec<&String> = texts.iter().take(4).collect();
    eprintln!("stored: {texts:#?}");
    // Whisper heard the numbers (a positive control), and they were replaced.
    assert!(
        texts
            .iter()
            .any(|t| t.contains("[card number]") || t.contains("[number]")),
        "no number was heard: {caller:?}"
    );
    for t in &texts {
        assert!(leaks(t).is_none(), "leaked {:?} in {t}", leaks(t));
    }
    let log = server.log();
    for line in log.lines() {
        assert!(
            leaks(line).is_none(),
            "leaked {:?} in the log: {line}",
            leaks(line)
        );
    }
    let api = server.api_addr();
    let (st, body) = http(&api, "GET", &format!("/api/calls/{}", row.id), None, None);
    assert_eq!(st, 200);
    assert!(leaks(&body).is_none(), "leaked in the API: {body}");
    let (_, body) = http(&api, "GET", "/api/tickets", None, None);
    assert!(leaks(&body).is_none(), "leaked in the API: {body}");
    // An info-level log carries no transcript text and no caller number.
    let info: Vec<&str> = log.lines().filter(|l| l.contains(" INFO ")).collect();
    assert!(
        info.iter().all(|l| !l.contains("+15550100")),
        "caller number at info level"
    );
    assert!(
        info.iter()
            .any(|l| l.contains("caller said") && l.contains("chars>")),
        "transcripts are logged by length only"
    );
}

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn recordings(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("data/recordings"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn retention_and_erasure_on_real_calls() {
    let _g = serial();
    require("sipp");
    let server = Server::start();
    for _ in 0..2 {
        let out = sipp(server.port, "uac_bye.xml", &["-s", "bot", "-d", "1000"]);
        assert_sipp_ok(&out, &server);
        server.wait_call_ended();
    }
    let db = server.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM calls"), 2);
    let files = recordings(server.dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    // Recordings are private: 0600 in a 0700 folder.
    use std::os::unix::fs::PermissionsExt;
    for f in &files {
        assert_eq!(
            std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            f.display()
        );
    }
    let dir_mode = std::fs::metadata(server.dir.path().join("data/recordings"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    // Age the first call by 100 days: past recordings_days (90), within cdr_days (365).
    db.execute(
        "UPDATE calls SET started_at_ms = started_at_ms - 100 * 86400000 WHERE rowid = (SELECT MIN(rowid) FROM calls)",
        [],
    )
    .unwrap();
    drop(db);
    // A retention pass (the server runs one every hour; here directly on the same file).
    let store = voxdesk::store::Store::open(&server.db_path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = voxdesk::config::PrivacyConfig::default();
    let p = rt
        .block_on(voxdesk::store::retention::run_once(
            &store,
            &cfg,
            voxdesk::store::now_ms(),
        ))
        .unwrap();
    assert_eq!((p.recordings.len(), p.calls), (1, 0), "{p:?}");
    assert_eq!(
        recordings(server.dir.path()).len(),
        1,
        "the old recording is gone from disk"
    );
    // 400 days: the CDR goes too.
    let db = server.db();
    db.execute(
        "UPDATE calls SET started_at_ms = started_at_ms - 300 * 86400000 WHERE recording_path IS NULL",
        [],
    )
    .unwrap();
    let p = rt
        .block_on(voxdesk::store::retention::run_once(
            &store,
            &cfg,
            voxdesk::store::now_ms(),
        ))
        .unwrap();
    assert_eq!(p.calls, 1, "{p:?}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM calls"), 1);
    // The caller's export names the remaining call and its recording; erasure removes both
    // and leaves an audit row without the number.
    let (ok, out) = voxdesk(
        &["--log", "error", "caller", "export", "+4930123"],
        server.dir.path(),
    );
    assert!(ok, "{out}");
    let export: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(export["calls"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(export["recordings"].as_array().unwrap().len(), 1, "{out}");
    let (ok, out) = voxdesk(
        &["--log", "error", "caller", "erase", "+4930123"],
        server.dir.path(),
    );
    assert!(
        ok && out.contains("erased 1 call(s)") && out.contains("1 recording(s)"),
        "{out}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM calls"), 0);
    assert!(recordings(server.dir.path()).is_empty());
    let audit: Vec<String> = db
        .prepare("SELECT actor || ' ' || action || ' ' || detail FROM audit")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        audit.iter().any(|a| a.contains("caller-erase")),
        "{audit:?}"
    );
    assert!(audit.iter().all(|a| !a.contains("4930123")), "{audit:?}");
    // Over the API too (nothing left to erase now, but the route answers and audits).
    let api = server.api_addr();
    let (st, body) = http(&api, "DELETE", "/api/callers/+4930123", None, None);
    assert_eq!(st, 200, "{body}");
    // A number with SQL wildcards matches nobody (not everybody).
    let (st, body) = http(&api, "DELETE", "/api/callers/%25", None, None);
    assert_eq!((st, body.contains("\"calls\":0")), (200, true), "{body}");
}
