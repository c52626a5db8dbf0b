//! VAD + turn detection on recorded speech (the caller and agent fixtures), with line noise:
//! one turn per utterance, bounds near the real speech, barge-in within 100 ms; with both
//! voice activity detectors (energy, and the real Silero model from models/). Silero also
//! ignores loud sounds that are not speech.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use voxdesk::speech::silero::SileroModel;
use voxdesk::speech::turn::{TurnConfig, TurnDetector, TurnEvent};
use voxdesk::speech::vad::level_dbfs;
use voxdesk::speech::VadChoice;

#[path = "common/sounds.rs"]
mod sounds;

fn silero() -> VadChoice {
    static MODEL: OnceLock<Arc<SileroModel>> = OnceLock::new();
    let m = MODEL.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
        let cfg = voxdesk::config::ModelsConfig::default();
        Arc::new(
            SileroModel::load(&dir.join(cfg.onnxruntime), &dir.join(cfg.vad))
                .expect("the Silero VAD (scripts/fetch-models.sh fetches it)"),
        )
    });
    VadChoice::Silero(m.clone())
}

fn both() -> [VadChoice; 2] {
    [VadChoice::Energy, silero()]
}

fn caller_speech() -> Vec<i16> {
    sounds::ulaw_fixture("caller-hello.ul")
}

fn agent_speech() -> Vec<i16> {
    let mut r = hound::WavReader::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/agent-hello.wav"
    ))
    .unwrap();
    r.samples::<i16>().map(|s| s.unwrap()).collect()
}

fn with_noise(mut pcm: Vec<i16>, amp: f32) -> Vec<i16> {
    let mut seed = 0x1234_5678u32;
    for s in pcm.iter_mut() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        *s = s.saturating_add(((seed as i32 >> 16) as f32 / 32768.0 * amp) as i16);
    }
    pcm
}

/// First and last 20 ms frame of the clean signal above -40 dBFS, in ms.
fn speech_bounds(clean: &[i16], offset_ms: u64) -> (u64, u64) {
    let loud: Vec<usize> = clean
        .chunks(160)
        .enumerate()
        .filter(|(_, f)| level_dbfs(f) > -40.0)
        .map(|(i, _)| i)
        .collect();
    (
        offset_ms + *loud.first().unwrap() as u64 * 20,
        offset_ms + (*loud.last().unwrap() as u64 + 1) * 20,
    )
}

fn events(pcm: &[i16], bot_speaking: bool, vad: &VadChoice) -> Vec<(u64, TurnEvent)> {
    let mut vad = vad.make();
    let mut turn = TurnDetector::new(TurnConfig::default());
    turn.set_bot_speaking(bot_speaking);
    pcm.chunks(160)
        .enumerate()
        .filter_map(|(i, f)| {
            let now = Duration::from_millis(i as u64 * 20);
            turn.on_frame(vad.score(f) > 0.5, now)
                .map(|e| (i as u64 * 20 + 20, e))
        })
        .collect()
}

#[test]
fn one_turn_per_utterance_on_a_noisy_line() {
    let speech = caller_speech();
    let silence = vec![0i16; 8000];
    let mut line = silence.clone();
    line.extend(&speech);
    line.extend(vec![0i16; 12000]);
    let second_at = line.len() as u64 / 8;
    line.extend(agent_speech());
    line.extend(&silence);
    line.extend(&silence);
    // About -45 dBFS of hiss on the line.
    let noisy = with_noise(line, 180.0);
    for vad in both() {
        one_turn_per_utterance(&noisy, second_at, &vad);
    }
}

fn one_turn_per_utterance(noisy: &[i16], second_at: u64, vad: &VadChoice) {
    let speech = caller_speech();
    let ev = events(noisy, false, vad);
    let name = vad.name();
    let turns: Vec<(Duration, Duration, u64)> = ev
        .iter()
        .filter_map(|(at, e)| match e {
            TurnEvent::TurnEnded { start, end, .. } => Some((*start, *end, *at)),
            _ => None,
        })
        .collect();
    assert_eq!(turns.len(), 2, "{name}: {ev:?}");
    let (s1, e1) = speech_bounds(&speech, 1000);
    let (s2, e2) = speech_bounds(&agent_speech(), second_at);
    for ((start, end, decided_at), (s, e)) in turns.iter().zip([(s1, e1), (s2, e2)]) {
        let (start, end) = (start.as_millis() as i64, end.as_millis() as i64);
        assert!(
            start <= s as i64 && start >= s as i64 - 300,
            "{name}: turn start {start} vs speech {s}"
        );
        assert!(
            (end - e as i64).abs() <= 200,
            "{name}: turn end {end} vs speech end {e}"
        );
        // End-of-turn delay: the configured 700 ms hangover after the last voiced frame.
        let delay = *decided_at as i64 - end;
        assert!(
            (680..=760).contains(&delay),
            "{name}: end-of-turn decided {delay} ms after the voice"
        );
    }
}

#[test]
fn barge_in_on_real_speech_within_100ms() {
    let mut line = vec![0i16; 4000];
    let onset = speech_bounds(&caller_speech(), 500).0;
    line.extend(caller_speech());
    let line = with_noise(line, 180.0);
    for vad in both() {
        let name = vad.name();
        let ev = events(&line, true, &vad);
        let at = ev
            .iter()
            .find(|(_, e)| matches!(e, TurnEvent::BargeIn { .. }))
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("{name}: no barge-in"));
        assert!(
            at >= onset && at - onset <= 100,
            "{name}: barge-in {} ms after the onset {onset} ({ev:?})",
            at as i64 - onset as i64
        );
        assert!(
            ev.iter()
                .all(|(t, e)| *t >= onset || matches!(e, TurnEvent::Noise { .. })),
            "{name}: {ev:?}"
        );
    }
}

#[test]
fn silero_hears_less_speech_in_a_tune_and_still_hears_the_caller() {
    // While the bot talks: 1 s of the line, 5 s of a tune, five knocks, then the caller,
    // all over -45 dBFS hiss.
    let mut line = vec![0i16; 8000];
    line.extend(sounds::melody(5.0));
    let tune = 1000..6000u64;
    line.extend(sounds::knocks(5));
    let speech_at = line.len() as u64 / 8;
    line.extend(caller_speech());
    line.extend(vec![0i16; 12000]);
    let line = with_noise(line, 180.0);
    let onset = speech_bounds(&caller_speech(), speech_at).0;
    let voiced_in_tune = |vad: &VadChoice| {
        let mut v = vad.make();
        line.chunks_exact(160)
            .enumerate()
            .filter(|(i, f)| v.score(f) > 0.5 && tune.contains(&(*i as u64 * 20)))
            .count()
    };
    let (energy, silero_voiced) = (
        voiced_in_tune(&VadChoice::Energy),
        voiced_in_tune(&silero()),
    );
    // Silero takes the first notes of a tune for a voice, the energy detector all of it.
    assert!(
        silero_voiced * 3 < energy,
        "frames of the tune called speech: silero {silero_voiced}, energy {energy}"
    );
    // Silero hears the caller, and once (140 ms after the onset here: after a tune it is
    // slower to trust a voice than on a quiet line, where barge_in_on_real_speech_within_100ms
    // holds for it too).
    let ev = events(&line, true, &silero());
    let after: Vec<&(u64, TurnEvent)> = ev.iter().filter(|(t, _)| *t >= onset).collect();
    assert!(
        after
            .first()
            .is_some_and(|(t, e)| matches!(e, TurnEvent::BargeIn { .. }) && t - onset <= 200),
        "silero: the caller spoke at {onset}: {ev:?}"
    );
    let turns = after
        .iter()
        .filter(|(_, e)| matches!(e, TurnEvent::TurnEnded { .. }))
        .count();
    assert_eq!(turns, 1, "silero: {ev:?}");
}

#[test]
fn silero_hears_a_caller_under_loud_noise() {
    let jfk = sounds::ulaw_fixture("jfk.ul");
    let share = |vad: &VadChoice, pcm: &[i16]| {
        let mut v = vad.make();
        let n = pcm.chunks_exact(160).count();
        pcm.chunks_exact(160).filter(|f| v.score(f) > 0.5).count() as f32 / n as f32
    };
    let noisy = sounds::with_white_noise(&jfk, 5.0, 7);
    let (clean, loud) = (share(&silero(), &jfk), share(&silero(), &noisy));
    // White noise 5 dB below the words: Silero still hears most of them (the energy
    // detector, which must stay above the noise floor, hears a quarter; benches/vad.rs).
    assert!(
        loud >= 0.85 * clean,
        "silero: {loud} under noise, {clean} clean"
    );
    assert!(
        share(&VadChoice::Energy, &noisy) < loud,
        "energy {} vs silero {loud}",
        share(&VadChoice::Energy, &noisy)
    );
}

#[test]
fn a_missing_or_corrupt_silero_model_is_a_clear_error() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let lib = dir.join(voxdesk::config::ModelsConfig::default().onnxruntime);
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("silero_vad.onnx");
    let e = SileroModel::load(&lib, &missing).unwrap_err().to_string();
    assert!(
        e.contains("silero_vad.onnx") && e.contains("fetch-models"),
        "{e}"
    );
    std::fs::write(&missing, b"not an onnx graph").unwrap();
    let e = SileroModel::load(&lib, &missing).unwrap_err().to_string();
    assert!(e.contains("silero_vad.onnx"), "{e}");
    // Another ONNX graph (the Piper voice) loads, but is not taken for a VAD.
    let voice = dir.join(voxdesk::config::ModelsConfig::default().tts_voice);
    let e = SileroModel::load(&lib, &voice).unwrap_err().to_string();
    assert!(e.contains("not a Silero VAD model"), "{e}");
}
