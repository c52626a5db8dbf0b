//! Test helpers: run the real voxdesk binary on loopback with its own config, data folder and
//! ports; run real peers (sipp, baresip) against it; read its SQLite file and recordings.
#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod softphone;
#[allow(unused_imports)]
pub use softphone::*;
mod talk;
#[allow(unused_imports)]
pub use talk::*;
mod voices;
#[allow(unused_imports)]
pub use voices::*;
mod wav;
#[allow(unused_imports)]
pub use wav::*;

/// Peers use fixed-ish media ports: run peer tests one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());
static RTP_BASE: AtomicU16 = AtomicU16::new(0);

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// An even free port with port+1 free too (RTP/RTCP).
pub fn free_media_port() -> u16 {
    loop {
        let p = free_port();
        let p = p - p % 2;
        if UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
            && p > 1024
        {
            return p;
        }
    }
}

pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is not installed: run scripts/setup.sh (it installs the test peers)"
    );
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

pub struct Server {
    pub port: u16,
    /// The RTP port range of its config.
    rtp: (u16, u16),
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    /// Starts voxdesk with the defaults of a loopback test deployment.
    pub fn start() -> Server {
        Server::start_with("", "", "")
    }

    /// Starts voxdesk with extra keys for [sip] and [media] and extra tables at the end,
    /// without model files (the built-in greeting; starts in milliseconds).
    pub fn start_with(sip_keys: &str, media_keys: &str, tables: &str) -> Server {
        Server::launch(sip_keys, media_keys, tables, false)
    }

    /// Like [`start_with`](Self::start_with) with the fetched models (./models): the
    /// greeting is rendered by the Piper voice at start-up.
    pub fn start_with_models(sip_keys: &str, media_keys: &str, tables: &str) -> Server {
        Server::launch(sip_keys, media_keys, tables, true)
    }

    fn launch(sip_keys: &str, media_keys: &str, tables: &str, models: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let base = 30000 + (RTP_BASE.fetch_add(1, Ordering::SeqCst) % 40) * 400;
        let cfg = format!(
            "[sip]\nbind = \"127.0.0.1\"\nport = {port}\n{sip_keys}\n\n[media]\nrtp_port_min = {base}\nrtp_port_max = {}\n{media_keys}\n\n[paths]\ndata_dir = \"{}\"\nmodels_dir = \"{}\"\n\n{tables}\n",
            base + 398,
            dir.path().join("data").display(),
            if models { PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models") } else { dir.path().join("no-models") }.display()
        );
        // Tests run side by side: the HTTP API takes a free port (logged).
        let cfg = if tables.contains("[api]") {
            cfg
        } else {
            format!("{cfg}\n[api]\nport = 0\n")
        };
        // Without models the bot cannot listen or talk: greeting, DTMF and recording only.
        let cfg = if models || tables.contains("[speech]") {
            cfg
        } else {
            format!("{cfg}\n[speech]\nenabled = false\n")
        };
        let cfg_path = dir.path().join("voxdesk.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let child = spawn_server(dir.path(), "server.log");
        let s = Server {
            port,
            rtp: (base, base + 398),
            dir,
            child: Some(child),
        };
        s.wait_ready();
        s
    }

    /// Kills the process with SIGKILL (no shutdown at all), as a crash or the OOM killer
    /// would, and waits for it to be gone.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("running");
        unsafe_kill(c.id(), 9);
        let _ = c.wait();
    }

    /// Starts the server again on the same config and data (its log in `log_name`).
    pub fn restart(&mut self, log_name: &str) {
        assert!(self.child.is_none(), "stop it first");
        self.child = Some(spawn_server(self.dir.path(), log_name));
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(r) =
                self.udp_exchange(&options(self.port, "ready"), Duration::from_millis(300))
            {
                if r.starts_with("SIP/2.0 200") {
                    return;
                }
            }
        }
        panic!("voxdesk did not come up:\n{}", self.log());
    }

    /// Sends one datagram and returns the first reply, if any.
    pub fn udp_exchange(&self, data: &str, wait: Duration) -> Option<String> {
        self.udp_exchange_bytes(data.as_bytes(), wait)
    }

    pub fn udp_exchange_bytes(&self, data: &[u8], wait: Duration) -> Option<String> {
        let s = UdpSocket::bind("127.0.0.1:0").ok()?;
        s.set_read_timeout(Some(wait)).ok()?;
        s.send_to(data, ("127.0.0.1", self.port)).ok()?;
        let mut buf = vec![0u8; 65535];
        loop {
            let (n, _) = s.recv_from(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if !text.starts_with("SIP/2.0 100 ") {
                return Some(text);
            }
        }
    }

    /// Waits until `user`'s registration is in the database (digest auth passed); false
    /// when `within` runs out first.
    pub fn wait_registered(&self, user: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let n: i64 = self
                .db()
                .query_row(
                    "SELECT COUNT(*) FROM registrations WHERE aor = ?1",
                    [user],
                    |r| r.get(0),
                )
                .unwrap();
            if n == 1 {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn rtp_range(&self) -> (u16, u16) {
        self.rtp
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data/voxdesk.sqlite")
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db_path()).unwrap()
    }

    /// Waits until the newest call row has ended and returns it.
    pub fn wait_call_ended(&self) -> CallRow {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(r) = self.last_call() {
                if r.ended_at_ms.is_some() {
                    return r;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no ended call row; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn last_call(&self) -> Option<CallRow> {
        let db = self.db();
        db.query_row(
            "SELECT id, from_uri, answered_at_ms, ended_at_ms, end_reason, codec, recording_path, dtmf, started_at_ms, rtp_packets_in FROM calls ORDER BY started_at_ms DESC LIMIT 1",
            [],
            |r| {
                Ok(CallRow {
                    id: r.get(0)?,
                    from_uri: r.get(1)?,
                    answered_at_ms: r.get(2)?,
                    ended_at_ms: r.get(3)?,
                    end_reason: r.get(4)?,
                    codec: r.get(5)?,
                    recording_path: r.get(6)?,
                    dtmf: r.get(7)?,
                    started_at_ms: r.get(8)?,
                    rtp_packets_in: r.get(9)?,
                })
            },
        )
        .ok()
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe_kill(c.id(), 15);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "voxdesk did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `voxdesk serve` on `dir/voxdesk.toml`, logging to `dir/log_name`.
fn spawn_server(dir: &Path, log_name: &str) -> Child {
    let log = std::fs::File::create(dir.join(log_name)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_voxdesk"))
        .args(["serve", "--config"])
        .arg(dir.join("voxdesk.toml"))
        .args(["--log", "debug"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start voxdesk")
}

fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- voxdesk log ----\n{}", self.log());
        }
    }
}

#[derive(Debug, Clone)]
pub struct CallRow {
    pub id: String,
    pub from_uri: String,
    pub answered_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub codec: Option<String>,
    pub recording_path: Option<String>,
    pub dtmf: String,
    pub started_at_ms: i64,
    pub rtp_packets_in: Option<i64>,
}

pub fn options(port: u16, tag: &str) -> String {
    format!(
        "OPTIONS sip:bot@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{tag}{}\r\nMax-Forwards: 70\r\n\
From: <sip:probe@127.0.0.1>;tag={tag}\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: {tag}-{}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        rand_u32(),
        rand_u32()
    )
}

pub fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    t ^ std::process::id().rotate_left(16)
}

/// Runs sipp against the server from the fixtures folder (rtp_stream paths are relative).
pub fn sipp(server_port: u16, scenario_name: &str, extra: &[&str]) -> Output {
    require("sipp");
    let local = free_port().to_string();
    let media = free_media_port().to_string();
    let mut cmd = Command::new("timeout");
    cmd.current_dir(fixtures())
        .arg("150")
        .arg("sipp")
        .arg(format!("127.0.0.1:{server_port}"))
        .arg("-sf")
        .arg(scenario(scenario_name))
        .args([
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            &local,
            "-mp",
            &media,
            "-nostdin",
            "-timeout",
            "45",
            "-timeout_error",
        ])
        .args(extra);
    cmd.output().expect("run sipp")
}

pub fn assert_sipp_ok(out: &Output, server: &Server) {
    if !out.status.success() {
        panic!(
            "sipp failed ({}):\n{}\n{}\n---- voxdesk log ----\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n"),
            String::from_utf8_lossy(&out.stderr),
            server.log()
        );
    }
}

/// Runs the voxdesk binary in `dir`; (success, stdout + stderr).
pub fn voxdesk(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voxdesk"))
        .current_dir(dir)
        .args(args)
        .env_remove("VOXDESK_CONFIG")
        .output()
        .expect("run voxdesk");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The models folder scripts/fetch-models.sh fills.
pub fn models_dir() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .display()
        .to_string()
}

impl Server {
    /// Where the HTTP API listens (from the start-up log).
    pub fn api_addr(&self) -> String {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("HTTP API listening"))
            .expect("the API is listening");
        let at = line.find("addr=").expect("addr=") + 5;
        line[at..].split_whitespace().next().unwrap().to_string()
    }
}

/// One HTTP/1.1 request (Connection: close); returns (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// sipp's talking caller (tests/sipp/uac_talk.xml) with its fields filled in.
pub fn talk_scenario(
    dir: &Path,
    wait_ms: u32,
    utterance: &str,
    reply_ms: u32,
    utterance2: &str,
    reply2_ms: u32,
) -> PathBuf {
    let t = std::fs::read_to_string(scenario("uac_talk.xml")).unwrap();
    let s = t
        .replace("@wait_ms@", &wait_ms.to_string())
        .replace("@utterance@", utterance)
        .replace("@reply_ms@", &reply_ms.to_string())
        .replace("@utterance2@", utterance2)
        .replace("@reply2_ms@", &reply2_ms.to_string());
    let p = dir.join("talk.xml");
    std::fs::write(&p, s).unwrap();
    p
}

/// The end of a sipp caller scenario when the other side hangs up: wait for its BYE, say OK.
pub const BOT_HANGS_UP: &str = r#"  <recv request="BYE" timeout="15000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#;
