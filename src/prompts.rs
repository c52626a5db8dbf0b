//! Fixed prompts: the greeting (configured WAV or the built-in one), resampled to 8 kHz.

use crate::config::Config;
use crate::media::wav;
use anyhow::{Context, Result};

/// The built-in English greeting (espeak-ng, 8 kHz mono), used when `media.greeting` is unset.
const BUILTIN_GREETING: &[u8] = include_bytes!("../assets/greeting-en.wav");

pub fn greeting(cfg: &Config) -> Result<Vec<i16>> {
    match &cfg.media.greeting {
        Some(p) => wav::load_mono(p, 8000)
            .with_context(|| format!("media.greeting: cannot use {}", p.display())),
        None => Ok(wav::load_mono_bytes(
            BUILTIN_GREETING,
            "built-in greeting",
            8000,
        )?),
    }
}
