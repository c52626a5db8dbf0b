//! `[routing]`: queues for escalated calls and how agents are rung.

use super::{invalid, ConfigError};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueDef {
    pub name: String,
    /// Skills an agent needs for this queue (all of them).
    #[serde(default)]
    pub skills: Vec<String>,
    /// Intents whose escalations go here (the first queue that lists the intent wins; a
    /// call whose intent no queue lists goes to the first queue).
    #[serde(default)]
    pub intents: Vec<String>,
    /// Higher is served first (a call returned after a failed transfer gets +10).
    #[serde(default)]
    pub priority: i32,
    /// Seconds a caller waits for a person before the call overflows (or, without an
    /// overflow queue, a callback is booked instead).
    #[serde(default = "default_max_wait")]
    pub max_wait_secs: u64,
    /// Another queue that takes the call after `max_wait_secs` here (it waits there for
    /// that queue's `max_wait_secs`, at the head of its priority). Empty: book a callback.
    #[serde(default)]
    pub overflow: String,
}

fn default_max_wait() -> u64 {
    120
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Route escalated calls to agents. Off: every escalation ends with a callback ticket.
    pub enabled: bool,
    /// Seconds an agent's phone rings before the next agent is tried.
    pub ring_timeout_secs: u64,
    /// Seconds after a call before the agent gets the next one.
    pub wrap_up_secs: u64,
    /// Say the handoff summary to the agent before connecting the caller.
    pub whisper: bool,
    /// Keep transcribing a bridged call, both sides, speaker-labelled in `turns` (agent
    /// assist and QA; costs recogniser time on the inference pool).
    pub transcribe_bridged: bool,
    /// Console URL put in Call-Info (the call id is appended); empty: the API's own URL.
    pub console_url: String,
    pub queues: Vec<QueueDef>,
    /// Numbers an agent dials from their softphone to change state (digest-authenticated
    /// with the agent's SIP account; a short confirmation is played, then the call ends).
    pub feature_codes: FeatureCodes,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureCodes {
    /// Ready for calls.
    pub available: String,
    /// Paused (no calls offered) until the agent dials `available` again.
    pub pause: String,
}

impl Default for FeatureCodes {
    fn default() -> Self {
        FeatureCodes {
            available: "*21".into(),
            pause: "*22".into(),
        }
    }
}

/// What an agent's feature code asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureCode {
    Available,
    Pause,
}

impl FeatureCodes {
    /// The feature a dialled number (the request-URI user) stands for.
    pub fn lookup(&self, dialled: &str) -> Option<FeatureCode> {
        if dialled.is_empty() {
            None
        } else if dialled == self.available {
            Some(FeatureCode::Available)
        } else if dialled == self.pause {
            Some(FeatureCode::Pause)
        } else {
            None
        }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        let q = |name: &str, skills: &[&str], intents: &[&str], priority: i32| QueueDef {
            name: name.into(),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            intents: intents.iter().map(|s| s.to_string()).collect(),
            priority,
            max_wait_secs: default_max_wait(),
            overflow: String::new(),
        };
        RoutingConfig {
            enabled: true,
            ring_timeout_secs: 15,
            wrap_up_secs: 10,
            whisper: true,
            transcribe_bridged: true,
            console_url: String::new(),
            queues: vec![
                q("general", &["general"], &[], 0),
                q(
                    "billing",
                    &["billing"],
                    &[
                        "billing_balance",
                        "billing_high_bill",
                        "payment_methods",
                        "payment_due_date",
                    ],
                    0,
                ),
                q(
                    "technical",
                    &["technical"],
                    &[
                        "outage_status",
                        "report_outage",
                        "sim_replace",
                        "puk_code",
                        "esim",
                        "data_usage",
                        "data_addon",
                        "roaming_activate",
                        "roaming_rates",
                    ],
                    0,
                ),
                q(
                    "retention",
                    &["retention"],
                    &["cancel_service", "complaint", "plan_change", "port_in"],
                    5,
                ),
                q("security", &["general"], &["fraud"], 10),
            ],
            feature_codes: FeatureCodes::default(),
        }
    }
}

impl RoutingConfig {
    /// The queue for an escalation about `intent`.
    pub fn queue_for(&self, intent: &str) -> Option<&QueueDef> {
        self.queues
            .iter()
            .find(|q| q.intents.iter().any(|i| i == intent))
            .or(self.queues.first())
    }
}

pub(super) fn validate(r: &RoutingConfig) -> Result<(), ConfigError> {
    if r.enabled && r.queues.is_empty() {
        return Err(invalid(
            "routing.queues",
            "at least one queue (or routing.enabled = false)",
        ));
    }
    if !(3..=120).contains(&r.ring_timeout_secs) {
        return Err(invalid("routing.ring_timeout_secs", "between 3 and 120"));
    }
    if r.wrap_up_secs > 3600 {
        return Err(invalid("routing.wrap_up_secs", "at most 3600"));
    }
    let fc = &r.feature_codes;
    for (key, code) in [("available", &fc.available), ("pause", &fc.pause)] {
        if !code.is_empty()
            && (code.len() > 16
                || !code
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#'))
        {
            return Err(invalid(
                &format!("routing.feature_codes.{key}"),
                "digits, * and # only (at most 16), or empty to turn it off",
            ));
        }
    }
    if !fc.available.is_empty() && fc.available == fc.pause {
        return Err(invalid(
            "routing.feature_codes.pause",
            "must differ from routing.feature_codes.available",
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, q) in r.queues.iter().enumerate() {
        if q.name.is_empty() || !names.insert(q.name.as_str()) {
            return Err(invalid(
                &format!("routing.queues[{i}].name"),
                "missing or used twice",
            ));
        }
        if !(5..=3600).contains(&q.max_wait_secs) {
            return Err(invalid(
                &format!("routing.queues[{i}].max_wait_secs"),
                "between 5 and 3600",
            ));
        }
    }
    for (i, q) in r.queues.iter().enumerate() {
        if q.overflow.is_empty() {
            continue;
        }
        if q.overflow == q.name || !names.contains(q.overflow.as_str()) {
            return Err(invalid(
                &format!("routing.queues[{i}].overflow"),
                "the name of another queue (or empty: book a callback)",
            ));
        }
    }
    Ok(())
}
