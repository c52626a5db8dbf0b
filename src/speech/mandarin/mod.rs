//! The Mandarin text front end for Kokoro's Chinese voices: digits written out the Chinese
//! way, words segmented with jieba, each word's pinyin from the phrase dictionary when the
//! word is in it (so 银行 is yín háng, 重新 chóng xīn) and else character by character, the
//! tone changes speakers make (一 and 不 before other tones, a third tone before a third
//! tone), then the phoneme symbols Kokoro was trained on (see `ipa`). Latin words inside
//! Chinese text are handed to `english`, so "BAL" is spelled, not sung in Chinese tones.

pub mod ipa;
pub mod numbers;

use super::tts::is_han;
use jieba_rs::Jieba;
use pinyin_chars::ToPinyin;
use std::sync::OnceLock;

fn jieba() -> &'static Jieba {
    static J: OnceLock<Jieba> = OnceLock::new();
    J.get_or_init(Jieba::new)
}

/// Readings the dictionaries get wrong in a contact centre's vocabulary (还 in 还款 is
/// huán, "pay back", not hái, "still").
const READINGS: &[(&str, &str)] = &[
    ("还款", "huan2 kuan3"),
    ("还钱", "huan2 qian2"),
    ("还清", "huan2 qing1"),
    ("归还", "gui1 huan2"),
    ("退还", "tui4 huan2"),
    ("重置", "chong2 zhi4"),
    ("重启", "chong2 qi3"),
    ("重装", "chong2 zhuang1"),
    ("重发", "chong2 fa1"),
    ("查询", "cha2 xun2"),
    ("查一下", "cha2 yi1 xia4"),
    ("账单", "zhang4 dan1"),
    ("地址", "di4 zhi3"),
    ("为您", "wei4 nin2"),
    ("转接", "zhuan3 jie1"),
];

/// Characters of a written-out number: 一 among them keeps its first tone (第一, 十一).
const NUMERALS: &str = "零〇一二三四五六七八九十百千万亿两幺点第";

/// One syllable: the character, its toneless pinyin, its tone (1-4, 5 neutral).
#[derive(Debug, Clone, PartialEq)]
struct Syl {
    ch: char,
    base: String,
    tone: u8,
}

/// "yín" -> "yin2"; "men" -> "men" (neutral).
fn marks_to_number(s: &str) -> String {
    let mut base = String::new();
    let mut tone = 0u8;
    for c in s.chars() {
        let (b, t) = match c {
            'ā' => ('a', 1),
            'á' => ('a', 2),
            'ǎ' => ('a', 3),
            'à' => ('a', 4),
            'ē' => ('e', 1),
            'é' => ('e', 2),
            'ě' => ('e', 3),
            'è' => ('e', 4),
            'ī' => ('i', 1),
            'í' => ('i', 2),
            'ǐ' => ('i', 3),
            'ì' => ('i', 4),
            'ō' => ('o', 1),
            'ó' => ('o', 2),
            'ǒ' => ('o', 3),
            'ò' => ('o', 4),
            'ū' => ('u', 1),
            'ú' => ('u', 2),
            'ǔ' => ('u', 3),
            'ù' => ('u', 4),
            'ǖ' => ('ü', 1),
            'ǘ' => ('ü', 2),
            'ǚ' => ('ü', 3),
            'ǜ' => ('ü', 4),
            'ń' => ('n', 2),
            'ň' => ('n', 3),
            'ǹ' => ('n', 4),
            'ḿ' => ('m', 2),
            other => (other, 0),
        };
        base.push(b);
        if t > 0 {
            tone = t;
        }
    }
    if tone > 0 {
        format!("{base}{tone}")
    } else {
        base
    }
}

fn syl_of(ch: char, numbered: &str) -> Syl {
    let (base, tone) = ipa::split_tone(numbered);
    Syl {
        ch,
        base: base.to_string(),
        tone,
    }
}

/// The syllables of one segmented word.
fn word_syllables(word: &str) -> Vec<Syl> {
    let chars: Vec<char> = word.chars().collect();
    if let Some((_, r)) = READINGS.iter().find(|(w, _)| *w == word) {
        return chars
            .iter()
            .zip(r.split(' '))
            .map(|(&c, p)| syl_of(c, p))
            .collect();
    }
    // Character readings first (the most common reading of each), then phrases from the
    // phrase dictionary laid over them.
    let mut out: Vec<Syl> = chars
        .iter()
        .map(|&c| match c.to_pinyin() {
            Some(p) => syl_of(c, p.with_tone_num_end()),
            None => Syl {
                ch: c,
                base: String::new(),
                tone: 5,
            },
        })
        .collect();
    if chars.len() >= 2 {
        let mut from = 0;
        for (text, py) in pinyin_words::match_word_pinyin(word) {
            let seg: Vec<char> = text.chars().collect();
            let readings: Vec<&str> = py.split_whitespace().collect();
            if seg.len() < 2 || readings.len() != seg.len() {
                continue;
            }
            let Some(at) = (from..=chars.len().saturating_sub(seg.len()))
                .find(|&i| chars[i..i + seg.len()] == seg[..])
            else {
                continue;
            };
            for (k, r) in readings.iter().enumerate() {
                out[at + k] = syl_of(seg[k], &marks_to_number(r));
            }
            from = at + seg.len();
        }
    }
    out
}

/// 一 and 不 before other tones, and a third tone before a third tone.
fn sandhi(words: &mut [Vec<Syl>]) {
    // Within a word a run of third tones rises on all but the last (你好, 了解); across
    // words only after a one-syllable word (我想, 很好).
    for w in words.iter_mut() {
        for i in 0..w.len().saturating_sub(1) {
            if w[i].tone == 3 && w[i + 1].tone == 3 {
                w[i].tone = 2;
            }
        }
    }
    for i in 1..words.len() {
        let (a, b) = words.split_at_mut(i);
        let prev = &mut a[i - 1];
        if prev.len() == 1 && prev[0].tone == 3 && b[0].first().is_some_and(|s| s.tone == 3) {
            prev[0].tone = 2;
        }
    }
    let flat: Vec<(usize, usize)> = words
        .iter()
        .enumerate()
        .flat_map(|(wi, w)| (0..w.len()).map(move |si| (wi, si)))
        .collect();
    for (k, &(wi, si)) in flat.iter().enumerate() {
        let s = &words[wi][si];
        let next = flat.get(k + 1).map(|&(a, b)| words[a][b].clone());
        let prev = k.checked_sub(1).map(|p| words[flat[p].0][flat[p].1].ch);
        let tone = match (s.ch, s.base.as_str()) {
            ('不', "bu") => match &next {
                Some(n) if n.tone == 4 => 2,
                _ => 4,
            },
            ('一', "yi") => {
                let in_number = prev.is_some_and(|c| NUMERALS.contains(c))
                    || next.as_ref().is_some_and(|n| NUMERALS.contains(n.ch));
                match &next {
                    _ if in_number => 1,
                    None => 1,
                    Some(n) if n.tone == 4 || n.tone == 5 => 2,
                    Some(_) => 4,
                }
            }
            _ => continue,
        };
        words[wi][si].tone = tone;
    }
}

/// Kokoro phonemes for a run of Chinese characters.
fn han_run(run: &str) -> String {
    let mut words: Vec<Vec<Syl>> = jieba()
        .cut(run, true)
        .into_iter()
        .map(word_syllables)
        .filter(|w| !w.is_empty())
        .collect();
    sandhi(&mut words);
    let mut out = String::new();
    for w in &words {
        let ph: String = w
            .iter()
            .filter_map(|s| {
                let numbered = if s.tone == 5 {
                    s.base.clone()
                } else {
                    format!("{}{}", s.base, s.tone)
                };
                ipa::syllable(&numbered)
            })
            .collect();
        if ph.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&ph);
    }
    out
}

/// Chinese punctuation as the ASCII marks in Kokoro's vocabulary.
fn punctuation(c: char) -> Option<&'static str> {
    Some(match c {
        '，' | '、' | ',' => ",",
        '。' | '．' | '.' => ".",
        '！' | '!' => "!",
        '？' | '?' => "?",
        '：' | ':' => ":",
        '；' | ';' => ";",
        '“' | '「' | '《' | '【' | '"' => "“",
        '”' | '」' | '》' | '】' => "”",
        '（' | '(' => "(",
        '）' | ')' => ")",
        '…' => "…",
        '—' => "—",
        _ => return None,
    })
}

/// Kokoro phonemes for Mandarin `text`; Latin words go through `english`.
pub fn phonemes(text: &str, english: &dyn Fn(&str) -> String) -> String {
    let text = numbers::normalize(text);
    let mut out = String::new();
    let mut han = String::new();
    let mut latin = String::new();
    let flush = |out: &mut String, han: &mut String, latin: &mut String| {
        if !han.is_empty() {
            push_piece(out, &han_run(han));
            han.clear();
        }
        if !latin.trim().is_empty() {
            push_piece(out, &english(latin.trim()));
        }
        latin.clear();
    };
    for c in text.chars() {
        if is_han(c) {
            if !latin.trim().is_empty() {
                flush(&mut out, &mut han, &mut latin);
            }
            latin.clear();
            han.push(c);
        } else if c.is_ascii_alphabetic() || (c == '\'' || c == '-') && !latin.is_empty() {
            if !han.is_empty() {
                flush(&mut out, &mut han, &mut latin);
            }
            latin.push(c);
        } else if c.is_whitespace() {
            if !latin.is_empty() {
                latin.push(' ');
            }
        } else {
            flush(&mut out, &mut han, &mut latin);
            if let Some(p) = punctuation(c) {
                out.push_str(p);
            }
        }
    }
    flush(&mut out, &mut han, &mut latin);
    out.trim().to_string()
}

/// Appends a piece of phonemes with a space before it unless after an opening mark.
fn push_piece(out: &mut String, piece: &str) {
    if piece.is_empty() {
        return;
    }
    if !out.is_empty() && !out.ends_with([' ', '“', '(']) {
        out.push(' ');
    }
    out.push_str(piece);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tones(text: &str) -> Vec<String> {
        let mut words: Vec<Vec<Syl>> = jieba()
            .cut(text, true)
            .into_iter()
            .map(word_syllables)
            .collect();
        sandhi(&mut words);
        words
            .iter()
            .flatten()
            .map(|s| format!("{}{}", s.base, s.tone))
            .collect()
    }

    #[test]
    fn polyphones_follow_the_word() {
        assert_eq!(tones("银行"), ["yin2", "hang2"]);
        assert_eq!(tones("还款"), ["huan2", "kuan3"]);
        assert_eq!(tones("查询"), ["cha2", "xun2"]);
        assert_eq!(tones("六"), ["liu4"]);
        assert_eq!(tones("的"), ["de5"]);
    }

    #[test]
    fn tone_sandhi() {
        // 3-3 in a word and after a one-syllable word.
        assert_eq!(tones("你好"), ["ni2", "hao3"]);
        assert_eq!(tones("很好"), ["hen2", "hao3"]);
        // 不 before a fourth tone, 一 before fourth and other tones, 一 in numbers.
        assert_eq!(tones("不要")[0], "bu2");
        assert_eq!(tones("不行")[0], "bu4");
        assert_eq!(tones("一下")[0], "yi2");
        assert_eq!(tones("一天")[0], "yi4");
        assert_eq!(tones("第一")[1], "yi1");
        assert_eq!(tones("十一")[1], "yi1");
        assert_eq!(tones("统一"), ["tong3", "yi1"]);
    }

    #[test]
    fn a_sentence_with_digits_and_latin() {
        let en = |s: &str| format!("<{s}>");
        let p = phonemes("您可以发送短信 BAL 到 1234 查询余额。", &en);
        assert!(p.contains("<BAL>"), "{p}");
        assert!(p.ends_with('.'), "{p}");
        assert!(p.starts_with("ni↗n"), "{p}");
        // 1234 read as a service number, 1 as 幺.
        assert!(p.contains("jau→"), "{p}");
        assert!(!p.chars().any(|c| c.is_ascii_digit()), "{p}");
        assert_eq!(phonemes("", &en), "");
        assert_eq!(phonemes("。。", &en), "..");
    }
}
