//! How something was said, from the caller's audio of one turn (8 kHz): loudness, pitch
//! (autocorrelation per 40 ms frame), pitch range, speaking rate, and from those an
//! arousal score in 0..1 that lifts the text's anger score against the caller's own calm baseline.

#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Prosody {
    /// RMS level over the voiced frames, dB relative to full scale.
    pub loudness_dbfs: f32,
    /// Median pitch of the voiced frames, Hz (0 when none was found).
    pub pitch_hz: f32,
    /// Spread between the 10th and 90th percentile of pitch, in semitones.
    pub pitch_range_st: f32,
    /// Words per second of speech (frames above the speech level, pitched or not; Chinese:
    /// characters / 1.5 per second). Pitched frames alone are too few to time words by:
    /// over G.711 a calm 1.5 s sentence can have only 0.5 s of them.
    pub rate_wps: f32,
    /// Seconds of voiced audio.
    pub voiced_secs: f32,
    /// 0 (calm) .. 1 (loud, wide pitch, fast).
    pub arousal: f32,
}

const FRAME: usize = 320; // 40 ms
const HOP: usize = 160; // 20 ms

fn dbfs(rms: f32) -> f32 {
    20.0 * (rms.max(1e-6) / 32768.0).log10()
}

/// Pitch of one frame by normalised autocorrelation over 60..400 Hz, if it is voiced.
fn frame_pitch(f: &[f32]) -> Option<f32> {
    let energy: f32 = f.iter().map(|x| x * x).sum();
    if energy <= 0.0 {
        return None;
    }
    let r: Vec<f32> = (20..=133)
        .map(|lag| {
            let (mut num, mut e1, mut e2) = (0.0f32, 0.0f32, 0.0f32);
            for i in 0..f.len() - lag {
                num += f[i] * f[i + lag];
                e1 += f[i] * f[i];
                e2 += f[i + lag] * f[i + lag];
            }
            num / (e1 * e2).sqrt().max(1e-9)
        })
        .collect();
    let max = r.iter().copied().fold(0.0f32, f32::max);
    if max <= 0.6 {
        return None;
    }
    // Multiples of the period correlate almost as well: take the shortest lag that is a
    // peak close to the best one (avoids halving the pitch).
    let i = (0..r.len()).find(|&i| {
        r[i] >= 0.9 * max && (i == 0 || r[i] >= r[i - 1]) && (i + 1 == r.len() || r[i] >= r[i + 1])
    })?;
    Some(8000.0 / (i + 20) as f32)
}

fn percentile(sorted: &[f32], p: f32) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f32 * p).round() as usize]
}

/// Measures one turn: `pcm` at 8 kHz, `text` its transcript.
pub fn measure(pcm: &[i16], text: &str) -> Prosody {
    let x: Vec<f32> = pcm.iter().map(|&s| s as f32).collect();
    let mut voiced_energy = 0.0f64;
    let mut voiced_frames = 0usize;
    let mut speech_frames = 0usize;
    let mut pitches = Vec::new();
    let mut start = 0;
    while start + FRAME <= x.len() {
        let f = &x[start..start + FRAME];
        let rms = (f.iter().map(|v| v * v).sum::<f32>() / FRAME as f32).sqrt();
        if dbfs(rms) > -45.0 {
            speech_frames += 1;
            if let Some(p) = frame_pitch(f) {
                pitches.push(p);
                voiced_energy += (rms * rms) as f64;
                voiced_frames += 1;
            }
        }
        start += HOP;
    }
    pitches.sort_by(f32::total_cmp);
    let voiced_secs = voiced_frames as f32 * HOP as f32 / 8000.0;
    let loudness_dbfs = if voiced_frames > 0 {
        dbfs((voiced_energy / voiced_frames as f64).sqrt() as f32)
    } else {
        -90.0
    };
    let (p10, p50, p90) = (
        percentile(&pitches, 0.1),
        percentile(&pitches, 0.5),
        percentile(&pitches, 0.9),
    );
    let pitch_range_st = if p10 > 0.0 {
        12.0 * (p90 / p10).log2()
    } else {
        0.0
    };
    let cjk = text.chars().filter(|&c| super::text::is_cjk(c)).count();
    let words = text.split_whitespace().count() as f32 + cjk as f32 / 1.5;
    let speech_secs = speech_frames as f32 * HOP as f32 / 8000.0;
    let rate_wps = if voiced_secs > 0.3 {
        words / speech_secs
    } else {
        0.0
    };
    let mut p = Prosody {
        loudness_dbfs,
        pitch_hz: p50,
        pitch_range_st,
        rate_wps,
        voiced_secs,
        arousal: 0.0,
    };
    p.arousal = arousal(&p, None);
    p
}

/// How aroused the voice is, 0..1. Line levels differ by tens of dB between phones, trunks
/// and synthetic voices, so with a `baseline` (the caller's own first turn) loudness, pitch
/// range and rate count relative to it; without one only the extremes count: a voice close
/// to clipping.
/// Words in a transcript (Chinese: characters / 1.5, the speaking-rate convention above).
pub fn words(text: &str) -> f32 {
    let cjk = text.chars().filter(|&c| super::text::is_cjk(c)).count();
    let latin = text
        .split(|c: char| !c.is_alphanumeric() || super::text::is_cjk(c))
        .filter(|w| !w.is_empty())
        .count();
    latin as f32 + cjk as f32 / 1.5
}

/// Fewest words, and seconds of voice, for a turn's voice to count: a short loud "Bye!" or
/// "No!" is not anger, and its pitch and rate are noise.
pub const MIN_WORDS: f32 = 3.0;
pub const MIN_VOICED_SECS: f32 = 0.6;

/// Does the voice of this turn count at all (against a baseline)?
pub fn counts(p: &Prosody, text: &str) -> bool {
    p.voiced_secs >= MIN_VOICED_SECS && words(text) >= MIN_WORDS
}

/// May this turn be the caller's baseline (how they sound when calm)? A sentence of a
/// second of voice or more: not a one-word "Hi." nor a short answer.
pub fn is_baseline(p: &Prosody, text: &str) -> bool {
    p.voiced_secs >= 1.0 && words(text) >= MIN_WORDS
}

/// Arousal 0..1 against the caller's `baseline`; 0 without one (see `is_baseline`).
pub fn arousal(p: &Prosody, baseline: Option<&Prosody>) -> f32 {
    if p.voiced_secs <= 0.0 {
        return 0.0;
    }
    // Pitch range and rate measured on less than a second of voiced audio are mostly noise
    // (a short follow-up over G.711 can have 0.5 s of it): they count in proportion.
    let sure = (p.voiced_secs / 1.0).clamp(0.0, 1.0);
    let (loud, wide, fast) = match baseline.filter(|b| b.voiced_secs >= 1.0) {
        Some(b) => (
            ((p.loudness_dbfs - b.loudness_dbfs - 3.0) / 6.0).clamp(0.0, 1.0),
            // Wide margin: the range measure is noisy (several semitones between calm
            // sentences of one voice).
            sure * ((p.pitch_range_st - b.pitch_range_st - 5.0) / 6.0).clamp(0.0, 1.0),
            if b.rate_wps > 0.5 {
                sure * ((p.rate_wps / b.rate_wps - 1.2) / 0.5).clamp(0.0, 1.0)
            } else {
                0.0
            },
        ),
        // No baseline, no evidence: pitch range varies from 8 to 18 semitones between calm
        // sentences of one synthetic voice over G.711, and loudness depends on the line
        // (a hot trunk, a headset) as much as on the caller.
        None => return 0.0,
    };
    0.65 * loud + 0.2 * wide + 0.15 * fast
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A harmonic tone gliding from `f0` to `f1` Hz at `amp` (of full scale) for `secs`.
    fn voice(f0: f32, f1: f32, amp: f32, secs: f32) -> Vec<i16> {
        let n = (secs * 8000.0) as usize;
        let mut phase = 0.0f32;
        (0..n)
            .map(|i| {
                let f = f0 + (f1 - f0) * i as f32 / n as f32;
                phase += 2.0 * std::f32::consts::PI * f / 8000.0;
                let s = phase.sin() + 0.5 * (2.0 * phase).sin() + 0.25 * (3.0 * phase).sin();
                (s / 1.75 * amp * 32767.0) as i16
            })
            .collect()
    }

    #[test]
    fn calm_and_shouted() {
        let calm = measure(&voice(120.0, 130.0, 0.05, 1.5), "fine");
        assert!((calm.pitch_hz - 125.0).abs() < 8.0, "{calm:?}");
        assert!(calm.pitch_range_st < 2.0, "{calm:?}");
        assert!(calm.arousal < 0.2, "{calm:?}");
        let shout = measure(&voice(180.0, 360.0, 0.95, 1.5), "fine");
        assert!(shout.loudness_dbfs > -10.0, "{shout:?}");
        assert!(shout.pitch_range_st > 9.0, "{shout:?}");
        // Against the same caller's calm first turn it is clearly aroused...
        assert!(arousal(&shout, Some(&calm)) > 0.7, "{shout:?}");
        // ...and a loud line alone (a hot trunk, a synthetic voice) is not.
        let loud_calm = measure(&voice(120.0, 130.0, 0.6, 1.5), "fine");
        assert!(loud_calm.arousal < 0.2, "{loud_calm:?}");
        assert!(arousal(&loud_calm, Some(&loud_calm)) == 0.0);
        // A short calm follow-up whose pitch glides (a question) is not aroused: pitch range
        // and rate on half a second of voice count only half.
        let first = measure(&voice(120.0, 130.0, 0.05, 1.5), "how do I turn on roaming");
        let follow_up = measure(
            &voice(110.0, 200.0, 0.05, 0.5),
            "and how much does that cost",
        );
        let a = arousal(&follow_up, Some(&first));
        assert!(a < crate::nlu::AROUSAL_NOISE, "{a} {follow_up:?} {first:?}");
        // Without a baseline the voice is no evidence, however loud; a short word neither.
        assert_eq!(arousal(&shout, None), 0.0);
        assert!(!counts(&shout, "fine") && counts(&shout, "this is not fine"));
        assert!(!is_baseline(&calm, "hi") && is_baseline(&calm, "how do I pay"));
        assert!((words("我要查话费") - 5.0 / 1.5).abs() < 1e-6);
        let silent = measure(&vec![0i16; 8000], "");
        assert_eq!(silent.arousal, 0.0);
        assert_eq!(measure(&[], "").voiced_secs, 0.0);
    }
}
