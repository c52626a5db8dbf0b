//! Understanding a caller's turn: a sentence encoder (ONNX, see `encoder`) whose embedding
//! feeds two small heads, intent and emotion (`head`), keyword rules per language (`rules`),
//! and the prosody of the turn's audio (`prosody`), combined into one `Understanding`.
//! One encoder call per utterance; the heads are trained locally (`voxdesk train`, see
//! `training`) and stored in SQLite, and a running server picks up new ones by itself.

pub mod encoder;
pub mod head;
mod lexicon;
pub mod prosody;
pub mod rules;
pub mod text;
pub mod training;
pub mod unigram;

use encoder::Encoder;
use head::LinearHead;
use prosody::Prosody;
use rules::RuleHit;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NluError {
    #[error("{path}: {msg}")]
    Model { path: PathBuf, msg: String },
    #[error("encoder: {0}")]
    Inference(String),
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Store(#[from] rusqlite::Error),
}

/// The label used when no intent is likely enough.
pub const UNKNOWN: &str = "unknown";

/// The training label of lines about something else than the service (a story, the
/// weather, trivia): it teaches the heads what is no intent and what is calm off-topic
/// talk; a turn classified so gets `UNKNOWN`.
pub const OUT_OF_SCOPE: &str = "out_of_scope";

/// Emotion labels the emotion head is trained on (the labelled set uses exactly these).
pub const EMOTIONS: &[&str] = &["neutral", "satisfied", "frustrated", "angry", "anxious"];

/// The trained heads (either may be missing before the first `voxdesk train`).
#[derive(Debug, Clone, Default)]
pub struct Heads {
    pub intent: Option<LinearHead>,
    pub emotion: Option<LinearHead>,
    /// Heads on hashed character features, used for Chinese text when the encoder is
    /// English-only (none are trained for a multilingual one).
    pub intent_zh: Option<LinearHead>,
    pub emotion_zh: Option<LinearHead>,
    /// When they were trained (0: never); a newer row in the store replaces them.
    pub trained_at_ms: i64,
}

/// What the bot made of one caller turn.
#[derive(Debug, Clone, Default)]
pub struct Understanding {
    pub text: String,
    pub embedding: Vec<f32>,
    /// Most likely intent, or `UNKNOWN` when its probability is under the threshold.
    pub intent: String,
    pub intent_confidence: f32,
    /// The three most likely intents with their probabilities (even under the threshold).
    pub alternatives: Vec<(String, f32)>,
    pub emotion: String,
    pub emotion_confidence: f32,
    /// Anger/frustration, 0..1: the text's emotion lifted by how it was said.
    pub anger: f32,
    pub prosody: Option<Prosody>,
    pub rule: Option<RuleHit>,
    pub elapsed: Duration,
}

pub struct Nlu {
    encoder: Arc<dyn Encoder>,
    heads: RwLock<Arc<Heads>>,
    /// Intent probability under which the intent is `UNKNOWN`.
    pub intent_threshold: f32,
    /// The operator's own phrases that mean "a person, please".
    pub agent_phrases: Vec<String>,
}

/// Arousal up to this much is within what one calm voice varies between sentences (measured
/// on the synthetic test voice over G.711: 0.0-0.33); only what is above it lifts anger.
pub const AROUSAL_NOISE: f32 = 0.2;

/// Anger score from the emotion probabilities and, when known, the arousal of the voice.
pub fn anger_score(emotions: &[(String, f32)], arousal: Option<f32>) -> f32 {
    let p = |l: &str| {
        emotions
            .iter()
            .find(|(n, _)| n == l)
            .map(|x| x.1)
            .unwrap_or(0.0)
    };
    let text = (p("angry") + p("frustrated")).clamp(0.0, 1.0);
    match arousal {
        Some(a) => {
            let lift = (a - AROUSAL_NOISE).max(0.0);
            (text + (1.0 - text) * lift * (1.0 - p("satisfied"))).clamp(0.0, 1.0)
        }
        None => text,
    }
}

impl Nlu {
    pub fn new(encoder: Arc<dyn Encoder>, heads: Heads) -> Nlu {
        Nlu {
            encoder,
            heads: RwLock::new(Arc::new(heads)),
            intent_threshold: 0.45,
            agent_phrases: Vec::new(),
        }
    }

    pub fn encoder(&self) -> &Arc<dyn Encoder> {
        &self.encoder
    }

    pub fn heads(&self) -> Arc<Heads> {
        self.heads.read().map(|h| h.clone()).unwrap_or_default()
    }

    pub fn set_heads(&self, heads: Heads) {
        if let Ok(mut h) = self.heads.write() {
            *h = Arc::new(heads);
        }
    }

    /// Classifies an embedding with the current heads (no audio).
    pub fn classify(
        &self,
        text: &str,
        embedding: Vec<f32>,
        prosody: Option<Prosody>,
    ) -> Understanding {
        let heads = self.heads();
        let rule = rules::match_rules(text, &self.agent_phrases);
        let mut u = Understanding {
            text: text.to_string(),
            intent: UNKNOWN.into(),
            emotion: "neutral".into(),
            prosody,
            rule,
            ..Default::default()
        };
        let zh = text::looks_chinese(text);
        let chars = if zh {
            text::char_features(text)
        } else {
            Vec::new()
        };
        let (intent_head, intent_x) = match (&heads.intent_zh, zh) {
            (Some(h), true) => (Some(h), &chars),
            _ => (heads.intent.as_ref(), &embedding),
        };
        if let Some(h) = intent_head {
            let mut ranked: Vec<(String, f32)> =
                h.labels.iter().cloned().zip(h.probs(intent_x)).collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            if let Some((label, p)) = ranked.first() {
                // "Something else" (the labelled set's out-of-scope lines: stories, the
                // weather, trivia) is no intent at all, with no confidence to act on.
                if label == OUT_OF_SCOPE {
                    u.intent_confidence = 0.0;
                } else {
                    u.intent_confidence = *p;
                    if *p >= self.intent_threshold {
                        u.intent = label.clone();
                    }
                }
            }
            ranked.truncate(3);
            u.alternatives = ranked;
        }
        let (emotion_head, emotion_x) = match (&heads.emotion_zh, zh) {
            (Some(h), true) => (Some(h), &chars),
            _ => (heads.emotion.as_ref(), &embedding),
        };
        let mut emotions = Vec::new();
        if let Some(h) = emotion_head {
            emotions = h.labels.iter().cloned().zip(h.probs(emotion_x)).collect();
            if let Some((l, p)) = emotions.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
                u.emotion = l.clone();
                u.emotion_confidence = *p;
            }
        }
        // Rules win over the model: words are words.
        if let Some(r) = rule {
            u.intent = r.intent().into();
            u.intent_confidence = u.intent_confidence.max(0.99);
        }
        u.anger = anger_score(&emotions, prosody.map(|p| p.arousal));
        u.embedding = embedding;
        u
    }

    /// Understands one caller turn: its transcript and, when at hand, its 8 kHz audio, with
    /// the prosody of the caller's first full sentence as the `baseline` for how they
    /// normally sound (`prosody::is_baseline`; without one the voice lifts nothing).
    pub fn understand(
        &self,
        text: &str,
        pcm: Option<&[i16]>,
        baseline: Option<&Prosody>,
    ) -> Result<Understanding, NluError> {
        let t = Instant::now();
        let embedding = if text.trim().is_empty() {
            vec![0.0; self.encoder.dim()]
        } else {
            self.encoder.embed(text)?
        };
        let prosody = pcm.filter(|p| !p.is_empty()).map(|p| {
            let mut m = prosody::measure(p, text);
            m.arousal = if prosody::counts(&m, text) {
                prosody::arousal(&m, baseline)
            } else {
                0.0
            };
            m
        });
        let mut u = self.classify(text, embedding, prosody);
        u.elapsed = t.elapsed();
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anger_is_lifted_by_the_voice() {
        let neutral = vec![
            ("neutral".to_string(), 0.9),
            ("angry".to_string(), 0.02),
            ("satisfied".to_string(), 0.05),
        ];
        let calm = anger_score(&neutral, Some(0.05));
        let shouted = anger_score(&neutral, Some(0.85));
        assert!(calm < 0.1, "{calm}");
        // A calm voice that varies between sentences does not make a calm question angry.
        let varied = anger_score(&neutral, Some(AROUSAL_NOISE));
        assert_eq!(varied, 0.02, "{varied}");
        assert!(shouted > 0.6, "{shouted}");
        let angry = vec![("angry".to_string(), 0.8), ("frustrated".to_string(), 0.15)];
        assert!(anger_score(&angry, None) > 0.85);
        let happy = vec![("satisfied".to_string(), 0.95)];
        assert!(anger_score(&happy, Some(0.9)) < 0.1);
    }
}
