//! The bot's side of one call, as a sans-IO state machine: each caller turn (its transcript,
//! what the NLU made of it, the knowledge-base candidates) goes in with the time, and a
//! `Reply` comes out: an answer, a clarifying question, a step of a configured flow, or an
//! escalation with its handoff summary. Keypad presses and the passing of time go in the
//! same way. Nothing here touches a socket, a clock or the database, so whole conversations
//! run in tests in microseconds (`brain` does the I/O around it).

mod answer;
pub mod flow;
mod slots;
pub mod smalltalk;
pub mod summary;
mod trigger;

use crate::config::{DialogConfig, NluConfig};
use crate::nlu::rules::{is_conversational, RuleHit};
use crate::nlu::{Understanding, UNKNOWN};
use flow::{FlowConfig, FlowState, FlowStep};
pub use slots::fill_slots;
use std::sync::Arc;
use std::time::Duration;
use summary::Handoff;
pub use trigger::Trigger;

/// A knowledge-base entry that may answer the turn.
#[derive(Debug, Clone, PartialEq)]
pub struct KbCandidate {
    pub key: String,
    pub intent: Option<String>,
    /// Fused score, 0..1.
    pub score: f32,
    /// The answer in the call's language.
    pub answer: String,
    pub needs_person: bool,
    /// A question that names the entry ("How do I turn on roaming?"), for clarifying.
    pub topic: String,
}

/// Everything known about one caller turn.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub understanding: Understanding,
    pub hits: Vec<KbCandidate>,
    /// Candidates for the turn read together with the previous topic (follow-ups such as
    /// "and how much does that cost?").
    pub followup_hits: Vec<KbCandidate>,
    /// An answer generated from the closest entries when none of them answers (`[llm]`).
    pub generated: Option<String>,
    /// How sure speech-to-text was of the words (mean token probability), for a spoken turn.
    pub heard_confidence: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub trigger: Trigger,
    pub handoff: Handoff,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TicketRequest {
    /// The number read to the caller.
    pub reference: String,
    pub kind: String,
    pub intent: Option<String>,
    pub subject: String,
    pub details: serde_json::Value,
}

/// Stands in for what a caller said for a sensitive slot, wherever it would be kept.
pub const SENSITIVE: &str = "[sensitive]";

/// What to do after a turn (or a key, or a tick).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// Spoken to the caller (empty: say nothing).
    pub text: String,
    /// Hang up once the reply has been spoken.
    pub hang_up: bool,
    /// Label for logs and the store: "kb:<key>", "clarify", "rephrase", "flow:<intent>",
    /// "escalate:<trigger>", "goodbye", "not-understood", ...
    pub kind: String,
    pub kb_key: Option<String>,
    pub escalation: Option<Escalation>,
    pub ticket: Option<TicketRequest>,
}

/// Settings a dialog runs with (shared by all calls).
#[derive(Debug, Clone)]
pub struct DialogSettings {
    pub dialog: DialogConfig,
    pub anger_threshold: f32,
    pub flows: Vec<FlowConfig>,
    pub not_understood_en: String,
    pub goodbye_en: String,
    pub not_understood_zh: String,
    pub goodbye_zh: String,
}

impl DialogSettings {
    pub fn new(d: &DialogConfig, n: &NluConfig, prompts: &crate::config::PromptsConfig) -> Self {
        DialogSettings {
            flows: if d.flows.is_empty() {
                flow::default_flows()
            } else {
                d.flows.clone()
            },
            dialog: d.clone(),
            anger_threshold: n.anger_threshold,
            not_understood_en: prompts.not_understood.clone(),
            goodbye_en: prompts.goodbye.clone(),
            not_understood_zh: prompts.not_understood_zh.clone(),
            goodbye_zh: prompts.goodbye_zh.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct TurnLog {
    caller: String,
    bot: String,
    emotion: String,
    anger: f32,
    embedding: Vec<f32>,
    answered: bool,
}

pub struct Dialog {
    s: Arc<DialogSettings>,
    caller: String,
    language: String,
    turns: Vec<TurnLog>,
    not_understood: u32,
    /// Last entry answered (for follow-ups) and its topic question.
    last_topic: Option<(String, String)>,
    clarifying: Option<(KbCandidate, KbCandidate)>,
    flow: Option<FlowState>,
    escalated: bool,
    ended: bool,
    /// The kind of the bot's last line ("kb:<key>", "rephrase", ...).
    last_kind: String,
    /// Base for ticket numbers read to the caller.
    ticket_base: u32,
    tickets: u32,
    /// Hour of day the call started (0..24), for {time_of_day}.
    hour: u32,
    /// A question the caller asked is still open (for the end-of-call ticket).
    open_question: Option<String>,
    last_intent: String,
}

impl Dialog {
    /// A new conversation with `caller` in `language` ("en", "zh"), started at `hour` of the
    /// day. `ticket_base` seeds the ticket numbers (random in the server, fixed in tests).
    pub fn new(
        s: Arc<DialogSettings>,
        caller: &str,
        language: &str,
        hour: u32,
        ticket_base: u32,
    ) -> Dialog {
        Dialog {
            hour,
            s,
            caller: caller.to_string(),
            language: language.to_string(),
            turns: Vec::new(),
            not_understood: 0,
            last_topic: None,
            clarifying: None,
            flow: None,
            escalated: false,
            ended: false,
            last_kind: String::new(),
            ticket_base,
            tickets: 0,
            open_question: None,
            last_intent: UNKNOWN.into(),
        }
    }

    pub fn set_language(&mut self, lang: &str) {
        self.language = lang.to_string();
    }

    pub fn escalated(&self) -> bool {
        self.escalated
    }

    /// The previous topic's question, for reading a follow-up in context.
    pub fn followup_context(&self) -> Option<&str> {
        self.last_topic.as_ref().map(|(_, q)| q.as_str())
    }

    fn zh(&self) -> bool {
        self.language == "zh"
    }

    fn text<'a>(&self, en: &'a str, zh: &'a str) -> &'a str {
        if self.zh() && !zh.is_empty() {
            zh
        } else {
            en
        }
    }

    fn handoff(&self, trigger: Trigger, at: Duration) -> Handoff {
        Handoff {
            caller: self.caller.clone(),
            language: self.language.clone(),
            trigger: trigger.as_str().into(),
            reason: trigger.describe().into(),
            intent: self.last_intent.clone(),
            // Redacted here, once: the summary goes into the database, the SIP headers of
            // the agent's INVITE and the spoken whisper.
            asked: self
                .turns
                .iter()
                .map(|t| crate::privacy::redact(&t.caller).into_owned())
                .collect(),
            answered: self
                .turns
                .iter()
                .map(|t| crate::privacy::redact(&t.bot).into_owned())
                .collect(),
            emotions: self.turns.iter().map(|t| t.emotion.clone()).collect(),
            anger: self.turns.iter().map(|t| t.anger).collect(),
            after_secs: at.as_secs(),
        }
    }

    fn escalate(&mut self, trigger: Trigger, at: Duration, prefix: &str) -> Reply {
        self.escalated = true;
        self.flow = None;
        let d = &self.s.dialog;
        let line = self
            .text(&d.transfer_en, &d.transfer_zh)
            .replace("{reason}", trigger.reason(&self.language));
        let text = if prefix.is_empty() {
            line
        } else {
            format!("{prefix} {line}")
        };
        let mut reply = Reply {
            text,
            kind: format!("escalate:{}", trigger.as_str()),
            ..Default::default()
        };
        self.log_bot(&reply.text);
        reply.escalation = Some(Escalation {
            trigger,
            handoff: self.handoff(trigger, at),
        });
        reply
    }

    fn log_bot(&mut self, text: &str) {
        if let Some(t) = self.turns.last_mut() {
            if t.bot.is_empty() {
                t.bot = text.to_string();
            }
        }
    }

    fn ticket(
        &mut self,
        kind: &str,
        intent: Option<String>,
        subject: String,
        details: serde_json::Value,
    ) -> TicketRequest {
        self.tickets += 1;
        TicketRequest {
            reference: format!(
                "{:07}",
                (self.ticket_base as u64 + self.tickets as u64) % 10_000_000
            ),
            kind: kind.into(),
            intent,
            subject,
            details,
        }
    }

    /// Did the bot's last line end with "is there anything else?" (an answer, thanks, a
    /// finished flow, a generated answer)?
    fn asked_anything_else(&self) -> bool {
        let k = self.last_kind.as_str();
        k.starts_with("kb:")
            || k.starts_with("flow:")
            || k == "smalltalk:thanks"
            || k == "generated"
    }

    fn say(&mut self, text: String, kind: &str) -> Reply {
        self.log_bot(&text);
        self.last_kind = kind.to_string();
        Reply {
            text,
            kind: kind.into(),
            ..Default::default()
        }
    }

    /// A caller turn.
    pub fn on_turn(&mut self, a: &Analysis, at: Duration) -> Reply {
        let u = &a.understanding;
        let text = u.text.trim();
        if self.ended {
            return Reply::default();
        }
        // What is said for a sensitive slot (a card number, a PIN) is not kept.
        let kept = if self.collecting_sensitive() {
            SENSITIVE.to_string()
        } else {
            text.to_string()
        };
        self.turns.push(TurnLog {
            caller: kept,
            bot: String::new(),
            emotion: u.emotion.clone(),
            anger: u.anger,
            embedding: u.embedding.clone(),
            answered: false,
        });
        if self.escalated {
            return self.while_queued(a, at);
        }
        if text.is_empty() {
            let t = self
                .text(&self.s.not_understood_en, &self.s.not_understood_zh)
                .to_string();
            return self.say(t, "not-understood");
        }
        // The topic of the call, not "yes", "thanks" or "a person please".
        if u.intent != UNKNOWN && !is_conversational(&u.intent) {
            self.last_intent = u.intent.clone();
        }
        // A goodbye in so many words ends the call politely however it sounded ("Bye!" is
        // short and loud), and small talk is answered in kind: neither is anger or a topic.
        if u.rule == Some(RuleHit::Goodbye) {
            return self.goodbye();
        }
        if let Some(hit) = u.rule.filter(|r| r.is_small_talk()) {
            let last = self
                .turns
                .iter()
                .rev()
                .skip(1)
                .map(|t| t.bot.as_str())
                .find(|b| !b.is_empty())
                .map(str::to_string);
            let (line, kind) = smalltalk::reply(hit, self.zh(), last.as_deref());
            return self.say(line, kind);
        }
        if let Some(t) = self.triggers(a, at) {
            return self.escalate(t, at, "");
        }
        if u.intent == "goodbye" {
            return self.goodbye();
        }
        if let Some(mut f) = self.flow.take() {
            let step = f.on_text(text, u);
            return self.flow_step(f, step, at);
        }
        if let Some(r) = self.clarified(a, text, at) {
            return r;
        }
        if let Some(f) = self.s.flows.iter().find(|f| f.intent == u.intent).cloned() {
            let (state, step) = FlowState::start(f, &self.language);
            return self.flow_step(state, step, at);
        }
        match u.intent.as_str() {
            "thanks" | "affirm"
                if a.hits.first().map(|h| h.score).unwrap_or(0.0) < self.s.dialog.kb_threshold =>
            {
                let (line, kind) = smalltalk::reply(RuleHit::Thanks, self.zh(), None);
                self.open_question = None;
                return self.say(line, kind);
            }
            // "No" after an answer ("is there anything else?") ends the call; after "could
            // you say that another way?" or a greeting, "no" / "never mind" drops the
            // question, not the call.
            "deny" if self.asked_anything_else() => return self.goodbye(),
            "deny" => {
                let (line, kind) = smalltalk::never_mind(self.zh());
                self.open_question = None;
                return self.say(line, kind);
            }
            _ => {}
        }
        self.answer_turn(a, text, at)
    }

    fn goodbye(&mut self) -> Reply {
        self.ended = true;
        let t = self
            .text(&self.s.goodbye_en, &self.s.goodbye_zh)
            .to_string();
        let mut r = self.say(t, "goodbye");
        r.hang_up = true;
        r
    }

    fn flow_step(&mut self, mut f: FlowState, step: FlowStep, at: Duration) -> Reply {
        let kind = format!("flow:{}", f.cfg.intent);
        match step {
            FlowStep::Say(t) => {
                self.flow = Some(f);
                self.say(t, &kind)
            }
            FlowStep::Done { text, values } => {
                let details = serde_json::Value::Object(
                    values
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect(),
                );
                let subject = format!(
                    "{} from {}",
                    f.cfg.intent.replace('_', " "),
                    if self.caller.is_empty() {
                        "unknown caller"
                    } else {
                        &self.caller
                    }
                );
                let ticket = self.ticket(
                    &f.cfg.ticket_kind,
                    Some(f.cfg.intent.clone()),
                    subject,
                    details,
                );
                let spoken: String = ticket.reference.chars().map(|c| format!("{c} ")).collect();
                let text = f.fill(&text).replace("{ticket}", spoken.trim_end());
                self.open_question = None;
                self.not_understood = 0;
                let mut r = self.say(text, &kind);
                r.ticket = Some(ticket);
                f.cfg.slots.clear();
                r
            }
            FlowStep::Cancelled(t) => self.say(t, &kind),
            FlowStep::Failed => self.escalate(Trigger::FlowFailed, at, ""),
        }
    }

    /// Whether what the caller says or keys now is for a sensitive flow slot.
    pub fn collecting_sensitive(&self) -> bool {
        self.flow.as_ref().is_some_and(|f| f.collecting_sensitive())
    }

    /// A keypad press. None: nothing to say.
    pub fn on_dtmf(&mut self, digit: char, at: Duration) -> Option<Reply> {
        if self.escalated || self.ended {
            return None;
        }
        if let Some(mut f) = self.flow.take() {
            if let Some(step) = f.on_dtmf(digit) {
                return Some(self.flow_step(f, step, at));
            }
            self.flow = Some(f);
            return None;
        }
        if self.s.dialog.agent_digit.starts_with(digit) {
            return Some(self.escalate(Trigger::Keypad, at, ""));
        }
        None
    }

    /// The call was handed over but no person can take it: book a callback (a ticket with
    /// the handoff summary), say so, and end the call.
    pub fn on_no_agent(&mut self, at: Duration) -> Reply {
        self.ended = true;
        self.open_question = None;
        let h = self.handoff(Trigger::NotUnderstood, at);
        let intent = (self.last_intent != UNKNOWN).then(|| self.last_intent.clone());
        let subject = format!("callback: {}", h.line());
        let t = self.ticket(
            "callback",
            intent,
            subject,
            serde_json::to_value(&h).unwrap_or_default(),
        );
        let spoken: String = t.reference.chars().map(|c| format!("{c} ")).collect();
        let d = &self.s.dialog;
        let text = fill_slots(
            self.text(&d.no_agent_en, &d.no_agent_zh),
            &self.caller,
            self.hour,
        )
        .replace("{ticket}", spoken.trim_end());
        Reply {
            text,
            hang_up: true,
            kind: "callback".into(),
            ticket: Some(t),
            ..Default::default()
        }
    }

    /// Time passes (call it when the bot is idle): a long call goes to a person.
    pub fn on_tick(&mut self, at: Duration) -> Option<Reply> {
        let max = self.s.dialog.max_call_secs;
        if self.escalated || self.ended || max == 0 || at.as_secs() < max {
            return None;
        }
        Some(self.escalate(Trigger::LongCall, at, ""))
    }

    /// The call ended. A caller who left with a question not answered (nor handed to a
    /// person) gets a ticket, classified by the last intent, with the summary.
    pub fn on_call_end(&mut self, at: Duration) -> Option<TicketRequest> {
        self.ended = true;
        let q = self.open_question.take()?;
        if self.escalated {
            return None;
        }
        let h = self.handoff(Trigger::NotUnderstood, at);
        let intent = (self.last_intent != UNKNOWN).then(|| self.last_intent.clone());
        let subject = format!("unresolved call: {q}");
        let details = serde_json::to_value(&h).unwrap_or_default();
        Some(self.ticket("unresolved", intent, subject, details))
    }
}

#[cfg(test)]
mod tests;
