//! Digits in Chinese text, written out the way a Mandarin speaker reads them aloud:
//! amounts and counts as numbers (十二点五元, 百分之二十), times as 九点三十分, years digit
//! by digit (二零二六年), and phone, ticket and account numbers digit by digit with 1 as 幺
//! (幺三八...). A number with no unit after it is read digit by digit: in a contact centre
//! that is a service number, a code or a reference far more often than a quantity.

const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// Measure words after which 2 is 两 (两位, 两天), not 二.
const MEASURES: &str = "位个天周次张条家台部笔本份套项年";

/// Characters after a number that make it a quantity (read as a value).
const UNITS: &str =
    "元块角分毛点个月日号天周年岁次人张条位台部笔家间倍度米克斤公里小时秒分钟期项本份套GgMm兆%％";

/// Digit by digit; `phone` reads 1 as 幺, as Chinese speakers do in numbers.
pub fn digits(s: &str, phone: bool) -> String {
    s.chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| {
            if phone && d == 1 {
                '幺'
            } else {
                DIGITS[d as usize]
            }
        })
        .collect()
}

/// A whole number as a value: 0 -> 零, 12 -> 十二, 105 -> 一百零五, 10010 -> 一万零一十.
pub fn value(n: u64) -> String {
    if n == 0 {
        return "零".into();
    }
    /// 1..=9999 with its zeros: 1050 -> 一千零五十.
    fn section(n: u64) -> String {
        let mut s = String::new();
        let mut zero = false;
        for (div, unit) in [(1000, "千"), (100, "百"), (10, "十"), (1, "")] {
            let d = (n / div) % 10;
            if d == 0 {
                zero |= !s.is_empty();
                continue;
            }
            if zero {
                s.push('零');
                zero = false;
            }
            s.push(DIGITS[d as usize]);
            s.push_str(unit);
        }
        s
    }
    let mut out = String::new();
    let mut zero = false;
    for (size, name) in [(100_000_000u64, "亿"), (10_000, "万"), (1, "")] {
        // Numbers here have at most 12 digits, so the 亿 group is below 10000 too.
        let g = (n / size) % 10_000;
        if g == 0 {
            zero |= !out.is_empty();
            continue;
        }
        if !out.is_empty() && (zero || g < 1000) {
            out.push('零');
        }
        zero = false;
        out.push_str(&section(g));
        out.push_str(name);
    }
    // 十二, not 一十二, at the start of a number.
    match out.strip_prefix("一十") {
        Some(rest) => format!("十{rest}"),
        None => out,
    }
}

/// Rewrites every run of ASCII digits in `text` (with its decimal point, a time's colon or a
/// percent sign) into Chinese characters.
pub fn normalize(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || is_group_sep(&chars, i)) {
            i += 1;
        }
        let whole: String = chars[start..i].iter().collect();
        let plain: String = whole.chars().filter(|c| c.is_ascii_digit()).collect();
        let grouped = whole.contains([' ', '-']);
        // A time: 9:30.
        if !grouped && chars.get(i) == Some(&':') {
            if let Some(min_end) = two_digits_at(&chars, i + 1) {
                let h: u64 = plain.parse().unwrap_or(0);
                let m: u64 = chars[i + 1..min_end]
                    .iter()
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0);
                out.push_str(&value(h));
                out.push('点');
                if m > 0 {
                    if m < 10 {
                        out.push('零');
                    }
                    out.push_str(&value(m));
                    out.push('分');
                }
                i = min_end;
                continue;
            }
        }
        // A decimal: 12.50.
        if !grouped
            && chars.get(i) == Some(&'.')
            && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())
        {
            let mut j = i + 1;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let frac: String = chars[i + 1..j].iter().collect();
            let frac = frac.trim_end_matches('0');
            out.push_str(&read_value(&plain));
            if !frac.is_empty() {
                out.push('点');
                out.push_str(&digits(frac, false));
            }
            i = j;
            continue;
        }
        let next = chars.get(i).copied();
        if matches!(next, Some('%' | '％')) {
            out.push_str("百分之");
            out.push_str(&read_value(&plain));
            i += 1;
            continue;
        }
        let is_year = next == Some('年') && plain.len() == 4;
        let is_quantity = next.is_some_and(|c| UNITS.contains(c));
        if is_year {
            out.push_str(&digits(&plain, false));
        } else if plain == "2" && next.is_some_and(|c| MEASURES.contains(c)) {
            out.push('两');
        } else if plain.len() == 1 {
            // "请按1": a single digit is 一, 幺 belongs to longer numbers.
            out.push_str(&digits(&plain, false));
        } else if is_quantity && !grouped && plain.len() <= 12 {
            out.push_str(&read_value(&plain));
        } else {
            out.push_str(&digits(&plain, true));
        }
    }
    out
}

fn read_value(plain: &str) -> String {
    match plain.parse::<u64>() {
        Ok(n) if plain.len() <= 12 => value(n),
        _ => digits(plain, false),
    }
}

/// A space or hyphen between digit groups (138 0013 8000, 400-123-4567).
fn is_group_sep(chars: &[char], i: usize) -> bool {
    matches!(chars[i], ' ' | '-')
        && i > 0
        && chars[i - 1].is_ascii_digit()
        && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())
}

/// The end of exactly two digits starting at `at`.
fn two_digits_at(chars: &[char], at: usize) -> Option<usize> {
    let ok = chars.get(at).is_some_and(|c| c.is_ascii_digit())
        && chars.get(at + 1).is_some_and(|c| c.is_ascii_digit())
        && !chars.get(at + 2).is_some_and(|c| c.is_ascii_digit());
    ok.then_some(at + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let cases = [
            (0, "零"),
            (7, "七"),
            (10, "十"),
            (12, "十二"),
            (20, "二十"),
            (105, "一百零五"),
            (110, "一百一十"),
            (1000, "一千"),
            (1005, "一千零五"),
            (1050, "一千零五十"),
            (2026, "二千零二十六"),
            (10000, "一万"),
            (10010, "一万零一十"),
            (120000, "十二万"),
            (100_000_000, "一亿"),
            (123_456_789, "一亿二千三百四十五万六千七百八十九"),
        ];
        for (n, want) in cases {
            assert_eq!(value(n), want, "{n}");
        }
    }

    #[test]
    fn numbers_in_text() {
        assert_eq!(
            normalize("发送短信 BAL 到 1234"),
            "发送短信 BAL 到 幺二三四"
        );
        assert_eq!(normalize("费用是12.50元"), "费用是十二点五元");
        assert_eq!(normalize("早上9:30开门"), "早上九点三十分开门");
        assert_eq!(normalize("晚上6:00"), "晚上六点");
        assert_eq!(normalize("2026年12月7日"), "二零二六年十二月七日");
        assert_eq!(normalize("优惠20%"), "优惠百分之二十");
        assert_eq!(
            normalize("号码是13800138000"),
            "号码是幺三八零零幺三八零零零"
        );
        assert_eq!(normalize("拨打400-123-4567"), "拨打四零零幺二三四五六七");
        assert_eq!(normalize("4小时内"), "四小时内");
        assert_eq!(normalize("请按1。"), "请按一。");
        assert_eq!(normalize("还有2位客户"), "还有两位客户");
        assert_eq!(normalize("12月"), "十二月");
        assert_eq!(normalize("没有数字"), "没有数字");
    }
}
