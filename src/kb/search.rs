//! Finding the entry that answers a question: cosine similarity between the question's
//! embedding and every stored question variant (brute force over unit vectors: thousands
//! of entries take well under a millisecond), fused with BM25 from the FTS5 index. The
//! encoder is English-only, so Chinese questions lean on the lexical side (the index holds
//! Chinese as character bigrams).

use super::{KbEntry, KbError};
use crate::nlu::text::{index_terms, looks_chinese};
use crate::vector::dot;
use std::collections::HashMap;

/// The full-text side of the search: BM25 per entry id for an FTS5 query (the terms joined
/// by OR). `store::kb` gives it from SQLite.
pub trait Lexical: Send + Sync {
    fn bm25(&self, query: &str) -> Result<Vec<(i64, f64)>, KbError>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct KbHit {
    /// Index into `KbIndex::entries`.
    pub entry: usize,
    pub key: String,
    /// Fused score, 0..1.
    pub score: f32,
    /// Best cosine similarity with one of the entry's questions.
    pub semantic: f32,
    /// BM25 squashed into 0..1.
    pub lexical: f32,
}

pub struct KbIndex {
    pub entries: Vec<KbEntry>,
    /// (entry index, unit vector) per question variant.
    vectors: Vec<(usize, Vec<f32>)>,
    by_id: HashMap<i64, usize>,
    lexical: Box<dyn Lexical>,
    pub version: (i64, i64, i64),
    /// The vectors come from an encoder that understands Chinese (else Chinese questions
    /// lean on the lexical score).
    multilingual: bool,
}

/// Weight of the semantic score for English questions (and Chinese ones with a multilingual
/// encoder), and for Chinese questions with an English-only encoder.
const SEMANTIC_EN: f32 = 0.8;
const SEMANTIC_ZH: f32 = 0.35;

impl KbIndex {
    /// The index over `entries` (the enabled ones), with `questions` as (entry id, entry key,
    /// the question's vector if it has one), the knowledge base's `version`, and the
    /// full-text side.
    pub fn new(
        entries: Vec<KbEntry>,
        questions: Vec<(i64, String, Option<Vec<f32>>)>,
        version: (i64, i64, i64),
        lexical: Box<dyn Lexical>,
    ) -> KbIndex {
        let pos: HashMap<&str, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key.as_str(), i))
            .collect();
        let mut by_id = HashMap::new();
        let mut vectors = Vec::new();
        for (id, key, v) in questions {
            let Some(&i) = pos.get(key.as_str()) else {
                continue;
            };
            by_id.insert(id, i);
            if let Some(v) = v {
                vectors.push((i, v));
            }
        }
        KbIndex {
            entries,
            vectors,
            by_id,
            lexical,
            version,
            multilingual: false,
        }
    }

    /// Says whether the stored vectors come from a multilingual encoder.
    pub fn multilingual(mut self, yes: bool) -> KbIndex {
        self.multilingual = yes;
        self
    }

    pub fn has_vectors(&self) -> bool {
        !self.vectors.is_empty()
    }

    /// BM25 per entry (best question), squashed to 0..1.
    fn lexical(&self, text: &str) -> HashMap<usize, f32> {
        let mut out = HashMap::new();
        let terms = index_terms(text);
        if terms.is_empty() {
            return out;
        }
        let query = terms
            .iter()
            .map(|t| format!("\"{}\"", t.replace('"', "")))
            .collect::<Vec<_>>()
            .join(" OR ");
        match self.lexical.bm25(&query) {
            Ok(rows) => {
                for (id, bm25) in rows {
                    let Some(&i) = self.by_id.get(&id) else {
                        continue;
                    };
                    let b = (-bm25).max(0.0) as f32;
                    let s = b / (b + 4.0);
                    let e = out.entry(i).or_insert(0.0f32);
                    *e = e.max(s);
                }
            }
            Err(e) => tracing::warn!(error = %e, "knowledge-base text search failed"),
        }
        out
    }

    /// The best `k` entries for `text` (with its embedding, when the encoder is running).
    pub fn search(&self, text: &str, embedding: Option<&[f32]>, k: usize) -> Vec<KbHit> {
        let mut semantic = vec![0f32; self.entries.len()];
        if let Some(q) = embedding.filter(|q| q.iter().any(|&v| v != 0.0)) {
            for (i, v) in &self.vectors {
                if v.len() == q.len() {
                    semantic[*i] = semantic[*i].max(dot(q, v));
                }
            }
        }
        let lexical = self.lexical(text);
        let w = if looks_chinese(text) && !self.multilingual {
            SEMANTIC_ZH
        } else {
            SEMANTIC_EN
        };
        let w = if self.vectors.is_empty() || embedding.is_none() {
            0.0
        } else {
            w
        };
        let mut hits: Vec<KbHit> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let lex = lexical.get(&i).copied().unwrap_or(0.0);
                let sem = semantic[i].max(0.0);
                KbHit {
                    entry: i,
                    key: e.key.clone(),
                    score: w * sem + (1.0 - w) * lex,
                    semantic: sem,
                    lexical: lex,
                }
            })
            .filter(|h| h.score > 0.0)
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        hits
    }
}
