//! What test callers say: text spoken by the Piper voice, a Kokoro Mandarin voice or
//! espeak-ng, written as raw 8 kHz mu-law where sipp's scenarios find it.

use super::*;

/// `text` spoken by the Piper voice, written as raw 8 kHz mu-law for sipp; returns the path
/// relative to sipp's working folder (tests/fixtures). `gap_s` of silence follows.
pub fn spoken(server: &Server, name: &str, parts: &[(&str, f32)]) -> String {
    let models = PathBuf::from(models_dir());
    let voice = voxdesk::speech::tts::PiperVoice::load(
        &models.join("onnxruntime/libonnxruntime.so.1.31.1"),
        &models.join("piper/en_US-joe-medium.onnx"),
    )
    .unwrap();
    use voxdesk::speech::tts::Tts;
    let mut ul: Vec<u8> = Vec::new();
    for (text, gap_s) in parts {
        let pcm = voice.synthesize(text).unwrap();
        ul.extend(pcm.iter().map(|&s| voxdesk::media::g711::linear_to_ulaw(s)));
        ul.extend(std::iter::repeat_n(0xffu8, (gap_s * 8000.0) as usize));
    }
    for_sipp(server, name, ul, 0.0)
}

/// Writes mu-law audio (and `gap_s` of silence after it) into the server's folder as `name`;
/// returns its path relative to sipp's working folder (tests/fixtures).
fn for_sipp(server: &Server, name: &str, mut ul: Vec<u8>, gap_s: f32) -> String {
    ul.extend(std::iter::repeat_n(0xffu8, (gap_s * 8000.0) as usize));
    let said = server.dir.path().join(name);
    std::fs::write(&said, ul).unwrap();
    let up = "../".repeat(fixtures().components().count() - 1);
    format!("{up}{}", said.display().to_string().trim_start_matches('/'))
}

/// `text` spoken by a Kokoro Mandarin voice (zm_yunxi: another voice than the bot's), as
/// raw 8 kHz mu-law for sipp followed by `gap_s` of silence; the path is relative to sipp's
/// working folder (tests/fixtures).
pub fn spoken_zh(server: &Server, name: &str, text: &str, gap_s: f32) -> String {
    let models = PathBuf::from(models_dir());
    let voice = voxdesk::speech::kokoro::KokoroVoice::load(
        &models.join("onnxruntime/libonnxruntime.so.1.31.1"),
        &models.join("kokoro/kokoro-v1.0.int8.onnx"),
        &models.join("kokoro/vocab.json"),
        &models.join("kokoro/voices/zm_yunxi.bin"),
        1,
        2,
    )
    .unwrap();
    use voxdesk::speech::tts::Tts;
    let pcm = voice.synthesize(text).unwrap();
    let ul: Vec<u8> = pcm
        .iter()
        .map(|&s| voxdesk::media::g711::linear_to_ulaw(s))
        .collect();
    for_sipp(server, &format!("{name}.ul"), ul, gap_s)
}

/// `text` spoken by espeak-ng (`voice`, `wpm` words a minute), written as raw 8 kHz mu-law
/// for sipp followed by `gap_s` of silence; returns the path relative to sipp's working
/// folder (tests/fixtures).
pub fn espeak(
    server: &Server,
    name: &str,
    voice: &str,
    wpm: u32,
    text: &str,
    gap_s: f32,
) -> String {
    require("espeak-ng");
    let wav = server.dir.path().join(format!("{name}.wav"));
    let ok = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &wpm.to_string(), "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .unwrap()
        .success();
    assert!(ok, "espeak-ng failed");
    let mut r = hound::WavReader::open(&wav).unwrap();
    let rate = r.spec().sample_rate;
    let x: Vec<f32> = r
        .samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect();
    let y = voxdesk::media::wav::resample(&x, rate, 8000).unwrap();
    let ul: Vec<u8> = y
        .iter()
        .map(|&v| {
            voxdesk::media::g711::linear_to_ulaw((v * 32767.0).clamp(-32768.0, 32767.0) as i16)
        })
        .collect();
    for_sipp(server, &format!("{name}.ul"), ul, gap_s)
}
