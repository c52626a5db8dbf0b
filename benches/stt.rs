//! Speech-to-text alone: how long one Whisper decode of a caller turn takes, by CPU threads
//! per decode and by model, on the clips the latency bench speaks (two Piper-voiced
//! questions, one JFK excerpt), 8 kHz as on a phone line, upsampled like a call's audio.
//!
//!   cargo bench --bench stt          (VOXDESK_BENCH_REPS=7: decodes per clip and setting)

use std::path::Path;
use std::time::Instant;
use voxdesk::speech::stt::{Stt, WhisperStt};
use voxdesk::speech::to_16k;
use voxdesk::speech::tts::{PiperVoice, Tts};

mod support;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let m = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let lib = m.join("onnxruntime/libonnxruntime.so.1.31.1");
    let voice_path = m.join("piper/en_US-joe-medium.onnx");
    if !voice_path.is_file() || !m.join("whisper/ggml-tiny.en-q8_0.bin").is_file() {
        println!("models missing: run scripts/fetch-models.sh");
        return;
    }
    let reps: usize = std::env::var("VOXDESK_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    println!(
        "== speech-to-text per turn (load average {}) ==",
        support::load_average()
    );
    let voice = PiperVoice::load(&lib, &voice_path).expect("voice");
    let clips: Vec<(&str, Vec<i16>)> = vec![
        (
            "hours (Piper)",
            voice.synthesize(support::QUESTIONS[0]).unwrap(),
        ),
        ("JFK excerpt", support::jfk_excerpt()),
        (
            "balance (Piper)",
            voice.synthesize(support::QUESTIONS[1]).unwrap(),
        ),
    ];
    drop(voice);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    for model in std::env::var("VOXDESK_BENCH_STT_MODELS")
        .unwrap_or("ggml-tiny.en-q8_0.bin,ggml-base-q8_0.bin".into())
        .split(",")
    {
        let path = m.join("whisper").join(model);
        if !path.is_file() {
            continue;
        }
        let stt = WhisperStt::load(&path).expect("model");
        for threads in 1..=cores {
            for (name, pcm) in &clips {
                let audio = to_16k(pcm);
                let _ = stt.transcribe(&audio, "en", threads); // warm-up
                let mut ms = Vec::new();
                let mut text = String::new();
                for _ in 0..reps {
                    let t0 = Instant::now();
                    let t = stt.transcribe(&audio, "en", threads).unwrap();
                    ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                    text = t.text;
                }
                println!(
                    "{model:24} threads {threads}  {name:16} {:.1} s audio: median {:4.0} ms, min {:4.0} ms  \"{text}\"",
                    pcm.len() as f64 / 8000.0,
                    median(ms.clone()),
                    ms.iter().cloned().fold(f64::MAX, f64::min),
                );
            }
        }
    }
}
