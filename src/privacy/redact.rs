//! Redaction of callers' personal data in text, before it is stored, logged or served:
//! card numbers (Luhn-checked), Chinese resident ID numbers (GB 11643 check digit), phone
//! and other long numbers, e-mail addresses, written or spoken ("four one one one ...",
//! "john at example dot com", "一三八..."), plus the operator's own patterns.

use regex::Regex;
use std::borrow::Cow;

/// What replaces each kind of data.
pub const CARD: &str = "[card number]";
pub const ID: &str = "[ID number]";
pub const PHONE: &str = "[number]";
pub const EMAIL: &str = "[e-mail]";

/// Fewest digits in a run that is redacted as a number: a phone number with its area code
/// has 8 or more. Shorter runs are prices, times, counts and the bot's own 7-digit ticket
/// numbers (a 7-digit local number said without its area code is not caught).
const MIN_DIGITS: usize = 8;

#[derive(Debug, Clone)]
pub struct Redactor {
    email: Regex,
    spoken_email: Regex,
    custom: Vec<(Regex, String)>,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(&[]).expect("built-in patterns compile")
    }
}

/// One piece of a number as said or written: the digits it stands for and its byte span.
#[derive(Debug, Clone)]
struct Piece {
    digits: String,
    start: usize,
    end: usize,
}

fn word_digits(w: &str) -> Option<&'static str> {
    Some(match w {
        "zero" | "oh" => "0",
        "one" => "1",
        "two" => "2",
        "three" => "3",
        "four" => "4",
        "five" => "5",
        "six" => "6",
        "seven" => "7",
        "eight" => "8",
        "nine" => "9",
        "ten" => "10",
        "eleven" => "11",
        "twelve" => "12",
        "thirteen" => "13",
        "fourteen" => "14",
        "fifteen" => "15",
        "sixteen" => "16",
        "seventeen" => "17",
        "eighteen" => "18",
        "nineteen" => "19",
        "twenty" => "20",
        "thirty" => "30",
        "forty" => "40",
        "fifty" => "50",
        "sixty" => "60",
        "seventy" => "70",
        "eighty" => "80",
        "ninety" => "90",
        "hundred" => "00",
        _ => return None,
    })
}

fn cjk_digit(c: char) -> Option<char> {
    Some(match c {
        '0'..='9' => c,
        '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32)?,
        '零' | '〇' => '0',
        '一' | '幺' => '1',
        '二' | '两' => '2',
        '三' => '3',
        '四' => '4',
        '五' => '5',
        '六' => '6',
        '七' => '7',
        '八' => '8',
        '九' => '9',
        _ => return None,
    })
}

/// Characters and words that may stand between the pieces of one number.
fn is_separator_char(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '.' | ',' | '(' | ')' | '/' | '+' | '，' | '、' | '－' | '。'
        )
}

fn is_separator_word(w: &str) -> bool {
    matches!(w, "dash" | "and" | "double" | "triple")
}

/// Splits text into number pieces, keeping their byte spans. "double five" is "55".
fn pieces(text: &str) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    let mut repeat = 1;
    let mut i = 0;
    while i < text.len() {
        let c = text[i..].chars().next().unwrap_or(' ');
        if let Some(d) = cjk_digit(c) {
            let n = c.len_utf8();
            // A CJK digit glued to letters is still a digit ("一三八").
            let digits = std::iter::repeat_n(d, repeat).collect();
            repeat = 1;
            out.push(Piece {
                digits,
                start: i,
                end: i + n,
            });
            i += n;
            continue;
        }
        if c.is_ascii_alphabetic() {
            let end = text[i..]
                .find(|c: char| !c.is_ascii_alphabetic())
                .map(|k| i + k)
                .unwrap_or(text.len());
            let w = text[i..end].to_ascii_lowercase();
            if let Some(d) = word_digits(&w) {
                // "twenty three": the tens take the unit.
                let joined = out.last_mut().filter(|p| {
                    p.digits.len() == 2
                        && p.digits.ends_with('0')
                        && p.digits != "00"
                        && d.len() == 1
                        && d != "0"
                        && text[p.end..i].trim().is_empty()
                });
                match joined {
                    Some(p) => {
                        p.digits.pop();
                        p.digits.push_str(d);
                        p.end = end;
                    }
                    None => out.push(Piece {
                        digits: d.repeat(repeat),
                        start: i,
                        end,
                    }),
                }
                repeat = 1;
            } else if w == "double" {
                repeat = 2;
            } else if w == "triple" {
                repeat = 3;
            } else if !is_separator_word(&w) {
                out.push(Piece {
                    digits: String::new(),
                    start: i,
                    end,
                });
            }
            i = end;
            continue;
        }
        if !is_separator_char(c) && !c.is_ascii_digit() {
            out.push(Piece {
                digits: String::new(),
                start: i,
                end: i + c.len_utf8(),
            });
        }
        i += c.len_utf8();
    }
    out
}

fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, &x) in d.iter().rev().enumerate() {
        let mut v = u32::from(x - b'0');
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// GB 11643-1999: 17 digits, then a check character (0-9 or X).
fn china_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = b[..17]
        .iter()
        .zip(W)
        .map(|(&x, w)| u32::from(x - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    b[17].to_ascii_uppercase() == check
}

/// The label for a run of digits (None: too short to be personal data).
fn classify(digits: &str) -> Option<&'static str> {
    let all_digits = digits.bytes().all(|c| c.is_ascii_digit());
    if china_id(digits) {
        return Some(ID);
    }
    if !all_digits || digits.len() < MIN_DIGITS {
        return None;
    }
    if (13..=19).contains(&digits.len()) && luhn(digits.as_bytes()) {
        return Some(CARD);
    }
    Some(PHONE)
}

impl Redactor {
    /// `custom`: (name, regex) pairs from the config; a match becomes `[name]`.
    pub fn new(custom: &[(String, String)]) -> Result<Redactor, regex::Error> {
        Ok(Redactor {
            email: Regex::new(
                r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            )?,
            spoken_email: Regex::new(
                r"(?i)\b[\w.\-]+(?:\s+(?:dot|underscore)\s+[\w\-]+)*\s+(?:at|@)\s+[\w\-]+(?:\s+dot\s+[\w\-]+)*\s+dot\s+(?:com|net|org|edu|gov|io|cn|co|uk|de|fr|jp|info|biz)\b|[A-Za-z0-9._-]+\s*艾特\s*[A-Za-z0-9.-]+\s*点\s*(?:com|cn|net|org)",
            )?,
            custom: custom
                .iter()
                .map(|(name, re)| Ok((Regex::new(re)?, format!("[{name}]"))))
                .collect::<Result<_, regex::Error>>()?,
        })
    }

    /// The text with every piece of personal data replaced by its label.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (re, label) in &self.custom {
            if re.is_match(&out) {
                out = Cow::Owned(re.replace_all(&out, label.as_str()).into_owned());
            }
        }
        if self.email.is_match(&out) {
            out = Cow::Owned(self.email.replace_all(&out, EMAIL).into_owned());
        }
        if self.spoken_email.is_match(&out) {
            out = Cow::Owned(self.spoken_email.replace_all(&out, EMAIL).into_owned());
        }
        match redact_numbers(&out) {
            Some(s) => Cow::Owned(s),
            None => out,
        }
    }
}

/// Replaces runs of number pieces that add up to personal data; None if nothing changed.
fn redact_numbers(text: &str) -> Option<String> {
    let ps = pieces(text);
    let mut spans: Vec<(usize, usize, &'static str)> = Vec::new();
    let mut k = 0;
    while k < ps.len() {
        if ps[k].digits.is_empty() {
            k += 1;
            continue;
        }
        let mut digits = String::new();
        let mut j = k;
        while j < ps.len() && !ps[j].digits.is_empty() {
            digits.push_str(&ps[j].digits);
            j += 1;
        }
        // A resident ID may end in X (a letter piece right after 17 digits).
        let mut end = ps[j - 1].end;
        if digits.len() == 17
            && j < ps.len()
            && text[ps[j].start..ps[j].end].eq_ignore_ascii_case("x")
        {
            digits.push('X');
            end = ps[j].end;
            j += 1;
        }
        if let Some(label) = classify(&digits) {
            // An international prefix goes with the number.
            let start = ps[k].start;
            let before = text[..start].trim_end();
            let start = if before.ends_with('+') {
                before.len() - 1
            } else {
                start
            };
            spans.push((start, end, label));
        }
        k = j;
    }
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (s, e, label) in spans {
        out.push_str(&text[at..s]);
        out.push_str(label);
        at = e;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// Keeps the last `keep` digits of a keyed or spoken value: "4111111111111111" ->
/// "************1111" (how a sensitive slot is stored and read back).
pub fn mask_digits(value: &str, keep: usize) -> String {
    let n = value.chars().count();
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i + keep < n { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        Redactor::default().redact(s).into_owned()
    }

    #[test]
    fn written_numbers() {
        assert_eq!(
            r("my card is 4111 1111 1111 1111 thanks"),
            "my card is [card number] thanks"
        );
        assert_eq!(
            r("4111-1111-1111-1112"),
            "[number]",
            "not Luhn: still a long number"
        );
        assert_eq!(r("call me on +1 (555) 010-4477."), "call me on [number].");
        assert_eq!(
            r("a callback to + 1 5 5 5 0 1 0 0."),
            "a callback to [number]."
        );
        assert_eq!(r("身份证号11010519491231002X"), "身份证号[ID number]");
        assert_eq!(
            r("ID 110105194912310021 ok"),
            "ID [number] ok",
            "a wrong check digit"
        );
        assert_eq!(
            r("it costs 25 dollars for 3 days in 2024"),
            "it costs 25 dollars for 3 days in 2024"
        );
        assert_eq!(r("roaming is 5 a day"), "roaming is 5 a day");
    }

    #[test]
    fn spoken_numbers() {
        assert_eq!(
            r("four one one one one one one one one one one one one one one one"),
            "[card number]"
        );
        assert_eq!(
            r("my number is five five five, oh one oh, double four seven seven please"),
            "my number is [number] please"
        );
        assert_eq!(
            r("it is twenty three eighty five twelve ninety"),
            "it is [number]"
        );
        assert_eq!(r("我的电话是一三八一二三四五六七八"), "我的电话是[number]");
        assert_eq!(r("幺三八 幺二三四 五六七八"), "[number]");
        assert_eq!(
            r("I have two phones and one line"),
            "I have two phones and one line"
        );
    }

    #[test]
    fn emails() {
        assert_eq!(
            r("write to jane.doe@example.co.uk today"),
            "write to [e-mail] today"
        );
        assert_eq!(
            r("it is john dot smith at example dot com"),
            "it is [e-mail]"
        );
        assert_eq!(r("邮箱是zhang艾特qq点com"), "邮箱是[e-mail]");
        assert_eq!(r("I am at home"), "I am at home");
    }

    #[test]
    fn custom_patterns_and_masks() {
        let x = Redactor::new(&[("account".into(), r"ACC-\d+".into())]).unwrap();
        assert_eq!(
            x.redact("account ACC-991 please"),
            "account [account] please"
        );
        assert!(Redactor::new(&[("bad".into(), "(".into())]).is_err());
        assert_eq!(mask_digits("4111111111111111", 4), "************1111");
        assert_eq!(mask_digits("12", 4), "12");
    }

    #[test]
    fn any_text_is_safe() {
        for s in [
            "",
            "\\é",
            "一",
            "double",
            "x",
            "17",
            "oh oh",
            "二〇二四年",
            "😀 4 1 1",
        ] {
            let _ = r(s);
        }
    }
}
