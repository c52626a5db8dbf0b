//! VAD + turn detection on recorded speech (the caller and agent fixtures), with line noise:
//! one turn per utterance, bounds near the real speech, barge-in within 100 ms.

use std::time::Duration;
use voxdesk::media::g711::ulaw_to_linear;
use voxdesk::speech::turn::{TurnConfig, TurnDetector, TurnEvent};
use voxdesk::speech::vad::{level_dbfs, EnergyVad, Vad};

fn caller_speech() -> Vec<i16> {
    let ul = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/caller-hello.ul"
    ))
    .unwrap();
    ul.into_iter().map(ulaw_to_linear).collect()
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

fn events(pcm: &[i16], bot_speaking: bool) -> Vec<(u64, TurnEvent)> {
    let mut vad = EnergyVad::default();
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
    let ev = events(&noisy, false);
    let turns: Vec<(Duration, Duration, u64)> = ev
        .iter()
        .filter_map(|(at, e)| match e {
            TurnEvent::TurnEnded { start, end, .. } => Some((*start, *end, *at)),
            _ => None,
        })
        .collect();
    assert_eq!(turns.len(), 2, "{ev:?}");
    let (s1, e1) = speech_bounds(&speech, 1000);
    let (s2, e2) = speech_bounds(&agent_speech(), second_at);
    for ((start, end, decided_at), (s, e)) in turns.iter().zip([(s1, e1), (s2, e2)]) {
        let (start, end) = (start.as_millis() as i64, end.as_millis() as i64);
        assert!(
            start <= s as i64 && start >= s as i64 - 300,
            "turn start {start} vs speech {s}"
        );
        assert!(
            (end - e as i64).abs() <= 200,
            "turn end {end} vs speech end {e}"
        );
        // End-of-turn delay: the configured 700 ms hangover after the last voiced frame.
        let delay = *decided_at as i64 - end;
        assert!(
            (680..=760).contains(&delay),
            "end-of-turn decided {delay} ms after the voice"
        );
    }
}

#[test]
fn barge_in_on_real_speech_within_100ms() {
    let mut line = vec![0i16; 4000];
    let onset = speech_bounds(&caller_speech(), 500).0;
    line.extend(caller_speech());
    let ev = events(&with_noise(line, 180.0), true);
    let at = ev
        .iter()
        .find(|(_, e)| matches!(e, TurnEvent::BargeIn { .. }))
        .map(|(t, _)| *t)
        .expect("a barge-in");
    assert!(
        at >= onset && at - onset <= 100,
        "barge-in {} ms after the onset {onset} ({ev:?})",
        at as i64 - onset as i64
    );
    assert!(
        ev.iter()
            .all(|(t, e)| *t >= onset || matches!(e, TurnEvent::Noise { .. })),
        "{ev:?}"
    );
}
