//! `[speech]`, `[models]` and `[prompts]`: the voices, the recogniser and the models, and
//! what the bot says as text.

use serde::Deserialize;
use std::path::PathBuf;

/// What the bot says, as text (rendered with the TTS voice at start-up).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptsConfig {
    /// Spoken on answer: AI disclosure and recording notice belong here.
    pub greeting: String,
    /// When the recogniser heard nothing usable.
    pub not_understood: String,
    /// Before the bot hangs up at the caller's request.
    pub goodbye: String,
    /// While the caller waits (transfer, lookups).
    pub hold: String,
    /// When an agent transfers the caller to a colleague or another queue.
    pub transfer: String,
    /// The same prompts for Mandarin callers (spoken by `models.tts_voice_zh`).
    pub greeting_zh: String,
    pub not_understood_zh: String,
    pub goodbye_zh: String,
    pub hold_zh: String,
    pub transfer_zh: String,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            greeting: "Thank you for calling. You are speaking with an automated assistant, and this call may be recorded. How can I help you?".into(),
            not_understood: "Sorry, I did not catch that. Could you say it again?".into(),
            goodbye: "Thank you for calling. Goodbye.".into(),
            hold: "Please hold for a moment.".into(),
            transfer: "Please hold while I transfer your call.".into(),
            greeting_zh: "您好，我是智能语音助手，通话可能会被录音。请问有什么可以帮您？".into(),
            not_understood_zh: "抱歉，我没有听清，请再说一遍。".into(),
            goodbye_zh: "感谢您的来电，再见。".into(),
            hold_zh: "请稍等。".into(),
            transfer_zh: "请稍等，正在为您转接。".into(),
        }
    }
}

/// The spoken conversation: recogniser language, inference workers, turn-taking timings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpeechConfig {
    /// Listen and answer. Off: the call gets the greeting, DTMF and recording only, and no
    /// speech model is loaded.
    pub enabled: bool,
    /// "en", "zh", or "auto" (detected on the caller's first turn, then kept for the call).
    pub language: String,
    /// Inference threads for speech-to-text and text-to-speech (0: one per CPU core).
    pub workers: usize,
    /// Threads inside one Kokoro (Chinese voice) inference (0: one per CPU core). Measured on
    /// 2 cores: real-time factor 0.9-1.1 with 1 thread, 0.6 with 2.
    pub tts_threads: usize,
    /// Voice activity detector: "energy" (level over an adaptive noise floor) or "silero"
    /// (the Silero network, `models.vad`).
    pub vad: String,
    /// Voice needed before a sound counts as the caller speaking (shorter: a cough).
    pub min_speech_ms: u64,
    /// Silence that ends the caller's turn.
    pub end_silence_ms: u64,
    /// Silence after which what the caller said so far is transcribed.
    pub early_transcribe_ms: u64,
    /// Silence that ends the turn when that transcript reads as a complete sentence.
    pub early_end_ms: u64,
    /// Voice over the bot that stops its playback.
    pub barge_in_ms: u64,
    /// Longest turn; a longer one is cut and transcribed.
    pub max_turn_ms: u64,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        // The turn-taking defaults (speech::turn::TurnConfig's, checked by a test there).
        SpeechConfig {
            enabled: true,
            language: "en".into(),
            workers: 0,
            tts_threads: 0,
            vad: "energy".into(),
            min_speech_ms: 200,
            end_silence_ms: 700,
            early_transcribe_ms: 80,
            early_end_ms: 250,
            barge_in_ms: 80,
            max_turn_ms: 20_000,
        }
    }
}

impl SpeechConfig {
    pub fn tts_thread_count(&self) -> usize {
        if self.tts_threads > 0 {
            self.tts_threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }
    }

    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }
    }
}

/// Model files, relative to `paths.models_dir` unless absolute.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// ONNX Runtime shared library (loaded at run time).
    pub onnxruntime: PathBuf,
    /// Piper voice (.onnx, with its .onnx.json beside it) for English replies.
    pub tts_voice: PathBuf,
    /// Kokoro voice (.bin style vectors; z* voices are Mandarin) for Chinese replies, loaded
    /// when speech.language is "zh" or "auto".
    pub tts_voice_zh: PathBuf,
    /// The Kokoro-82M model (ONNX) and its phoneme vocabulary (vocab.json).
    pub kokoro: PathBuf,
    pub kokoro_vocab: PathBuf,
    /// whisper.cpp ggml model for English (an English-only `.en` model is fastest).
    pub stt: PathBuf,
    /// whisper.cpp multilingual ggml model, used when `speech.language` is "zh" or "auto".
    pub stt_multilingual: PathBuf,
    /// Sentence encoder (ONNX graph: input_ids, attention_mask -> embedding) for intents,
    /// emotions and the knowledge base.
    pub encoder: PathBuf,
    /// Its tokenizer: a Hugging Face tokenizer.json (MiniLM) or the Unigram vocabulary
    /// scripts/e5_to_onnx.py writes (multilingual-e5-small).
    pub encoder_tokenizer: PathBuf,
    /// Silero VAD (ONNX), used when `speech.vad` is "silero".
    pub vad: PathBuf,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            onnxruntime: PathBuf::from("onnxruntime/libonnxruntime.so.1.31.1"),
            tts_voice: PathBuf::from("piper/en_US-joe-medium.onnx"),
            tts_voice_zh: PathBuf::from("kokoro/voices/zf_xiaobei.bin"),
            kokoro: PathBuf::from("kokoro/kokoro-v1.0.int8.onnx"),
            kokoro_vocab: PathBuf::from("kokoro/vocab.json"),
            stt: PathBuf::from("whisper/ggml-tiny.en-q8_0.bin"),
            stt_multilingual: PathBuf::from("whisper/ggml-base-q8_0.bin"),
            encoder: PathBuf::from("encoder/multilingual-e5-small-int8.onnx"),
            encoder_tokenizer: PathBuf::from("encoder/e5-tokenizer.json"),
            vad: PathBuf::from("silero/silero_vad.onnx"),
        }
    }
}
