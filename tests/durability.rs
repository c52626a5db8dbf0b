//! A crash (SIGKILL) during 20 live calls: every CDR row already started and every digit
//! already stored is still there, the database passes `PRAGMA integrity_check`, the calls
//! left open are closed as `server-restart`, and the restarted server takes calls.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn kill_9_during_twenty_calls_loses_nothing_stored() {
    let _g = serial();
    require("sipp");
    let mut server = Server::start_with("", "", "[limits]\nmax_ai_calls = 40\n");
    // Each caller presses 1 after 1.5 s, then stays on the line for a minute.
    let text = std::fs::read_to_string(scenario("uac_press0.xml")).unwrap();
    let sc = server.dir.path().join("press1.xml");
    std::fs::write(
        &sc,
        text.replace("@wait_ms@", "1500")
            .replace("dtmf_2833_0.pcap", "dtmf_2833_1.pcap")
            .replace("@talk_ms@", "60000"),
    )
    .unwrap();
    let mut callers = Command::new("sipp")
        .current_dir(fixtures())
        .arg(format!("127.0.0.1:{}", server.port))
        .arg("-sf")
        .arg(&sc)
        .args([
            "-m",
            "20",
            "-r",
            "20",
            "-l",
            "20",
            "-i",
            "127.0.0.1",
            "-nostdin",
        ])
        .args([
            "-p",
            &free_port().to_string(),
            "-mp",
            &free_media_port().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run sipp");
    // Wait until all 20 calls are stored with their digit.
    let count = |db: &rusqlite::Connection, sql: &str| -> i64 {
        db.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = count(
            &server.db(),
            "SELECT COUNT(*) FROM calls WHERE dtmf = '1' AND ended_at_ms IS NULL",
        );
        if n == 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of 20 calls stored with their digit\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.kill9();
    let _ = callers.kill();
    let _ = callers.wait();
    let db = server.db();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM calls WHERE dtmf = '1'"),
        20,
        "every started call and its digit survived"
    );
    drop(db);
    server.restart("server-2.log");
    let db = server.db();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM calls WHERE end_reason = 'server-restart' AND ended_at_ms IS NOT NULL"),
        20,
        "the calls left open by the crash are closed at the next start"
    );
    // The restarted server serves: OPTIONS, and a whole call.
    let r = server.udp_exchange(&options(server.port, "after"), Duration::from_secs(2));
    assert!(r.is_some_and(|r| r.starts_with("SIP/2.0 200")));
    let out = sipp(server.port, "uac_bye.xml", &["-s", "bot", "-d", "1000"]);
    assert_sipp_ok(&out, &server);
}
