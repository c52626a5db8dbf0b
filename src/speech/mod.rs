//! Speech: voice activity and turn-taking, speech-to-text (whisper.cpp) and text-to-speech
//! (Piper for English, Kokoro for Chinese), each behind a small trait, and the inference pool they run on.

pub mod espeak;
pub mod hearing;
pub mod kokoro;
pub mod mandarin;
pub mod pool;
pub mod rendered;
pub mod silero;
pub mod stt;
pub mod tts;
pub mod turn;
pub mod vad;

use crate::audio::resample;
use crate::config::Config;
use kokoro::KokoroVoice;
use pool::{InferencePool, Priority};
use rendered::{trim_leading_silence, DiskCache};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stt::{Stt, WhisperStt};
use tts::{PiperVoice, Tts};

/// Fixed prompts rendered once at start-up (8 kHz).
pub struct CachedPrompts {
    pub not_understood: Arc<Vec<i16>>,
    pub goodbye: Arc<Vec<i16>>,
    pub hold: Arc<Vec<i16>>,
    pub transfer: Arc<Vec<i16>>,
}

/// The loaded speech engines, shared by every call.
pub struct Speech {
    pub pool: InferencePool,
    pub stt: Arc<dyn Stt>,
    pub stt_multilingual: Option<Arc<dyn Stt>>,
    pub tts: Arc<dyn Tts>,
    /// The voice for Chinese replies (Kokoro), loaded for speech.language "zh" and "auto".
    pub tts_zh: Option<Arc<dyn Tts>>,
    /// The fixed prompts in Chinese, with `tts_zh`.
    pub prompts_zh: Option<CachedPrompts>,
    /// The voice activity detector each call makes for itself.
    pub vad: VadChoice,
    pub language: String,
    pub prompts: CachedPrompts,
    /// How long each model took to load.
    pub load_times: Vec<(String, Duration)>,
    /// Rendered reply pieces by text: knowledge-base answers repeat, so their audio is
    /// made once (bounded; emptied when full).
    tts_cache: std::sync::Mutex<std::collections::HashMap<String, Arc<Vec<i16>>>>,
    /// Fixed answers rendered before (data_dir/tts-cache).
    disk: Option<DiskCache>,
}

const TTS_CACHE_ENTRIES: usize = 512;

impl Speech {
    /// Loads the configured models (blocking; seconds) and pre-renders the fixed prompts.
    /// Errors name the file and the fix.
    pub fn load(cfg: &Config) -> anyhow::Result<Speech> {
        use anyhow::Context;
        let mut load_times = Vec::new();
        let t = Instant::now();
        let voice = PiperVoice::load(
            &cfg.model_path(&cfg.models.onnxruntime),
            &cfg.model_path(&cfg.models.tts_voice),
        )
        .context("models.tts_voice")?;
        load_times.push(("tts".to_string(), t.elapsed()));
        let language = cfg.speech.language.clone();
        let t = Instant::now();
        let stt = WhisperStt::load(&cfg.model_path(&cfg.models.stt)).context("models.stt")?;
        load_times.push(("stt".to_string(), t.elapsed()));
        let stt_multilingual = if language != "en" {
            let t = Instant::now();
            let m = WhisperStt::load(&cfg.model_path(&cfg.models.stt_multilingual))
                .context("models.stt_multilingual")?;
            anyhow::ensure!(
                m.is_multilingual(),
                "models.stt_multilingual: {} is an English-only model; speech.language {:?} needs a multilingual one (ggml-base.bin, not ggml-base.en.bin)",
                m.path().display(),
                language
            );
            load_times.push(("stt_multilingual".to_string(), t.elapsed()));
            Some(m)
        } else {
            None
        };
        let voice_zh: Option<Arc<dyn Tts>> = if language != "en" {
            let t = Instant::now();
            let v = KokoroVoice::load_zh(cfg, cfg.speech.worker_count())
                .context("models.tts_voice_zh (with models.kokoro and models.kokoro_vocab)")?;
            load_times.push(("tts_zh".to_string(), t.elapsed()));
            Some(Arc::new(v))
        } else {
            None
        };
        let render = |v: &dyn Tts, text: &str, key: &str| -> anyhow::Result<Arc<Vec<i16>>> {
            let mut pcm = v
                .synthesize(text)
                .with_context(|| format!("prompts.{key}: cannot render"))?;
            trim_leading_silence(&mut pcm, 8000);
            Ok(Arc::new(pcm))
        };
        let id_of = |p: &std::path::Path| {
            format!(
                "{} {}",
                p.file_name().unwrap_or_default().to_string_lossy(),
                std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
            )
        };
        let mut voice_id = id_of(&cfg.model_path(&cfg.models.tts_voice));
        if voice_zh.is_some() {
            voice_id = format!(
                "{voice_id} {}",
                id_of(&cfg.model_path(&cfg.models.tts_voice_zh))
            );
        }
        let p = &cfg.prompts;
        let prompts = CachedPrompts {
            not_understood: render(&voice, &p.not_understood, "not_understood")?,
            goodbye: render(&voice, &p.goodbye, "goodbye")?,
            hold: render(&voice, &p.hold, "hold")?,
            transfer: render(&voice, &p.transfer, "transfer")?,
        };
        let prompts_zh = match &voice_zh {
            Some(v) => Some(CachedPrompts {
                not_understood: render(v.as_ref(), &p.not_understood_zh, "not_understood_zh")?,
                goodbye: render(v.as_ref(), &p.goodbye_zh, "goodbye_zh")?,
                hold: render(v.as_ref(), &p.hold_zh, "hold_zh")?,
                transfer: render(v.as_ref(), &p.transfer_zh, "transfer_zh")?,
            }),
            None => None,
        };
        let workers = cfg.speech.worker_count();
        // One decoder state per worker, made and used once now rather than on the first
        // callers' turns.
        let sample = to_16k(&prompts.goodbye);
        for (name, model) in [
            ("stt", Some(&stt)),
            ("stt_multilingual", stt_multilingual.as_ref()),
        ] {
            let Some(model) = model else { continue };
            match model.warm_up(&sample, workers) {
                Ok(t) => load_times.push((format!("{name} warm-up ({workers} decoder states)"), t)),
                Err(e) => tracing::warn!(error = %e, model = name, "speech-to-text warm-up failed"),
            }
        }
        let stt: Arc<dyn Stt> = Arc::new(stt);
        let stt_multilingual: Option<Arc<dyn Stt>> =
            stt_multilingual.map(|m| Arc::new(m) as Arc<dyn Stt>);
        let vad = if cfg.speech.vad == "silero" {
            let t = Instant::now();
            let m = silero::SileroModel::load(
                &cfg.model_path(&cfg.models.onnxruntime),
                &cfg.model_path(&cfg.models.vad),
            )
            .context("models.vad")?;
            load_times.push(("vad".to_string(), t.elapsed()));
            VadChoice::Silero(Arc::new(m))
        } else {
            VadChoice::Energy
        };
        Ok(Speech {
            vad,
            pool: InferencePool::new(workers, workers * 32),
            stt,
            stt_multilingual,
            tts: Arc::new(voice),
            tts_zh: voice_zh,
            language,
            prompts,
            prompts_zh,
            load_times,
            tts_cache: Default::default(),
            disk: Some(DiskCache::new(
                &cfg.paths.data_dir.join("tts-cache"),
                voice_id,
            )),
        })
    }

    /// Renders fixed pieces of speech (knowledge-base answers, handoff lines) into the
    /// cache so the first caller to get one does not wait for the voice: from
    /// data_dir/tts-cache when a previous run rendered them, else on the pool, one piece per
    /// background job (so a caller's turn never queues behind the whole list, and
    /// speculation stays allowed).
    pub fn prewarm(self: &Arc<Self>, mut pieces: Vec<String>) {
        pieces.sort();
        pieces.dedup();
        if let Some(d) = &self.disk {
            let removed = d.prune(&pieces);
            if removed > 0 {
                tracing::info!(
                    removed,
                    "rendered answers no longer said removed from the cache"
                );
            }
        }
        let total = pieces.len();
        Self::prewarm_next(self.clone(), pieces.into(), Instant::now(), total);
    }

    fn prewarm_next(me: Arc<Self>, mut left: VecDeque<String>, t0: Instant, total: usize) {
        let Some(text) = left.pop_front() else {
            tracing::info!(
                pieces = total,
                ms = t0.elapsed().as_millis() as u64,
                "fixed answers pre-rendered"
            );
            return;
        };
        let next = me.clone();
        let job = me.pool.submit_with(Priority::Background, move |_| {
            if let Err(e) = next.render_fixed(&text) {
                tracing::warn!(error = %e, text = %text, "cannot pre-render an answer");
            }
            Self::prewarm_next(next, left, t0, total);
        });
        if let Err(e) = job {
            tracing::warn!(error = %e, "pre-rendering stopped (inference queue full); answers are rendered when first said");
        }
    }

    /// `render` for a fixed text, through the disk cache.
    fn render_fixed(&self, text: &str) -> Result<Arc<Vec<i16>>, tts::TtsError> {
        if let Some(p) = self.cached(text) {
            return Ok(p);
        }
        if let Some(pcm) = self.disk.as_ref().and_then(|d| d.load(text)) {
            let pcm = Arc::new(pcm);
            self.remember(text, pcm.clone());
            return Ok(pcm);
        }
        let pcm = self.render(text)?;
        if let Some(d) = &self.disk {
            if let Err(e) = d.store(text, &pcm) {
                tracing::warn!(error = %e, "cannot write the speech cache");
            }
        }
        Ok(pcm)
    }

    /// The cached speech for a piece of a reply, if it was said before.
    pub fn cached(&self, text: &str) -> Option<Arc<Vec<i16>>> {
        self.tts_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(text)
            .cloned()
    }

    /// Speech for one piece of a reply, from the cache when it was said before.
    pub fn render(&self, text: &str) -> Result<Arc<Vec<i16>>, tts::TtsError> {
        if let Some(p) = self
            .tts_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(text)
        {
            return Ok(p.clone());
        }
        let mut pcm = Vec::new();
        self.voice_for(text)
            .synthesize_streaming(text, &mut |p| pcm.extend(p))?;
        trim_leading_silence(&mut pcm, 8000);
        let pcm = Arc::new(pcm);
        self.remember(text, pcm.clone());
        Ok(pcm)
    }

    fn remember(&self, text: &str, pcm: Arc<Vec<i16>>) {
        let mut c = self.tts_cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= TTS_CACHE_ENTRIES {
            c.clear();
        }
        c.insert(text.to_string(), pcm);
    }

    /// The voice that says `text`: the Chinese voice for text with Chinese characters (when
    /// one is loaded), else the English one.
    pub fn voice_for(&self, text: &str) -> &dyn Tts {
        match &self.tts_zh {
            Some(zh) if tts::has_han(text) => zh.as_ref(),
            _ => self.tts.as_ref(),
        }
    }

    /// The fixed prompts for a call's language ("zh" gets the Chinese ones when loaded).
    pub fn prompts_for(&self, language: &str) -> &CachedPrompts {
        match &self.prompts_zh {
            Some(zh) if language == "zh" => zh,
            _ => &self.prompts,
        }
    }

    /// The recogniser for a language ("en", "zh", "auto").
    pub fn stt_for(&self, language: &str) -> Arc<dyn Stt> {
        match (&self.stt_multilingual, language) {
            (Some(m), "zh" | "auto") => m.clone(),
            _ => self.stt.clone(),
        }
    }
}

/// 8 kHz telephone audio to the 16 kHz float samples whisper wants (rubato).
pub fn to_16k(pcm8k: &[i16]) -> Vec<f32> {
    let f: Vec<f32> = pcm8k.iter().map(|&s| s as f32 / 32768.0).collect();
    resample(&f, 8000, 16000).unwrap_or_default()
}

/// Which detector a call's media session makes for itself.
#[derive(Debug, Clone, Default)]
pub enum VadChoice {
    #[default]
    Energy,
    Silero(std::sync::Arc<silero::SileroModel>),
}

impl VadChoice {
    /// A new detector, with its own state, for one call.
    pub fn make(&self) -> Box<dyn vad::Vad> {
        match self {
            VadChoice::Energy => Box::new(vad::EnergyVad::default()),
            VadChoice::Silero(m) => Box::new(silero::SileroVad::new(m.clone())),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            VadChoice::Energy => "energy",
            VadChoice::Silero(_) => "silero",
        }
    }
}
