//! Knowledge-base files: Markdown FAQ (the bundled sample), JSONL and CSV, read and written.
//!
//! Markdown: one `## key` heading per entry, then optional `intent:`, `tags:` (comma
//! separated), `needs_person: yes|no`, `enabled: yes|no` lines, then per language a `### en`
//! / `### zh` heading with `Q:` lines (question variants) and one `A:` line (the answer;
//! following lines that are not `Q:`/`A:` continue it).
//! JSONL: `{"key", "intent", "tags": [..], "needs_person", "enabled", "questions": {"en": [..]},
//! "answers": {"en": ".."}}` per line. CSV: header `key,intent,lang,question,answer,tags,
//! needs_person`, one row per question (the answer and entry fields may repeat).

use super::{KbEntry, KbError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn yes(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "y" => Some(true),
        "no" | "false" | "0" | "n" => Some(false),
        _ => None,
    }
}

fn tags(v: &str) -> Vec<String> {
    v.split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn bad(what: &str, line: usize, msg: impl Into<String>) -> KbError {
    KbError::Format(format!("{what} line {line}: {}", msg.into()))
}

pub fn parse_markdown(text: &str) -> Result<Vec<KbEntry>, KbError> {
    let mut out: Vec<KbEntry> = Vec::new();
    let mut lang: Option<String> = None;
    let mut in_answer = false;
    let mut in_comment = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        // HTML comments (<!-- ... -->, possibly over several lines) are notes, not content.
        if in_comment || line.starts_with("<!--") {
            in_comment = !line.ends_with("-->");
            continue;
        }
        if let Some(key) = line.strip_prefix("## ") {
            let key = key.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(bad(
                    "markdown",
                    n,
                    format!("entry key {key:?} must be one word"),
                ));
            }
            out.push(KbEntry::new(key));
            lang = None;
            in_answer = false;
            continue;
        }
        if line.starts_with("# ") || line.is_empty() && !in_answer {
            continue;
        }
        let Some(e) = out.last_mut() else {
            if line.is_empty() {
                continue;
            }
            return Err(bad("markdown", n, "text before the first `## key` heading"));
        };
        if let Some(l) = line.strip_prefix("### ") {
            let l = l.trim();
            if !matches!(l, "en" | "zh") {
                return Err(bad("markdown", n, format!("language {l:?}: use en or zh")));
            }
            lang = Some(l.to_string());
            in_answer = false;
            continue;
        }
        if let Some(l) = &lang {
            if let Some(q) = line.strip_prefix("Q:") {
                e.questions.push((l.clone(), q.trim().to_string()));
                in_answer = false;
            } else if let Some(a) = line.strip_prefix("A:") {
                e.answers.insert(l.clone(), a.trim().to_string());
                in_answer = true;
            } else if in_answer {
                if line.is_empty() {
                    in_answer = false;
                } else if let Some(a) = e.answers.get_mut(l) {
                    a.push(' ');
                    a.push_str(line);
                }
            } else {
                return Err(bad("markdown", n, "expected `Q:` or `A:`"));
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(bad("markdown", n, "expected `field: value` or `### en`"));
        };
        match k.trim() {
            "intent" => e.intent = Some(v.trim().to_string()).filter(|s| !s.is_empty()),
            "tags" => e.tags = tags(v),
            "needs_person" => {
                e.needs_person =
                    yes(v).ok_or_else(|| bad("markdown", n, "needs_person: yes or no"))?
            }
            "enabled" => {
                e.enabled = yes(v).ok_or_else(|| bad("markdown", n, "enabled: yes or no"))?
            }
            other => return Err(bad("markdown", n, format!("unknown field {other:?}"))),
        }
    }
    for e in &out {
        e.check()?;
    }
    Ok(out)
}

pub fn to_markdown(entries: &[KbEntry]) -> String {
    let mut s = String::from("# Knowledge base\n");
    for e in entries {
        s.push_str(&format!("\n## {}\n", e.key));
        if let Some(i) = &e.intent {
            s.push_str(&format!("intent: {i}\n"));
        }
        if !e.tags.is_empty() {
            s.push_str(&format!("tags: {}\n", e.tags.join(", ")));
        }
        if e.needs_person {
            s.push_str("needs_person: yes\n");
        }
        if !e.enabled {
            s.push_str("enabled: no\n");
        }
        for lang in e.languages() {
            s.push_str(&format!("\n### {lang}\n"));
            for (_, q) in e.questions.iter().filter(|(l, _)| *l == lang) {
                s.push_str(&format!("Q: {q}\n"));
            }
            if let Some(a) = e.answers.get(&lang) {
                s.push_str(&format!("A: {a}\n"));
            }
        }
    }
    s
}

/// An entry as JSON (the JSONL line format, also the REST API's body).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEntry {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intent: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    needs_person: bool,
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default)]
    questions: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    answers: BTreeMap<String, String>,
}

fn default_true() -> bool {
    true
}

impl From<JsonEntry> for KbEntry {
    fn from(j: JsonEntry) -> KbEntry {
        let mut e = KbEntry::new(&j.key);
        e.intent = j.intent;
        e.tags = j.tags;
        e.needs_person = j.needs_person;
        e.enabled = j.enabled;
        for (lang, qs) in j.questions {
            e.questions
                .extend(qs.into_iter().map(|q| (lang.clone(), q)));
        }
        e.answers = j.answers;
        e
    }
}

impl From<&KbEntry> for JsonEntry {
    fn from(e: &KbEntry) -> JsonEntry {
        let mut questions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (l, q) in &e.questions {
            questions.entry(l.clone()).or_default().push(q.clone());
        }
        JsonEntry {
            key: e.key.clone(),
            intent: e.intent.clone(),
            tags: e.tags.clone(),
            needs_person: e.needs_person,
            enabled: e.enabled,
            questions,
            answers: e.answers.clone(),
        }
    }
}

pub fn parse_jsonl(text: &str) -> Result<Vec<KbEntry>, KbError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let j: JsonEntry =
            serde_json::from_str(line).map_err(|e| bad("jsonl", i + 1, e.to_string()))?;
        let e = KbEntry::from(j);
        e.check()
            .map_err(|err| bad("jsonl", i + 1, err.to_string()))?;
        out.push(e);
    }
    Ok(out)
}

pub fn to_jsonl(entries: &[KbEntry]) -> String {
    let mut s = String::new();
    for e in entries {
        s.push_str(&serde_json::to_string(&JsonEntry::from(e)).unwrap_or_default());
        s.push('\n');
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

const CSV_HEADER: [&str; 7] = [
    "key",
    "intent",
    "lang",
    "question",
    "answer",
    "tags",
    "needs_person",
];

pub fn parse_csv(text: &str) -> Result<Vec<KbEntry>, KbError> {
    let rows = crate::csv_text::records(text).map_err(|e| bad("csv", e.line, e.msg))?;
    let Some(header) = rows.first() else {
        return Ok(Vec::new());
    };
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(ck), Some(cl), Some(cq)) = (col("key"), col("lang"), col("question")) else {
        return Err(bad(
            "csv",
            1,
            format!(
                "header must name at least key, lang, question (columns: {})",
                CSV_HEADER.join(",")
            ),
        ));
    };
    let (ci, ca, ct, cn) = (
        col("intent"),
        col("answer"),
        col("tags"),
        col("needs_person"),
    );
    let mut out: Vec<KbEntry> = Vec::new();
    for (i, r) in rows.iter().enumerate().skip(1) {
        let get = |c: Option<usize>| c.and_then(|c| r.get(c)).map(|s| s.trim()).unwrap_or("");
        let key = get(Some(ck));
        if key.is_empty() {
            return Err(bad("csv", i + 1, "empty key"));
        }
        let pos = match out.iter().position(|e| e.key == key) {
            Some(p) => p,
            None => {
                out.push(KbEntry::new(key));
                out.len() - 1
            }
        };
        let e = &mut out[pos];
        let lang = get(Some(cl)).to_string();
        if !get(ci).is_empty() {
            e.intent = Some(get(ci).to_string());
        }
        if !get(ct).is_empty() {
            e.tags = tags(get(ct));
        }
        if !get(cn).is_empty() {
            e.needs_person =
                yes(get(cn)).ok_or_else(|| bad("csv", i + 1, "needs_person: yes or no"))?;
        }
        if !get(Some(cq)).is_empty() {
            e.questions.push((lang.clone(), get(Some(cq)).to_string()));
        }
        if !get(ca).is_empty() {
            e.answers.insert(lang, get(ca).to_string());
        }
    }
    for e in &out {
        e.check()?;
    }
    Ok(out)
}

pub fn to_csv(entries: &[KbEntry]) -> String {
    let mut s = CSV_HEADER.join(",");
    s.push('\n');
    for e in entries {
        for (lang, q) in &e.questions {
            let fields = [
                e.key.as_str(),
                e.intent.as_deref().unwrap_or(""),
                lang,
                q,
                e.answers.get(lang).map(String::as_str).unwrap_or(""),
                &e.tags.join(", "),
                if e.needs_person { "yes" } else { "no" },
            ];
            s.push_str(&fields.map(csv_field).join(","));
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "# FAQ\n<!-- a note\n over lines -->\n## billing_balance\nintent: billing_balance\ntags: billing, account\n\n### en\nQ: How do I check my balance?\nQ: What do I owe?\nA: Press one to hear it,\nor use the app.\n\n### zh\nQ: 怎么查话费？\nA: 请在应用里查询。\n\n## fraud\nneeds_person: yes\n### en\nQ: Someone used my card, \"quote\"\nA: I'll get you a person.\n";

    #[test]
    fn markdown_jsonl_csv_round_trip() {
        let e = parse_markdown(MD).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].tags, ["billing", "account"]);
        assert_eq!(e[0].answers["en"], "Press one to hear it, or use the app.");
        assert_eq!(e[0].questions.len(), 3);
        assert!(e[1].needs_person && e[1].intent.is_none());
        assert_eq!(parse_markdown(&to_markdown(&e)).unwrap(), e);
        assert_eq!(parse_jsonl(&to_jsonl(&e)).unwrap(), e);
        assert_eq!(parse_csv(&to_csv(&e)).unwrap(), e);
    }

    #[test]
    fn bad_files_name_the_line() {
        let err = parse_markdown("## a\n### en\nhello\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        let err = parse_markdown("## a\n### fr\n").unwrap_err().to_string();
        assert!(err.contains("fr"), "{err}");
        let err = parse_markdown("## a\nintent: x\n").unwrap_err().to_string();
        assert!(err.contains("no question"), "{err}");
        let err = parse_jsonl("{\"key\": 1}\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(parse_csv("a,b\n1,2\n").is_err());
        assert!(parse_csv("key,lang,question\n\"x,en,q\n").is_err());
    }
}
