//! How a turn is answered: from the knowledge base (with a clarifying question between two
//! close entries, a follow-up on the last topic, a generated answer), or "could you say that
//! another way?"; and what a caller who waits for a person hears.

use super::slots::{fill_slots, topic_phrase};
use super::{Analysis, Dialog, KbCandidate, Reply, Trigger};
use crate::nlu::rules::is_conversational;
use crate::nlu::UNKNOWN;
use std::time::Duration;

/// How much lower a knowledge-base score may be when the intent model names the entry's intent.
const INTENT_AGREES: f32 = 0.15;

/// How far over `kb_threshold` an entry that needs a person must score to hand the call
/// over when the intent model does not name its intent.
const CLEAR_MATCH: f32 = 0.2;

impl Dialog {
    /// A turn while the caller waits for a person.
    pub(super) fn while_queued(&mut self, a: &Analysis, at: Duration) -> Reply {
        let u = &a.understanding;
        // Waiting for a person: a question the knowledge base answers clearly is
        // answered (the caller keeps their place in line); anything else waits for the
        // person, and the queue (routing) decides what the caller hears.
        let th = self.s.dialog.kb_threshold;
        let clear = a.hits.first().filter(|h| {
            !h.needs_person
                && !is_conversational(&u.intent)
                && u.rule.is_none()
                && (h.score >= th + 0.1
                    || h.score >= th && h.intent.as_deref() == Some(u.intent.as_str()))
        });
        if let Some(best) = clear.cloned() {
            // The call's topic stays what it was escalated about (queue, ticket).
            let topic = self.last_intent.clone();
            let mut r = self.answer(&best, at, &format!("queued-kb:{}", best.key));
            self.last_intent = topic;
            let still = self.text(
                "You are still in line for a colleague.",
                "您仍在排队等候人工客服。",
            );
            // Not "is there anything else?": the person is coming.
            let body = r
                .text
                .trim_end()
                .trim_end_matches("Is there anything else?")
                .trim_end_matches("还有什么可以帮您？")
                .trim_end()
                .to_string();
            r.text = format!("{body} {still}");
            return r;
        }
        Reply {
            kind: "waiting".into(),
            ..Default::default()
        }
    }

    /// After "Do you mean A, or B?": the entry the caller picked ("the first one", or the
    /// one the new words fit better), answered; None if the words fit neither.
    pub(super) fn clarified(&mut self, a: &Analysis, text: &str, at: Duration) -> Option<Reply> {
        let (x, y) = self.clarifying.take()?;
        // "The first one" / "roaming": take the one the new words fit better.
        let score = |c: &KbCandidate| {
            a.hits
                .iter()
                .find(|h| h.key == c.key)
                .map(|h| h.score)
                .unwrap_or(0.0)
        };
        let first = ["first", "former", "第一", "前"]
            .iter()
            .any(|w| text.to_lowercase().contains(w));
        let second = ["second", "latter", "第二", "后"]
            .iter()
            .any(|w| text.to_lowercase().contains(w));
        let pick = match (first, second) {
            (true, false) => Some(x.clone()),
            (false, true) => Some(y.clone()),
            _ if score(&x).max(score(&y)) > 0.0 => Some(if score(&x) >= score(&y) {
                x.clone()
            } else {
                y.clone()
            }),
            _ => None,
        };
        let c = pick?;
        Some(self.answer(&c, at, &format!("kb:{}", c.key)))
    }

    /// The knowledge base's answer to the turn (or a clarifying question between two
    /// close entries, a follow-up on the last topic, a generated answer), else "could you
    /// say that another way?".
    pub(super) fn answer_turn(&mut self, a: &Analysis, text: &str, at: Duration) -> Reply {
        let u = &a.understanding;
        let th = self.s.dialog.kb_threshold;
        // An entry the intent head agrees with counts with a lower score, and comes first.
        let agrees_with =
            |h: &KbCandidate| u.intent != UNKNOWN && h.intent.as_deref() == Some(u.intent.as_str());
        // An entry that hands the call over needs the intent model's word as sure as a
        // model-only handover, or a clear match: a close-enough match is often a calm
        // opener near it ("I'm calling about my account" scores 0.65 against "I think
        // someone is using my account"), and asking again costs less than a person's time.
        let d = &self.s.dialog;
        let sure_enough = |h: &KbCandidate| {
            !h.needs_person
                || h.score >= th + CLEAR_MATCH
                || agrees_with(h) && u.intent_confidence >= d.handover_confidence
        };
        let mut hits: Vec<KbCandidate> = a
            .hits
            .iter()
            .filter(|h| h.score >= th || agrees_with(h) && h.score >= th - INTENT_AGREES)
            .filter(|h| sure_enough(h))
            .cloned()
            .collect();
        if let Some(pos) = hits
            .iter()
            .position(|h| h.intent.as_deref() == Some(u.intent.as_str()))
        {
            let h = hits.remove(pos);
            hits.insert(0, h);
        }
        if let Some(best) = hits.first().cloned() {
            let agrees = best.intent.as_deref() == Some(u.intent.as_str());
            if let Some(second) = hits.get(1) {
                if !agrees && best.score - second.score < self.s.dialog.clarify_margin {
                    let d = &self.s.dialog;
                    let q = self
                        .text(&d.clarify_en, &d.clarify_zh)
                        .replace("{a}", &topic_phrase(&best.topic))
                        .replace("{b}", &topic_phrase(&second.topic));
                    self.clarifying = Some((best.clone(), second.clone()));
                    return self.say(q, "clarify");
                }
            }
            return self.answer(&best, at, &format!("kb:{}", best.key));
        }
        // A follow-up asks something new about the last topic: not the same answer again.
        let last = self.last_topic.as_ref().map(|(k, _)| k.clone());
        if let Some(f) = a
            .followup_hits
            .iter()
            .find(|h| h.score >= th && Some(&h.key) != last.as_ref() && sure_enough(h))
            .cloned()
        {
            return self.answer(&f, at, &format!("kb-followup:{}", f.key));
        }
        if let Some(g) = a.generated.as_ref().filter(|g| !g.trim().is_empty()) {
            self.not_understood = 0;
            self.open_question = None;
            if let Some(t) = self.turns.last_mut() {
                t.answered = true;
            }
            return self.say(g.clone(), "generated");
        }
        self.not_understood(at, text)
    }

    pub(super) fn answer(&mut self, c: &KbCandidate, at: Duration, kind: &str) -> Reply {
        self.not_understood = 0;
        self.clarifying = None;
        self.open_question = None;
        if let Some(t) = self.turns.last_mut() {
            t.answered = true;
        }
        if let Some(i) = &c.intent {
            self.last_intent = i.clone();
        }
        self.last_topic = Some((c.key.clone(), c.topic.clone()));
        let text = fill_slots(&c.answer, &self.caller, self.hour);
        if c.needs_person {
            let mut r = self.escalate(Trigger::NeedsPerson, at, &text);
            r.kb_key = Some(c.key.clone());
            return r;
        }
        let mut r = self.say(text, kind);
        r.kb_key = Some(c.key.clone());
        r
    }

    pub(super) fn not_understood(&mut self, at: Duration, question: &str) -> Reply {
        self.not_understood += 1;
        if !question.is_empty() {
            self.open_question = Some(question.to_string());
        }
        if self.not_understood >= self.s.dialog.max_not_understood {
            return self.escalate(Trigger::NotUnderstood, at, "");
        }
        let d = &self.s.dialog;
        let t = self.text(&d.rephrase_en, &d.rephrase_zh).to_string();
        self.say(t, "rephrase")
    }
}
