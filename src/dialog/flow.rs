//! Configured flows for transactional intents: collect slots (by speech or keypad), confirm,
//! create a ticket, read its number back. Declared in the config (`[[dialog.flows]]`); the
//! sample deployment ships "report an outage".

use crate::nlu::Understanding;

pub use crate::config::flows::{default_flows, FlowConfig, SlotConfig};

/// What the flow wants next.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowStep {
    Say(String),
    /// All slots confirmed: create the ticket, then say `text` with {ticket} filled in.
    Done {
        text: String,
        values: Vec<(String, String)>,
    },
    Cancelled(String),
    /// Too many retries: a person should take over.
    Failed,
}

#[derive(Debug, Clone)]
pub struct FlowState {
    pub cfg: FlowConfig,
    lang: String,
    slot: usize,
    values: Vec<(String, String)>,
    digits: String,
    confirming: bool,
    retries: u32,
}

fn pick<'a>(lang: &str, en: &'a str, zh: &'a str) -> &'a str {
    if lang == "zh" && !zh.is_empty() {
        zh
    } else {
        en
    }
}

/// Digits in what was said: "0", "zero", "oh", "一"/"幺"... Words that are not digits are skipped.
pub fn spoken_digits(text: &str) -> String {
    let mut out = String::new();
    for w in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let d = match w {
            "zero" | "oh" | "o" => Some('0'),
            "one" => Some('1'),
            "two" | "to" | "too" => Some('2'),
            "three" => Some('3'),
            "four" | "for" => Some('4'),
            "five" => Some('5'),
            "six" => Some('6'),
            "seven" => Some('7'),
            "eight" => Some('8'),
            "nine" => Some('9'),
            _ => None,
        };
        if let Some(d) = d {
            out.push(d);
            continue;
        }
        for c in w.chars() {
            let d = match c {
                '0'..='9' => Some(c),
                '零' | '〇' => Some('0'),
                '一' | '幺' => Some('1'),
                '二' | '两' => Some('2'),
                '三' => Some('3'),
                '四' => Some('4'),
                '五' => Some('5'),
                '六' => Some('6'),
                '七' => Some('7'),
                '八' => Some('8'),
                '九' => Some('9'),
                _ => None,
            };
            out.extend(d);
        }
    }
    out
}

fn yes_no(text: &str, u: &Understanding) -> Option<bool> {
    let t = crate::nlu::text::normalise(text);
    let first = t.split_whitespace().next().unwrap_or("");
    if u.intent == "affirm"
        || matches!(
            first,
            "yes" | "yeah" | "yep" | "sure" | "correct" | "ok" | "okay"
        )
        || ["是", "对", "好", "确认", "可以"]
            .iter()
            .any(|k| t.starts_with(k))
    {
        return Some(true);
    }
    if u.intent == "deny"
        || matches!(first, "no" | "nope" | "wrong")
        || ["不", "没", "错"].iter().any(|k| t.starts_with(k))
    {
        return Some(false);
    }
    None
}

impl FlowState {
    /// Starts `cfg`; returns the state and the first question.
    pub fn start(cfg: FlowConfig, lang: &str) -> (FlowState, FlowStep) {
        let s = FlowState {
            cfg,
            lang: lang.to_string(),
            slot: 0,
            values: Vec::new(),
            digits: String::new(),
            confirming: false,
            retries: 0,
        };
        let step = s.ask();
        (s, step)
    }

    fn ask(&self) -> FlowStep {
        match self.cfg.slots.get(self.slot) {
            Some(sl) => FlowStep::Say(pick(&self.lang, &sl.ask_en, &sl.ask_zh).to_string()),
            None => FlowStep::Say(self.fill(pick(
                &self.lang,
                &self.cfg.confirm_en,
                &self.cfg.confirm_zh,
            ))),
        }
    }

    /// Whether what the caller keys or says now is for a sensitive slot.
    pub fn collecting_sensitive(&self) -> bool {
        !self.confirming && self.cfg.slots.get(self.slot).is_some_and(|s| s.sensitive)
    }

    fn is_sensitive(&self, name: &str) -> bool {
        self.cfg.slots.iter().any(|s| s.name == name && s.sensitive)
    }

    /// The values as they may be kept: sensitive ones masked to their last four characters.
    fn kept_values(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| {
                let v = if self.is_sensitive(k) {
                    crate::privacy::redact::mask_digits(v, 4)
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// `text` with {slot} placeholders replaced (digits read one by one; a sensitive slot's
    /// last four only).
    pub fn fill(&self, text: &str) -> String {
        let mut s = text.to_string();
        for (k, v) in &self.values {
            let tail: String;
            let v = if self.is_sensitive(k) {
                let n = v.chars().count();
                tail = v.chars().skip(n.saturating_sub(4)).collect();
                &tail
            } else {
                v
            };
            let is_digits = !v.is_empty() && v.chars().all(|c| c.is_ascii_digit());
            let spoken = if is_digits {
                v.chars().map(String::from).collect::<Vec<_>>().join(" ")
            } else {
                v.clone()
            };
            s = s.replace(&format!("{{{k}}}"), &spoken);
        }
        s
    }

    fn retry(&mut self) -> FlowStep {
        self.retries += 1;
        if self.retries > self.cfg.max_retries {
            FlowStep::Failed
        } else {
            self.ask()
        }
    }

    fn set(&mut self, value: String) -> FlowStep {
        let name = self.cfg.slots[self.slot].name.clone();
        self.values.retain(|(k, _)| *k != name);
        self.values.push((name, value));
        self.slot += 1;
        self.digits.clear();
        if self.slot >= self.cfg.slots.len() {
            self.confirming = true;
        }
        self.ask()
    }

    fn confirm(&mut self, yes: bool) -> FlowStep {
        if yes {
            return FlowStep::Done {
                text: self.fill(pick(&self.lang, &self.cfg.done_en, &self.cfg.done_zh)),
                values: self.kept_values(),
            };
        }
        // Start over once; a second "no" ends the flow.
        self.retries += 1;
        if self.retries > 1 {
            return FlowStep::Cancelled(
                pick(&self.lang, &self.cfg.cancelled_en, &self.cfg.cancelled_zh).to_string(),
            );
        }
        self.confirming = false;
        self.slot = 0;
        self.values.clear();
        self.ask()
    }

    /// The caller said `text`.
    pub fn on_text(&mut self, text: &str, u: &Understanding) -> FlowStep {
        if self.confirming {
            return match yes_no(text, u) {
                Some(yes) => self.confirm(yes),
                None => self.retry(),
            };
        }
        let slot = &self.cfg.slots[self.slot];
        if slot.kind == "digits" {
            let d = spoken_digits(text);
            if d.len() >= slot.min_digits.max(1) {
                return self.set(d);
            }
            return self.retry();
        }
        let v = text
            .trim()
            .trim_end_matches(['.', '。', '!', '?'])
            .to_string();
        if v.is_empty() {
            return self.retry();
        }
        self.set(v)
    }

    /// The caller pressed `digit`. None: the key means nothing here.
    pub fn on_dtmf(&mut self, digit: char) -> Option<FlowStep> {
        if self.confirming {
            return match digit {
                '1' => Some(self.confirm(true)),
                '2' => Some(self.confirm(false)),
                _ => None,
            };
        }
        let slot = self.cfg.slots.get(self.slot)?;
        if slot.kind != "digits" {
            return None;
        }
        match digit {
            '#' if self.digits.len() >= slot.min_digits.max(1) => {
                let d = std::mem::take(&mut self.digits);
                Some(self.set(d))
            }
            '#' => {
                self.digits.clear();
                Some(self.retry())
            }
            '*' => {
                self.digits.clear();
                None
            }
            d if d.is_ascii_digit() => {
                self.digits.push(d);
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(intent: &str) -> Understanding {
        Understanding {
            intent: intent.into(),
            ..Default::default()
        }
    }

    #[test]
    fn collects_confirms_and_finishes() {
        let (mut f, step) = FlowState::start(default_flows().remove(0), "en");
        assert!(matches!(step, FlowStep::Say(s) if s.contains("address")));
        let step = f.on_text("12 Station Road.", &u("unknown"));
        assert!(matches!(step, FlowStep::Say(s) if s.contains("number")));
        // Keyed digits, ended by #.
        for d in "0412345678".chars() {
            assert_eq!(f.on_dtmf(d), None);
        }
        let step = f.on_dtmf('#').unwrap();
        let FlowStep::Say(confirm) = step else {
            panic!()
        };
        assert!(
            confirm.contains("12 Station Road") && confirm.contains("0 4 1 2 3 4 5 6 7 8"),
            "{confirm}"
        );
        let FlowStep::Done { text, values } = f.on_text("Yes please.", &u("affirm")) else {
            panic!()
        };
        assert!(text.contains("{ticket}"));
        assert_eq!(values[0], ("address".into(), "12 Station Road".into()));
        assert_eq!(values[1], ("contact_number".into(), "0412345678".into()));
    }

    #[test]
    fn spoken_digits_retries_and_cancel() {
        assert_eq!(spoken_digits("oh four one two, three 4 5"), "0412345");
        assert_eq!(spoken_digits("一三八零零一三"), "1380013");
        let (mut f, _) = FlowState::start(default_flows().remove(0), "zh");
        f.on_text("人民路八号", &u("unknown"));
        // Too few digits: asked again, then too many retries fail the flow.
        assert!(
            matches!(f.on_text("不知道", &u("unknown")), FlowStep::Say(s) if s.contains("号码"))
        );
        assert!(matches!(f.on_text("嗯", &u("unknown")), FlowStep::Say(_)));
        assert_eq!(f.on_text("嗯", &u("unknown")), FlowStep::Failed);
        // "No" at the confirmation starts over once, then cancels.
        let (mut f, _) = FlowState::start(default_flows().remove(0), "en");
        f.on_text("1 Main Street", &u("unknown"));
        f.on_text("zero four one two three four five six", &u("unknown"));
        assert!(matches!(f.on_dtmf('2'), Some(FlowStep::Say(s)) if s.contains("address")));
        f.on_text("2 Main Street", &u("unknown"));
        f.on_text("0412345678", &u("unknown"));
        assert!(matches!(
            f.on_text("No.", &u("deny")),
            FlowStep::Cancelled(_)
        ));
    }
}
