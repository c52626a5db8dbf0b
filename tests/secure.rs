//! SIP over TLS and SRTP (SDES) with a real softphone: baresip registered over TLS calls the
//! bot with encrypted media, and a sipp caller is bridged to a baresip agent on TLS whose
//! media must be SRTP. Certificates are made by the test (openssl, self-signed for
//! 127.0.0.1).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A self-signed certificate for 127.0.0.1 and its key, in `dir`.
fn make_cert(dir: &Path) -> (PathBuf, PathBuf) {
    require("openssl");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "openssl could not make a certificate");
    (cert, key)
}

/// A server with TLS on a free port; returns it, its TLS port and the certificate.
fn tls_server(certs: &Path, tables: &str) -> (Server, u16, PathBuf) {
    let (cert, key) = make_cert(certs);
    let tls_port = free_port();
    let server = Server::start_with(
        &format!(
            "transports = [\"udp\", \"tcp\", \"tls\"]\ntls_port = {tls_port}\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            cert.display(),
            key.display()
        ),
        "",
        tables,
    );
    (server, tls_port, cert)
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_tls_and_srtp_call_from_baresip_to_the_bot() {
    let _g = serial();
    require("baresip");
    let certs = tempfile::tempdir().unwrap();
    // The caller's leg must be encrypted.
    let (server, tls_port, ca) = tls_server(certs.path(), "");
    let secure = Secure {
        tls_port,
        ca,
        mediaenc: "srtp-mand",
    };
    // The caller listens to the greeting for 4 s, then talks (talking at once would pause
    // the greeting: barge-in).
    let voice = certs.path().join("later.wav");
    {
        let mut r = hound::WavReader::open(fixtures().join("agent-hello.wav")).unwrap();
        let spec = r.spec();
        let mut w = hound::WavWriter::create(&voice, spec).unwrap();
        for _ in 0..spec.sample_rate * 4 {
            w.write_sample(0i16).unwrap();
        }
        for x in r.samples::<i16>() {
            w.write_sample(x.unwrap()).unwrap();
        }
        w.finalize().unwrap();
    }
    let mut phone = Softphone::start_secure(&server, "agent2", "agent2pass", &voice, &secure);
    assert!(
        server.log().contains("tls:127.0.0.1"),
        "registered over TLS"
    );
    phone.command(
        "dial",
        &format!("sip:bot@127.0.0.1:{tls_port};transport=tls"),
    );
    // The call is up, then hung up after 8 s.
    wait_for("the call", Duration::from_secs(20), || {
        server
            .last_call()
            .is_some_and(|c| c.answered_at_ms.is_some())
    });
    std::thread::sleep(Duration::from_secs(8));
    phone.command("hangup", "");
    let row = server.wait_call_ended();
    phone.stop();
    let (transport, proto): (String, String) = server
        .db()
        .query_row(
            "SELECT transport, codec FROM calls WHERE id = ?1",
            [&row.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(transport, "TLS", "{row:?}");
    let log = server.log();
    assert!(!proto.is_empty());
    assert!(
        log.contains("media encrypted (SRTP)"),
        "SDES keys negotiated"
    );
    assert!(!log.contains("SRTP packet failed authentication"), "{log}");
    // Media both ways, decrypted: the caller's voice in our recording, our greeting in what
    // baresip heard.
    let wav = PathBuf::from(row.recording_path.clone().expect("recorded"));
    let rms = wav_rms(&wav, 4.0, 7.0);
    assert!(rms[0] > 0.02, "the caller's voice was decrypted: {rms:?}");
    let heard = phone.heard().expect("baresip recorded the call");
    let heard_rms = wav_rms(&heard, 0.5, 3.5)[0];
    assert!(
        heard_rms > 0.01,
        "the phone decrypted our audio: {heard_rms}\n{}",
        phone.log()
    );
}

#[test]
fn an_agent_on_tls_with_required_srtp_gets_a_bridged_call() {
    let _g = serial();
    require("baresip");
    let certs = tempfile::tempdir().unwrap();
    // agent1's calls must be encrypted; the caller (sipp, plain RTP) is not.
    let (server, tls_port, ca) = tls_server(
        certs.path(),
        "[[agents]]\nusername = \"agent1\"\npassword = \"agent1pass\"\nsrtp = \"required\"\nskills = [\"general\"]\n",
    );
    let secure = Secure {
        tls_port,
        ca,
        mediaenc: "srtp-mand",
    };
    let mut agent = Softphone::start_secure(
        &server,
        "agent1",
        "agent1pass",
        &fixtures().join("agent-hello.wav"),
        &secure,
    );
    let out = sipp(server.port, "uac_bye.xml", &["-s", "agent1", "-d", "4000"]);
    agent.stop();
    if !out.status.success() {
        eprintln!("baresip log:\n{}", agent.log());
    }
    assert_sipp_ok(&out, &server);
    let row = server.wait_call_ended();
    let log = server.log();
    assert!(log.contains("caller and agent bridged"), "{log}");
    assert!(
        log.contains("media encrypted (SRTP)"),
        "the agent's leg is SRTP"
    );
    assert!(!log.contains("SRTP packet failed authentication"), "{log}");
    let heard = agent.heard().expect("baresip recorded the call");
    let agent_rms = wav_rms(&heard, 0.0, 4.0)[0];
    assert!(
        agent_rms > 0.02,
        "the agent heard the caller over SRTP: {agent_rms}"
    );
    let wav = PathBuf::from(row.recording_path.unwrap());
    let rms = wav_rms(&wav, 0.3, 3.5);
    assert!(
        rms[0] > 0.02 && rms[1] > 0.02,
        "both parties recorded: {rms:?}"
    );
}

#[test]
fn plain_media_is_refused_where_srtp_is_required_and_bad_tls_files_are_named() {
    let _g = serial();
    let certs = tempfile::tempdir().unwrap();
    let (server, _, _) = tls_server(certs.path(), "");
    drop(server);
    // media.srtp = "required": a plain RTP offer gets 488 with the reason.
    let server = Server::start_with("", "srtp = \"required\"", "");
    let out = sipp(server.port, "uac_bye.xml", &["-s", "bot", "-d", "1000"]);
    assert!(!out.status.success());
    let row = server.wait_call_ended();
    assert_eq!(row.end_reason.as_deref(), Some("srtp-policy"), "{row:?}");
    // A TLS certificate file that is not PEM: serve fails naming the key.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
    let cfg = dir.path().join("voxdesk.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sip]\nport = {}\ntransports = [\"udp\", \"tls\"]\ntls_port = {}\ntls_cert = \"{p}\"\ntls_key = \"{p}\"\n[speech]\nenabled = false\n[api]\nenabled = false\n",
            free_port(),
            free_port(),
            p = dir.path().join("bad.pem").display()
        ),
    )
    .unwrap();
    let (ok, out) = voxdesk(&["--config", cfg.to_str().unwrap(), "serve"], dir.path());
    assert!(!ok && out.contains("sip.tls_cert"), "{out}");
}
