//! Real softphones for agent tests: headless baresip (Debian) on loopback.

use super::*;

/// A headless baresip softphone registered to the server as an agent: it answers by itself
/// (or not, with `auto_answer` false), speaks `voice` (a WAV, padded with silence), dumps
/// what it hears into `rec/` and prints every SIP message into its log (`sip_trace`).
pub struct Softphone {
    pub dir: tempfile::TempDir,
    child: Child,
    pub user: String,
    /// baresip's control socket (ctrl_tcp): its events as they came, and commands.
    events: std::sync::Arc<std::sync::Mutex<String>>,
    control: Option<std::net::TcpStream>,
}

impl Softphone {
    pub fn start(
        server: &Server,
        user: &str,
        password: &str,
        voice: &Path,
        auto_answer: bool,
    ) -> Softphone {
        Softphone::start_padded(server, user, password, voice, auto_answer, 120)
    }

    /// As `start`, with `pad_secs` of silence after the voice (baresip hangs up at the end).
    pub fn start_padded(
        server: &Server,
        user: &str,
        password: &str,
        voice: &Path,
        auto_answer: bool,
        pad_secs: u32,
    ) -> Softphone {
        Softphone::launch(server, user, password, voice, auto_answer, pad_secs, None)
    }

    /// An auto-answering softphone registered over TLS (trusting `secure.ca`) whose media is
    /// encrypted as `secure.mediaenc` says ("srtp", "srtp-mand").
    pub fn start_secure(
        server: &Server,
        user: &str,
        password: &str,
        voice: &Path,
        secure: &Secure,
    ) -> Softphone {
        Softphone::launch(server, user, password, voice, true, 40, Some(secure))
    }

    fn launch(
        server: &Server,
        user: &str,
        password: &str,
        voice: &Path,
        auto_answer: bool,
        pad_secs: u32,
        secure: Option<&Secure>,
    ) -> Softphone {
        require("baresip");
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("cfg");
        let rec = dir.path().join("rec");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::create_dir_all(&rec).unwrap();
        // Padded with silence: baresip hangs up when its audio file ends.
        let padded = dir.path().join("voice.wav");
        {
            let mut r = hound::WavReader::open(voice).unwrap();
            let spec = r.spec();
            let mut w = hound::WavWriter::create(&padded, spec).unwrap();
            for s in r.samples::<i16>() {
                w.write_sample(s.unwrap()).unwrap();
            }
            for _ in 0..(spec.sample_rate * pad_secs) {
                w.write_sample(0i16).unwrap();
            }
            w.finalize().unwrap();
        }
        let sip_port = free_port();
        let ctrl_port = free_port();
        let rtp = free_media_port();
        let mode = if auto_answer { "auto" } else { "manual" };
        let (uri, extra, tls_cfg) = match secure {
            Some(s) => (
                format!("<sip:{user}@127.0.0.1:{};transport=tls>", s.tls_port),
                format!(";mediaenc={}", s.mediaenc),
                format!(
                    "sip_cafile {}\nsip_trans_def tls\nmodule srtp.so\n",
                    s.ca.display()
                ),
            ),
            None => (
                format!("<sip:{user}@127.0.0.1:{}>", server.port),
                String::new(),
                String::new(),
            ),
        };
        std::fs::write(
            cfg.join("accounts"),
            format!("{uri};auth_user={user};auth_pass={password};answermode={mode};regint=60;audio_codecs=PCMU/8000/1,PCMA/8000/1{extra}\n"),
        )
        .unwrap();
        std::fs::write(
            cfg.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\naudio_player aufile,{heard}\naudio_alert aufile,/dev/null\n\
audio_source aufile,{voice}\nrtp_ports {rtp}-{}\nsnd_path {rec}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
module sndfile.so\nmodule_app account.so\nmodule_app menu.so\nmodule_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl_port}\n{tls_cfg}",
                rtp + 20,
                heard = dir.path().join("heard.wav").display(),
                voice = padded.display(),
                rec = rec.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("baresip.log")).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&cfg)
            .args(["-s", "-t", "150"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let events = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut control = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while control.is_none() && Instant::now() < deadline {
            match std::net::TcpStream::connect(("127.0.0.1", ctrl_port)) {
                Ok(c) => control = Some(c),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        if let Some(mut c) = control.as_ref().and_then(|c| c.try_clone().ok()) {
            let events = events.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut c, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    events
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let phone = Softphone {
            dir,
            child,
            user: user.into(),
            events,
            control,
        };
        // Wait for the digest-authenticated registration to land in SQLite.
        if !server.wait_registered(user, Duration::from_secs(15)) {
            panic!(
                "{user} did not register:\n{}\n{}",
                phone.log(),
                server.log()
            );
        }
        phone
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// baresip's dump of what it heard in its call, if it had one.
    pub fn heard(&self) -> Option<PathBuf> {
        std::fs::read_dir(self.dir.path().join("rec"))
            .ok()?
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
    }
}

/// How a softphone reaches voxdesk securely.
pub struct Secure {
    pub tls_port: u16,
    /// The certificate voxdesk presents (self-signed by the test), trusted by the phone.
    pub ca: PathBuf,
    pub mediaenc: &'static str,
}

impl Softphone {
    /// What baresip reported on its control socket so far (JSON events in netstrings).
    pub fn events(&self) -> String {
        self.events.lock().unwrap().clone()
    }

    /// Runs a baresip command (e.g. `sndcode` with the digits to send in the call).
    pub fn command(&self, command: &str, params: &str) {
        let json = format!("{{\"command\":\"{command}\",\"params\":\"{params}\",\"token\":\"t\"}}");
        let c = self.control.as_ref().expect("baresip control socket");
        std::io::Write::write_all(&mut &*c, format!("{}:{json},", json.len()).as_bytes()).unwrap();
    }

    /// Ends baresip (its files stay until the softphone is dropped).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Softphone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Dials `code` (a feature code such as `*22`) from a short-lived baresip with `user`'s
/// account (no registration: the INVITE itself is digest-authenticated) and returns its log
/// when voxdesk has hung up, or after `secs`.
pub fn dial_feature(server: &Server, user: &str, password: &str, code: &str, secs: u32) -> String {
    require("baresip");
    let dir = tempfile::tempdir().unwrap();
    let silence = dir.path().join("silence.wav");
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&silence, spec).unwrap();
        for _ in 0..8000 * secs {
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
    }
    std::fs::write(
        dir.path().join("accounts"),
        format!("<sip:{user}@127.0.0.1:{}>;auth_user={user};auth_pass={password};regint=0;audio_codecs=PCMU/8000/1\n", server.port),
    )
    .unwrap();
    let rtp = free_media_port();
    std::fs::write(
        dir.path().join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{}\nnet_interface 127.0.0.1\naudio_player aufile,{heard}\naudio_alert aufile,/dev/null\n\
audio_source aufile,{src}\nrtp_ports {rtp}-{}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
module_app account.so\nmodule_app menu.so\n",
            free_port(),
            rtp + 20,
            heard = dir.path().join("heard.wav").display(),
            src = silence.display(),
        ),
    )
    .unwrap();
    let out = Command::new("baresip")
        .arg("-f")
        .arg(dir.path())
        .args([
            "-s",
            "-e",
            &format!("/dial {code}"),
            "-t",
            &secs.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
