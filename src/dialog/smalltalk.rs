//! What the bot says to small talk (see `nlu::rules`): a greeting for a greeting, the truth
//! to "are you a robot?", patience to "hold on", the last answer again to "say that again".
//! Pure: the caller's language and the last thing the bot said in, the line out.

use crate::nlu::rules::RuleHit;

/// The line for `hit` in Chinese or English, and the reply's kind. `last` is the bot's
/// previous line in this call, if any (repeated for `Repeat`).
pub fn reply(hit: RuleHit, zh: bool, last: Option<&str>) -> (String, &'static str) {
    let t = |en: &str, cn: &str| if zh { cn.to_string() } else { en.to_string() };
    match hit {
        RuleHit::Greeting => (
            t(
                "Hello! How can I help you today?",
                "您好！请问有什么可以帮您？",
            ),
            "smalltalk:greeting",
        ),
        RuleHit::HearMe => (
            t(
                "Yes, I can hear you. How can I help?",
                "我能听到您。请问有什么可以帮您？",
            ),
            "smalltalk:hear-me",
        ),
        RuleHit::Robot => (
            t(
                "I'm an automated assistant. I can help with most questions, and if you'd \
                 rather speak with a person, just say \"agent\".",
                "我是智能语音助手，大部分问题都可以帮您解答。如果您想找人工客服，请说“转人工”。",
            ),
            "smalltalk:robot",
        ),
        RuleHit::Hold => (
            t(
                "Sure, take your time. I'm here when you're ready.",
                "好的，不着急，我在这里等您。",
            ),
            "smalltalk:hold",
        ),
        RuleHit::Repeat => match last.map(str::trim).filter(|l| !l.is_empty()) {
            Some(l) => (
                if zh {
                    format!("好的，我再说一遍。{l}")
                } else {
                    format!("Sure. {l}")
                },
                "smalltalk:repeat",
            ),
            None => (
                t(
                    "Sorry about that. How can I help you today?",
                    "不好意思。请问有什么可以帮您？",
                ),
                "smalltalk:repeat",
            ),
        },
        RuleHit::Thanks => (
            t(
                "You're welcome. Is there anything else I can help with?",
                "不客气。还有什么可以帮您？",
            ),
            "smalltalk:thanks",
        ),
        // Not small talk; the dialog handles them before it asks here.
        RuleHit::AgentRequest | RuleHit::Goodbye => (String::new(), "smalltalk"),
    }
}

/// "No" / "never mind" when the bot had asked something other than "anything else?": the
/// question is dropped, the call goes on.
pub fn never_mind(zh: bool) -> (String, &'static str) {
    let line = if zh {
        "好的。还有什么可以帮您？"
    } else {
        "No problem. What else can I help you with?"
    };
    (line.to_string(), "smalltalk:never-mind")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_in_both_languages_and_the_repeat() {
        let (l, k) = reply(RuleHit::Robot, false, None);
        assert!(
            l.contains("automated assistant") && l.contains("agent"),
            "{l}"
        );
        assert_eq!(k, "smalltalk:robot");
        assert!(reply(RuleHit::Greeting, true, None).0.contains("您好"));
        let (l, _) = reply(
            RuleHit::Repeat,
            false,
            Some("Roaming costs 5 dollars a day."),
        );
        assert_eq!(l, "Sure. Roaming costs 5 dollars a day.");
        let (l, _) = reply(RuleHit::Repeat, false, None);
        assert!(l.contains("How can I help"), "{l}");
    }
}
