//! The knowledge base: entries (question variants and an answer per language, an intent,
//! tags, "needs a person"), stored in SQLite (`store::kb`: every statement) with an embedding
//! per question and a full-text index (FTS5, BM25) beside it; `search` fuses the two. Files
//! in and out: `format`.

pub mod format;
pub mod search;

use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum KbError {
    #[error("knowledge base file: {0}")]
    Format(String),
    #[error("knowledge base: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("knowledge base: {0}")]
    Encoder(#[from] crate::nlu::NluError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The sample knowledge base for a telecom operator, built into the binary: a fresh
/// deployment answers from it until the operator imports its own.
pub const SAMPLE_KB: &str = include_str!("../../kb/telecom.md");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbEntry {
    pub key: String,
    pub intent: Option<String>,
    pub tags: Vec<String>,
    pub needs_person: bool,
    pub enabled: bool,
    /// (language, question) pairs.
    pub questions: Vec<(String, String)>,
    /// Answer per language.
    pub answers: BTreeMap<String, String>,
}

impl KbEntry {
    pub fn new(key: &str) -> KbEntry {
        KbEntry {
            key: key.to_string(),
            intent: None,
            tags: Vec::new(),
            needs_person: false,
            enabled: true,
            questions: Vec::new(),
            answers: BTreeMap::new(),
        }
    }

    pub fn check(&self) -> Result<(), KbError> {
        if self.questions.is_empty() {
            return Err(KbError::Format(format!("entry {}: no question", self.key)));
        }
        if self.answers.is_empty() {
            return Err(KbError::Format(format!("entry {}: no answer", self.key)));
        }
        Ok(())
    }

    /// Languages it has questions or answers in, sorted.
    pub fn languages(&self) -> Vec<String> {
        let mut l: Vec<String> = self
            .questions
            .iter()
            .map(|(l, _)| l.clone())
            .chain(self.answers.keys().cloned())
            .collect();
        l.sort();
        l.dedup();
        l
    }

    /// The answer in `lang`, else English, else any.
    pub fn answer(&self, lang: &str) -> Option<&str> {
        self.answers
            .get(lang)
            .or_else(|| self.answers.get("en"))
            .or_else(|| self.answers.values().next())
            .map(String::as_str)
    }
}

/// Reads a knowledge-base file; the format comes from the extension (.md, .jsonl, .csv).
pub fn read_file(path: &Path) -> Result<Vec<KbEntry>, KbError> {
    let text = std::fs::read_to_string(path).map_err(|source| KbError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let r = match ext {
        "md" | "markdown" => format::parse_markdown(&text),
        "jsonl" | "json" => format::parse_jsonl(&text),
        "csv" => format::parse_csv(&text),
        _ => Err(KbError::Format(format!(
            "{}: unknown format (use .md, .jsonl or .csv)",
            path.display()
        ))),
    };
    r.map_err(|e| KbError::Format(format!("{}: {e}", path.display())))
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
}
