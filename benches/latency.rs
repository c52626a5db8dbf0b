//! Conversation latency: real calls to the real voxdesk binary (real Whisper + Piper models
//! from ./models) over loopback, from a caller written here (SIP over UDP, G.711 RTP paced
//! at 20 ms) that speaks recorded utterances and listens for the answer.
//!
//! Per turn it measures, at the caller, **end of caller speech -> first RTP packet of the
//! reply** (first packet louder than -35 dBFS after the utterance's last voiced frame was
//! sent), and reads the server's own split of that time from the `turns` table: VAD/turn
//! decision, speech-to-text, policy, TTS first audio. Calls run 1, 2, 4, 8, 16 at a time,
//! three turns each: two knowledge-base style questions (spoken by the Piper voice) and one
//! real recording (JFK, 8 kHz) that gets an echo answer (the server runs with
//! `nlu.anger_threshold = 0.9`: at the default 0.4 Kennedy's emphatic delivery scores as
//! anger, and the call would go to a person, which is the escalation bench's subject). Also prints STT and TTS real-time
//! factors and the server's memory per concurrent call (VmRSS).
//!
//!   cargo bench --bench latency                 (VOXDESK_BENCH_QUICK=1: 1 and 4 calls)
//!   VOXDESK_BENCH_CALLS=1,16 cargo bench --bench latency
//!   VOXDESK_BENCH_SPEECH="early_transcribe_ms = 100; early_end_ms = 200" ...
//!                                              (other [speech] turn-taking settings)
//!   VOXDESK_BENCH_STAGGER_MS=0 ...             (every caller starts at once; default: call
//!                                               starts spread evenly over 8 s)
//!   VOXDESK_BENCH_BIN=path ...                  (another voxdesk binary, to compare builds)

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use voxdesk::media::g711::{linear_to_ulaw, ulaw_to_linear};

mod support;
use voxdesk::media::rtp::{self, RtpPacket};
use voxdesk::speech::tts::{PiperVoice, Tts};

fn free_udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn level_dbfs(pcm: &[i16]) -> f32 {
    let e: f64 =
        pcm.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / pcm.len().max(1) as f64;
    10.0 * (e.sqrt() / 32768.0 + 1e-9).log10() as f32 * 2.0
}

/// An utterance as 20 ms frames, and the index of its last voiced frame.
struct Utterance {
    name: &'static str,
    frames: Vec<[i16; 160]>,
    last_voiced: usize,
}

fn utterance(name: &'static str, pcm: &[i16]) -> Utterance {
    let frames: Vec<[i16; 160]> = pcm
        .chunks(160)
        .map(|c| {
            let mut f = [0i16; 160];
            f[..c.len()].copy_from_slice(c);
            f
        })
        .collect();
    let last_voiced = frames
        .iter()
        .rposition(|f| level_dbfs(f) > -40.0)
        .unwrap_or(0);
    Utterance {
        name,
        frames,
        last_voiced,
    }
}

struct TurnResult {
    utterance: &'static str,
    latency_ms: Option<f64>,
}

/// One caller: INVITE, three turns, BYE. Returns per-turn latencies seen at the caller.
fn call(server: SocketAddr, utts: &[Arc<Utterance>], id: usize) -> Vec<TurnResult> {
    let sip = free_udp();
    sip.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let rtp_sock = free_udp();
    rtp_sock.set_nonblocking(true).unwrap();
    let (sip_addr, rtp_addr) = (sip.local_addr().unwrap(), rtp_sock.local_addr().unwrap());
    let call_id = format!("bench-{id}-{}@127.0.0.1", std::process::id());
    let tag = format!("c{id}");
    let sdp = format!(
        "v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n",
        rtp_addr.port()
    );
    let invite = format!(
        "INVITE sip:bot@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {sip_addr};branch=z9hG4bK-{tag}-1;rport\r\nFrom: <sip:caller{id}@127.0.0.1>;tag={tag}\r\nTo: <sip:bot@{server}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller{id}@{sip_addr}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sip.send_to(invite.as_bytes(), server).unwrap();
    let mut buf = [0u8; 4096];
    let (to, remote_rtp) = loop {
        let n = match sip.recv(&mut buf) {
            Ok(n) => n,
            Err(_) => return Vec::new(),
        };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with("SIP/2.0 200") {
            let to = text
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("to:"))
                .unwrap()
                .trim_start_matches(|c: char| c != ':')[1..]
                .trim()
                .to_string();
            let port: u16 = text
                .lines()
                .find(|l| l.starts_with("m=audio "))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok())
                .unwrap();
            break (to, SocketAddr::from(([127, 0, 0, 1], port)));
        }
    };
    let ack = format!(
        "ACK sip:bot@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {sip_addr};branch=z9hG4bK-{tag}-2;rport\r\nFrom: <sip:caller{id}@127.0.0.1>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sip.send_to(ack.as_bytes(), server).unwrap();

    // Media: one packet out every 20 ms; everything received is checked for loudness.
    let (mut seq, mut ts, ssrc) = (id as u16 * 1000, 0u32, 0xbe00 + id as u32);
    let mut out = Vec::with_capacity(172);
    let start = Instant::now();
    let mut tick = 0u64;
    let mut results = Vec::new();
    let silence = [0i16; 160];
    let mut rbuf = [0u8; 2048];
    // Phase: Some((utterance index, frame)) while speaking.
    let mut speaking: Option<(usize, usize)> = None;
    let mut next_utt = 0;
    let mut quiet_since = Instant::now();
    let mut waiting: Option<(Instant, &'static str)> = None;
    let mut got_reply = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // Pace: the next packet at start + tick * 20 ms.
        let due = start + Duration::from_millis(tick * 20);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        tick += 1;
        let frame = match speaking {
            Some((u, f)) => {
                let fr = utts[u].frames[f];
                if f == utts[u].last_voiced {
                    waiting = Some((Instant::now(), utts[u].name));
                    got_reply = false;
                }
                speaking = if f + 1 < utts[u].frames.len() {
                    Some((u, f + 1))
                } else {
                    None
                };
                fr
            }
            None => silence,
        };
        let payload: Vec<u8> = frame.iter().map(|&s| linear_to_ulaw(s)).collect();
        rtp::build(&mut out, false, 0, seq, ts, ssrc, &payload);
        let _ = rtp_sock.send_to(&out, remote_rtp);
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
        while let Ok((n, _)) = rtp_sock.recv_from(&mut rbuf) {
            let Ok(p) = RtpPacket::parse(&rbuf[..n]) else {
                continue;
            };
            let pcm: Vec<i16> = p.payload.iter().map(|&b| ulaw_to_linear(b)).collect();
            if level_dbfs(&pcm) > -35.0 {
                quiet_since = Instant::now();
                if let Some((t0, name)) = waiting {
                    if !got_reply && speaking.is_none() {
                        results.push(TurnResult {
                            utterance: name,
                            latency_ms: Some(t0.elapsed().as_secs_f64() * 1000.0),
                        });
                        got_reply = true;
                        waiting = None;
                    }
                }
            }
        }
        // Next utterance once the line has been quiet for 1.5 s (greeting or reply over).
        if speaking.is_none()
            && waiting.is_none()
            && quiet_since.elapsed() > Duration::from_millis(1500)
        {
            if next_utt == utts.len() {
                break;
            }
            speaking = Some((next_utt, 0));
            next_utt += 1;
        }
        if let Some((t0, name)) = waiting {
            if t0.elapsed() > Duration::from_secs(20) {
                results.push(TurnResult {
                    utterance: name,
                    latency_ms: None,
                });
                waiting = None;
            }
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let bye = format!(
        "BYE sip:bot@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {sip_addr};branch=z9hG4bK-{tag}-3;rport\r\nFrom: <sip:caller{id}@127.0.0.1>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sip.send_to(bye.as_bytes(), server).unwrap();
    let _ = sip.recv(&mut buf);
    results
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let m = models();
    let lib = m.join("onnxruntime/libonnxruntime.so.1.31.1");
    let voice_path = m.join("piper/en_US-joe-medium.onnx");
    if !voice_path.is_file() || !m.join("whisper/ggml-tiny.en-q8_0.bin").is_file() {
        println!("models missing: run scripts/fetch-models.sh");
        return;
    }
    println!(
        "== conversation latency (loopback, real models; load average {}) ==",
        support::load_average()
    );

    // The caller's lines: two questions in the Piper voice, one real recording.
    let voice = PiperVoice::load(&lib, &voice_path).expect("voice");
    let t0 = Instant::now();
    let q1 = voice.synthesize(support::QUESTIONS[0]).unwrap();
    let q2 = voice.synthesize(support::QUESTIONS[1]).unwrap();
    let tts_secs = t0.elapsed().as_secs_f64();
    let tts_audio = (q1.len() + q2.len()) as f64 / 8000.0;
    let jfk_part = support::jfk_excerpt();
    let utts: Vec<Arc<Utterance>> = vec![
        Arc::new(utterance("hours (Piper voice)", &q1)),
        Arc::new(utterance("JFK excerpt (recording)", &jfk_part)),
        Arc::new(utterance("balance (Piper voice)", &q2)),
    ];
    drop(voice);
    println!("TTS real-time factor (Piper, in this process): {:.3} ({tts_secs:.2} s for {tts_audio:.2} s of audio)", tts_secs / tts_audio);

    let counts: Vec<usize> = match std::env::var("VOXDESK_BENCH_CALLS") {
        Ok(v) => v.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) if std::env::var_os("VOXDESK_BENCH_QUICK").is_some() => vec![1, 4],
        Err(_) => vec![1, 2, 4, 8, 16],
    };
    // Call starts are spread over this time (VOXDESK_BENCH_STAGGER_MS; 0: all at once).
    let stagger = Duration::from_millis(
        std::env::var("VOXDESK_BENCH_STAGGER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8000),
    );
    println!(
        "call starts spread over {} ms (VOXDESK_BENCH_STAGGER_MS)",
        stagger.as_millis()
    );
    // VOXDESK_BENCH_SPEECH="early_transcribe_ms = 100" tries other turn-taking settings.
    let speech_overrides = match std::env::var("VOXDESK_BENCH_SPEECH") {
        Ok(v) if !v.trim().is_empty() => {
            println!("[speech] overrides: {v}");
            format!("[speech]\n{}\n", v.replace(';', "\n"))
        }
        _ => String::new(),
    };
    for &n in &counts {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp().local_addr().unwrap().port();
        let cfg = dir.path().join("voxdesk.toml");
        std::fs::write(
            &cfg,
            format!(
                "[sip]\nbind = \"127.0.0.1\"\nport = {port}\nring_ms = 0\n[media]\nrtp_port_min = 42000\nrtp_port_max = 42999\n[paths]\ndata_dir = \"{}\"\nmodels_dir = \"{}\"\n[prompts]\ngreeting = \"Hello, how can I help?\"\n[api]\nport = 0\n[nlu]\nanger_threshold = 0.9\n{}",
                dir.path().join("data").display(),
                m.display(),
                speech_overrides
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut server = Command::new(
            std::env::var("VOXDESK_BENCH_BIN")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_voxdesk").into()),
        )
        .args([
            "serve",
            "--log",
            &std::env::var("VOXDESK_BENCH_LOG").unwrap_or("info".into()),
            "--config",
        ])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
        let pid = server.id();
        // Ready when it answers OPTIONS.
        let probe = free_udp();
        probe
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let ready_by = Instant::now() + Duration::from_secs(60);
        loop {
            let o = format!("OPTIONS sip:bot@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-probe{}\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:bot@{addr}>\r\nCall-ID: probe-{}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", probe.local_addr().unwrap(), rand_id(), rand_id());
            let _ = probe.send_to(o.as_bytes(), addr);
            let mut b = [0u8; 2048];
            if probe.recv(&mut b).is_ok() || Instant::now() > ready_by {
                break;
            }
        }
        // Fixed answers are rendered in the background after start-up (from the speech cache
        // after the first run); measure answers, not that one-off.
        let log_path = dir.path().join("server.log");
        while Instant::now() < ready_by + Duration::from_secs(60)
            && !std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .contains("fixed answers pre-rendered")
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        let idle_rss = rss_kib(pid);
        let peak = Arc::new(Mutex::new(idle_rss));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = rss_kib(pid);
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(r);
                    drop(p);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let t0 = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let utts = utts.clone();
                std::thread::spawn(move || {
                    // Call starts spread evenly over `stagger` (callers do not all speak at once).
                    std::thread::sleep(stagger * i as u32 / n as u32);
                    call(addr, &utts, i)
                })
            })
            .collect();
        let results: Vec<TurnResult> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let wall = t0.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap();
        let peak_rss = *peak.lock().unwrap();
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let _ = server.wait();
        // Keep the server's log for a look at individual turns.
        let kept = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("target/latency-server-{n}.log"));
        let _ = std::fs::copy(dir.path().join("server.log"), &kept);

        let mut lat: Vec<f64> = results.iter().filter_map(|r| r.latency_ms).collect();
        let missing = results.iter().filter(|r| r.latency_ms.is_none()).count()
            + (n * utts.len()).saturating_sub(results.len());
        let db = rusqlite::Connection::open(dir.path().join("data/voxdesk.sqlite")).unwrap();
        let col = |sql: &str| -> Vec<f64> {
            let mut st = db.prepare(sql).unwrap();
            st.query_map([], |r| r.get::<_, Option<f64>>(0))
                .unwrap()
                .filter_map(|v| v.ok().flatten())
                .collect()
        };
        let mut vad = col("SELECT vad_ms FROM turns WHERE speaker='bot'");
        let mut stt = col("SELECT stt_ms FROM turns WHERE speaker='bot'");
        let mut pol = col("SELECT policy_ms FROM turns WHERE speaker='bot'");
        let mut tts = col("SELECT tts_first_ms FROM turns WHERE speaker='bot'");
        let mut srv = col("SELECT reply_latency_ms FROM turns WHERE speaker='bot'");
        let mut nlu = col("SELECT nlu_ms FROM turns WHERE speaker='caller'");
        let rtf = col("SELECT CAST(stt_ms AS REAL) / (end_ms - start_ms) FROM turns WHERE speaker='caller' AND end_ms > start_ms");
        let early: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM turns WHERE speaker='caller' AND stt_passes > 1",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        let texts: Vec<(String, String)> = {
            let mut st = db
                .prepare(
                    "SELECT speaker, text FROM turns ORDER BY call_id, seq, speaker DESC LIMIT 6",
                )
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .filter_map(|r| r.ok())
                .collect()
        };
        println!(
            "{n:>2} concurrent call(s), {} turns ({missing} without a reply in 20 s), {wall:.1} s wall:",
            results.len()
        );
        println!(
            "   end of speech -> first reply RTP at the caller: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms (server's own measure p50 {:.0}, p95 {:.0})",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.95),
            pct(&mut lat, 1.0),
            pct(&mut srv, 0.5),
            pct(&mut srv, 0.95)
        );
        println!(
            "   split p50/p95 (ms): turn decision {:.0}/{:.0}, speech-to-text {:.0}/{:.0}, policy {:.0}/{:.0}, TTS first audio {:.0}/{:.0}",
            pct(&mut vad, 0.5),
            pct(&mut vad, 0.95),
            pct(&mut stt, 0.5),
            pct(&mut stt, 0.95),
            pct(&mut pol, 0.5),
            pct(&mut pol, 0.95),
            pct(&mut tts, 0.5),
            pct(&mut tts, 0.95)
        );
        println!(
            "   NLU (encoder, heads, prosody, knowledge-base search; inside speech-to-text above) p50 {:.0} ms, p95 {:.0} ms",
            pct(&mut nlu, 0.5),
            pct(&mut nlu, 0.95)
        );
        let mut rtf = rtf;
        println!(
            "   STT real-time factor p50 {:.3}, p95 {:.3} ({} turns decoded again); server RSS idle {} MiB, peak {} MiB, {:.1} MiB per concurrent call",
            pct(&mut rtf, 0.5),
            pct(&mut rtf, 0.95),
            early,
            idle_rss / 1024,
            peak_rss / 1024,
            (peak_rss.saturating_sub(idle_rss)) as f64 / 1024.0 / n as f64
        );
        if n == counts[0] {
            for (who, text) in texts {
                println!("   {who:>6}: {text}");
            }
        }
        let per_utt: Vec<String> = utts
            .iter()
            .map(|u| {
                let mut v: Vec<f64> = results
                    .iter()
                    .filter(|r| r.utterance == u.name)
                    .filter_map(|r| r.latency_ms)
                    .collect();
                format!("{} p50 {:.0} ms", u.name, pct(&mut v, 0.5))
            })
            .collect();
        println!("   by utterance: {}", per_utt.join("; "));
    }
}

fn rand_id() -> u32 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos())
        ^ std::process::id()
}
