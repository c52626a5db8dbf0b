//! WAV prompts (any rate, resampled to 8 kHz with rubato) and per-call recordings.

use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WavError {
    #[error("cannot read WAV {path}: {source}")]
    Read { path: PathBuf, source: hound::Error },
    #[error("cannot resample {path}: {msg}")]
    Resample { path: PathBuf, msg: String },
    #[error("cannot write recording {path}: {source}")]
    Write { path: PathBuf, source: hound::Error },
}

/// Loads a WAV file as mono 16-bit PCM at `rate` Hz (channels are averaged).
pub fn load_mono(path: &Path, rate: u32) -> Result<Vec<i16>, WavError> {
    let reader = hound::WavReader::open(path).map_err(|source| WavError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    decode_mono(reader, path, rate)
}

/// Like [`load_mono`] for WAV bytes in memory (`name` is used in errors).
pub fn load_mono_bytes(bytes: &[u8], name: &str, rate: u32) -> Result<Vec<i16>, WavError> {
    let path = Path::new(name);
    let reader =
        hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(|source| WavError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    decode_mono(reader, path, rate)
}

fn decode_mono<R: std::io::Read>(
    mut reader: hound::WavReader<R>,
    path: &Path,
    rate: u32,
) -> Result<Vec<i16>, WavError> {
    let rerr = |source| WavError::Read {
        path: path.to_path_buf(),
        source,
    };
    let spec = reader.spec();
    let ch = spec.channels.max(1) as usize;
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(rerr)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1i64 << (spec.bits_per_sample.clamp(8, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(rerr)?
        }
    };
    let mono: Vec<f32> = samples
        .chunks(ch)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    let out = resample(&mono, spec.sample_rate, rate).map_err(|e| WavError::Resample {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    Ok(out
        .iter()
        .map(|&s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect())
}

pub use crate::audio::resample;

/// A stereo 8 kHz recording: left = caller (what we received), right = what we sent.
pub struct Recorder {
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    path: PathBuf,
    frames_since_flush: u32,
}

impl Recorder {
    /// Creates the WAV readable by this user alone (0600, in a 0700 folder): a recording
    /// is a caller's personal data.
    pub fn create(path: &Path) -> Result<Recorder, WavError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent() {
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
        }
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let err = |source| WavError::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(hound::Error::IoError(e)))?;
        let writer = hound::WavWriter::new(std::io::BufWriter::new(file), spec).map_err(err)?;
        Ok(Recorder {
            writer: Some(writer),
            path: path.to_path_buf(),
            frames_since_flush: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one frame of each direction (equal lengths; the shorter is padded with silence).
    pub fn write(&mut self, rx: &[i16], tx: &[i16]) -> Result<(), WavError> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        let n = rx.len().max(tx.len());
        let werr = |source| WavError::Write {
            path: self.path.clone(),
            source,
        };
        for i in 0..n {
            w.write_sample(rx.get(i).copied().unwrap_or(0))
                .map_err(werr)?;
            w.write_sample(tx.get(i).copied().unwrap_or(0))
                .map_err(werr)?;
        }
        self.frames_since_flush += 1;
        // Keep the header valid on disk about once a second, so a crash loses little.
        if self.frames_since_flush >= 50 {
            self.frames_since_flush = 0;
            w.flush().map_err(werr)?;
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<(), WavError> {
        if let Some(w) = self.writer.take() {
            w.finalize().map_err(|source| WavError::Write {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resample_keeps_length_and_frequency() {
        // 1 s of 440 Hz at 22050 Hz -> 8000 Hz.
        let input: Vec<f32> = (0..22050)
            .map(|i| (i as f32 * 440.0 * 2.0 * std::f32::consts::PI / 22050.0).sin() * 0.5)
            .collect();
        let out = resample(&input, 22050, 8000).unwrap();
        assert_eq!(out.len(), 8000);
        // Count zero crossings in the middle: ~880 per second.
        let zc = out[1000..7000]
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((650..670).contains(&zc), "zero crossings {zc}");
    }

    #[test]
    fn recorder_writes_stereo_and_loader_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.wav");
        let mut r = Recorder::create(&p).unwrap();
        for _ in 0..60 {
            r.write(&[1000; 160], &[-1000; 160]).unwrap();
        }
        r.finish().unwrap();
        let rd = hound::WavReader::open(&p).unwrap();
        assert_eq!(rd.spec().channels, 2);
        assert_eq!(rd.duration(), 60 * 160);
        let mono = load_mono(&p, 8000).unwrap();
        assert_eq!(mono.len(), 9600);
        assert!(mono.iter().all(|&s| s.abs() <= 1));
        assert!(load_mono(&dir.path().join("missing.wav"), 8000).is_err());
    }
}
