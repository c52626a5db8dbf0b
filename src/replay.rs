//! `voxdesk eval calls`: scripted conversations replayed through the bot's own pipeline (the
//! NLU, the knowledge base and the dialog a call uses; a WAV conversation also through
//! voice activity, turn-taking and Whisper, as `voxdesk talk --wav`), reporting containment,
//! escalations by reason and the turns that caused them.
//!
//! A script is a text file, one caller turn per line, with `#` header lines:
//!
//! ```text
//! # lang: en                 (en or zh; default: guessed from the turns)
//! # expect: contained        (contained, escalated, escalated:<trigger>, or any)
//! # wav: calm-outage.wav     (optional: replay this recording instead of the text turns)
//! Hi.
//! My internet has been slow since yesterday. Is there an outage in my area?
//! Okay, thank you. Goodbye.
//! ```
//!
//! With `--lines`, every line of a file is a call of its own (a neutral set, where any
//! escalation is a false one; or, with `--expect escalated`, a set of angry lines).

use crate::brain::Brain;
use crate::call::conversation::Conversation;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a script says should happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Contained,
    /// Escalated, for this trigger if named ("anger", "requested", ...).
    Escalated(Option<String>),
    Any,
}

#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub lang: String,
    pub expect: Expect,
    pub turns: Vec<String>,
    pub wav: Option<PathBuf>,
}

/// One caller turn as the bot took it.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    pub caller: String,
    pub intent: String,
    pub emotion: String,
    pub anger: f32,
    pub kind: String,
    pub bot: String,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub expect: Expect,
    pub turns: Vec<TurnRecord>,
    /// The trigger and the index of the turn that escalated.
    pub escalation: Option<(String, usize)>,
}

impl Outcome {
    pub fn as_expected(&self) -> bool {
        match (&self.expect, &self.escalation) {
            (Expect::Any, _) => true,
            (Expect::Contained, None) => true,
            (Expect::Escalated(None), Some(_)) => true,
            (Expect::Escalated(Some(w)), Some((t, _))) => w == t,
            _ => false,
        }
    }
}

/// `contained`, `escalated`, `escalated:<trigger>` or `any`.
pub fn parse_expect(v: &str) -> Result<Expect> {
    Ok(match v.trim() {
        "contained" => Expect::Contained,
        "escalated" => Expect::Escalated(None),
        "any" => Expect::Any,
        v => match v.strip_prefix("escalated:") {
            Some(t) if !t.trim().is_empty() => Expect::Escalated(Some(t.trim().to_string())),
            _ => bail!("expect is contained, escalated, escalated:<trigger> or any, not {v:?}"),
        },
    })
}

/// Parses a script (`name` for messages).
pub fn parse(name: &str, text: &str) -> Result<Script> {
    let mut lang = None;
    let mut expect = Expect::Contained;
    let mut turns = Vec::new();
    let mut wav = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(head) = line.strip_prefix('#') else {
            turns.push(line.to_string());
            continue;
        };
        let Some((k, v)) = head.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "lang" => match v {
                "en" | "zh" => lang = Some(v.to_string()),
                _ => bail!("{name}:{}: lang is en or zh, not {v:?}", i + 1),
            },
            "expect" => {
                expect = parse_expect(v).with_context(|| format!("{name}:{}", i + 1))?;
            }
            "wav" => wav = Some(PathBuf::from(v)),
            _ => {}
        }
    }
    if turns.is_empty() && wav.is_none() {
        bail!("{name}: no turns");
    }
    let lang = lang.unwrap_or_else(|| {
        let zh = turns
            .iter()
            .filter(|t| crate::nlu::text::looks_chinese(t))
            .count();
        if zh * 2 > turns.len() { "zh" } else { "en" }.to_string()
    });
    Ok(Script {
        name: name.to_string(),
        lang,
        expect,
        turns,
        wav,
    })
}

/// Replays the text turns of `s` through the brain and a fresh dialog, ten seconds apart.
pub fn run_text(brain: &Brain, s: &Script) -> Outcome {
    let mut conv = Conversation::new(brain.dialog("eval", &s.lang), &s.lang);
    let mut turns = Vec::new();
    let mut escalation = None;
    for (i, text) in s.turns.iter().enumerate() {
        let at = Duration::from_secs(5 + 10 * i as u64);
        let a = brain.analyse(text, &s.lang, None, &conv.context());
        let r = conv.on_heard(&s.lang, &a, at);
        let u = &a.understanding;
        turns.push(TurnRecord {
            caller: text.clone(),
            intent: u.intent.clone(),
            emotion: u.emotion.clone(),
            anger: u.anger,
            kind: r.kind.clone(),
            bot: r.text.clone(),
        });
        if let Some(e) = &r.escalation {
            escalation = Some((e.trigger.as_str().to_string(), i));
            break;
        }
        if r.hang_up {
            break;
        }
    }
    Outcome {
        name: s.name.clone(),
        expect: s.expect.clone(),
        turns,
        escalation,
    }
}

/// The outcome of a recorded conversation replayed as `voxdesk talk --wav` replays it.
pub fn from_exchanges(s: &Script, ex: &[crate::local_line::Exchange]) -> Outcome {
    let turns: Vec<TurnRecord> = ex
        .iter()
        .map(|e| TurnRecord {
            caller: e.caller.clone(),
            intent: e.intent.clone(),
            emotion: e.emotion.clone(),
            anger: e.anger,
            kind: e.kind.clone(),
            bot: e.bot.clone(),
        })
        .collect();
    let escalation = turns.iter().enumerate().find_map(|(i, t)| {
        t.kind
            .strip_prefix("escalate:")
            .map(|trigger| (trigger.to_string(), i))
    });
    Outcome {
        name: s.name.clone(),
        expect: s.expect.clone(),
        turns,
        escalation,
    }
}

/// Reads the scripts of a folder (`*.txt`, sorted by name).
pub fn read_dir(dir: &Path) -> Result<Vec<Script>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| format!("{}", f.display()))?;
        let name = f
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut s = parse(&name, &text)?;
        if let Some(w) = &s.wav {
            s.wav = Some(dir.join(w));
        }
        out.push(s);
    }
    if out.is_empty() {
        bail!("{}: no *.txt scripts", dir.display());
    }
    Ok(out)
}

/// Every non-empty line of `file` as a one-turn call expected to end as `expect`.
pub fn read_lines(file: &Path, expect: Expect) -> Result<Vec<Script>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut s = parse(&format!("line {}", i + 1), line)?;
        s.expect = expect.clone();
        out.push(s);
    }
    if out.is_empty() {
        bail!("{}: no lines", file.display());
    }
    Ok(out)
}

/// The report: each call that went otherwise than expected with the turn that decided it,
/// then containment, escalations by reason, and the mismatches.
pub fn report(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for o in outcomes {
        if let Some((t, _)) = &o.escalation {
            *by_reason.entry(t.as_str()).or_default() += 1;
        }
        if o.as_expected() {
            continue;
        }
        let _ = writeln!(out, "{}: expected {:?}", o.name, o.expect);
        for (i, t) in o.turns.iter().enumerate() {
            let mark = match &o.escalation {
                Some((_, at)) if *at == i => ">>",
                _ => "  ",
            };
            let _ = writeln!(
                out,
                "  {mark} caller: {}  [intent {}, {} {:.2}] -> {}",
                t.caller, t.intent, t.emotion, t.anger, t.kind
            );
        }
    }
    let n = outcomes.len();
    let contained = outcomes.iter().filter(|o| o.escalation.is_none()).count();
    let calm: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.expect == Expect::Contained)
        .collect();
    let false_esc = calm.iter().filter(|o| o.escalation.is_some()).count();
    let want_esc: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| matches!(o.expect, Expect::Escalated(_)))
        .collect();
    let caught = want_esc.iter().filter(|o| o.escalation.is_some()).count();
    let pct = |a: usize, b: usize| {
        if b == 0 {
            0.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    let _ = writeln!(
        out,
        "calls: {n}; stayed with the bot: {contained} ({:.1} %)",
        pct(contained, n)
    );
    let _ = writeln!(
        out,
        "expected to stay: {}; escalated anyway (false escalations): {false_esc} ({:.1} %)",
        calm.len(),
        pct(false_esc, calm.len())
    );
    let _ = writeln!(
        out,
        "expected to escalate: {}; escalated: {caught} ({:.1} %)",
        want_esc.len(),
        pct(caught, want_esc.len())
    );
    let reasons: Vec<String> = by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        out,
        "escalations by reason: {}",
        if reasons.is_empty() {
            "none".to_string()
        } else {
            reasons.join(", ")
        }
    );
    let wrong = outcomes.iter().filter(|o| !o.as_expected()).count();
    let _ = writeln!(out, "as expected: {}/{n}", n - wrong);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_and_outcomes_compare() {
        let s = parse(
            "calm",
            "# lang: en\n# expect: escalated:anger\nHi.\n\nThis is ridiculous.\n",
        )
        .unwrap();
        assert_eq!(s.turns, ["Hi.", "This is ridiculous."]);
        assert_eq!(s.expect, Expect::Escalated(Some("anger".into())));
        assert_eq!(parse("zh", "你好\n我的话费是多少").unwrap().lang, "zh");
        assert!(parse("bad", "# expect: maybe\nhi").is_err());
        assert!(parse("empty", "# lang: en\n").is_err());
        let o = Outcome {
            name: "x".into(),
            expect: Expect::Contained,
            turns: vec![],
            escalation: Some(("anger".into(), 0)),
        };
        assert!(!o.as_expected());
        let r = report(&[o]);
        assert!(r.contains("false escalations): 1 (100.0 %)"), "{r}");
        assert!(r.contains("escalations by reason: anger 1"), "{r}");
    }
}
