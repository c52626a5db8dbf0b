//! Fixed prompts, rendered once at start-up: the greeting comes from a configured WAV, else
//! from the Piper voice speaking `prompts.greeting` (text in config, not code), else from
//! the built-in recording. All are 8 kHz mono.

use crate::config::Config;
use crate::media::wav;
use crate::speech::tts::{PiperVoice, Tts};
use anyhow::{Context, Result};

/// The built-in English greeting (espeak-ng, 8 kHz mono): the fallback without a voice.
const BUILTIN_GREETING: &[u8] = include_bytes!("../assets/greeting-en.wav");

/// Where a prompt came from (for the start-up log and `doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Wav(String),
    Tts,
    Builtin { why: String },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Wav(p) => write!(f, "WAV {p}"),
            Source::Tts => write!(f, "Piper voice"),
            Source::Builtin { why } => write!(f, "built-in recording ({why})"),
        }
    }
}

/// The greeting, spoken by `voice` when one is loaded (else the configured voice is loaded
/// for it, else the built-in recording is used).
/// The built-in English greeting recording at 8 kHz.
pub fn builtin_greeting() -> Vec<i16> {
    wav::load_mono_bytes(BUILTIN_GREETING, "built-in greeting", 8000).unwrap_or_default()
}

pub fn greeting(cfg: &Config, voice: Option<&dyn Tts>) -> Result<(Vec<i16>, Source)> {
    if let Some(p) = &cfg.media.greeting {
        let pcm = wav::load_mono(p, 8000)
            .with_context(|| format!("media.greeting: cannot use {}", p.display()))?;
        return Ok((pcm, Source::Wav(p.display().to_string())));
    }
    if let Some(v) = voice {
        let mut pcm = Vec::new();
        v.synthesize_streaming(&cfg.prompts.greeting, &mut |s| pcm.extend(s))
            .context("prompts.greeting: cannot render")?;
        return Ok((pcm, Source::Tts));
    }
    let voice = PiperVoice::load(
        &cfg.model_path(&cfg.models.onnxruntime),
        &cfg.model_path(&cfg.models.tts_voice),
    );
    // Sentence by sentence, the way answers will stream during a call.
    let render = |v: PiperVoice| -> Result<Vec<i16>, crate::speech::tts::TtsError> {
        let mut pcm = Vec::new();
        v.synthesize_streaming(&cfg.prompts.greeting, &mut |s| pcm.extend(s))?;
        Ok(pcm)
    };
    let why = match voice.and_then(render) {
        Ok(pcm) if !pcm.is_empty() => return Ok((pcm, Source::Tts)),
        Ok(_) => "the voice produced no audio".to_string(),
        Err(e) => e.to_string(),
    };
    let pcm = wav::load_mono_bytes(BUILTIN_GREETING, "built-in greeting", 8000)?;
    Ok((pcm, Source::Builtin { why }))
}
