//! Piper text-to-speech through ONNX Runtime with espeak-ng phonemes, on the real voice.
//! Needs the model files (the fetch step is not wired into CI yet): set VOXDESK_ORT_LIB to
//! libonnxruntime.so and VOXDESK_PIPER_VOICE to the voice's .onnx; skipped otherwise.

use std::path::PathBuf;
use std::time::Instant;
use voxdesk::speech::tts::{PiperVoice, Tts};

fn files() -> Option<(PathBuf, PathBuf)> {
    let lib = PathBuf::from(std::env::var_os("VOXDESK_ORT_LIB")?);
    let voice = PathBuf::from(std::env::var_os("VOXDESK_PIPER_VOICE")?);
    Some((lib, voice))
}

#[test]
fn piper_speaks_a_sentence() {
    let Some((lib, model)) = files() else {
        eprintln!("VOXDESK_ORT_LIB / VOXDESK_PIPER_VOICE not set: skipped");
        return;
    };
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
