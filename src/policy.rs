//! The dialog policy seam: what the bot says back to a caller's turn. This is the placeholder
//! policy (a small built-in FAQ, else it repeats back what it understood); the intent/emotion
//! model and the knowledge base replace it behind the same trait.

use crate::speech::stt::Transcript;

/// What to do after a caller's turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Spoken to the caller (empty: say nothing).
    pub text: String,
    /// Hang up once the reply has been spoken.
    pub hang_up: bool,
    /// Short label for logs and the store ("faq:hours", "echo", "not-understood", ...).
    pub kind: String,
}

pub trait Policy: Send {
    fn on_transcript(&mut self, t: &Transcript) -> Reply;
}

/// Built-in answers, matched on keywords (English and Chinese).
struct Faq {
    kind: &'static str,
    keywords: &'static [&'static str],
    en: &'static str,
    zh: &'static str,
    hang_up: bool,
}

const FAQ: &[Faq] = &[
    Faq {
        kind: "goodbye",
        keywords: &["goodbye", "good bye", "bye", "that's all", "that is all", "再见", "拜拜"],
        en: "Thank you for calling. Goodbye.",
        zh: "感谢您的来电，再见。",
        hang_up: true,
    },
    Faq {
        kind: "hours",
        keywords: &["opening hours", "open", "hours", "close", "营业时间", "几点"],
        en: "Our stores are open from nine in the morning to six in the evening, Monday to Saturday. Is there anything else?",
        zh: "我们的营业厅周一至周六早上九点到晚上六点营业。还有什么可以帮您？",
        hang_up: false,
    },
    Faq {
        kind: "balance",
        keywords: &["balance", "bill", "how much do i owe", "余额", "话费", "账单"],
        en: "You can hear your balance by pressing one, or check it in the app under billing. Is there anything else?",
        zh: "您可以在应用的账单页面查询余额。还有什么可以帮您？",
        hang_up: false,
    },
    Faq {
        kind: "person",
        keywords: &["agent", "person", "human", "representative", "operator", "人工", "转人工", "客服"],
        en: "I understand you would like to speak with a person. Transfers are not available on this line yet.",
        zh: "您希望转接人工服务。此线路暂时无法转接。",
        hang_up: false,
    },
];

/// Placeholder policy: built-in FAQ by keyword, else "I heard: ...".
#[derive(Debug, Default)]
pub struct EchoFaqPolicy {
    pub not_understood: String,
}

impl EchoFaqPolicy {
    pub fn new(not_understood: &str) -> Self {
        EchoFaqPolicy {
            not_understood: not_understood.to_string(),
        }
    }

    /// Every fixed answer in `language`, for pre-rendering at start-up.
    pub fn answers(language: &str) -> Vec<&'static str> {
        FAQ.iter()
            .map(|f| if language == "zh" { f.zh } else { f.en })
            .collect()
    }
}

fn normalise(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || !c.is_ascii() {
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

fn has_keyword(norm: &str, kw: &str) -> bool {
    if !kw.is_ascii() {
        return norm.contains(kw);
    }
    // Whole words for Latin text ("open" must not match "opened the app"? it may: keep
    // it simple, but not inside other words: "bye" is not in "bypass").
    let padded = format!(" {norm} ");
    padded.contains(&format!(" {kw} "))
}

impl Policy for EchoFaqPolicy {
    fn on_transcript(&mut self, t: &Transcript) -> Reply {
        let text = t.text.trim();
        if text.is_empty() {
            return Reply {
                text: self.not_understood.clone(),
                hang_up: false,
                kind: "not-understood".into(),
            };
        }
        let norm = normalise(text);
        let zh = t.language == "zh";
        for f in FAQ {
            if f.keywords.iter().any(|k| has_keyword(&norm, k)) {
                return Reply {
                    text: (if zh { f.zh } else { f.en }).to_string(),
                    hang_up: f.hang_up,
                    kind: format!("faq:{}", f.kind),
                };
            }
        }
        let heard = text.trim_end_matches(['.', '!', '?', '。', '！', '？']);
        Reply {
            text: if zh {
                format!("我听到您说：{heard}。")
            } else {
                format!("I heard: {heard}. How else can I help?")
            },
            hang_up: false,
            kind: "echo".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(text: &str, lang: &str) -> Reply {
        let t = Transcript {
            text: text.into(),
            language: lang.into(),
            ..Default::default()
        };
        EchoFaqPolicy::new("Sorry?").on_transcript(&t)
    }

    #[test]
    fn answers_echoes_and_hangs_up() {
        assert_eq!(said("What are your opening hours?", "en").kind, "faq:hours");
        assert_eq!(
            said("I want to check my balance, please.", "en").kind,
            "faq:balance"
        );
        let r = said("Okay, goodbye.", "en");
        assert!(r.hang_up && r.kind == "faq:goodbye");
        assert_eq!(said("我要转人工", "zh").kind, "faq:person");
        let e = said("My router is blinking red.", "en");
        assert_eq!(e.kind, "echo");
        assert_eq!(
            e.text,
            "I heard: My router is blinking red. How else can I help?"
        );
        assert_eq!(said("", "en").text, "Sorry?");
        // Not inside other words.
        assert_eq!(said("I want to bypass the menu", "en").kind, "echo");
    }
}
