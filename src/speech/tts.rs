//! Text-to-speech with a Piper voice (ONNX + .onnx.json) run through ONNX Runtime (`ort`,
//! loaded dynamically from the shared library the model fetch step installs), phonemes from
//! espeak-ng. One inference per sentence so audio can stream.

use super::espeak;
use crate::audio::resample;
use ort::session::Session;
use ort::value::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TtsError {
    #[error(
        "ONNX Runtime library {path}: {msg} (run scripts/fetch-models.sh, or set VOXDESK_ORT_LIB)"
    )]
    Runtime { path: PathBuf, msg: String },
    #[error("voice {path}: {msg}")]
    Voice { path: PathBuf, msg: String },
    #[error("phonemes: {0}")]
    Phonemes(#[from] espeak::EspeakError),
    #[error("synthesis failed: {0}")]
    Inference(String),
}

/// Something that turns text into 8 kHz speech, sentence by sentence.
pub trait Tts: Send + Sync {
    fn synthesize(&self, text: &str) -> Result<Vec<i16>, TtsError>;

    /// Renders `text` one sentence at a time, handing each one over as soon as it is ready,
    /// so that playback of the first sentence can start while the rest render.
    fn synthesize_streaming(
        &self,
        text: &str,
        on_sentence: &mut dyn FnMut(Vec<i16>),
    ) -> Result<(), TtsError> {
        for s in sentences(text) {
            on_sentence(self.synthesize(s)?);
        }
        Ok(())
    }
}

/// Splits text after sentence-ending punctuation (., !, ?, and the CJK 。！？), keeping it.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = i + c.len_utf8();
        let cjk = matches!(c, '。' | '！' | '？');
        let latin_end = matches!(c, '.' | '!' | '?')
            && chars.peek().map(|(_, n)| n.is_whitespace()).unwrap_or(true);
        if cjk || latin_end {
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The pieces the reply path renders `text` in: whole when `whole` (a reply that ends the
/// call or hands it on, so "playback done" means all of it was said), else `speech_chunks`.
/// Rendering ahead uses the same rule, so what it caches is what replies look up.
pub fn reply_pieces(text: &str, whole: bool) -> Vec<String> {
    if whole {
        vec![text.to_string()]
    } else {
        speech_chunks(text)
    }
}

/// A Chinese character (CJK unified ideographs and extension A).
pub fn is_han(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

/// Whether `text` has Chinese characters (and so is said by the Chinese voice).
pub fn has_han(text: &str) -> bool {
    text.chars().any(is_han)
}

/// How long a piece of text is when spoken, in words (a Chinese character counts as half a
/// word: about 4 characters a second against 2.5 words).
fn spoken_words(s: &str) -> usize {
    let han = s.chars().filter(|&c| is_han(c)).count();
    s.split_whitespace().filter(|w| !has_han(w)).count() + han / 2
}

/// The pieces a reply is rendered in: its sentences, with a long first sentence cut at its
/// first clause break (",", ":", ";", "，", "：") so the first audio is ready sooner. Chinese
/// sentences are cut at every clause break: the Chinese voice renders at about real time on
/// two cores, so the first audio waits for a whole clause's rendering.
pub fn speech_chunks(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, s) in sentences(text).into_iter().enumerate() {
        let chinese = has_han(s);
        if (i == 0 || chinese) && spoken_words(s) > 6 {
            let mut rest = s;
            loop {
                let cut = rest.char_indices().find(|&(at, c)| {
                    matches!(c, ',' | ':' | ';' | '，' | '：' | '；')
                        && spoken_words(&rest[..at]) >= 2
                        && spoken_words(&rest[at + c.len_utf8()..]) >= 2
                });
                let Some((at, c)) = cut else { break };
                out.push(rest[..at + c.len_utf8()].trim().to_string());
                rest = rest[at + c.len_utf8()..].trim();
                if !chinese {
                    break;
                }
            }
            out.push(rest.to_string());
            continue;
        }
        out.push(s.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sentence_is_cut_at_a_clause() {
        assert_eq!(
            speech_chunks("I heard: my router is blinking red again. How else can I help?"),
            [
                "I heard:",
                "my router is blinking red again.",
                "How else can I help?"
            ]
        );
        assert_eq!(speech_chunks("Goodbye."), ["Goodbye."]);
        assert_eq!(
            speech_chunks(
                "您可以用本机发送短信查询余额，或者在应用的账单页面查看。还有什么可以帮您？"
            ),
            [
                "您可以用本机发送短信查询余额，",
                "或者在应用的账单页面查看。",
                "还有什么可以帮您？"
            ]
        );
        assert_eq!(
            speech_chunks("好的。逾期会加收五元滞纳金，逾期三十天后会暂停服务，请您注意一下。"),
            [
                "好的。",
                "逾期会加收五元滞纳金，",
                "逾期三十天后会暂停服务，",
                "请您注意一下。"
            ]
        );
        assert!(has_han("好的 OK") && !has_han("OK"));
        assert_eq!(
            speech_chunks("Our stores open at nine, Monday to Saturday."),
            ["Our stores open at nine,", "Monday to Saturday."]
        );
    }

    #[test]
    fn sentence_split() {
        assert_eq!(
            sentences("Thank you for calling. Your balance is 12.50 dollars! Anything else?"),
            [
                "Thank you for calling.",
                "Your balance is 12.50 dollars!",
                "Anything else?"
            ]
        );
        assert_eq!(
            sentences("您好。请问有什么可以帮您？谢谢"),
            ["您好。", "请问有什么可以帮您？", "谢谢"]
        );
        assert!(sentences("  ").is_empty());
    }
}

static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from `lib` once per process.
pub fn runtime(lib: &Path) -> Result<&'static ort::environment::Environment, TtsError> {
    let env = ENV.get_or_init(|| {
        ort::init_from(lib)
            .map_err(|e| e.to_string())?
            .with_name("voxdesk")
            .build()
            .map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|msg| TtsError::Runtime {
        path: lib.to_path_buf(),
        msg: msg.clone(),
    })
}

#[derive(serde::Deserialize)]
struct VoiceJson {
    audio: AudioJson,
    espeak: EspeakJson,
    inference: InferenceJson,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}
#[derive(serde::Deserialize)]
struct AudioJson {
    sample_rate: u32,
}
#[derive(serde::Deserialize)]
struct EspeakJson {
    voice: String,
}
#[derive(serde::Deserialize)]
struct InferenceJson {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

pub struct PiperVoice {
    session: Mutex<Session>,
    cfg: VoiceJson,
}

impl PiperVoice {
    /// Loads `model` (.onnx) and its `model.json` (`<model>.json`) with ONNX Runtime `lib`.
    pub fn load(lib: &Path, model: &Path) -> Result<PiperVoice, TtsError> {
        let env = runtime(lib)?;
        let verr = |msg: String| TtsError::Voice {
            path: model.to_path_buf(),
            msg,
        };
        let json_path = PathBuf::from(format!("{}.json", model.display()));
        let text = std::fs::read_to_string(&json_path)
            .map_err(|e| verr(format!("{}: {e}", json_path.display())))?;
        let cfg: VoiceJson = serde_json::from_str(&text)
            .map_err(|e| verr(format!("{}: {e}", json_path.display())))?;
        let session = Session::builder(env)
            .map_err(|e| verr(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| verr(e.to_string()))?
            .commit_from_file(model)
            .map_err(|e| verr(e.to_string()))?;
        Ok(PiperVoice {
            session: Mutex::new(session),
            cfg,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.cfg.audio.sample_rate
    }

    /// Phoneme ids the Piper way: `^`, each phoneme followed by the pad `_`, then `$`.
    pub fn phoneme_ids(&self, phonemes: &str) -> Vec<i64> {
        let map = &self.cfg.phoneme_id_map;
        let mut ids: Vec<i64> = map.get("^").cloned().unwrap_or_default();
        let pad = map.get("_").cloned().unwrap_or_default();
        let mut buf = [0u8; 4];
        for c in phonemes.chars() {
            if let Some(id) = map.get(c.encode_utf8(&mut buf) as &str) {
                ids.extend(id);
                ids.extend(&pad);
            }
        }
        ids.extend(map.get("$").cloned().unwrap_or_default());
        ids
    }

    /// Synthesises at the voice's own rate (float samples).
    pub fn synthesize_native(&self, text: &str) -> Result<Vec<f32>, TtsError> {
        let phonemes = espeak::phonemize(text, &self.cfg.espeak.voice)?;
        let ids = self.phoneme_ids(&phonemes);
        if ids.len() < 3 {
            return Ok(Vec::new());
        }
        let n = ids.len();
        let ierr = |e: ort::Error| TtsError::Inference(e.to_string());
        let input = Tensor::from_array(([1usize, n], ids)).map_err(ierr)?;
        let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(ierr)?;
        let i = &self.cfg.inference;
        let scales = Tensor::from_array(([3usize], vec![i.noise_scale, i.length_scale, i.noise_w]))
            .map_err(ierr)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| TtsError::Inference("voice poisoned".into()))?;
        let outputs = session
            .run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales])
            .map_err(ierr)?;
        let audio = outputs[0].try_extract_array::<f32>().map_err(ierr)?;
        Ok(audio.iter().copied().collect())
    }
}

impl Tts for PiperVoice {
    /// 8 kHz 16-bit speech for `text`.
    fn synthesize(&self, text: &str) -> Result<Vec<i16>, TtsError> {
        to_telephone(&self.synthesize_native(text)?, self.sample_rate())
    }
}

/// A voice's float samples at `rate` as 8 kHz 16-bit telephone audio.
pub fn to_telephone(native: &[f32], rate: u32) -> Result<Vec<i16>, TtsError> {
    let at8k = resample(native, rate, 8000).map_err(|e| TtsError::Inference(e.to_string()))?;
    Ok(at8k
        .iter()
        .map(|&s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect())
}
