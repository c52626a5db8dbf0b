//! `[nlu]` and `[dialog]`: how turns are understood and when the bot answers, asks again, or
//! hands the caller to a person.

use super::{invalid, ConfigError};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NluConfig {
    /// Run the sentence encoder (models.encoder). Off: keyword rules and full-text search only.
    pub enabled: bool,
    /// Intent probability under which a turn counts as not understood.
    pub intent_threshold: f32,
    /// Anger/frustration score (0..1, text emotion lifted by the voice) that escalates.
    pub anger_threshold: f32,
    /// More labelled examples (JSONL or CSV: text, intent, emotion, lang) for `voxdesk train`,
    /// used together with the bundled set and the knowledge base's questions.
    pub train_set: Option<PathBuf>,
    /// Phrases that mean "a person, please" besides the built-in ones (any language).
    pub agent_phrases: Vec<String>,
    /// Seconds between checks for newly trained heads or knowledge-base changes.
    pub reload_secs: u64,
}

impl Default for NluConfig {
    fn default() -> Self {
        NluConfig {
            enabled: true,
            intent_threshold: 0.4,
            anger_threshold: 0.4,
            train_set: None,
            agent_phrases: Vec::new(),
            reload_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialogConfig {
    /// Knowledge-base score (0..1) an answer needs.
    pub kb_threshold: f32,
    /// When the two best entries are closer than this, ask which one the caller means.
    pub clarify_margin: f32,
    /// Consecutive turns not understood before a person takes over.
    pub max_not_understood: u32,
    /// Escalate when the anger score rose over three turns, by at least half the threshold
    /// in all, to at least half the threshold.
    pub anger_rising: bool,
    /// The same question asked again (embedding similarity at least this) escalates.
    pub repeat_similarity: f32,
    /// Calls longer than this (seconds) with the bot are handed to a person (0: never).
    pub max_call_secs: u64,
    /// Intents that always go to a person.
    pub sensitive_intents: Vec<String>,
    /// Probability the intent model needs before its "agent_request" or a sensitive intent
    /// hands the call over (keyword rules and keypad 0 need none): a person's time is dearer
    /// than a second try, and a garbled transcript is often read as "I want...".
    pub handover_confidence: f32,
    /// Whisper's mean token probability under which a transcript's words are too unsure for
    /// the models' anger alone to hand the call over (words that carry anger still do).
    pub min_heard_confidence: f32,
    /// DTMF key that asks for a person.
    pub agent_digit: String,
    /// Said before the handoff; {reason} is replaced by why.
    pub transfer_en: String,
    pub transfer_zh: String,
    /// Asked when two answers fit: {a} and {b} are their topics.
    pub clarify_en: String,
    pub clarify_zh: String,
    /// Said when the intent was not understood.
    pub rephrase_en: String,
    pub rephrase_zh: String,
    /// Said when no person can take the call (until routing, every escalation ends so):
    /// {caller_number} and {ticket} are filled in.
    pub no_agent_en: String,
    pub no_agent_zh: String,
    /// Flows for transactional intents (none configured: the sample "report an outage").
    pub flows: Vec<super::flows::FlowConfig>,
}

impl Default for DialogConfig {
    fn default() -> Self {
        DialogConfig {
            kb_threshold: 0.5,
            clarify_margin: 0.03,
            max_not_understood: 2,
            anger_rising: true,
            repeat_similarity: 0.93,
            max_call_secs: 600,
            sensitive_intents: vec!["complaint".into(), "cancel_service".into(), "fraud".into()],
            handover_confidence: 0.6,
            min_heard_confidence: 0.35,
            agent_digit: "0".into(),
            transfer_en: "I'll connect you with a colleague who can help {reason}. Please stay on the line.".into(),
            transfer_zh: "我为您转接人工客服{reason}，请不要挂机。".into(),
            clarify_en: "Do you mean {a}, or {b}?".into(),
            clarify_zh: "请问您是想了解{a}，还是{b}？".into(),
            rephrase_en: "Sorry, I'm not sure I understood. Could you say that another way?".into(),
            rephrase_zh: "抱歉，我没有听明白，您能换个说法吗？".into(),
            no_agent_en: "All our colleagues are busy right now, so I have booked a callback to {caller_number}. Your reference number is {ticket}. Thank you for calling, goodbye.".into(),
            no_agent_zh: "目前客服人员都在忙，我已为您登记回电，号码是{caller_number}，参考编号{ticket}。感谢您的来电，再见。".into(),
            flows: Vec::new(),
        }
    }
}

/// `[llm]`: optional generated answers from a chat endpoint on the premises.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    pub enabled: bool,
    /// OpenAI-compatible chat completions URL (plain http; llama.cpp server, vLLM, Ollama).
    pub url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer` when set.
    pub api_key: String,
    /// The whole request, connect to last byte; after it the bot asks to rephrase.
    pub timeout_ms: u64,
    pub max_tokens: u32,
    /// Instructions; the closest knowledge-base entries are appended as the facts.
    pub system_en: String,
    pub system_zh: String,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            enabled: false,
            url: "http://127.0.0.1:8081/v1/chat/completions".into(),
            model: "local".into(),
            api_key: String::new(),
            timeout_ms: 2500,
            max_tokens: 120,
            system_en: "You are the telephone assistant of a telecom operator. Answer in one or two short sentences that will be spoken aloud, using only the facts below. If the facts do not answer the question, reply with nothing.".into(),
            system_zh: "你是电信运营商的电话助理。只根据下面的事实，用一两句简短的话回答，回答会被朗读出来。如果事实无法回答问题，就不要回答。".into(),
        }
    }
}

pub(super) fn validate(nlu: &NluConfig, d: &DialogConfig) -> Result<(), ConfigError> {
    for (key, v) in [
        ("nlu.intent_threshold", nlu.intent_threshold),
        ("nlu.anger_threshold", nlu.anger_threshold),
        ("dialog.kb_threshold", d.kb_threshold),
        ("dialog.clarify_margin", d.clarify_margin),
        ("dialog.repeat_similarity", d.repeat_similarity),
        ("dialog.handover_confidence", d.handover_confidence),
        ("dialog.min_heard_confidence", d.min_heard_confidence),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(invalid(key, format!("{v} is outside 0..=1")));
        }
    }
    if !(1..=3600).contains(&nlu.reload_secs) {
        return Err(invalid("nlu.reload_secs", "between 1 and 3600"));
    }
    if d.max_not_understood == 0 {
        return Err(invalid("dialog.max_not_understood", "at least 1"));
    }
    if !matches!(
        d.agent_digit.as_str(),
        "" | "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "*" | "#"
    ) {
        return Err(invalid(
            "dialog.agent_digit",
            "one DTMF key (0-9, * or #), or empty for none",
        ));
    }
    for (i, f) in d.flows.iter().enumerate() {
        let key = format!("dialog.flows[{i}]");
        if f.intent.is_empty() || f.slots.is_empty() {
            return Err(invalid(&key, "needs an intent and at least one slot"));
        }
        for s in &f.slots {
            if !matches!(s.kind.as_str(), "text" | "digits") {
                return Err(invalid(
                    &format!("{key}.slots.{}", s.name),
                    "kind must be \"text\" or \"digits\"",
                ));
            }
        }
    }
    Ok(())
}
