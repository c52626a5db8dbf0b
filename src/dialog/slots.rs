//! Filling an answer's slots (`{caller_number}`, `{time_of_day}`) and naming an entry's
//! topic in a clarifying question.

/// "How do I turn on roaming?" -> "how do I turn on roaming" (for "Do you mean A or B?").
pub(super) fn topic_phrase(q: &str) -> String {
    let t = q.trim().trim_end_matches(['?', '.', '!', '？', '。', '！']);
    let mut c = t.chars();
    match c.next() {
        Some(f)
            if f.is_ascii_uppercase()
                && !t.starts_with("I ")
                && !t.starts_with("SIM")
                && !t.starts_with("PUK") =>
        {
            f.to_ascii_lowercase().to_string() + c.as_str()
        }
        _ => t.to_string(),
    }
}

/// Fills {caller_number} and {time_of_day} in an answer.
/// (in the answer's language: a Chinese answer gets Chinese words for them).
pub fn fill_slots(answer: &str, caller: &str, hour: u32) -> String {
    let zh = answer.chars().any(crate::nlu::text::is_cjk);
    // Only a telephone number is read out digit by digit; a SIP user name ("alice",
    // "anonymous") is not a number the caller could text from.
    let digits = caller.chars().filter(|c| c.is_ascii_digit()).count();
    let is_number = digits >= 3
        && caller
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')'));
    let number: String = if !is_number {
        if zh { "您的电话" } else { "your phone" }.into()
    } else {
        caller
            .chars()
            .map(|c| format!("{c} "))
            .collect::<String>()
            .trim_end()
            .to_string()
    };
    let tod = match (hour, zh) {
        (5..=11, false) => "morning",
        (12..=17, false) => "afternoon",
        (_, false) => "evening",
        (5..=11, true) => "上午",
        (12..=17, true) => "下午",
        (_, true) => "晚上",
    };
    answer
        .replace("{caller_number}", &number)
        .replace("{time_of_day}", tod)
}
