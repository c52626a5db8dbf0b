//! Loading what the brain runs on, for the server and the command line alike: the sentence
//! encoder named by the config, the knowledge base (the bundled sample when empty, with its
//! embeddings) and the intent and emotion heads (trained and stored on a first start).

use crate::config::Config;
use crate::kb::KbEntry;
use crate::nlu::encoder::{Encoder, OnnxEncoder};
use crate::nlu::training::{self, Example};
use crate::nlu::{Heads, Nlu};
use anyhow::{Context, Result};
use std::sync::Arc;

/// Loads the sentence encoder named by the config; the error says which key and the fix.
pub fn load_encoder(cfg: &Config) -> Result<Arc<dyn Encoder>> {
    let model = cfg.model_path(&cfg.models.encoder);
    let tok = cfg.model_path(&cfg.models.encoder_tokenizer);
    let enc = OnnxEncoder::load(&cfg.model_path(&cfg.models.onnxruntime), &model, &tok)
        .with_context(|| {
            format!(
                "models.encoder / models.encoder_tokenizer ({} / {}): run scripts/fetch-models.sh, or set nlu.enabled = false",
                model.display(),
                tok.display()
            )
        })?;
    Ok(Arc::new(enc))
}

/// The encoder with the heads stored in the database (none yet: an untrained `Nlu`).
pub fn load_nlu(cfg: &Config, conn: &rusqlite::Connection) -> Result<Nlu> {
    let encoder = load_encoder(cfg)?;
    let heads = crate::store::heads::load_heads(conn, encoder.name())
        .context("loading the trained heads")?;
    let mut nlu = Nlu::new(encoder, heads);
    nlu.intent_threshold = cfg.nlu.intent_threshold;
    nlu.agent_phrases = cfg.nlu.agent_phrases.clone();
    Ok(nlu)
}

/// The database, creating the data directory first.
pub fn open_db(cfg: &Config) -> Result<rusqlite::Connection> {
    std::fs::create_dir_all(&cfg.paths.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.paths.data_dir.display()))?;
    Ok(crate::store::open_connection(&cfg.database_path())?)
}

/// Makes sure the knowledge base exists (the bundled sample when empty) with embeddings.
pub fn prepare_kb(cfg: &Config, encoder: Option<&dyn Encoder>) -> Result<()> {
    let mut conn = open_db(cfg)?;
    if crate::store::kb::seed_sample(&mut conn, encoder)? {
        tracing::info!("knowledge base was empty: imported the bundled sample (telecom, en + zh)");
    }
    if let Some(enc) = encoder {
        let n = crate::store::kb::fill_embeddings(&conn, enc)?;
        if n > 0 {
            tracing::info!(questions = n, "computed missing knowledge-base embeddings");
        }
    }
    Ok(())
}

/// The labelled examples `voxdesk train` uses: the bundled set, the configured extra set.
pub fn labelled(cfg: &Config) -> Result<Vec<Example>> {
    let mut set = training::parse_set(training::BUNDLED_TRAIN, false)?;
    if let Some(p) = &cfg.nlu.train_set {
        set.extend(training::read_set(p).context("nlu.train_set")?);
    }
    Ok(set)
}

/// Trains the heads on the knowledge base and the labelled examples, and stores them.
pub fn train_and_store(cfg: &Config, encoder: &dyn Encoder) -> Result<(Heads, String)> {
    let mut conn = open_db(cfg)?;
    crate::store::kb::seed_sample(&mut conn, Some(encoder))?;
    let entries = crate::store::kb::load(&conn, false)?;
    let examples = training_examples(&entries, &labelled(cfg)?);
    let (heads, r) = training::train(encoder, &examples)?;
    crate::store::heads::store_heads(&conn, &heads, examples.len(), encoder.name())?;
    Ok((
        heads,
        format!(
            "train: {} intents from {} examples, {} emotion examples; embedding {} ms, fitting {} ms; stored in {}",
            r.intents,
            r.intent_examples,
            r.emotion_examples,
            r.embed_ms,
            r.fit_ms,
            cfg.database_path().display()
        ),
    ))
}

/// The training examples: the labelled set plus every knowledge-base question (as a
/// neutral example of its entry's intent).
pub fn training_examples(kb: &[KbEntry], labelled: &[Example]) -> Vec<Example> {
    let mut out: Vec<Example> = labelled.to_vec();
    for e in kb.iter().filter(|e| e.enabled) {
        for (lang, q) in &e.questions {
            out.push(Example {
                text: q.clone(),
                intent: e.intent.clone(),
                emotion: Some("neutral".into()),
                lang: Some(lang.clone()),
            });
        }
    }
    out
}
