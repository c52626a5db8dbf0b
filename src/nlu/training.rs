//! Training and evaluating the heads. Intent examples come from the knowledge base (every
//! question variant teaches its entry's intent) and from a labelled set (JSONL or CSV with
//! `text`, `intent`, `emotion`, `lang`); the bundled set (nlu/train.jsonl) covers the sample
//! deployment. nlu/heldout.jsonl is never trained on: `voxdesk eval nlu` measures on it.

use super::encoder::Encoder;
use super::head::{LinearHead, TrainOptions};
use super::{Heads, Nlu, NluError, EMOTIONS, UNKNOWN};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

/// The labelled examples shipped for the sample deployment.
pub const BUNDLED_TRAIN: &str = include_str!("../../nlu/train.jsonl");

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
pub struct Example {
    pub text: String,
    #[serde(default)]
    pub intent: Option<String>,
    #[serde(default)]
    pub emotion: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
}

/// Reads a labelled set: JSONL (one object per line) or CSV with a header naming `text` and
/// at least one of `intent`, `emotion` (and optionally `lang`).
pub fn parse_set(text: &str, csv: bool) -> Result<Vec<Example>, NluError> {
    let mut out = Vec::new();
    if csv {
        let rows = crate::csv_text::records(text).map_err(|e| NluError::Data(e.to_string()))?;
        let Some(h) = rows.first() else {
            return Ok(out);
        };
        let col = |n: &str| h.iter().position(|c| c.trim() == n);
        let Some(ct) = col("text") else {
            return Err(NluError::Data("CSV header has no `text` column".into()));
        };
        let (ci, ce, cl) = (col("intent"), col("emotion"), col("lang"));
        for r in rows.iter().skip(1) {
            let get = |c: Option<usize>| {
                c.and_then(|c| r.get(c))
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            };
            out.push(Example {
                text: get(Some(ct)).unwrap_or_default(),
                intent: get(ci),
                emotion: get(ce),
                lang: get(cl),
            });
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            out.push(
                serde_json::from_str(line)
                    .map_err(|e| NluError::Data(format!("line {}: {e}", i + 1)))?,
            );
        }
    }
    for (i, e) in out.iter().enumerate() {
        if e.text.trim().is_empty() {
            return Err(NluError::Data(format!("example {}: empty text", i + 1)));
        }
        if let Some(em) = &e.emotion {
            if !EMOTIONS.contains(&em.as_str()) {
                return Err(NluError::Data(format!(
                    "example {}: emotion {em:?} is not one of {}",
                    i + 1,
                    EMOTIONS.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

pub fn read_set(path: &std::path::Path) -> Result<Vec<Example>, NluError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| NluError::Data(format!("{}: {e}", path.display())))?;
    let csv = path.extension().and_then(|e| e.to_str()) == Some("csv");
    parse_set(&text, csv).map_err(|e| NluError::Data(format!("{}: {e}", path.display())))
}

#[derive(Debug)]
pub struct TrainReport {
    pub intent_examples: usize,
    pub intents: usize,
    pub emotion_examples: usize,
    pub embed_ms: u128,
    pub fit_ms: u128,
}

fn fit(pairs: &[(&Vec<f32>, &str)]) -> Option<LinearHead> {
    let mut labels: Vec<String> = pairs.iter().map(|(_, l)| l.to_string()).collect();
    labels.sort();
    labels.dedup();
    if labels.len() < 2 {
        return None;
    }
    let x: Vec<Vec<f32>> = pairs.iter().map(|(v, _)| (*v).clone()).collect();
    let y: Vec<usize> = pairs
        .iter()
        .map(|(_, l)| labels.iter().position(|x| x == l).unwrap_or(0))
        .collect();
    Some(LinearHead::train(&x, &y, labels, &TrainOptions::default()))
}

/// Embeds every example and fits both heads.
pub fn train(
    encoder: &dyn Encoder,
    examples: &[Example],
) -> Result<(Heads, TrainReport), NluError> {
    let t = Instant::now();
    let vectors: Vec<Vec<f32>> = examples
        .iter()
        .map(|e| encoder.embed(&e.text))
        .collect::<Result<_, _>>()?;
    let embed_ms = t.elapsed().as_millis();
    let t = Instant::now();
    let intents: Vec<(&Vec<f32>, &str)> = examples
        .iter()
        .zip(&vectors)
        .filter_map(|(e, v)| e.intent.as_deref().map(|i| (v, i)))
        .collect();
    let emotions: Vec<(&Vec<f32>, &str)> = examples
        .iter()
        .zip(&vectors)
        .filter_map(|(e, v)| e.emotion.as_deref().map(|i| (v, i)))
        .collect();
    let intent = fit(&intents);
    let emotion = fit(&emotions);
    // Chinese, when the encoder is English-only: character features, from the examples
    // written in Chinese.
    let chars: Vec<Option<Vec<f32>>> = examples
        .iter()
        .map(|e| {
            let zh = e.lang.as_deref() == Some("zh") || super::text::looks_chinese(&e.text);
            (zh && !encoder.multilingual()).then(|| super::text::char_features(&e.text))
        })
        .collect();
    let zh_pairs = |label: fn(&Example) -> Option<&str>| -> Vec<(&Vec<f32>, &str)> {
        examples
            .iter()
            .zip(&chars)
            .filter_map(|(e, c)| Some((c.as_ref()?, label(e)?)))
            .collect()
    };
    let intent_zh = fit(&zh_pairs(|e| e.intent.as_deref()));
    let emotion_zh = fit(&zh_pairs(|e| e.emotion.as_deref()));
    let report = TrainReport {
        intent_examples: intents.len(),
        intents: intent.as_ref().map(|h| h.labels.len()).unwrap_or(0),
        emotion_examples: emotions.len(),
        embed_ms,
        fit_ms: t.elapsed().as_millis(),
    };
    Ok((
        Heads {
            intent,
            emotion,
            intent_zh,
            emotion_zh,
            trained_at_ms: crate::clock::now_ms(),
        },
        report,
    ))
}

/// Per-class counts for precision and recall.
#[derive(Debug, Default)]
struct Confusion {
    labels: Vec<String>,
    /// (truth, predicted) -> count
    cells: BTreeMap<(String, String), usize>,
}

impl Confusion {
    fn add(&mut self, truth: &str, pred: &str) {
        for l in [truth, pred] {
            if !self.labels.iter().any(|x| x == l) {
                self.labels.push(l.to_string());
            }
        }
        *self.cells.entry((truth.into(), pred.into())).or_default() += 1;
    }
    fn get(&self, t: &str, p: &str) -> usize {
        self.cells.get(&(t.into(), p.into())).copied().unwrap_or(0)
    }
    fn total(&self) -> usize {
        self.cells.values().sum()
    }
    fn correct(&self) -> usize {
        self.labels.iter().map(|l| self.get(l, l)).sum()
    }
    fn render(&self, title: &str, out: &mut String) {
        let mut labels = self.labels.clone();
        labels.sort();
        let n = self.total().max(1);
        let _ = writeln!(
            out,
            "{title}: accuracy {:.1} % ({}/{})",
            100.0 * self.correct() as f64 / n as f64,
            self.correct(),
            self.total()
        );
        let _ = writeln!(
            out,
            "  {:<20} {:>9} {:>7} {:>8}",
            "class", "precision", "recall", "support"
        );
        for l in &labels {
            let tp = self.get(l, l) as f64;
            let pred: usize = labels.iter().map(|t| self.get(t, l)).sum();
            let truth: usize = labels.iter().map(|p| self.get(l, p)).sum();
            let pr = if pred > 0 {
                format!("{:.2}", tp / pred as f64)
            } else {
                "-".into()
            };
            let rc = if truth > 0 {
                format!("{:.2}", tp / truth as f64)
            } else {
                "-".into()
            };
            let _ = writeln!(out, "  {l:<20} {pr:>9} {rc:>7} {truth:>8}");
        }
        let _ = writeln!(
            out,
            "  confusion matrix (rows: truth, columns: predicted, in the order above):"
        );
        for t in &labels {
            let row: Vec<String> = labels
                .iter()
                .map(|p| format!("{:>2}", self.get(t, p)))
                .collect();
            let _ = writeln!(out, "  {t:<20} {}", row.join(" "));
        }
    }
}

#[derive(Debug, Default)]
pub struct EvalReport {
    pub intent_accuracy: f64,
    pub intent_accuracy_by_lang: BTreeMap<String, (usize, usize)>,
    pub emotion_accuracy: f64,
    /// Share of angry or frustrated examples whose anger score reaches the threshold.
    pub anger_recall: f64,
    /// Share of the other examples whose anger score reaches it (false escalations).
    pub false_escalation: f64,
    pub anger_threshold: f32,
    pub nlu_p50_ms: f64,
    pub nlu_p95_ms: f64,
    pub text: String,
}

/// Measures `nlu` on a labelled set (text only: no audio, so prosody plays no part).
pub fn evaluate(nlu: &Nlu, set: &[Example], anger_threshold: f32) -> Result<EvalReport, NluError> {
    let mut intents = Confusion::default();
    let mut emotions = Confusion::default();
    let mut by_lang: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut pos, mut pos_hit, mut neg, mut neg_hit) = (0usize, 0usize, 0usize, 0usize);
    let mut times = Vec::new();
    let mut misses = Vec::new();
    // (angry or frustrated, anger score) per example with an emotion label.
    let mut scored: Vec<(bool, f32)> = Vec::new();
    // (emotion, language) -> (reaching the threshold, all), for angry and frustrated lines.
    let mut anger_misses = Vec::new();
    let mut recall_by: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for e in set {
        let u = nlu.understand(&e.text, None, None)?;
        times.push(u.elapsed.as_secs_f64() * 1000.0);
        if let Some(truth) = &e.intent {
            intents.add(truth, &u.intent);
            let lang = e.lang.clone().unwrap_or_else(|| "?".into());
            let c = by_lang.entry(lang).or_default();
            c.1 += 1;
            if *truth == u.intent {
                c.0 += 1;
            } else {
                misses.push(format!(
                    "  {:?}: {truth} -> {} ({:.2})",
                    e.text, u.intent, u.intent_confidence
                ));
            }
        }
        if let Some(truth) = &e.emotion {
            emotions.add(truth, &u.emotion);
            let flagged = u.anger >= anger_threshold;
            scored.push((truth == "angry" || truth == "frustrated", u.anger));
            if (truth == "angry" || truth == "frustrated") != flagged {
                anger_misses.push(format!("  {:?}: {truth}, anger {:.2}", e.text, u.anger));
            }
            if truth == "angry" || truth == "frustrated" {
                pos += 1;
                pos_hit += flagged as usize;
                let lang = e.lang.clone().unwrap_or_else(|| "?".into());
                let c = recall_by.entry((truth.clone(), lang)).or_default();
                c.0 += flagged as usize;
                c.1 += 1;
            } else {
                neg += 1;
                neg_hit += flagged as usize;
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        times
            .get(((times.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let mut text = String::new();
    intents.render("intent", &mut text);
    for (l, (ok, n)) in &by_lang {
        let _ = writeln!(
            text,
            "  intent accuracy, {l}: {:.1} % ({ok}/{n})",
            100.0 * *ok as f64 / (*n).max(1) as f64
        );
    }
    if !misses.is_empty() {
        let _ = writeln!(text, "  intent misses (text: truth -> predicted (confidence); {UNKNOWN} = under the threshold):");
        for m in &misses {
            let _ = writeln!(text, "{m}");
        }
    }
    emotions.render("emotion", &mut text);
    let r = EvalReport {
        intent_accuracy: intents.correct() as f64 / intents.total().max(1) as f64,
        intent_accuracy_by_lang: by_lang,
        emotion_accuracy: emotions.correct() as f64 / emotions.total().max(1) as f64,
        anger_recall: pos_hit as f64 / pos.max(1) as f64,
        false_escalation: neg_hit as f64 / neg.max(1) as f64,
        anger_threshold,
        nlu_p50_ms: pct(0.5),
        nlu_p95_ms: pct(0.95),
        text: String::new(),
    };
    let _ = writeln!(
        text,
        "anger/frustration (score >= {anger_threshold}): recall {:.2} ({pos_hit}/{pos}), false escalations {:.1} % ({neg_hit}/{neg})",
        r.anger_recall,
        100.0 * r.false_escalation
    );
    let by: Vec<String> = recall_by
        .iter()
        .map(|((em, lang), (hit, n))| {
            format!(
                "{em} {lang} {:.2} ({hit}/{n})",
                *hit as f64 / (*n).max(1) as f64
            )
        })
        .collect();
    let _ = writeln!(text, "  recall by emotion and language: {}", by.join(", "));
    if !anger_misses.is_empty() {
        let _ = writeln!(
            text,
            "  anger misses (angry or frustrated under the threshold, the others over it):"
        );
        for m in &anger_misses {
            let _ = writeln!(text, "{m}");
        }
    }
    // How recall and false escalations trade off around the configured threshold.
    let sweep: Vec<String> = [0.3f32, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6]
        .iter()
        .map(|&th| {
            let (mut p, mut ph, mut n, mut nh) = (0usize, 0usize, 0usize, 0usize);
            for &(positive, anger) in &scored {
                if positive {
                    p += 1;
                    ph += (anger >= th) as usize;
                } else {
                    n += 1;
                    nh += (anger >= th) as usize;
                }
            }
            format!(
                "{th:.2}: {:.2}/{:.1} %",
                ph as f64 / p.max(1) as f64,
                100.0 * nh as f64 / n.max(1) as f64
            )
        })
        .collect();
    let _ = writeln!(
        text,
        "  by threshold (recall/false escalations): {}",
        sweep.join(", ")
    );
    let _ = writeln!(text, "NLU per utterance (encoder + heads + rules): p50 {:.1} ms, p95 {:.1} ms over {} utterances", r.nlu_p50_ms, r.nlu_p95_ms, times.len());
    Ok(EvalReport { text, ..r })
}
