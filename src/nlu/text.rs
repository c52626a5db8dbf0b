//! Text normalisation shared by the keyword rules and the lexical knowledge-base search.

/// Lower case, punctuation to spaces, single spaces. CJK characters are kept as they are.
pub fn normalise(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || !c.is_ascii() && !is_cjk_punct(c) {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_cjk_punct(c: char) -> bool {
    matches!(
        c,
        '。' | '，'
            | '！'
            | '？'
            | '、'
            | '；'
            | '：'
            | '“'
            | '”'
            | '（'
            | '）'
            | '…'
            | '‘'
            | '’'
    )
}

pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

/// True when `text` is mostly Chinese characters.
pub fn looks_chinese(text: &str) -> bool {
    let cjk = text.chars().filter(|&c| is_cjk(c)).count();
    let latin = text.chars().filter(|c| c.is_ascii_alphabetic()).count();
    cjk > 0 && cjk * 2 >= latin
}

/// Does normalised text `norm` contain keyword `kw`? Latin keywords match whole words
/// ("bye" is not in "bypass"); Chinese ones anywhere.
pub fn has_keyword(norm: &str, kw: &str) -> bool {
    if !kw.is_ascii() {
        return norm.contains(kw);
    }
    let padded = format!(" {norm} ");
    padded.contains(&format!(" {kw} "))
}

/// Terms for the full-text index: Latin words as they are (the index stems them), runs of
/// Chinese characters as overlapping bigrams (and single characters standing alone), since
/// Chinese has no spaces between words.
pub fn index_terms(text: &str) -> Vec<String> {
    let norm = normalise(text);
    let mut out = Vec::new();
    let mut run: Vec<char> = Vec::new();
    let flush = |run: &mut Vec<char>, out: &mut Vec<String>| {
        match run.len() {
            0 => {}
            1 => out.push(run[0].to_string()),
            _ => out.extend(run.windows(2).map(|w| w.iter().collect::<String>())),
        }
        run.clear();
    };
    let mut word = String::new();
    for c in norm.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            if c == ' ' {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            } else if c != '\'' {
                word.push(c);
            }
        }
    }
    flush(&mut run, &mut out);
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Size of the hashed character-feature space.
pub const CHAR_FEATURES: usize = 2048;

/// Hashed character features for Chinese text (the sentence encoder is English-only):
/// single characters, character bigrams and Latin words, term counts L2-normalised.
pub fn char_features(text: &str) -> Vec<f32> {
    fn bucket(s: &str) -> usize {
        // FNV-1a: stable across runs and builds (the trained weights depend on it).
        let mut h: u32 = 0x811c_9dc5;
        for b in s.bytes() {
            h ^= b as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
        h as usize % CHAR_FEATURES
    }
    let mut v = vec![0f32; CHAR_FEATURES];
    let norm = normalise(text);
    let chars: Vec<char> = norm.chars().filter(|c| is_cjk(*c)).collect();
    for c in &chars {
        v[bucket(&c.to_string())] += 1.0;
    }
    for t in index_terms(&norm) {
        v[bucket(&t)] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_and_keywords() {
        assert_eq!(
            normalise("  Hello, WORLD!! it's me "),
            "hello world it's me"
        );
        assert_eq!(
            index_terms("我要查话费 please"),
            ["我要", "要查", "查话", "话费", "please"]
        );
        assert_eq!(index_terms("Don't roam!"), ["dont", "roam"]);
        assert!(has_keyword("i want to talk to an agent", "agent"));
        assert!(!has_keyword("i want to bypass it", "bye"));
        assert!(has_keyword("我要转人工服务", "转人工"));
        assert!(looks_chinese("我要转人工 ok"));
        assert!(!looks_chinese("I want an agent"));
    }
}
