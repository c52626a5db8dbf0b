//! Speech-to-text with whisper.cpp (whisper-rs): one model loaded once and shared, one
//! decoder state per inference worker, the encoder window sized to the utterance.
//!
//! whisper.cpp pads every decode to a 30 s window unless `audio_ctx` is set; that costs
//! several CPU-seconds per utterance. A window sized to the audio is 4-6x cheaper but can make
//! the decoder loop ("And so my fellow Americans. And so my fellow Americans. ..."), so each
//! result is checked (repeated phrases, token budget exhausted) and a suspicious one is
//! decoded again with the full window. `stats()` says how often each path ran.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use thiserror::Error;
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

#[derive(Debug, Error)]
pub enum SttError {
    #[error("Whisper model {path}: {msg} (run scripts/fetch-models.sh, or point [models] stt at a ggml-*.bin file)")]
    Model { path: PathBuf, msg: String },
    #[error("language {0:?} is not one whisper knows (use en, zh, or auto)")]
    Language(String),
    #[error("the English-only model {0} cannot transcribe language {1:?}: configure models.stt_multilingual")]
    EnglishOnly(PathBuf, String),
    #[error("transcription failed: {0}")]
    Inference(String),
    #[error("transcription no longer needed")]
    Stopped,
    /// The transcript's length in characters (never its text: it may hold a caller's data).
    #[error("early transcript looped ({0} chars); the turn's own transcript decodes it again")]
    Looped(usize),
}

/// What the recogniser heard in one utterance.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    pub text: String,
    /// Language code the text is in ("en", "zh", ...).
    pub language: String,
    /// Mean probability of the text tokens (0..1).
    pub confidence: f32,
    /// Whisper's probability that there was no speech at all.
    pub no_speech: f32,
    pub segments: Vec<Segment>,
    /// Encoder window used for the result (frames of 20 ms).
    pub audio_ctx: i32,
    /// Decodes it took (more than 1 when a result looked like a loop).
    pub passes: u8,
    /// Text tokens decoded.
    pub tokens: usize,
    /// CPU threads the decode ran on.
    pub threads: usize,
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    pub confidence: f32,
}

/// Something that turns 16 kHz mono speech into text. Called from inference workers (never
/// from the async runtime): it blocks for the length of the decode.
pub trait Stt: Send + Sync {
    /// `language`: "en", "zh" or "auto"; `threads`: CPU threads this decode may use.
    fn transcribe(
        &self,
        pcm16k: &[f32],
        language: &str,
        threads: usize,
    ) -> Result<Transcript, SttError>;

    /// `transcribe`, given up as soon as `stop` is set (a speculative transcript that a
    /// newer pause made useless): the worker is free again within a few milliseconds.
    fn transcribe_unless(
        &self,
        pcm16k: &[f32],
        language: &str,
        threads: usize,
        stop: &AtomicBool,
    ) -> Result<Transcript, SttError> {
        let _ = stop;
        self.transcribe(pcm16k, language, threads)
    }
}

/// whisper.cpp's abort callback: the user data is the `AtomicBool` of `transcribe_unless`.
unsafe extern "C" fn stop_requested(data: *mut std::ffi::c_void) -> bool {
    // SAFETY: set from a `&AtomicBool` that outlives the decode (see `decode`).
    unsafe { (*(data as *const AtomicBool)).load(Ordering::Relaxed) }
}

/// Counters over all calls, for logs, `doctor` and the latency bench.
#[derive(Debug, Default, Clone, Copy)]
pub struct SttStats {
    pub utterances: u64,
    pub retried: u64,
    pub no_speech: u64,
}

static UTTERANCES: AtomicU64 = AtomicU64::new(0);
static RETRIED: AtomicU64 = AtomicU64::new(0);
static NO_SPEECH: AtomicU64 = AtomicU64::new(0);

pub fn stats() -> SttStats {
    SttStats {
        utterances: UTTERANCES.load(Ordering::Relaxed),
        retried: RETRIED.load(Ordering::Relaxed),
        no_speech: NO_SPEECH.load(Ordering::Relaxed),
    }
}

/// Whisper's encoder runs at 50 frames per second of audio, at most 1500 (30 s).
const FULL_CTX: i32 = 1500;

/// The encoder window for `secs` of audio: the audio plus a margin of 128 frames, rounded up
/// to 64, never below 384 (256 is ~30 % faster on short turns but looped on clean 1.5-3 s
/// questions here).
pub fn audio_ctx_for(secs: f32) -> i32 {
    let frames = (secs * 50.0).ceil() as i32 + 128;
    ((frames.max(384) + 63) / 64 * 64).min(FULL_CTX)
}

/// A token budget: generous for real speech, small enough that a loop is cut short.
fn max_tokens_for(secs: f32, language: &str) -> i32 {
    let per_sec = if language == "en" { 6.0 } else { 12.0 };
    (10.0 + secs * per_sec) as i32
}

/// True when the text repeats itself the way a looping decoder does: a phrase of 3+ words
/// twice in a row, a word or two three times in a row, or (for text without spaces, such as
/// Chinese) a run of 4+ characters three times in a row.
pub fn looks_looped(text: &str) -> bool {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let n = words.len();
    for k in 1..=n / 2 {
        let need = if k >= 3 { 2 } else { 3 };
        if k * need > n {
            continue;
        }
        for i in 0..=n - k * need {
            if (1..need).all(|r| words[i..i + k] == words[i + r * k..i + (r + 1) * k]) {
                return true;
            }
        }
    }
    let chars: Vec<char> = text
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation())
        .collect();
    if words.len() <= 2 && chars.len() >= 12 {
        let m = chars.len();
        for k in 4..=m / 3 {
            for i in 0..=m - 3 * k {
                if chars[i..i + k] == chars[i + k..i + 2 * k]
                    && chars[i..i + k] == chars[i + 2 * k..i + 3 * k]
                {
                    return true;
                }
            }
        }
    }
    false
}

/// The prompt that steers whisper to Simplified characters in Chinese.
const ZH_PROMPT: &str = "以下是普通话的句子。";

/// Whisper sometimes "hears" its own prompt in audio it cannot read (seen with synthetic
/// Mandarin and with noise): the echo is removed; what remains, if anything, is the turn.
pub fn strip_prompt_echo(text: &str) -> String {
    let core = ZH_PROMPT.trim_end_matches('。');
    if !text.contains(core) {
        return text.to_string();
    }
    let rest = text.replace(ZH_PROMPT, "").replace(core, "");
    let rest = rest.trim_matches(|c: char| c.is_whitespace() || "。，,.!！?？".contains(c));
    rest.to_string()
}

/// True when a transcript reads as a finished sentence: ends with sentence punctuation and
/// not with a word that announces more ("and", "the", "my", ...).
pub fn sounds_complete(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty() || looks_looped(t) {
        return false;
    }
    if !t.ends_with(['.', '?', '!', '。', '？', '！']) || t.ends_with("...") {
        return false;
    }
    let last = t
        .trim_end_matches(['.', '?', '!', '。', '？', '！'])
        .rsplit(|c: char| c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_lowercase();
    const DANGLING: &[&str] = &[
        "and", "or", "but", "so", "because", "the", "a", "an", "my", "to", "of", "for", "with",
        "is", "i", "um", "uh", "if", "that", "in", "on", "at", "your",
    ];
    !DANGLING.contains(&last.as_str())
}

pub struct WhisperStt {
    path: PathBuf,
    ctx: WhisperContext,
    multilingual: bool,
    /// Decoder states not in use; a worker takes one for the length of a decode.
    states: Mutex<Vec<WhisperState>>,
    /// Parameters per language, built once (whisper-rs leaks a string per setter call).
    base: HashMap<&'static str, FullParams<'static, 'static>>,
}

impl WhisperStt {
    pub fn load(path: &Path) -> Result<WhisperStt, SttError> {
        let err = |msg: String| SttError::Model {
            path: path.to_path_buf(),
            msg,
        };
        if !path.is_file() {
            return Err(err("file not found".into()));
        }
        whisper_rs::install_logging_hooks();
        let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|e| err(format!("not a whisper.cpp ggml model ({e})")))?;
        let multilingual = ctx.is_multilingual();
        let mut base = HashMap::new();
        let langs: &[&'static str] = if multilingual {
            &["en", "zh", "auto"]
        } else {
            &["en"]
        };
        for &lang in langs {
            let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
            p.set_language(Some(lang));
            p.set_no_timestamps(true);
            p.set_single_segment(true);
            p.set_no_context(true);
            p.set_print_progress(false);
            p.set_print_realtime(false);
            p.set_print_special(false);
            p.set_print_timestamps(false);
            p.set_suppress_blank(true);
            // One decode per utterance: no temperature fallback loop (it multiplies the cost
            // exactly when the audio is hard); a looping result is retried with a full window.
            p.set_temperature_inc(0.0);
            if lang == "zh" {
                // Without a prompt in Simplified characters whisper writes Traditional ones.
                p.set_initial_prompt(ZH_PROMPT);
            }
            base.insert(lang, p);
        }
        Ok(WhisperStt {
            path: path.to_path_buf(),
            ctx,
            multilingual,
            states: Mutex::new(Vec::new()),
            base,
        })
    }

    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `states` decoder states (one per inference worker) and runs one decode of
    /// `pcm16k` on each, so that the first callers do not pay for creating them and for
    /// faulting in their buffers (tens to hundreds of ms on their first turns). Returns the
    /// time it took.
    pub fn warm_up(&self, pcm16k: &[f32], states: usize) -> Result<Duration, SttError> {
        let t0 = Instant::now();
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut taken = Vec::new();
        let mut result = Ok(());
        for _ in 0..states.max(1) {
            match self.take_state() {
                Ok(mut st) => {
                    let ctx = audio_ctx_for(pcm16k.len() as f32 / 16000.0);
                    if let Err(e) = self.decode(&mut st, pcm16k, "en", threads, ctx, None) {
                        result = Err(e);
                    }
                    taken.push(st);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(taken);
        result.map(|()| t0.elapsed())
    }

    fn take_state(&self) -> Result<WhisperState, SttError> {
        if let Some(s) = self.states.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(s);
        }
        self.ctx
            .create_state()
            .map_err(|e| SttError::Inference(format!("cannot create a decoder state: {e}")))
    }

    fn decode(
        &self,
        state: &mut WhisperState,
        pcm: &[f32],
        language: &str,
        threads: usize,
        ctx: i32,
        stop: Option<&AtomicBool>,
    ) -> Result<Transcript, SttError> {
        let lang_key = if self.multilingual { language } else { "en" };
        let base = self
            .base
            .get(lang_key)
            .ok_or_else(|| SttError::Language(language.to_string()))?;
        let secs = pcm.len() as f32 / 16000.0;
        let mut p = base.clone();
        p.set_n_threads(threads.max(1) as i32);
        p.set_audio_ctx(ctx);
        p.set_max_tokens(max_tokens_for(secs, language));
        if let Some(stop) = stop {
            // SAFETY: `stop` is borrowed for this whole function, so it outlives `full`,
            // the only place whisper.cpp calls the callback.
            unsafe {
                p.set_abort_callback(Some(stop_requested));
                p.set_abort_callback_user_data(stop as *const AtomicBool as *mut std::ffi::c_void);
            }
        }
        let t0 = Instant::now();
        let done = state.full(p, pcm);
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Err(SttError::Stopped);
        }
        done.map_err(|e| SttError::Inference(e.to_string()))?;
        let eot = self.ctx.token_eot();
        let mut out = Transcript {
            audio_ctx: ctx,
            passes: 1,
            threads: threads.max(1),
            ..Default::default()
        };
        let (mut psum, mut pn) = (0.0f32, 0usize);
        for seg in state.as_iter() {
            let text = seg
                .to_str_lossy()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let (mut s, mut n) = (0.0f32, 0usize);
            for i in 0..seg.n_tokens() {
                if let Some(tok) = seg.get_token(i) {
                    if tok.token_id() < eot {
                        s += tok.token_probability();
                        n += 1;
                    }
                }
            }
            psum += s;
            pn += n;
            out.no_speech = out.no_speech.max(seg.no_speech_probability());
            out.segments.push(Segment {
                start_ms: seg.start_timestamp().max(0) as u64 * 10,
                end_ms: seg.end_timestamp().max(0) as u64 * 10,
                text: text.trim().to_string(),
                confidence: if n > 0 { s / n as f32 } else { 0.0 },
            });
            out.text.push_str(&text);
        }
        out.text = out.text.trim().to_string();
        out.tokens = pn;
        out.confidence = if pn > 0 { psum / pn as f32 } else { 0.0 };
        out.language = if language == "auto" {
            whisper_rs::get_lang_str(state.full_lang_id_from_state())
                .unwrap_or("en")
                .to_string()
        } else {
            language.to_string()
        };
        out.elapsed = t0.elapsed();
        Ok(out)
    }
}

impl Stt for WhisperStt {
    fn transcribe(
        &self,
        pcm16k: &[f32],
        language: &str,
        threads: usize,
    ) -> Result<Transcript, SttError> {
        self.transcribe_inner(pcm16k, language, threads, None)
    }

    fn transcribe_unless(
        &self,
        pcm16k: &[f32],
        language: &str,
        threads: usize,
        stop: &AtomicBool,
    ) -> Result<Transcript, SttError> {
        self.transcribe_inner(pcm16k, language, threads, Some(stop))
    }
}

/// "en" or "zh", whichever whisper's language detection (on the mel the last decode left in
/// `state`) finds likelier; "en" when detection fails.
fn likelier_en_or_zh(state: &WhisperState, threads: usize) -> &'static str {
    let probs = match state.lang_detect(0, threads.max(1)) {
        Ok((_, p)) => p,
        Err(e) => {
            tracing::warn!(error = %e, "language detection failed: decoding as English");
            return "en";
        }
    };
    let p = |code: &str| {
        whisper_rs::get_lang_id(code)
            .and_then(|i| probs.get(i as usize).copied())
            .unwrap_or(0.0)
    };
    if p("zh") > p("en") {
        "zh"
    } else {
        "en"
    }
}

impl WhisperStt {
    fn transcribe_inner(
        &self,
        pcm16k: &[f32],
        language: &str,
        threads: usize,
        stop: Option<&AtomicBool>,
    ) -> Result<Transcript, SttError> {
        if !matches!(language, "en" | "zh" | "auto") {
            return Err(SttError::Language(language.to_string()));
        }
        if !self.multilingual && language != "en" {
            return Err(SttError::EnglishOnly(
                self.path.clone(),
                language.to_string(),
            ));
        }
        UTTERANCES.fetch_add(1, Ordering::Relaxed);
        let mut state = self.take_state()?;
        let secs = pcm16k.len() as f32 / 16000.0;
        let ctx = audio_ctx_for(secs);
        let result = (|| {
            let mut t = self.decode(&mut state, pcm16k, language, threads, ctx, stop)?;
            // "auto" chooses among the languages a deployment serves (English and
            // Mandarin): whisper may hear another one in accented or synthetic speech (Thai
            // for espeak's Mandarin), and its transcript is then useless. The likelier of
            // the two, from the same detection, is decoded instead (one more pass, at most).
            let mut language = language;
            if language == "auto" {
                if !matches!(t.language.as_str(), "en" | "zh") {
                    let pick = likelier_en_or_zh(&state, threads);
                    tracing::info!(
                        detected = %t.language,
                        chosen = pick,
                        "language outside English and Mandarin: decoded as the likelier of the two"
                    );
                    let (spent, passes) = (t.elapsed, t.passes);
                    t = self.decode(&mut state, pcm16k, pick, threads, ctx, stop)?;
                    t.passes = passes + 1;
                    t.elapsed += spent;
                }
                // Retries below keep the language found, rather than detect it again.
                language = if t.language == "zh" { "zh" } else { "en" };
            }
            let budget = max_tokens_for(secs, language) as usize;
            // An early (cancellable) transcript is not worth wider windows: they hold a
            // worker for up to seconds while the caller may still be talking. If the turn
            // ends here, its own transcript decodes the audio again, with the retries.
            if stop.is_some() && (looks_looped(&t.text) || t.tokens >= budget) {
                RETRIED.fetch_add(1, Ordering::Relaxed);
                return Err(SttError::Looped(t.text.chars().count()));
            }
            // A looping decode is retried with a wider window (+256 frames), then the full
            // 30 s one.
            let mut next = ctx;
            while next < FULL_CTX && (looks_looped(&t.text) || t.tokens >= budget) {
                next = if next == ctx {
                    (ctx + 256).min(FULL_CTX)
                } else {
                    FULL_CTX
                };
                tracing::info!(
                    ctx = t.audio_ctx,
                    tokens = t.tokens,
                    budget,
                    retry_ctx = next,
                    "transcript looks looped: decoding again with a wider window"
                );
                RETRIED.fetch_add(1, Ordering::Relaxed);
                let (spent, passes) = (t.elapsed, t.passes);
                t = self.decode(&mut state, pcm16k, language, threads, next, stop)?;
                t.passes = passes + 1;
                t.elapsed += spent;
            }
            // Still looping with the full window: the audio is not speech whisper can read
            // (seen with synthetic Mandarin: "三 四 四 四 四 ..."). Better "not understood"
            // than nonsense.
            if looks_looped(&t.text) {
                tracing::info!(
                    chars = t.text.chars().count(),
                    "transcript still looped with the full window: dropped"
                );
                NO_SPEECH.fetch_add(1, Ordering::Relaxed);
                t.text.clear();
                t.segments.clear();
            }
            let cleaned = strip_prompt_echo(&t.text);
            if cleaned != t.text {
                tracing::info!("transcript echoed the prompt: removed");
                if cleaned.is_empty() {
                    NO_SPEECH.fetch_add(1, Ordering::Relaxed);
                    t.segments.clear();
                }
                t.text = cleaned;
            }
            // Noise that whisper turned into words ("Thank you.", "you") comes with a high
            // no-speech probability and low token confidence.
            if t.no_speech > 0.6 && t.confidence < 0.5 {
                NO_SPEECH.fetch_add(1, Ordering::Relaxed);
                t.text.clear();
                t.segments.clear();
            }
            Ok(t)
        })();
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(state);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_follows_the_audio() {
        assert_eq!(audio_ctx_for(1.0), 384);
        assert_eq!(audio_ctx_for(3.0), 384);
        assert_eq!(audio_ctx_for(5.5), 448);
        assert_eq!(audio_ctx_for(11.0), 704);
        assert_eq!(audio_ctx_for(40.0), 1500);
    }

    #[test]
    fn loops_are_recognised() {
        assert_eq!(strip_prompt_echo("以下是普通话的句子。"), "");
        assert_eq!(strip_prompt_echo("WOW! 以下是普通话的句子。"), "WOW");
        assert_eq!(strip_prompt_echo("我要查话费。"), "我要查话费。");
        assert!(looks_looped(
            "And so my fellow Americans. And so my fellow Americans. And so my fellow Americans."
        ));
        assert!(looks_looped("Ask not what your country can do for you, ask not what your country can do for you and you."));
        assert!(looks_looped("you you you"));
        assert!(looks_looped("我要查话费我要查话费我要查话费"));
        assert!(!looks_looped("And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."));
        assert!(!looks_looped("No, no. I said my balance."));
        assert!(!looks_looped("我想查一下我的话费余额"));
        assert!(!looks_looped(""));
    }

    #[test]
    fn complete_sentences() {
        assert!(sounds_complete("I want to check my balance."));
        assert!(sounds_complete("我要查话费。"));
        assert!(!sounds_complete("I want to check my"));
        assert!(!sounds_complete("I want to check my balance and."));
        assert!(!sounds_complete("Well..."));
        assert!(!sounds_complete(""));
    }
}
