//! `voxdesk eval voice`: how well and how fast the configured voices speak. Every line of a
//! file is said by the voice for its language (Chinese characters: the Chinese voice), as
//! the caller hears it (8 kHz), then transcribed by Whisper (the multilingual model for
//! Chinese); the report gives the character error rate (Chinese) or word error rate
//! (English) against the line, the time to the first sentence's audio and the real-time
//! factor.

use crate::config::Config;
use crate::speech::mandarin::numbers;
use crate::speech::stt::{Stt, WhisperStt};
use crate::speech::tts::{has_han, speech_chunks, Tts};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// Edit distance between two sequences.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(x != y);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The characters a Chinese transcript is scored on: digits written out the way they are
/// said (1 as 一, so 幺 and 一 match), letters lowercased, punctuation and spaces dropped.
pub fn cer_units(text: &str) -> Vec<char> {
    numbers::normalize(text)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .map(|c| if c == '幺' { '一' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The words an English transcript is scored on.
pub fn wer_units(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

struct Voice {
    tts: Box<dyn Tts>,
    stt: WhisperStt,
}

pub fn eval_voice(cfg: &Config, lines: &Path) -> Result<String> {
    let text = std::fs::read_to_string(lines)
        .with_context(|| format!("cannot read {}", lines.display()))?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    anyhow::ensure!(!lines.is_empty(), "no lines to say");
    let mut voices: [Option<Voice>; 2] = [None, None];
    let mut out = String::new();
    let (mut errs, mut units) = ([0usize; 2], [0usize; 2]);
    let (mut spoken, mut busy) = ([0f64; 2], [0f64; 2]);
    let mut firsts: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for line in &lines {
        let zh = has_han(line);
        let k = usize::from(zh);
        if voices[k].is_none() {
            let tts = crate::prompts::load_voice(cfg, zh).context(if zh {
                "models.tts_voice_zh"
            } else {
                "models.tts_voice"
            })?;
            let model = if zh {
                &cfg.models.stt_multilingual
            } else {
                &cfg.models.stt
            };
            let stt = WhisperStt::load(&cfg.model_path(model)).context("speech-to-text")?;
            voices[k] = Some(Voice { tts, stt });
        }
        let Some(v) = voices[k].as_ref() else {
            continue;
        };
        let t = Instant::now();
        let mut pcm: Vec<i16> = Vec::new();
        let mut first = None;
        for s in speech_chunks(line) {
            pcm.extend(v.tts.synthesize(&s)?);
            first.get_or_insert(t.elapsed().as_secs_f64());
        }
        let took = t.elapsed().as_secs_f64();
        let secs = pcm.len() as f64 / 8000.0;
        let heard = v.stt.transcribe(
            &crate::speech::to_16k(&pcm),
            if zh { "zh" } else { "en" },
            2,
        )?;
        let (e, n) = if zh {
            let (r, h) = (cer_units(line), cer_units(&heard.text));
            (edit_distance(&r, &h), r.len())
        } else {
            let (r, h) = (wer_units(line), wer_units(&heard.text));
            (edit_distance(&r, &h), r.len())
        };
        errs[k] += e;
        units[k] += n;
        spoken[k] += secs;
        busy[k] += took;
        firsts[k].push(first.unwrap_or(took));
        let _ = writeln!(
            out,
            "{:>5.1}% {} | heard: {} ({secs:.1} s of speech, first audio {:.2} s, rendered in {took:.2} s)",
            100.0 * e as f64 / n.max(1) as f64,
            line,
            heard.text.trim(),
            first.unwrap_or(took),
        );
    }
    for (k, name) in [(1, "Chinese: character"), (0, "English: word")] {
        if units[k] == 0 {
            continue;
        }
        let mut f = firsts[k].clone();
        f.sort_by(|a, b| a.total_cmp(b));
        let _ = writeln!(
            out,
            "{name} error rate {:.1}% ({} errors / {} units, {} lines); real-time factor {:.2}; first audio p50 {:.2} s, max {:.2} s",
            100.0 * errs[k] as f64 / units[k] as f64,
            errs[k],
            units[k],
            f.len(),
            busy[k] / spoken[k].max(0.001),
            f[f.len() / 2],
            f[f.len() - 1],
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_units() {
        assert_eq!(
            edit_distance(
                &cer_units("您好，BAL 到1234。"),
                &cer_units("您好bal到幺二三四")
            ),
            0
        );
        assert_eq!(edit_distance(&cer_units("余额"), &cer_units("娱恶")), 2);
        assert_eq!(
            edit_distance(&wer_units("Hello, there!"), &wer_units("hello there")),
            0
        );
        assert_eq!(edit_distance(&wer_units("a b c"), &wer_units("a c d")), 2);
    }
}
