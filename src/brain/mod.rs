//! The I/O around the dialog state machine (`crate::dialog`, which touches no model, socket,
//! clock or database), shared by all calls: the NLU models, the knowledge-base index, their
//! reloading when `voxdesk train` or `voxdesk kb import` changed the database under a
//! running server, and the optional generated answers (`llm`). `analyse` is the blocking
//! step a call runs on the inference pool after speech-to-text.

pub mod llm;
pub mod load;

use crate::config::Config;
use crate::dialog::{Analysis, Dialog, DialogSettings, KbCandidate};
use crate::kb::search::KbIndex;
use crate::nlu::{rules, Nlu, Understanding, UNKNOWN};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// What the analysis of a turn needs to know about the call so far.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The previous topic's question, for follow-ups ("and how much does that cost?").
    pub previous_topic: Option<String>,
    /// How the caller sounded on their first turn (prosody counts relative to it).
    pub baseline: Option<crate::nlu::prosody::Prosody>,
    /// This turn began by talking over the bot's answer (an interruption: a sign of
    /// impatience that lifts the anger score a little).
    pub interrupted: bool,
}

/// How much of the way to 1.0 an interruption lifts the anger score of a turn whose words
/// read as angry or frustrated (a calm interruption is not lifted).
pub const INTERRUPTION_LIFT: f32 = 0.15;

/// The anger score of a turn that did (or did not) interrupt the bot.
pub fn with_interruption(anger: f32, interrupted: bool) -> f32 {
    if interrupted {
        (anger + (1.0 - anger) * INTERRUPTION_LIFT).clamp(0.0, 1.0)
    } else {
        anger
    }
}

pub struct Brain {
    pub settings: Arc<DialogSettings>,
    nlu: Option<Arc<Nlu>>,
    kb: RwLock<Arc<KbIndex>>,
    db: PathBuf,
    checked: Mutex<Instant>,
    reload_every: Duration,
    agent_phrases: Vec<String>,
    llm: crate::config::LlmConfig,
}

impl Brain {
    /// Loads the encoder and heads (training them on first start), the knowledge base (the
    /// bundled sample when empty) and its index. Blocking: seconds on a first start.
    pub fn load(cfg: &Config) -> Result<Brain> {
        let nlu = if cfg.nlu.enabled {
            let encoder = load::load_encoder(cfg)?;
            load::prepare_kb(cfg, Some(encoder.as_ref()))?;
            let conn = crate::store::open_connection(&cfg.database_path())?;
            let mut heads = crate::store::heads::load_heads(&conn, encoder.name())?;
            if heads.intent.is_none() {
                tracing::info!("no trained intent model yet: training on the knowledge base and the bundled examples");
                let (h, msg) = load::train_and_store(cfg, encoder.as_ref())?;
                tracing::info!("{msg}");
                heads = h;
            }
            let mut n = Nlu::new(encoder, heads);
            n.intent_threshold = cfg.nlu.intent_threshold;
            n.agent_phrases = cfg.nlu.agent_phrases.clone();
            Some(Arc::new(n))
        } else {
            load::prepare_kb(cfg, None)?;
            None
        };
        let kb = crate::store::kb::open_index(&cfg.database_path())
            .context("knowledge base")?
            .multilingual(nlu.as_ref().is_some_and(|n| n.encoder().multilingual()));
        tracing::info!(
            entries = kb.entries.len(),
            semantic = kb.has_vectors(),
            nlu = nlu.is_some(),
            "knowledge base loaded"
        );
        Ok(Brain {
            settings: Arc::new(DialogSettings::new(&cfg.dialog, &cfg.nlu, &cfg.prompts)),
            nlu,
            kb: RwLock::new(Arc::new(kb)),
            db: cfg.database_path(),
            checked: Mutex::new(Instant::now()),
            reload_every: Duration::from_secs(cfg.nlu.reload_secs),
            agent_phrases: cfg.nlu.agent_phrases.clone(),
            llm: cfg.llm.clone(),
        })
    }

    pub fn nlu(&self) -> Option<&Arc<Nlu>> {
        self.nlu.as_ref()
    }

    fn index(&self) -> Arc<KbIndex> {
        self.kb.read().map(|k| k.clone()).expect("kb lock")
    }

    /// The pieces of speech the bot says word for word in `languages` ("en", "zh"), as the
    /// reply path asks the voice for them: knowledge-base answers (per time of day where they
    /// greet, with "your phone" for the caller's number) and the request to rephrase cut into
    /// reply chunks, and the handoff lines whole. Rendered ahead, so no caller waits for the
    /// voice on them.
    pub fn fixed_pieces(&self, languages: &[&str]) -> Vec<String> {
        use crate::speech::tts::reply_pieces;
        let mut v = Vec::new();
        let d = &self.settings.dialog;
        for &lang in languages {
            for e in &self.index().entries {
                let Some(a) = e.answer(lang) else { continue };
                for hour in [8, 14, 20] {
                    let filled = crate::dialog::fill_slots(a, "", hour);
                    if !filled.contains('{') {
                        v.extend(reply_pieces(&filled, false));
                    }
                }
            }
            let rephrase = if lang == "zh" {
                &d.rephrase_zh
            } else {
                &d.rephrase_en
            };
            v.extend(reply_pieces(rephrase, false));
            v.extend(
                crate::dialog::Trigger::ALL
                    .iter()
                    .flat_map(|t| reply_pieces(&t.handoff_line(d, lang), true)),
            );
        }
        v.sort();
        v.dedup();
        v
    }

    /// A new dialog for a call from `caller`.
    pub fn dialog(&self, caller: &str, language: &str) -> Dialog {
        let now = crate::store::now_ms();
        let hour = (now / 3_600_000 % 24) as u32;
        Dialog::new(
            self.settings.clone(),
            caller,
            language,
            hour,
            rand::random::<u32>() % 9_000_000 + 1_000_000,
        )
    }

    /// Picks up a retrained model or a changed knowledge base (at most every reload_secs).
    pub fn maybe_reload(&self) {
        {
            let Ok(mut c) = self.checked.lock() else {
                return;
            };
            // (A tenth of slack: the periodic check must not skip every other tick.)
            if c.elapsed() + self.reload_every / 10 < self.reload_every {
                return;
            }
            *c = Instant::now();
        }
        if let Err(e) = self.reload() {
            tracing::warn!(error = %e, "could not check for knowledge-base or model changes");
        }
    }

    fn reload(&self) -> Result<()> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        conn.busy_timeout(Duration::from_secs(2))?;
        if let Some(nlu) = &self.nlu {
            let name = nlu.encoder().name();
            let v = crate::store::heads::heads_version(&conn, name)?;
            if v > nlu.heads().trained_at_ms {
                nlu.set_heads(crate::store::heads::load_heads(&conn, name)?);
                tracing::info!(
                    trained_at_ms = v,
                    "loaded newly trained intent and emotion heads"
                );
            }
        }
        let v = crate::store::kb::version(&conn)?;
        if v != self.index().version {
            if let Some(nlu) = &self.nlu {
                // Entries imported without the encoder get their vectors now.
                let rw = crate::store::open_connection(&self.db)?;
                crate::store::kb::fill_embeddings(&rw, nlu.encoder().as_ref())?;
            }
            let index = crate::store::kb::open_index(&self.db)?.multilingual(
                self.nlu
                    .as_ref()
                    .is_some_and(|n| n.encoder().multilingual()),
            );
            tracing::info!(
                entries = index.entries.len(),
                "knowledge base changed: reloaded"
            );
            if let Ok(mut k) = self.kb.write() {
                *k = Arc::new(index);
            }
        }
        Ok(())
    }

    fn candidates(
        &self,
        index: &KbIndex,
        text: &str,
        emb: Option<&[f32]>,
        lang: &str,
    ) -> Vec<KbCandidate> {
        index
            .search(text, emb, 3)
            .into_iter()
            .map(|h| {
                let e = &index.entries[h.entry];
                let topic = e
                    .questions
                    .iter()
                    .find(|(l, _)| l == lang)
                    .or(e.questions.first())
                    .map(|(_, q)| q.clone())
                    .unwrap_or_default();
                KbCandidate {
                    key: e.key.clone(),
                    intent: e.intent.clone(),
                    score: h.score,
                    answer: e.answer(lang).unwrap_or("").to_string(),
                    needs_person: e.needs_person,
                    topic,
                }
            })
            .collect()
    }

    /// Understands a caller turn and finds the knowledge-base candidates (blocking: run it
    /// on the inference pool).
    pub fn analyse(
        &self,
        text: &str,
        lang: &str,
        pcm: Option<&[i16]>,
        call: &CallContext,
    ) -> Analysis {
        let context = call.previous_topic.as_deref();
        self.maybe_reload();
        let t = Instant::now();
        let understanding = match &self.nlu {
            Some(nlu) => nlu
                .understand(text, pcm, call.baseline.as_ref())
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "NLU failed; keyword rules only");
                    rules_only(text, &self.agent_phrases)
                }),
            None => rules_only(text, &self.agent_phrases),
        };
        let index = self.index();
        let emb = Some(understanding.embedding.as_slice()).filter(|e| !e.is_empty());
        let hits = self.candidates(&index, text, emb, lang);
        let th = self.settings.dialog.kb_threshold;
        let mut followup_hits = Vec::new();
        if let Some(ctx) = context {
            let short =
                text.split_whitespace().count() <= 10 || crate::nlu::text::looks_chinese(text);
            if short && hits.first().map(|h| h.score).unwrap_or(0.0) < th {
                let joined = format!("{ctx} {text}");
                let emb = self
                    .nlu
                    .as_ref()
                    .and_then(|n| n.encoder().embed(&joined).ok());
                followup_hits = self.candidates(&index, &joined, emb.as_deref(), lang);
            }
        }
        let mut understanding = understanding;
        // Talking over the bot is a sign of impatience only when the words are annoyed too:
        // a calm "and how much does that cost?" over a long answer is ordinary conversation.
        let annoyed = matches!(understanding.emotion.as_str(), "angry" | "frustrated");
        understanding.anger = with_interruption(understanding.anger, call.interrupted && annoyed);
        understanding.elapsed = t.elapsed();
        let best = |h: &[KbCandidate]| h.first().map(|c| c.score).unwrap_or(0.0);
        let generated = if self.llm.enabled
            && !text.trim().is_empty()
            && understanding.rule.is_none()
            && best(&hits) < th
            && best(&followup_hits) < th
        {
            self.generate(text, lang, &hits)
        } else {
            None
        };
        Analysis {
            understanding,
            hits,
            followup_hits,
            generated,
            heard_confidence: None,
        }
    }
}

impl Brain {
    /// Asks the configured chat endpoint, grounded on the closest entries (or the first few
    /// when none is close); None on any failure (logged): the dialog asks to rephrase.
    fn generate(&self, text: &str, lang: &str, hits: &[KbCandidate]) -> Option<String> {
        let t = Instant::now();
        let facts: Vec<llm::Grounding> = hits
            .iter()
            .map(|h| llm::Grounding {
                question: &h.topic,
                answer: &h.answer,
            })
            .collect();
        match llm::ask(&self.llm, text, lang, &facts) {
            Ok(a) => {
                tracing::info!(
                    ms = t.elapsed().as_millis() as u64,
                    answered = a.is_some(),
                    "generated answer"
                );
                a
            }
            Err(e) => {
                tracing::warn!(error = %e, ms = t.elapsed().as_millis() as u64, "no generated answer; falling back");
                None
            }
        }
    }
}

/// What keyword rules alone make of a turn (no encoder configured, or it failed).
pub fn rules_only(text: &str, agent_phrases: &[String]) -> Understanding {
    let rule = rules::match_rules(text, agent_phrases);
    Understanding {
        text: text.to_string(),
        intent: rule
            .map(|r| r.intent().to_string())
            .unwrap_or_else(|| UNKNOWN.into()),
        intent_confidence: if rule.is_some() { 1.0 } else { 0.0 },
        emotion: "neutral".into(),
        rule,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interruption_lifts_the_anger_score_a_little() {
        // Alone it escalates nobody; with annoyed words it can cross the default 0.4.
        assert_eq!(with_interruption(0.1, false), 0.1);
        assert!(with_interruption(0.05, true) < 0.25);
        assert!(with_interruption(0.32, true) >= 0.4);
        assert!(with_interruption(1.0, true) <= 1.0);
    }
}
