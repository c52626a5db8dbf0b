//! One pinyin syllable (tone number at the end, 5 or none for the neutral tone) to the
//! phoneme symbols Kokoro's Mandarin voices were trained on: the IPA reading of Standard
//! Chinese (Duanmu 2007; the same choices as misaki's Chinese front end, the reference for
//! Kokoro v1.0) with the tone written as one arrow after the syllable's vowel:
//! 1 `→`, 2 `↗`, 3 `↓`, 4 `↘`, neutral nothing.

/// The tone arrow for a tone number.
fn arrow(tone: u8) -> &'static str {
    match tone {
        1 => "→",
        2 => "↗",
        3 => "↓",
        4 => "↘",
        _ => "",
    }
}

/// Splits "zhong1" into ("zhong", 1); no digit is the neutral tone (5).
pub fn split_tone(syllable: &str) -> (&str, u8) {
    match syllable.as_bytes().last() {
        Some(d @ b'1'..=b'5') => (&syllable[..syllable.len() - 1], d - b'0'),
        _ => (syllable, 5),
    }
}

const INITIALS: [(&str, &str); 21] = [
    ("zh", "ꭧ"),
    ("ch", "ꭧʰ"),
    ("sh", "ʂ"),
    ("b", "p"),
    ("p", "pʰ"),
    ("m", "m"),
    ("f", "f"),
    ("d", "t"),
    ("t", "tʰ"),
    ("n", "n"),
    ("l", "l"),
    ("g", "k"),
    ("k", "kʰ"),
    ("h", "x"),
    ("j", "ʨ"),
    ("q", "ʨʰ"),
    ("x", "ɕ"),
    ("r", "ɻ"),
    ("z", "ʦ"),
    ("c", "ʦʰ"),
    ("s", "s"),
];

/// A final (strict spelling: "iou", "uei", "uen", "ü"...) as (before the tone, after it).
fn final_parts(fin: &str) -> Option<(&'static str, &'static str)> {
    Some(match fin {
        "a" => ("a", ""),
        "ai" => ("ai", ""),
        "an" => ("a", "n"),
        "ang" => ("a", "ŋ"),
        "ao" => ("au", ""),
        "e" => ("ɤ", ""),
        "ei" => ("ei", ""),
        "en" => ("ə", "n"),
        "eng" => ("ə", "ŋ"),
        "i" => ("i", ""),
        "ia" => ("ja", ""),
        "ian" => ("jɛ", "n"),
        "iang" => ("ja", "ŋ"),
        "iao" => ("jau", ""),
        "ie" => ("je", ""),
        "in" => ("i", "n"),
        "iou" => ("jou", ""),
        "ing" => ("i", "ŋ"),
        "iong" => ("jʊ", "ŋ"),
        "ong" => ("ʊ", "ŋ"),
        "ou" => ("ou", ""),
        "u" => ("u", ""),
        "uei" => ("wei", ""),
        "ua" => ("wa", ""),
        "uai" => ("wai", ""),
        "uan" => ("wa", "n"),
        "uen" => ("wə", "n"),
        "uang" => ("wa", "ŋ"),
        "ueng" => ("wə", "ŋ"),
        "uo" | "o" => ("wo", ""),
        "ü" => ("y", ""),
        "üe" => ("ɥe", ""),
        "üan" => ("ɥɛ", "n"),
        "ün" => ("y", "n"),
        _ => return None,
    })
}

/// Rewrites the written forms (y-, w-, -iu, -ui, -un, u for ü after j/q/x) to the strict
/// final, given the initial.
fn strict_final(initial: &str, rest: &str) -> String {
    let rest = rest.replace('v', "ü");
    if initial.is_empty() {
        let full = match rest.as_str() {
            "yi" => "i",
            "ya" => "ia",
            "yan" => "ian",
            "yang" => "iang",
            "yao" => "iao",
            "ye" => "ie",
            "yin" => "in",
            "ying" => "ing",
            "yo" => "iou",
            "you" => "iou",
            "yong" => "iong",
            "yu" => "ü",
            "yue" => "üe",
            "yuan" => "üan",
            "yun" => "ün",
            "wu" => "u",
            "wa" => "ua",
            "wai" => "uai",
            "wan" => "uan",
            "wang" => "uang",
            "wei" => "uei",
            "wen" => "uen",
            "weng" => "ueng",
            "wo" => "uo",
            other => other,
        };
        return full.to_string();
    }
    if matches!(initial, "j" | "q" | "x") {
        if let Some(tail) = rest.strip_prefix('u') {
            return format!("ü{tail}");
        }
    }
    match rest.as_str() {
        "iu" => "iou".into(),
        "ui" => "uei".into(),
        "un" => "uen".into(),
        _ => rest,
    }
}

/// Kokoro phonemes for one syllable such as "zhong1", "nv3", "lü4", "men"; None when it is
/// not Mandarin pinyin.
pub fn syllable(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    let (body, tone) = split_tone(&lower);
    let t = arrow(tone);
    // Interjections and syllabic nasals.
    let special = match body {
        "er" => Some(format!("ɚ{t}")),
        "o" => Some(format!("ɔ{t}")),
        "ê" => Some(format!("ɛ{t}")),
        "m" => Some(format!("m{t}")),
        "n" => Some(format!("n{t}")),
        "ng" => Some(format!("ŋ{t}")),
        "hm" => Some(format!("hm{t}")),
        "hng" => Some(format!("hŋ{t}")),
        _ => None,
    };
    if special.is_some() {
        return special;
    }
    let (initial, ipa_initial) = INITIALS
        .iter()
        .find(|(p, _)| body.starts_with(p) && body.len() > p.len())
        .map(|&(p, i)| (p, i))
        .unwrap_or(("", ""));
    let rest = &body[initial.len()..];
    // zhi chi shi ri, zi ci si: the apical vowel.
    if rest == "i" && matches!(initial, "zh" | "ch" | "sh" | "r" | "z" | "c" | "s") {
        return Some(format!("{ipa_initial}ɨ{t}"));
    }
    let fin = strict_final(initial, rest);
    let (v, coda) = final_parts(&fin)?;
    Some(format!("{ipa_initial}{v}{t}{coda}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syllables_as_kokoro_reads_them() {
        let cases = [
            ("ni3", "ni↓"),
            ("hao3", "xau↓"),
            ("zhong1", "ꭧʊ→ŋ"),
            ("guo2", "kwo↗"),
            ("shi4", "ʂɨ↘"),
            ("zi4", "ʦɨ↘"),
            ("men", "mən"),
            ("men5", "mən"),
            ("nü3", "ny↓"),
            ("nv3", "ny↓"),
            ("qu4", "ʨʰy↘"),
            ("xue2", "ɕɥe↗"),
            ("yuan2", "ɥɛ↗n"),
            ("you3", "jou↓"),
            ("liu4", "ljou↘"),
            ("gui4", "kwei↘"),
            ("dun1", "twə→n"),
            ("wo3", "wo↓"),
            ("yi1", "i→"),
            ("er4", "ɚ↘"),
            ("chang2", "ꭧʰa↗ŋ"),
            ("xiong2", "ɕjʊ↗ŋ"),
            ("bo1", "pwo→"),
            ("ri4", "ɻɨ↘"),
            ("ng2", "ŋ↗"),
        ];
        for (py, want) in cases {
            assert_eq!(syllable(py).as_deref(), Some(want), "{py}");
        }
        assert_eq!(syllable("xyz3"), None);
        assert_eq!(syllable(""), None);
    }
}
