//! Piper text-to-speech through ONNX Runtime with espeak-ng phonemes, on the real voice from
//! ./models (scripts/fetch-models.sh, which scripts/test.sh runs); VOXDESK_ORT_LIB and
//! VOXDESK_PIPER_VOICE point elsewhere.

use std::path::PathBuf;
use std::time::Instant;
use voxdesk::speech::tts::{PiperVoice, Tts};

fn files() -> (PathBuf, PathBuf) {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let lib = std::env::var_os("VOXDESK_ORT_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| models.join("onnxruntime/libonnxruntime.so.1.31.1"));
    let voice = std::env::var_os("VOXDESK_PIPER_VOICE")
        .map(PathBuf::from)
        .unwrap_or_else(|| models.join("piper/en_US-joe-medium.onnx"));
    assert!(
        lib.is_file() && voice.is_file(),
        "model files missing ({} / {}): run scripts/fetch-models.sh",
        lib.display(),
        voice.display()
    );
    (lib, voice)
}

#[test]
fn piper_speaks_a_sentence() {
    let (lib, model) = files();
    let t0 = Instant::now();
    let voice = PiperVoice::load(&lib, &model).expect("voice loads");
    let load = t0.elapsed();
    let text = "Thank you for calling. How can I help you today?";
    let t1 = Instant::now();
    let pcm = voice.synthesize(text).expect("synthesis");
    let synth = t1.elapsed();
    let secs = pcm.len() as f32 / 8000.0;
    let rms = (pcm
        .iter()
        .map(|&s| (s as f64 / 32768.0).powi(2))
        .sum::<f64>()
        / pcm.len() as f64)
        .sqrt();
    eprintln!(
        "piper: load {load:?}, {secs:.2} s of audio in {synth:?} (RTF {:.3}), rms {rms:.3}",
        synth.as_secs_f32() / secs
    );
    assert!(
        (1.8..6.0).contains(&secs),
        "duration {secs} s for {} characters",
        text.len()
    );
    assert!(rms > 0.02, "speech, not silence: rms {rms}");
    // Streaming: the first sentence arrives before the whole text is rendered.
    let t2 = std::time::Instant::now();
    let mut first = None;
    let mut total = 0;
    voice
        .synthesize_streaming(
            "Thank you for calling. Your bill is ready. Is there anything else?",
            &mut |s| {
                first.get_or_insert(t2.elapsed());
                total += s.len();
            },
        )
        .unwrap();
    let all = t2.elapsed();
    eprintln!(
        "piper streaming: first sentence after {:?}, all 3 after {all:?}",
        first.unwrap()
    );
    assert!(first.unwrap() < all && total > 16_000);
    if let Some(out) = std::env::var_os("VOXDESK_TTS_OUT") {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(out, spec).unwrap();
        for s in &pcm {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
    }
}

#[test]
fn a_missing_or_corrupt_voice_is_a_clear_error() {
    let (lib, model) = files();
    let dir = tempfile::tempdir().unwrap();
    let err = PiperVoice::load(&lib, &dir.path().join("nope.onnx"))
        .err()
        .expect("missing voice")
        .to_string();
    assert!(err.contains("nope.onnx"), "{err}");
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"not an onnx model").unwrap();
    std::fs::copy(
        format!("{}.json", model.display()),
        dir.path().join("bad.onnx.json"),
    )
    .unwrap();
    let err = PiperVoice::load(&lib, &bad)
        .err()
        .expect("corrupt voice")
        .to_string();
    assert!(err.contains("bad.onnx"), "{err}");
}
