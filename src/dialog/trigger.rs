//! Why a call goes to a person (`Trigger`), and the checks that fire them on a caller turn
//! whatever was asked: a request for a person, a sensitive topic, anger (from the models,
//! the words or the voice; rising over turns), the same question again, a long call.

use super::{Analysis, Dialog};
use crate::config::DialogConfig;
use crate::nlu::rules::{anger_cue, RuleHit};
use crate::nlu::UNKNOWN;
use crate::vector::dot;
use std::time::Duration;

/// Anger from the models alone at or above this counts on a turn with no intent at all, if
/// whisper heard it well: "I've called four times about this and every time I get a
/// different answer" names no intent and scores 1.0. Measured with the off-topic lines of
/// the training set labelled neutral: 0 of the 302 neutral sentences reach 0.75. A turn
/// with a weak intent is not counted: that is most often a misheard question ("how much
/// data have I used this month" heard as "how much they don't like you, this month":
/// billing_high_bill 0.49, angry 0.99), and it is asked again.
const STRONG_ANGER: f32 = 0.75;

/// Why a call goes to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Requested,
    Keypad,
    Anger,
    AngerRising,
    NotUnderstood,
    Sensitive,
    NeedsPerson,
    Repeated,
    LongCall,
    FlowFailed,
}

impl Trigger {
    pub const ALL: [Trigger; 10] = [
        Trigger::Requested,
        Trigger::Keypad,
        Trigger::Anger,
        Trigger::AngerRising,
        Trigger::NotUnderstood,
        Trigger::Sensitive,
        Trigger::NeedsPerson,
        Trigger::Repeated,
        Trigger::LongCall,
        Trigger::FlowFailed,
    ];

    /// The English line said before a handoff for this trigger (fixed: pre-rendered).
    /// The line said before a handover, in `lang` ("en" or "zh").
    pub fn handoff_line(self, d: &DialogConfig, lang: &str) -> String {
        let line = if lang == "zh" && !d.transfer_zh.is_empty() {
            &d.transfer_zh
        } else {
            &d.transfer_en
        };
        line.replace("{reason}", self.reason(lang))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Requested => "requested",
            Trigger::Keypad => "keypad",
            Trigger::Anger => "anger",
            Trigger::AngerRising => "anger-rising",
            Trigger::NotUnderstood => "not-understood",
            Trigger::Sensitive => "sensitive-intent",
            Trigger::NeedsPerson => "needs-person",
            Trigger::Repeated => "repeated-question",
            Trigger::LongCall => "long-call",
            Trigger::FlowFailed => "flow-failed",
        }
    }

    pub(super) fn reason(self, lang: &str) -> &'static str {
        let zh = lang == "zh";
        match (self, zh) {
            (Trigger::Requested | Trigger::Keypad, false) => "as you asked",
            (Trigger::Requested | Trigger::Keypad, true) => "",
            (Trigger::Anger | Trigger::AngerRising, false) => "and make this right",
            (Trigger::Anger | Trigger::AngerRising, true) => "，尽快为您解决",
            (Trigger::NotUnderstood | Trigger::Repeated, false) => "better than I can",
            (Trigger::NotUnderstood | Trigger::Repeated, true) => "，更好地为您服务",
            (Trigger::Sensitive | Trigger::NeedsPerson, false) => "with this",
            (Trigger::Sensitive | Trigger::NeedsPerson, true) => "，处理您的问题",
            (Trigger::LongCall | Trigger::FlowFailed, false) => "with the rest",
            (Trigger::LongCall | Trigger::FlowFailed, true) => "，继续为您处理",
        }
    }

    /// Plain words for the summary.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Trigger::Requested => "the caller asked for a person",
            Trigger::Keypad => "the caller pressed the key for a person",
            Trigger::Anger => "the caller is angry or frustrated",
            Trigger::AngerRising => "the caller's frustration kept rising",
            Trigger::NotUnderstood => "the bot did not understand the caller repeatedly",
            Trigger::Sensitive => "the topic needs a person (sensitive intent)",
            Trigger::NeedsPerson => "the knowledge base says this needs a person",
            Trigger::Repeated => "the caller repeated the same question",
            Trigger::LongCall => "the call with the bot ran long",
            Trigger::FlowFailed => "the caller could not complete a request with the bot",
        }
    }
}

impl Dialog {
    /// The triggers that hand the call to a person whatever was asked.
    pub(super) fn triggers(&self, a: &Analysis, at: Duration) -> Option<Trigger> {
        let u = &a.understanding;
        let d = &self.s.dialog;
        // Anger counts on a turn the bot understood (an entry that answers it, or an
        // intent; off-topic talk is no intent, see `nlu::OUT_OF_SCOPE`), or on words that
        // carry it: speech the models cannot place (garbled, or about something else) is
        // asked again, not handed over as angry, unless the models are very sure
        // (`STRONG_ANGER`). The emotion head learnt from callers' lines and from off-topic
        // lines labelled neutral; before those, its scores elsewhere were noise ("The rain
        // stopped and the sun came out again", frustrated 0.94).
        // Thanks, yes, hello, goodbye and small talk are understood but give the caller
        // nothing to be angry about: there only the words count ("多谢，我知道怎么弄了",
        // thanks, scored frustrated 0.53). A "no" or a request for a person can be angry.
        let polite = matches!(
            u.intent.as_str(),
            "thanks" | "affirm" | "goodbye" | "greeting"
        ) || u.rule.is_some_and(|r| r.is_small_talk());
        // Words whisper was unsure of are not trusted to be angry by the models alone.
        let heard_well = a
            .heard_confidence
            .is_none_or(|c| c >= d.min_heard_confidence);
        // An answering entry must be as sure as a handover needs: an entry just over the
        // answering bar is often a misheard question that happens to land near one ("how
        // much data..." heard as "how much they don't like you", 0.53), and the bot answers
        // it anyway.
        let understood = !polite
            && heard_well
            && (u.rule.is_some()
                || a.hits
                    .first()
                    .is_some_and(|h| h.score >= d.kb_threshold.max(d.handover_confidence))
                || (u.intent != UNKNOWN && u.intent_confidence >= d.handover_confidence));
        let strong = !polite && heard_well && u.intent == UNKNOWN && u.anger >= STRONG_ANGER;
        let angry_words = understood || strong || anger_cue(&u.text);
        // The rules set the intent with certainty; the model alone must be sure enough.
        let sure = u.rule.is_some() || u.intent_confidence >= d.handover_confidence;
        if u.rule == Some(RuleHit::AgentRequest) || (u.intent == "agent_request" && sure) {
            return Some(Trigger::Requested);
        }
        if d.sensitive_intents.contains(&u.intent) && sure {
            return Some(Trigger::Sensitive);
        }
        if u.anger >= self.s.anger_threshold && angry_words {
            return Some(Trigger::Anger);
        }
        if d.anger_rising && angry_words {
            let prev: Vec<f32> = self
                .turns
                .iter()
                .rev()
                .skip(1)
                .take(2)
                .map(|t| t.anger)
                .collect();
            // Rising in all by at least half the threshold: calm turns' scores wander by
            // 0.1-0.2 (measured: 0.02-0.32 for calm questions of one call).
            if prev.len() == 2
                && prev[1] < prev[0]
                && prev[0] < u.anger
                && u.anger - prev[1] >= self.s.anger_threshold / 2.0
                && u.anger >= self.s.anger_threshold / 2.0
            {
                return Some(Trigger::AngerRising);
            }
        }
        if u.embedding.iter().any(|&v| v != 0.0) && u.text.split_whitespace().count() >= 3 {
            let repeated = self.turns.iter().rev().skip(1).any(|t| {
                t.answered
                    && t.embedding.len() == u.embedding.len()
                    && dot(&t.embedding, &u.embedding) >= d.repeat_similarity
            });
            if repeated {
                return Some(Trigger::Repeated);
            }
        }
        if d.max_call_secs > 0 && at.as_secs() >= d.max_call_secs {
            return Some(Trigger::LongCall);
        }
        None
    }
}
