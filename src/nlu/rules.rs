//! Keyword rules per language: what the model must not be trusted alone with. A caller who
//! asks for a person in so many words ("agent", "人工") reaches one whatever the classifier
//! thinks; Chinese callers are covered by these while the encoder is English-only. Short
//! small talk a phone caller really says ("hello?", "can you hear me?", "are you a robot?",
//! "hold on", "say that again", "thanks", "bye") is recognised here too, in both
//! languages, so that it is answered in kind and never scored as a topic or as anger.

use super::lexicon::*;
use super::text::{has_keyword, normalise};

/// What a rule recognised in a caller's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleHit {
    /// "I want to talk to a person".
    AgentRequest,
    /// "Goodbye", "that's all".
    Goodbye,
    /// "Are you a robot?", "你是真人吗": answered truthfully, with the offer of a person.
    Robot,
    /// "Can you hear me?", "Hello? Are you there?", "听得到吗".
    HearMe,
    /// "Sorry, say that again", "再说一遍": the last answer again.
    Repeat,
    /// "Hold on a second", "稍等".
    Hold,
    /// "Thank you", "谢谢" (alone).
    Thanks,
    /// "Hi", "你好" (alone: "Hi, my internet is slow" is a question, not a greeting).
    Greeting,
}

impl RuleHit {
    /// The intent label the hit stands for.
    pub fn intent(self) -> &'static str {
        match self {
            RuleHit::AgentRequest => "agent_request",
            RuleHit::Goodbye => "goodbye",
            RuleHit::Thanks => "thanks",
            RuleHit::Greeting => "greeting",
            RuleHit::Robot | RuleHit::HearMe | RuleHit::Repeat | RuleHit::Hold => "smalltalk",
        }
    }

    /// Small talk: answered in kind, never a topic, never an escalation trigger.
    pub fn is_small_talk(self) -> bool {
        !matches!(self, RuleHit::AgentRequest | RuleHit::Goodbye)
    }
}

/// Intents that are not what a call is about (small talk, yes/no, the request for a person).
pub fn is_conversational(intent: &str) -> bool {
    matches!(
        intent,
        "agent_request" | "goodbye" | "thanks" | "affirm" | "deny" | "greeting" | "smalltalk"
    )
}

/// Do the words themselves carry anger or frustration? (Used where the model's emotion
/// must not be trusted alone: a turn the bot did not understand.)
pub fn anger_cue(text: &str) -> bool {
    let norm = normalise(text);
    ANGER_EN
        .iter()
        .chain(ANGER_ZH.iter())
        .any(|k| has_keyword(&norm, k))
}

/// Is `norm` nothing but small talk: each word one of `keys` (as phrases) or a filler?
fn only(norm: &str, keys: &[&str], zh: &[&str]) -> bool {
    let mut rest = format!(" {norm} ");
    let mut hit = false;
    let mut phrases: Vec<&str> = keys.iter().chain(zh.iter()).copied().collect();
    // Longest first: "good morning" before "good", "你好" before "好".
    phrases.sort_by_key(|p| std::cmp::Reverse(p.chars().count()));
    for k in &phrases {
        let pat = if k.is_ascii() {
            format!(" {k} ")
        } else {
            k.to_string()
        };
        if rest.contains(&pat) {
            hit = true;
            rest = rest.replace(&pat, " ");
        }
    }
    let mut fillers: Vec<&str> = [FILLER_EN, FILLER_ZH, GREET_EN, GREET_ZH].concat();
    fillers.sort_by_key(|p| std::cmp::Reverse(p.chars().count()));
    for f in fillers {
        let pat = if f.is_ascii() {
            format!(" {f} ")
        } else {
            f.to_string()
        };
        while rest.contains(&pat) {
            rest = rest.replace(&pat, " ");
        }
    }
    hit && rest.trim().is_empty()
}

/// "你是X人吗" with up to three characters for X (机器人, 真人, and what Whisper makes of
/// them: "你是极其人吗"): the caller asks what they are talking to.
fn asks_what_you_are_zh(norm: &str) -> bool {
    let Some(at) = norm.find("你是") else {
        return false;
    };
    let rest: Vec<char> = norm[at + "你是".len()..].chars().collect();
    (0..=3).any(|x| {
        rest.get(x) == Some(&'人') && matches!(rest.get(x + 1), Some('吗' | '么' | '啊' | '呀'))
    })
}

/// The first rule `text` hits, if any (`extra_agent` adds the operator's own phrases).
pub fn match_rules(text: &str, extra_agent: &[String]) -> Option<RuleHit> {
    let norm = normalise(text);
    if norm.is_empty() {
        return None;
    }
    let any = |list: &[&str]| list.iter().any(|k| has_keyword(&norm, k));
    let short = norm.split_whitespace().count() <= 10 && norm.chars().count() <= 48;
    // "Are you a real person?" asks what answers; it is not yet a request for a person.
    if short && (any(ROBOT_EN) || any(ROBOT_ZH) || asks_what_you_are_zh(&norm)) {
        return Some(RuleHit::Robot);
    }
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
    if !short {
        return None;
    }
    // Each alone (with fillers): "can you hear me? my bill is wrong" is about the bill.
    if only(&norm, HEAR_EN, HEAR_ZH) {
        return Some(RuleHit::HearMe);
    }
    if only(&norm, REPEAT_EN, REPEAT_ZH) || norm == "sorry" || norm == "what" {
        return Some(RuleHit::Repeat);
    }
    if only(&norm, HOLD_EN, HOLD_ZH) {
        return Some(RuleHit::Hold);
    }
    if only(&norm, THANKS_EN, THANKS_ZH) {
        return Some(RuleHit::Thanks);
    }
    if only(&norm, GREET_EN, GREET_ZH) {
        return Some(RuleHit::Greeting);
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

    #[test]
    fn small_talk_in_both_languages() {
        use RuleHit::*;
        for (t, want) in [
            ("Hi.", Some(Greeting)),
            ("Hello there!", Some(Greeting)),
            ("Good morning.", Some(Greeting)),
            ("你好", Some(Greeting)),
            ("喂，您好", Some(Greeting)),
            ("Hello? Can you hear me?", Some(HearMe)),
            ("喂，听得到吗？", Some(HearMe)),
            ("Are you a robot?", Some(Robot)),
            ("Am I talking to a real person?", Some(Robot)),
            ("你是机器人吗？", Some(Robot)),
            ("你是真人吗", Some(Robot)),
            ("你是极其人吗?", Some(Robot)),
            ("你是人吗", Some(Robot)),
            ("你是哪里人", None),
            ("Sorry, could you say that again?", Some(Repeat)),
            ("Pardon?", Some(Repeat)),
            ("你说什么？再说一遍", Some(Repeat)),
            ("Hold on a second.", Some(Hold)),
            ("Okay, just a moment please.", Some(Hold)),
            ("稍等一下", Some(Hold)),
            ("Thank you very much.", Some(Thanks)),
            ("Great, thanks!", Some(Thanks)),
            ("好的，谢谢", Some(Thanks)),
            ("Okay, thank you. Goodbye.", Some(Goodbye)),
            ("Great, thanks. Bye.", Some(Goodbye)),
            // A greeting or thanks in front of a question is the question.
            ("Hi. My internet has been slow since yesterday.", None),
            ("Thanks, and how much is roaming in Japan?", None),
            ("你好，我的话费是多少", None),
            ("I want to hold my number when I move", None),
        ] {
            assert_eq!(match_rules(t, &[]), want, "{t}");
        }
        assert!(Greeting.is_small_talk() && !Goodbye.is_small_talk());
        assert!(anger_cue("This is ridiculous, I've waited for hours!"));
        assert!(anger_cue("你们这是什么破网络"));
        assert!(!anger_cue(
            "How do I turn on rolling and going to the next week"
        ));
        assert!(!anger_cue("I was reading a book about the history of Rome"));
        assert!(!anger_cue(
            "The old clock in the hall still keeps perfect time."
        ));
        assert!(!anger_cue("河水又宽又缓，小船慢慢地漂过老磨坊。"));
        assert!(is_conversational(Hold.intent()) && !is_conversational("billing"));
    }
}
