//! The handoff summary: what a person taking over the call needs to know without asking
//! the caller to repeat themselves. Stored with the escalation; one line of it goes into the
//! agent's SIP headers, a spoken version is whispered to the agent before bridging.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Handoff {
    /// Caller number (or SIP user) as presented.
    pub caller: String,
    pub language: String,
    /// Why the bot handed over (trigger name) and the words for it.
    pub trigger: String,
    pub reason: String,
    /// The last intent the bot was confident about ("unknown" when none).
    pub intent: String,
    /// What the caller said, turn by turn.
    pub asked: Vec<String>,
    /// What the bot answered, turn by turn.
    pub answered: Vec<String>,
    /// Emotion per caller turn, and the anger score (0..1) per caller turn.
    pub emotions: Vec<String>,
    pub anger: Vec<f32>,
    /// Seconds since the call was answered.
    pub after_secs: u64,
}

impl Handoff {
    /// One line for `Subject:` and logs.
    pub fn line(&self) -> String {
        let mood = self
            .emotions
            .last()
            .map(String::as_str)
            .unwrap_or("neutral");
        let topic = if self.intent == crate::nlu::UNKNOWN || self.intent.is_empty() {
            "topic unclear".to_string()
        } else {
            self.intent.replace('_', " ")
        };
        format!(
            "{topic}; caller {mood}; {} after {} turn(s), {} s",
            self.reason,
            self.asked.len(),
            self.after_secs
        )
    }

    /// A few short sentences for the agent's ear before the caller is connected.
    pub fn spoken(&self) -> String {
        let mut s = String::new();
        if self.intent != crate::nlu::UNKNOWN && !self.intent.is_empty() {
            s.push_str(&format!("{}. ", self.intent.replace('_', " ")));
        }
        let mood = self
            .emotions
            .last()
            .map(String::as_str)
            .unwrap_or("neutral");
        s.push_str(&format!("Caller sounds {mood}; {}. ", self.reason));
        if let Some(q) = self.asked.iter().rev().find(|q| !q.is_empty()) {
            let q: String = q.split_whitespace().take(20).collect::<Vec<_>>().join(" ");
            s.push_str(&format!("They said: {q}"));
        }
        s.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_spoken() {
        let h = Handoff {
            caller: "1001".into(),
            language: "en".into(),
            trigger: "requested".into(),
            reason: "the caller asked for a person".into(),
            intent: "billing_high_bill".into(),
            asked: vec!["Why is my bill so high?".into(), "Get me a person.".into()],
            answered: vec![
                "A higher bill usually comes from data.".into(),
                "I'll connect you.".into(),
            ],
            emotions: vec!["frustrated".into(), "angry".into()],
            anger: vec![0.6, 0.9],
            after_secs: 42,
        };
        assert_eq!(
            h.line(),
            "billing high bill; caller angry; the caller asked for a person after 2 turn(s), 42 s"
        );
        assert_eq!(
            h.spoken(),
            "billing high bill. Caller sounds angry; the caller asked for a person. They said: Get me a person."
        );
    }
}
