//! Sounds for the VAD tests and the VAD bench (`#[path]`-included by both): the recorded
//! G.711 fixtures, and sounds that are not speech made up sample by sample at 8 kHz (a tune,
//! knocks, white noise).
#![allow(dead_code)]

use std::f32::consts::PI;

/// A u-law recording from tests/fixtures, decoded to 8 kHz linear samples.
pub fn ulaw_fixture(name: &str) -> Vec<i16> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(voxdesk::media::g711::ulaw_to_linear)
        .collect()
}

/// A xorshift generator: uniform in -1..1, the same sequence for the same seed.
pub struct Noise(pub u32);

impl Noise {
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0 as i32 as f32 / i32::MAX as f32
    }
}

pub fn to_pcm(x: impl Iterator<Item = f32>) -> Vec<i16> {
    x.map(|v| (v.clamp(-1.0, 1.0) * 32767.0) as i16).collect()
}

/// `secs` of `f(t)` (t in seconds, full scale 1.0).
pub fn sound(secs: f32, mut f: impl FnMut(f32) -> f32) -> Vec<i16> {
    to_pcm((0..(secs * 8000.0) as usize).map(|i| f(i as f32 / 8000.0)))
}

/// A tune at about -15 dBFS: 300 ms notes with harmonics, 50 ms apart, up and down a scale
/// (music on hold, a radio in the room).
pub fn melody(secs: f32) -> Vec<i16> {
    let scale = [262.0f32, 294.0, 330.0, 349.0, 392.0, 440.0, 494.0, 523.0];
    sound(secs, |t| {
        let n = (t / 0.35) as usize;
        let within = t - n as f32 * 0.35;
        if within > 0.3 {
            return 0.0;
        }
        let i = n % 14;
        let f = scale[if i < 8 { i } else { 14 - i }];
        let env = (within / 0.02).min(1.0) * (1.0 - within / 0.3).max(0.0).sqrt();
        0.18 * env
            * (1..4)
                .map(|k| (2.0 * PI * f * k as f32 * t).sin() / k as f32)
                .sum::<f32>()
    })
}

/// `n` knocks: 100 ms of loud noise (-10 dBFS), then 400 ms of silence.
pub fn knocks(n: usize) -> Vec<i16> {
    let mut g = Noise(99);
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend(sound(0.1, |_| 0.3 * g.next()));
        out.extend(vec![0i16; 3200]);
    }
    out
}

/// `pcm` with white noise added at `snr_db` below the power of its frames above -40 dBFS
/// (the words, not the pauses).
pub fn with_white_noise(pcm: &[i16], snr_db: f32, seed: u32) -> Vec<i16> {
    let loud: Vec<f32> = pcm
        .chunks_exact(160)
        .filter(|f| {
            let p = f.iter().map(|&s| (s as f32 / 32768.0).powi(2)).sum::<f32>() / 160.0;
            10.0 * p.max(1e-10).log10() > -40.0
        })
        .flatten()
        .map(|&s| s as f32 / 32768.0)
        .collect();
    let power = loud.iter().map(|x| x * x).sum::<f32>() / loud.len().max(1) as f32;
    // Uniform noise in -a..a has power a^2 / 3.
    let amp = (3.0 * power / 10f32.powf(snr_db / 10.0)).sqrt();
    let mut g = Noise(seed);
    to_pcm(pcm.iter().map(|&s| s as f32 / 32768.0 + amp * g.next()))
}
