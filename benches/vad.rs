//! Voice activity detectors side by side, energy and Silero, on the JFK recording (8 kHz
//! G.711) clean and under white noise at falling signal-to-noise ratios, and on sounds that
//! are not speech (hold music, knocks, hiss, a hum): the share of 20 ms frames each calls
//! speech, the turns the turn detector takes from the non-speech, and the cost per frame.
//!
//!   cargo bench --bench vad

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use voxdesk::speech::silero::SileroModel;
use voxdesk::speech::turn::{TurnConfig, TurnDetector, TurnEvent};
use voxdesk::speech::VadChoice;

#[path = "../tests/common/sounds.rs"]
mod sounds;
mod support;
use sounds::{knocks, melody, sound, ulaw_fixture, with_white_noise, Noise};

/// Share of frames scored as speech, turns taken (TurnEnded), and time per frame.
fn run(vad: &VadChoice, pcm: &[i16]) -> (f32, usize, Duration) {
    let mut v = vad.make();
    let mut turns = TurnDetector::new(TurnConfig::default());
    let (mut voiced, mut frames, mut taken) = (0usize, 0usize, 0usize);
    let t = Instant::now();
    for (i, f) in pcm.chunks_exact(160).enumerate() {
        let s = v.score(f) > 0.5;
        voiced += usize::from(s);
        frames += 1;
        if let Some(TurnEvent::TurnEnded { .. }) =
            turns.on_frame(s, Duration::from_millis(i as u64 * 20))
        {
            taken += 1;
        }
    }
    let each = t.elapsed() / frames.max(1) as u32;
    // A second of silence after it, so a turn still open ends.
    for i in frames..frames + 50 {
        let s = v.score(&[0i16; 160]) > 0.5;
        if let Some(TurnEvent::TurnEnded { .. }) =
            turns.on_frame(s, Duration::from_millis(i as u64 * 20))
        {
            taken += 1;
        }
    }
    (voiced as f32 / frames.max(1) as f32, taken, each)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let m = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let cfg = voxdesk::config::ModelsConfig::default();
    let model = match SileroModel::load(&m.join(&cfg.onnxruntime), &m.join(&cfg.vad)) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            println!("{e}");
            return;
        }
    };
    let vads = [VadChoice::Energy, VadChoice::Silero(model)];
    println!(
        "== voice activity: share of 20 ms frames called speech (load average {}) ==",
        support::load_average()
    );
    let jfk = ulaw_fixture("jfk.ul");
    println!(
        "{:<34} {:>8} {:>8}",
        "JFK, 11 s (speech share)", "energy", "silero"
    );
    for snr in [None, Some(20.0f32), Some(10.0), Some(5.0), Some(0.0)] {
        let (label, pcm) = match snr {
            None => ("clean".to_string(), jfk.clone()),
            Some(s) => (
                format!("white noise, SNR {s} dB"),
                with_white_noise(&jfk, s, 7),
            ),
        };
        let r: Vec<f32> = vads.iter().map(|v| run(v, &pcm).0).collect();
        println!("{label:<34} {:>7.0}% {:>7.0}%", r[0] * 100.0, r[1] * 100.0);
    }
    use std::f32::consts::PI;
    let mut hiss = Noise(5);
    let others: Vec<(&str, Vec<i16>)> = vec![
        (
            "hold music (chord, -20 dBFS), 5 s",
            sound(5.0, |t| {
                0.05 * (1.0 + 0.5 * (2.0 * PI * 2.0 * t).sin())
                    * [262.0f32, 330.0, 392.0]
                        .iter()
                        .map(|f| (2.0 * PI * f * t).sin())
                        .sum::<f32>()
            }),
        ),
        ("a melody (-15 dBFS), 5 s", melody(5.0)),
        ("knocks (100 ms, -10 dBFS), 5 s", knocks(10)),
        ("hiss (-30 dBFS), 5 s", sound(5.0, |_| 0.05 * hiss.next())),
        (
            "hum (50 Hz + harmonics), 5 s",
            sound(5.0, |t| {
                0.1 * (1..6)
                    .map(|k| (2.0 * PI * 50.0 * k as f32 * t).sin() / k as f32)
                    .sum::<f32>()
            }),
        ),
    ];
    println!(
        "{:<34} {:>16} {:>16}",
        "not speech (speech share, turns)", "energy", "silero"
    );
    for (label, pcm) in &others {
        let r: Vec<(f32, usize, Duration)> = vads.iter().map(|v| run(v, pcm)).collect();
        println!(
            "{label:<34} {:>8.0}%, {:>2} {:>10.0}%, {:>2}",
            r[0].0 * 100.0,
            r[0].1,
            r[1].0 * 100.0,
            r[1].1
        );
    }
    // End of turn: from the last frame of the clean recording above -40 dBFS to the turn
    // detector's decision (the configured silence is 700 ms; what is above it is the VAD's
    // own lag), on the caller's "hello" recording, clean and with hiss or noise added.
    let hello = ulaw_fixture("caller-hello.ul");
    let last_word = hello
        .chunks_exact(160)
        .rposition(|f| voxdesk::speech::vad::level_dbfs(f) > -40.0)
        .unwrap_or(0) as u64
        * 20
        + 20;
    println!(
        "{:<34} {:>8} {:>8}",
        "end of turn after the last word", "energy", "silero"
    );
    for snr in [None, Some(20.0f32), Some(10.0)] {
        let mut line = hello.clone();
        line.extend(vec![0i16; 16000]);
        let (label, line) = match snr {
            None => ("caller-hello, clean".to_string(), line),
            Some(s) => (
                format!("caller-hello, SNR {s} dB"),
                with_white_noise(&line, s, 3),
            ),
        };
        let lags: Vec<String> = vads
            .iter()
            .map(|v| {
                let mut vad = v.make();
                let mut turns = TurnDetector::new(TurnConfig::default());
                line.chunks_exact(160)
                    .enumerate()
                    .find_map(|(i, f)| {
                        match turns
                            .on_frame(vad.score(f) > 0.5, Duration::from_millis(i as u64 * 20))
                        {
                            Some(TurnEvent::TurnEnded { .. }) => Some(i as u64 * 20 + 20),
                            _ => None,
                        }
                    })
                    .map(|at| format!("{} ms", at as i64 - last_word as i64))
                    .unwrap_or_else(|| "none".into())
            })
            .collect();
        println!("{label:<34} {:>8} {:>8}", lags[0], lags[1]);
    }
    let reps = 5;
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); 2];
    for _ in 0..reps {
        for (i, v) in vads.iter().enumerate() {
            per[i].push(run(v, &jfk).2.as_secs_f64() * 1e6);
        }
    }
    for p in per.iter_mut() {
        p.sort_by(f64::total_cmp);
    }
    println!(
        "cost per 20 ms frame (median of {reps} passes over JFK): energy {:.1} us, silero {:.1} us",
        per[0][reps / 2],
        per[1][reps / 2]
    );
}
