//! Reading the server's call recordings (stereo WAV: caller left, bot or agent right):
//! levels per channel and where sound starts and stops.

use super::*;

/// Per-channel RMS (0..1) of a WAV over [from_s, to_s).
pub fn wav_rms(path: &Path, from_s: f32, to_s: f32) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    let ch = spec.channels as usize;
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let frames = samples.len() / ch;
    let a = ((from_s * spec.sample_rate as f32) as usize).min(frames);
    let b = ((to_s * spec.sample_rate as f32) as usize).min(frames);
    (0..ch)
        .map(|c| {
            let n = (b - a).max(1) as f64;
            let sum: f64 = (a..b)
                .map(|i| (samples[i * ch + c] as f64 / 32768.0).powi(2))
                .sum();
            (sum / n).sqrt() as f32
        })
        .collect()
}

pub fn wav_seconds(path: &Path) -> f32 {
    let r = hound::WavReader::open(path).unwrap();
    r.duration() as f32 / r.spec().sample_rate as f32
}

fn frames_of(path: &Path, channel: usize) -> (Vec<f32>, ()) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let ch = spec.channels as usize;
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let per = (spec.sample_rate / 50) as usize;
    let levels = samples
        .chunks(per * ch)
        .map(|f| {
            let n = f.len() / ch;
            let sum: f64 = (0..n)
                .map(|i| (f[i * ch + channel] as f64 / 32768.0).powi(2))
                .sum();
            (sum / n.max(1) as f64).sqrt() as f32
        })
        .collect();
    (levels, ())
}

/// Start (s) of the first 20 ms frame at or after `from_s` whose RMS exceeds `level`
/// (0.003 is about -50 dBFS: above comfort noise, below any speech).
pub fn first_frame_above(path: &Path, channel: usize, from_s: f32, level: f32) -> Option<f32> {
    let (levels, _) = frames_of(path, channel);
    levels
        .iter()
        .enumerate()
        .skip((from_s * 50.0) as usize)
        .find(|(_, l)| **l > level)
        .map(|(i, _)| i as f32 / 50.0)
}

/// Start (s) of the first 20 ms frame at or after `from_s` whose RMS is below 0.003.
pub fn first_quiet_frame(path: &Path, channel: usize, from_s: f32) -> Option<f32> {
    let (levels, _) = frames_of(path, channel);
    levels
        .iter()
        .enumerate()
        .skip((from_s * 50.0).round() as usize)
        .find(|(_, l)| **l < 0.003)
        .map(|(i, _)| i as f32 / 50.0)
}
