//! Fixed prompts, rendered once at start-up: the greeting comes from a configured WAV, else
//! from the voices speaking `prompts.greeting` / `prompts.greeting_zh` (text in config, not
//! code: Piper for English, Kokoro for Chinese, both for speech.language "auto"), else from
//! the built-in recording. All are 8 kHz mono.

use crate::config::Config;
use crate::media::wav;
use crate::speech::kokoro::KokoroVoice;
use crate::speech::tts::{has_han, PiperVoice, Tts, TtsError};
use crate::speech::Speech;
use anyhow::{Context, Result};

/// The built-in English greeting (espeak-ng, 8 kHz mono): the fallback without a voice.
const BUILTIN_GREETING: &[u8] = include_bytes!("../assets/greeting-en.wav");

/// Where a prompt came from (for the start-up log and `doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Wav(String),
    /// Which voices said it ("Piper voice", "Kokoro voice", both).
    Tts(String),
    Builtin {
        why: String,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Wav(p) => write!(f, "WAV {p}"),
            Source::Tts(voices) => write!(f, "{voices}"),
            Source::Builtin { why } => write!(f, "built-in recording ({why})"),
        }
    }
}

/// The built-in English greeting recording at 8 kHz.
pub fn builtin_greeting() -> Vec<i16> {
    wav::load_mono_bytes(BUILTIN_GREETING, "built-in greeting", 8000).unwrap_or_default()
}

/// The greeting's sentences for the configured language: English, Chinese, or both for
/// "auto" (the caller has not spoken yet, so both are offered).
pub fn greeting_texts(cfg: &Config) -> Vec<&str> {
    match cfg.speech.language.as_str() {
        "en" => vec![cfg.prompts.greeting.as_str()],
        "zh" => vec![cfg.prompts.greeting_zh.as_str()],
        _ => vec![
            cfg.prompts.greeting.as_str(),
            cfg.prompts.greeting_zh.as_str(),
        ],
    }
}

/// The greeting: the configured WAV, else the loaded `speech` saying it, else the voices
/// loaded for it here, else the built-in English recording.
pub fn greeting(cfg: &Config, speech: Option<&Speech>) -> Result<(Vec<i16>, Source)> {
    if let Some(p) = &cfg.media.greeting {
        let pcm = wav::load_mono(p, 8000)
            .with_context(|| format!("media.greeting: cannot use {}", p.display()))?;
        return Ok((pcm, Source::Wav(p.display().to_string())));
    }
    if let Some(sp) = speech {
        let mut pcm = Vec::new();
        for text in greeting_texts(cfg) {
            // Sentence by sentence, the way answers stream during a call.
            sp.voice_for(text)
                .synthesize_streaming(text, &mut |s| pcm.extend(s))
                .context("prompts.greeting: cannot render")?;
        }
        return Ok((pcm, tts_source(cfg)));
    }
    let render = || -> Result<Vec<i16>, crate::speech::tts::TtsError> {
        let mut pcm = Vec::new();
        for text in greeting_texts(cfg) {
            let voice = load_voice(cfg, has_han(text))?;
            voice.synthesize_streaming(text, &mut |s| pcm.extend(s))?;
        }
        Ok(pcm)
    };
    let why = match render() {
        Ok(pcm) if !pcm.is_empty() => return Ok((pcm, tts_source(cfg))),
        Ok(_) => "the voice produced no audio".to_string(),
        Err(e) => e.to_string(),
    };
    let pcm = wav::load_mono_bytes(BUILTIN_GREETING, "built-in greeting", 8000)?;
    Ok((pcm, Source::Builtin { why }))
}

fn tts_source(cfg: &Config) -> Source {
    Source::Tts(match cfg.speech.language.as_str() {
        "en" => "Piper voice".into(),
        "zh" => "Kokoro voice".into(),
        _ => "Piper and Kokoro voices".into(),
    })
}

/// The configured voice for English (Piper) or Chinese (Kokoro) text.
pub fn load_voice(cfg: &Config, chinese: bool) -> Result<Box<dyn Tts>, TtsError> {
    let lib = cfg.model_path(&cfg.models.onnxruntime);
    Ok(if chinese {
        Box::new(KokoroVoice::load_zh(cfg, 1)?)
    } else {
        Box::new(PiperVoice::load(
            &lib,
            &cfg.model_path(&cfg.models.tts_voice),
        )?)
    })
}
