//! Keyword rules per language: what the model must not be trusted alone with. A caller who
//! asks for a person in so many words ("agent", "人工") reaches one whatever the classifier
//! thinks; Chinese callers are covered by these while the encoder is English-only. Short
//! small talk a phone caller really says ("hello?", "can you hear me?", "are you a robot?",
//! "hold on", "say that again", "thanks", "bye") is recognised here too, in both
//! languages, so that it is answered in kind and never scored as a topic or as anger.

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
// Asked as questions about the line itself; "real person" here is not a request for one.
const ROBOT_EN: &[&str] = &[
    "are you a robot",
    "are you a bot",
    "are you a machine",
    "are you a computer",
    "are you human",
    "are you a human",
    "are you a real person",
    "are you real",
    "is this a robot",
    "is this a machine",
    "is this a recording",
    "am i talking to a robot",
    "am i talking to a machine",
    "am i talking to a computer",
    "am i talking to a real person",
    "am i talking to a human",
    "am i speaking to a robot",
    "am i speaking to a machine",
    "am i speaking to a real person",
    "am i speaking to a human",
];
const ROBOT_ZH: &[&str] = &[
    "机器人吗",
    "是机器人",
    "是真人吗",
    "是人吗",
    "是不是真人",
    "是不是机器人",
    "是录音吗",
    "人工智能吗",
];
const HEAR_EN: &[&str] = &[
    "can you hear me",
    "do you hear me",
    "can you hear me now",
    "are you there",
    "is anyone there",
    "is anybody there",
    "anyone there",
    "hello are you there",
];
const HEAR_ZH: &[&str] = &[
    "听得到吗",
    "听得见吗",
    "听到吗",
    "听见吗",
    "能听到我",
    "能听见我",
    "听得到我",
    "听得见我",
    "有人吗",
    "在吗",
];
const REPEAT_EN: &[&str] = &[
    "say that again",
    "say it again",
    "repeat that",
    "repeat it",
    "please repeat",
    "can you repeat",
    "could you repeat",
    "come again",
    "pardon",
    "pardon me",
    "what did you say",
    "i didn't catch that",
    "i did not catch that",
    "i didn't hear you",
    "i didn't get that",
    "one more time",
];
const REPEAT_ZH: &[&str] = &[
    "再说一遍",
    "再说一次",
    "重复一遍",
    "重复一下",
    "没听清",
    "没听清楚",
    "你说什么",
    "什么意思",
    "再讲一遍",
];
const HOLD_EN: &[&str] = &[
    "hold on",
    "hang on",
    "one moment",
    "one second",
    "just a second",
    "just a moment",
    "just a minute",
    "wait a second",
    "wait a minute",
    "wait a moment",
    "give me a second",
    "give me a moment",
    "give me a minute",
    "bear with me",
    "a second",
    "a sec",
    "one sec",
    "a moment",
    "a minute",
];
const HOLD_ZH: &[&str] = &[
    "稍等一下",
    "稍等片刻",
    "请稍等",
    "等一下",
    "等一等",
    "稍等",
    "等等",
    "等我一下",
    "马上",
];
const THANKS_EN: &[&str] = &[
    "thank you",
    "thanks",
    "thank you very much",
    "many thanks",
    "cheers",
];
const THANKS_ZH: &[&str] = &["谢谢", "多谢", "感谢"];
/// Words a greeting (or a small-talk line) may consist of besides its keywords.
const FILLER_EN: &[&str] = &[
    "good",
    "morning",
    "afternoon",
    "evening",
    "there",
    "oh",
    "um",
    "uh",
    "er",
    "ok",
    "okay",
    "yes",
    "yeah",
    "sorry",
    "excuse",
    "me",
    "so",
    "well",
    "very",
    "much",
    "please",
    "right",
    "alright",
    "all",
    "great",
    "voxdesk",
    "ah",
    "could",
    "can",
    "you",
    "i",
    "just",
    "now",
    "again",
    "hmm",
];
const GREET_EN: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "hiya",
    "good morning",
    "good afternoon",
    "good evening",
];
const GREET_ZH: &[&str] = &[
    "你好",
    "您好",
    "喂",
    "嗨",
    "哈喽",
    "早上好",
    "上午好",
    "下午好",
    "晚上好",
    "早",
];
/// (Greetings count as fillers too: "喂，听得到吗", "hello, can you hear me".)
const FILLER_ZH: &[&str] = &[
    "啊",
    "呀",
    "呢",
    "吗",
    "嗯",
    "哦",
    "好的",
    "好",
    "的",
    "请",
    "对",
    "不好意思",
    "麻烦",
    "那个",
    "非常",
    "了",
    "一下",
    "我",
    "你",
];

// Words that carry anger or frustration by themselves (whole words; Chinese anywhere).
const ANGER_EN: &[&str] = &[
    "angry",
    "furious",
    "mad",
    "upset",
    "annoyed",
    "annoying",
    "frustrated",
    "frustrating",
    "ridiculous",
    "unacceptable",
    "outrageous",
    "terrible",
    "horrible",
    "awful",
    "useless",
    "worst",
    "pathetic",
    "incompetent",
    "disgusting",
    "disgraceful",
    "a joke",
    "scam",
    "rip off",
    "ripoff",
    "fed up",
    "sick of",
    "sick and tired",
    "had enough",
    "waste of",
    "wasting my",
    "wasted my",
    "stupid",
    "idiot",
    "idiots",
    "damn",
    "hell",
    "crap",
    "bloody",
    "shit",
    "fuck",
    "fucking",
    "complaint",
    "complain",
    "sue",
    "lawyer",
    "how many times",
    "every single time",
    "still not",
    "still doesn't",
    "still don't",
    "still isn't",
    "again and again",
    "over and over",
    "nobody has",
    "no one has",
    "nobody ever",
    "nobody cares",
    "disappointed",
    "unbelievable",
    "are you kidding",
    "kidding me",
    "nonsense",
    "rubbish",
    "garbage",
    "hate",
    "lied",
    "lying",
    "liar",
    "cheated",
    "refund",
    "compensation",
    "money back",
    "right now",
    "immediately",
    "doesn't work",
    "does not work",
    "never works",
    "stop telling",
    "you people",
    "i demand",
    "for hours",
    "for weeks",
    "for days",
    "fix it now",
    "listen to me",
];
const ANGER_ZH: &[&str] = &[
    "生气",
    "气死",
    "太差",
    "差劲",
    "垃圾",
    "投诉",
    "受够",
    "烦死",
    "真烦",
    "很烦",
    "搞什么",
    "骗子",
    "骗人",
    "坑人",
    "无语",
    "离谱",
    "退钱",
    "退款",
    "赔偿",
    "不满意",
    "失望",
    "愤怒",
    "糟糕",
    "恶心",
    "什么破",
    "破网",
    "太慢了",
    "又坏",
    "又断",
    "又是这样",
    "还是没",
    "还没修",
    "到底怎么",
    "到底什么",
    "一直没",
    "凭什么",
    "好几次",
    "多少次",
    "没人管",
    "浪费我",
    "太过分",
    "过分了",
    "气人",
    "欺负",
    "没用",
    "马上给我",
    "立刻",
    "听我说",
    "不管用",
    "根本没",
    "搞不定",
    "什么玩意",
];

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

/// The first rule `text` hits, if any (`extra_agent` adds the operator's own phrases).
pub fn match_rules(text: &str, extra_agent: &[String]) -> Option<RuleHit> {
    let norm = normalise(text);
    if norm.is_empty() {
        return None;
    }
    let any = |list: &[&str]| list.iter().any(|k| has_keyword(&norm, k));
    let short = norm.split_whitespace().count() <= 10 && norm.chars().count() <= 48;
    // "Are you a real person?" asks what answers; it is not yet a request for a person.
    if short && (any(ROBOT_EN) || any(ROBOT_ZH)) {
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
