//! Audio helpers below media and speech alike (both resample: prompts and recordings to the
//! call's rate, voices from their own rate, the recogniser's 16 kHz).

use rubato::{FftFixedInOut, Resampler};

/// The resampler refused the rates or the block (rubato's message).
#[derive(Debug, thiserror::Error)]
#[error("resampling failed: {0}")]
pub struct ResampleError(pub String);

/// Resamples mono f32 audio with rubato's FFT resampler.
pub fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    if from == to || input.is_empty() {
        return Ok(input.to_vec());
    }
    let mut r = FftFixedInOut::<f32>::new(from as usize, to as usize, 1024, 1)
        .map_err(|e| ResampleError(e.to_string()))?;
    let delay = r.output_delay();
    let mut out = Vec::with_capacity(input.len() * to as usize / from as usize + 2048);
    let mut pos = 0;
    while pos + r.input_frames_next() <= input.len() {
        let n = r.input_frames_next();
        let o = r
            .process(&[&input[pos..pos + n]], None)
            .map_err(|e| ResampleError(e.to_string()))?;
        out.extend_from_slice(&o[0]);
        pos += n;
    }
    // Flush the tail and the resampler's delay with zeros.
    let mut tail = input[pos..].to_vec();
    tail.resize(r.input_frames_next(), 0.0);
    let o = r
        .process(&[&tail], None)
        .map_err(|e| ResampleError(e.to_string()))?;
    out.extend_from_slice(&o[0]);
    let zeros = vec![0.0; r.input_frames_next()];
    let o = r
        .process(&[&zeros], None)
        .map_err(|e| ResampleError(e.to_string()))?;
    out.extend_from_slice(&o[0]);
    let want = (input.len() as u64 * to as u64 / from as u64) as usize;
    let end = (delay + want).min(out.len());
    Ok(out[delay.min(end)..end].to_vec())
}
