//! Keyword rules per language: what the model must not be trusted alone with. A caller who
//! asks for a person in so many words ("agent", "人工") reaches one whatever the classifier
//! thinks; Chinese callers are covered by these while the encoder is English-only.

use super::text::{has_keyword, normalise};

/// What a rule recognised in a caller's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleHit {
    /// "I want to talk to a person".
    AgentRequest,
    /// "Goodbye", "that's all".
    Goodbye,
}

impl RuleHit {
    /// The intent label the hit stands for.
    pub fn intent(self) -> &'static str {
        match self {
            RuleHit::AgentRequest => "agent_request",
            RuleHit::Goodbye => "goodbye",
        }
    }
}

const AGENT_EN: &[&str] = &[
    "agent",
    "representative",
    "human",
    "real person",
    "a person",
    "live person",
    "operator",
    "speak to someone",
    "talk to someone",
    "customer service",
    "customer care",
];
const AGENT_ZH: &[&str] = &["人工", "转人工", "真人", "客服人员", "接线员", "找个人"];
const BYE_EN: &[&str] = &[
    "goodbye",
    "good bye",
    "bye",
    "bye bye",
    "that's all",
    "that is all",
];
const BYE_ZH: &[&str] = &["再见", "拜拜", "没有了", "就这些"];

/// The first rule `text` hits, if any (`extra_agent` adds the operator's own phrases).
pub fn match_rules(text: &str, extra_agent: &[String]) -> Option<RuleHit> {
    let norm = normalise(text);
    if norm.is_empty() {
        return None;
    }
    let any = |list: &[&str]| list.iter().any(|k| has_keyword(&norm, k));
    // "Don't transfer me to an agent" is rare on a phone line; "no agent" is still an agent.
    if any(AGENT_EN)
        || any(AGENT_ZH)
        || extra_agent
            .iter()
            .any(|k| has_keyword(&norm, &k.to_lowercase()))
    {
        return Some(RuleHit::AgentRequest);
    }
    // Only a short goodbye ends the call: "bye" in the middle of a long sentence is not one.
    if (any(BYE_EN) || any(BYE_ZH))
        && norm.split_whitespace().count() <= 8
        && norm.chars().count() <= 40
    {
        return Some(RuleHit::Goodbye);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_phrases_in_both_languages() {
        for t in [
            "I want to talk to an agent.",
            "Representative!",
            "Can I speak to a real person please",
            "我要转人工",
            "给我找人工服务",
        ] {
            assert_eq!(match_rules(t, &[]), Some(RuleHit::AgentRequest), "{t}");
        }
        for t in ["Okay, goodbye.", "That's all, thanks.", "好的，再见"] {
            assert_eq!(match_rules(t, &[]), Some(RuleHit::Goodbye), "{t}");
        }
        for t in [
            "How much is roaming in Japan?",
            "I want to bypass the menu",
            "我的话费是多少",
            "",
        ] {
            assert_eq!(match_rules(t, &[]), None, "{t}");
        }
        assert_eq!(
            match_rules("get me a supervisor", &["supervisor".into()]),
            Some(RuleHit::AgentRequest)
        );
    }
}
