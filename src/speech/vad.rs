//! Voice activity detection on 8 kHz call audio, 20 ms frames, sans-IO.
//!
//! `EnergyVad` compares each frame's energy with an adaptive noise floor (fast to fall,
//! slow to rise), and uses the zero-crossing rate to tell hiss from voice at marginal
//! levels. It runs only on the caller's audio, never on what we play, so the bot cannot
//! trigger itself through our own path.

//! `SileroVad` (speech/silero.rs) runs the Silero network instead (`speech.vad = "silero"`).

/// A voice activity detector: a speech score in 0..=1 for each 20 ms frame.
pub trait Vad: Send {
    fn score(&mut self, frame: &[i16]) -> f32;
}

#[derive(Debug, Clone, Copy)]
pub struct EnergyVadConfig {
    /// dB above the noise floor at which a frame counts as speech.
    pub threshold_db: f32,
    /// Frames quieter than this (dBFS) are never speech.
    pub min_level_dbfs: f32,
}

impl Default for EnergyVadConfig {
    fn default() -> Self {
        EnergyVadConfig {
            threshold_db: 10.0,
            min_level_dbfs: -50.0,
        }
    }
}

pub struct EnergyVad {
    cfg: EnergyVadConfig,
    floor_db: f32,
    /// Levels of the last `WINDOW` frames: the floor is their minimum (minimum statistics).
    history: std::collections::VecDeque<f32>,
}

/// 2 s of 20 ms frames: speech always has quieter moments within that, steady noise not.
const WINDOW: usize = 100;

/// Frame level in dBFS (RMS), floored at -100.
pub fn level_dbfs(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return -100.0;
    }
    let sum: f64 = frame.iter().map(|&s| (s as f64) * (s as f64)).sum();
    let rms = (sum / frame.len() as f64).sqrt() / 32768.0;
    (20.0 * rms.max(1e-5).log10()) as f32
}

/// Fraction of adjacent samples that change sign.
pub fn zero_crossing_rate(frame: &[i16]) -> f32 {
    if frame.len() < 2 {
        return 0.0;
    }
    let z = frame
        .windows(2)
        .filter(|w| (w[0] >= 0) != (w[1] >= 0))
        .count();
    z as f32 / (frame.len() - 1) as f32
}

impl EnergyVad {
    pub fn new(cfg: EnergyVadConfig) -> Self {
        EnergyVad {
            floor_db: -100.0,
            cfg,
            history: std::collections::VecDeque::with_capacity(WINDOW),
        }
    }

    pub fn noise_floor_dbfs(&self) -> f32 {
        self.floor_db
    }
}

impl Default for EnergyVad {
    fn default() -> Self {
        EnergyVad::new(EnergyVadConfig::default())
    }
}

impl Vad for EnergyVad {
    fn score(&mut self, frame: &[i16]) -> f32 {
        let level = level_dbfs(frame);
        // Noise floor by minimum statistics: the quietest frame of the last 2 s. Speech has
        // pauses and stops inside that window; a steady noise does not, so it becomes floor.
        if self.history.len() == WINDOW {
            self.history.pop_front();
        }
        self.history.push_back(level);
        let min = self.history.iter().copied().fold(f32::INFINITY, f32::min);
        self.floor_db = min;
        if level < self.cfg.min_level_dbfs {
            return 0.0;
        }
        let margin = level - self.floor_db - self.cfg.threshold_db;
        let mut score = 1.0 / (1.0 + (-margin / 2.0).exp());
        // Hiss (fricative-free broadband noise) crosses zero very often; voiced speech at
        // 8 kHz rarely does above ~0.35. Penalise marginal frames that look like hiss.
        if zero_crossing_rate(frame) > 0.45 && margin < 6.0 {
            score *= 0.3;
        }
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, amp: f32, n: usize, phase0: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                ((((phase0 + i) as f32) * freq * 2.0 * std::f32::consts::PI / 8000.0).sin() * amp)
                    as i16
            })
            .collect()
    }

    fn noise(amp: f32, n: usize, seed: &mut u32) -> Vec<i16> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 17;
                *seed ^= *seed << 5;
                ((*seed as i32 >> 16) as f32 / 32768.0 * amp) as i16
            })
            .collect()
    }

    #[test]
    fn levels() {
        assert!((level_dbfs(&tone(440.0, 32767.0, 160, 0)) + 3.0).abs() < 0.2);
        assert_eq!(level_dbfs(&[0; 160]), -100.0);
        assert!(zero_crossing_rate(&tone(200.0, 1000.0, 160, 0)) < 0.1);
    }

    #[test]
    fn voice_level_tone_is_speech_silence_is_not() {
        let mut v = EnergyVad::default();
        for _ in 0..20 {
            assert!(v.score(&[0; 160]) < 0.1);
        }
        assert!(v.score(&tone(300.0, 6000.0, 160, 0)) > 0.9);
    }

    #[test]
    fn steady_noise_is_learned_as_floor() {
        let mut v = EnergyVad::default();
        let mut seed = 7;
        let mut last = 1.0;
        // 10 s of -30 dBFS white noise (a noisy line): after adapting it is not speech.
        for _ in 0..500 {
            last = v.score(&noise(1800.0, 160, &mut seed));
        }
        assert!(last < 0.2, "score {last}, floor {}", v.noise_floor_dbfs());
        // A voice 15 dB above that noise still is.
        let mut loud = tone(250.0, 12000.0, 160, 0);
        for (s, n) in loud.iter_mut().zip(noise(1800.0, 160, &mut seed)) {
            *s = s.saturating_add(n);
        }
        assert!(v.score(&loud) > 0.8);
    }
}
