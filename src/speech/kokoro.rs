//! Text-to-speech with Kokoro-82M (ONNX, 24 kHz) through `ort`: the voice for Mandarin
//! replies (Piper has no Mandarin voice in any registry). Text becomes Kokoro's phoneme
//! symbols (`mandarin` for a Chinese voice, espeak-ng's English IPA rewritten into Kokoro's
//! symbols for an English one), the symbols become token ids from the model's vocabulary,
//! and the voice's style vector is the row for that many tokens.

use super::espeak;
use super::mandarin;
use super::tts::{runtime, to_telephone, Tts, TtsError};
use crate::config::Config;
use ort::session::Session;
use ort::value::Tensor;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Condvar, Mutex};

/// Kokoro's audio rate.
pub const SAMPLE_RATE: u32 = 24_000;
/// The model's context is 512 tokens, two of them the padding at each end.
const MAX_TOKENS: usize = 510;
const STYLE_DIM: usize = 256;

/// Which text front end a voice needs, from its name (Kokoro names voices by language:
/// z = Mandarin, a = American English, b = British English).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KokoroLanguage {
    Mandarin,
    English,
}

pub struct KokoroVoice {
    /// One ONNX Runtime session per concurrent rendering (a session runs one inference at a
    /// time); a rendering takes a free one, or waits until one is given back.
    sessions: Vec<Mutex<Session>>,
    free: (Mutex<Vec<usize>>, Condvar),
    vocab: HashMap<char, i64>,
    /// Style vectors, one row of 256 per token count.
    styles: Vec<f32>,
    language: KokoroLanguage,
    name: String,
}

#[derive(serde::Deserialize)]
struct VocabJson {
    vocab: HashMap<String, i64>,
}

impl KokoroVoice {
    /// Loads the model, its vocabulary (vocab.json: {"vocab": {symbol: id}}) and one voice
    /// (.bin: float32 little-endian [rows][1][256]), with `sessions` sessions of `threads`
    /// threads each.
    pub fn load(
        lib: &Path,
        model: &Path,
        vocab: &Path,
        voice: &Path,
        sessions: usize,
        threads: usize,
    ) -> Result<KokoroVoice, TtsError> {
        let env = runtime(lib)?;
        let err = |path: &Path, msg: String| TtsError::Voice {
            path: path.to_path_buf(),
            msg,
        };
        let text = std::fs::read_to_string(vocab).map_err(|e| err(vocab, e.to_string()))?;
        let parsed: VocabJson =
            serde_json::from_str(&text).map_err(|e| err(vocab, e.to_string()))?;
        let vocab_map: HashMap<char, i64> = parsed
            .vocab
            .into_iter()
            .filter_map(|(k, v)| {
                let mut cs = k.chars();
                match (cs.next(), cs.next()) {
                    (Some(c), None) => Some((c, v)),
                    _ => None,
                }
            })
            .collect();
        if vocab_map.len() < 50 {
            return Err(err(
                vocab,
                "not a Kokoro vocabulary (too few symbols)".into(),
            ));
        }
        let bytes = std::fs::read(voice).map_err(|e| err(voice, e.to_string()))?;
        if bytes.is_empty() || bytes.len() % (4 * STYLE_DIM) != 0 {
            return Err(err(
                voice,
                format!(
                    "{} bytes is not a Kokoro voice (float32 rows of {STYLE_DIM})",
                    bytes.len()
                ),
            ));
        }
        let styles: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let name = voice
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let language = match name.chars().next() {
            Some('z') => KokoroLanguage::Mandarin,
            Some('a' | 'b') => KokoroLanguage::English,
            _ => {
                return Err(err(
                    voice,
                    "voxdesk reads Kokoro's Mandarin (z*) and English (a*, b*) voices only".into(),
                ))
            }
        };
        let mut all = Vec::new();
        for _ in 0..sessions.max(1) {
            let session = Session::builder(env)
                .map_err(|e| err(model, e.to_string()))?
                .with_intra_threads(threads.max(1))
                .map_err(|e| err(model, e.to_string()))?
                .commit_from_file(model)
                .map_err(|e| err(model, e.to_string()))?;
            all.push(Mutex::new(session));
        }
        Ok(KokoroVoice {
            free: (Mutex::new((0..all.len()).collect()), Condvar::new()),
            sessions: all,
            vocab: vocab_map,
            styles,
            language,
            name,
        })
    }

    /// The configured Chinese voice (`models.tts_voice_zh`, `models.kokoro`,
    /// `models.kokoro_vocab`) with `sessions` sessions; a voice that is not Mandarin is an
    /// error naming the key.
    pub fn load_zh(cfg: &Config, sessions: usize) -> Result<KokoroVoice, TtsError> {
        let voice = cfg.model_path(&cfg.models.tts_voice_zh);
        let v = KokoroVoice::load(
            &cfg.model_path(&cfg.models.onnxruntime),
            &cfg.model_path(&cfg.models.kokoro),
            &cfg.model_path(&cfg.models.kokoro_vocab),
            &voice,
            sessions,
            cfg.speech.tts_thread_count(),
        )?;
        if v.language() != KokoroLanguage::Mandarin {
            return Err(TtsError::Voice {
                path: voice,
                msg: "models.tts_voice_zh is not a Mandarin voice (Kokoro's are named z*)".into(),
            });
        }
        Ok(v)
    }

    pub fn language(&self) -> KokoroLanguage {
        self.language
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kokoro phoneme symbols for `text`.
    pub fn phonemes(&self, text: &str) -> Result<String, TtsError> {
        Ok(match self.language {
            KokoroLanguage::Mandarin => {
                let english = |s: &str| english_phonemes(s).unwrap_or_default();
                mandarin::phonemes(text, &english)
            }
            KokoroLanguage::English => english_phonemes(text)?,
        })
    }

    /// Token ids for phoneme symbols (symbols outside the vocabulary are dropped).
    pub fn tokens(&self, phonemes: &str) -> Vec<i64> {
        phonemes
            .chars()
            .filter_map(|c| self.vocab.get(&c).copied())
            .collect()
    }

    /// Speech at 24 kHz (float samples) for `text`.
    pub fn synthesize_native(&self, text: &str) -> Result<Vec<f32>, TtsError> {
        let phonemes = self.phonemes(text)?;
        let mut out = Vec::new();
        for piece in split_long(&self.tokens(&phonemes), self.vocab_punctuation()) {
            out.extend(self.infer(&piece)?);
        }
        Ok(trim_trailing(out))
    }

    /// Ids of the marks a long sentence may be cut after.
    fn vocab_punctuation(&self) -> Vec<i64> {
        [',', '.', '!', '?', ';', ':', ' ']
            .iter()
            .filter_map(|c| self.vocab.get(c).copied())
            .collect()
    }

    fn infer(&self, tokens: &[i64]) -> Result<Vec<f32>, TtsError> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.styles.len() / STYLE_DIM;
        let row = (tokens.len() - 1).min(rows - 1);
        let style = self.styles[row * STYLE_DIM..(row + 1) * STYLE_DIM].to_vec();
        let mut ids = Vec::with_capacity(tokens.len() + 2);
        ids.push(0);
        ids.extend_from_slice(tokens);
        ids.push(0);
        let n = ids.len();
        let ierr = |e: ort::Error| TtsError::Inference(e.to_string());
        let tokens_t = Tensor::from_array(([1usize, n], ids)).map_err(ierr)?;
        let style_t = Tensor::from_array(([1usize, STYLE_DIM], style)).map_err(ierr)?;
        let speed_t = Tensor::from_array(([1usize], vec![1.0f32])).map_err(ierr)?;
        let idx = self.take_session();
        let result = (|| {
            let mut session = self.sessions[idx]
                .lock()
                .map_err(|_| TtsError::Inference("voice poisoned".into()))?;
            let outputs = session
                .run(ort::inputs!["tokens" => tokens_t, "style" => style_t, "speed" => speed_t])
                .map_err(ierr)?;
            let audio = outputs[0].try_extract_array::<f32>().map_err(ierr)?;
            Ok(audio.iter().copied().collect())
        })();
        self.give_back(idx);
        result
    }

    /// A free session's index, waiting for one when all are rendering.
    fn take_session(&self) -> usize {
        let (lock, ready) = &self.free;
        let mut free = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(i) = free.pop() {
                return i;
            }
            free = ready.wait(free).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn give_back(&self, idx: usize) {
        let (lock, ready) = &self.free;
        lock.lock().unwrap_or_else(|e| e.into_inner()).push(idx);
        ready.notify_one();
    }
}

impl Tts for KokoroVoice {
    /// 8 kHz 16-bit speech for `text`.
    fn synthesize(&self, text: &str) -> Result<Vec<i16>, TtsError> {
        to_telephone(&self.synthesize_native(text)?, SAMPLE_RATE)
    }
}

/// Cuts a token sequence longer than the model's context after the last break that fits.
fn split_long(tokens: &[i64], breaks: Vec<i64>) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    let mut rest = tokens;
    while rest.len() > MAX_TOKENS {
        let cut = rest[..MAX_TOKENS]
            .iter()
            .rposition(|t| breaks.contains(t))
            .map(|i| i + 1)
            .filter(|&i| i > MAX_TOKENS / 4)
            .unwrap_or(MAX_TOKENS);
        out.push(rest[..cut].to_vec());
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        out.push(rest.to_vec());
    }
    out
}

/// Drops trailing silence beyond 0.15 s (Kokoro ends a sentence with a long tail).
fn trim_trailing(mut audio: Vec<f32>) -> Vec<f32> {
    let keep = (SAMPLE_RATE as usize * 15) / 100;
    if let Some(last) = audio.iter().rposition(|s| s.abs() > 0.01) {
        audio.truncate((last + keep).min(audio.len()));
    }
    audio
}

/// espeak-ng's English IPA rewritten into Kokoro's English symbols (diphthongs and
/// affricates are single letters there: eɪ -> A, aɪ -> I, oʊ -> O, tʃ -> ʧ ...).
const ESPEAK_TO_KOKORO: &[(&str, &str)] = &[
    ("aɪ", "I"),
    ("aʊ", "W"),
    ("eɪ", "A"),
    ("oʊ", "O"),
    ("ɔɪ", "Y"),
    ("dʒ", "ʤ"),
    ("tʃ", "ʧ"),
    ("ɜː", "ɜɹ"),
    ("ɪə", "iə"),
    ("ɚ", "əɹ"),
    ("ɐ", "ə"),
    ("ɬ", "l"),
    ("x", "k"),
    ("ç", "k"),
    ("r", "ɹ"),
    ("e", "A"),
    ("o", "ɔ"),
    ("ː", ""),
    ("ɾ", "T"),
    ("ʔ", "t"),
    ("g", "ɡ"),
];

/// Kokoro's English symbols for `text`; capitals-only words ("BAL", "SIM") are spelled.
pub fn english_phonemes(text: &str) -> Result<String, TtsError> {
    let spelled: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            let letters = w.trim_matches(|c: char| !c.is_alphanumeric());
            if letters.len() >= 2
                && letters.len() <= 5
                && letters.chars().all(|c| c.is_ascii_uppercase())
            {
                w.replace(
                    letters,
                    &letters
                        .chars()
                        .map(String::from)
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            } else {
                w.to_string()
            }
        })
        .collect();
    let mut p = espeak::phonemize(&spelled.join(" "), "en-us")?;
    for (from, to) in ESPEAK_TO_KOKORO {
        p = p.replace(from, to);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_sentences_are_cut_at_a_break() {
        let mut t = vec![5i64; 400];
        t.push(3);
        t.extend(vec![5i64; 300]);
        let parts = split_long(&t, vec![3]);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), 401);
        assert_eq!(parts[1].len(), 300);
        let parts = split_long(&[7i64; 1200], vec![3]);
        assert!(parts.iter().all(|p| p.len() <= MAX_TOKENS));
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 1200);
    }

    #[test]
    fn english_symbols() {
        let p = english_phonemes("Text BAL to the app.").unwrap();
        assert!(!p.contains("eɪ") && !p.contains('ː'), "{p}");
        assert!(p.ends_with('.'), "{p}");
    }
}
