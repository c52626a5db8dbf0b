//! The conversation of a call as both of its drivers see it, the server's `Talk` (a SIP
//! call, the inference pool, the media session) and `voxdesk talk` (`local_line`, one frame
//! at a time on virtual time): the dialog, the language the call settled on, how the caller
//! sounded on their first real turn (the prosody baseline) and whether this turn began by
//! talking over the bot. Sans-IO: no clock, socket, model or database, so the two drivers
//! cannot drift apart on what a turn means (they had: the local line never counted an
//! interruption and never switched the dialog to a detected language).

use crate::brain::CallContext;
use crate::dialog::{Analysis, Dialog, Reply};
use crate::nlu::prosody::{self, Prosody};
use std::time::Duration;

pub struct Conversation {
    pub dialog: Dialog,
    /// "en", "zh", or "auto" until the first turn tells.
    language: String,
    /// The prosody of the caller's first real turn: how they sound when calm(er).
    baseline: Option<Prosody>,
    /// The caller's current turn began by talking over the bot's reply.
    interrupted: bool,
}

impl Conversation {
    /// `language` is the deployment's `speech.language` ("en", "zh" or "auto").
    pub fn new(dialog: Dialog, language: &str) -> Conversation {
        Conversation {
            dialog,
            language: language.to_string(),
            baseline: None,
            interrupted: false,
        }
    }

    /// The language to transcribe in: "en", "zh", or "auto" until the first turn.
    pub fn stt_language(&self) -> &str {
        &self.language
    }

    /// The language the bot speaks: "zh", or "en" (also while still "auto").
    pub fn language(&self) -> &str {
        if self.language == "zh" {
            "zh"
        } else {
            "en"
        }
    }

    /// What the analysis of the next turn needs to know about the call so far.
    pub fn context(&self) -> CallContext {
        CallContext {
            previous_topic: self.dialog.followup_context().map(String::from),
            baseline: self.baseline,
            interrupted: self.interrupted,
        }
    }

    pub fn baseline(&self) -> Option<&Prosody> {
        self.baseline.as_ref()
    }

    /// The caller started speaking while a reply was pending: `audible` when it had begun
    /// playing (the caller talked over the bot: an interruption, which counts for their
    /// turn); a reply not yet heard is just dropped.
    pub fn on_speech_started(&mut self, audible: bool) {
        if audible {
            self.interrupted = true;
        }
    }

    /// A caller turn, heard and analysed, that ended at `end` (call time). `detected` is the
    /// language the recogniser heard ("" if it did not say): a call in "auto" keeps the
    /// first one for good. Returns the dialog's reply.
    pub fn on_heard(&mut self, detected: &str, analysis: &Analysis, end: Duration) -> Reply {
        if self.language == "auto" && !detected.is_empty() {
            self.language = if detected == "zh" { "zh" } else { "en" }.into();
            tracing::info!(language = %self.language, "caller language detected; kept for the call");
            self.dialog.set_language(&self.language);
        }
        // The interruption counted for this turn; the next one starts afresh.
        self.interrupted = false;
        let u = &analysis.understanding;
        if self.baseline.is_none() {
            self.baseline = u.prosody.filter(|p| prosody::is_baseline(p, &u.text));
        }
        self.dialog.on_turn(analysis, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DialogConfig, NluConfig, PromptsConfig};
    use crate::dialog::DialogSettings;
    use std::sync::Arc;

    fn conversation(language: &str) -> Conversation {
        let s = Arc::new(DialogSettings::new(
            &DialogConfig::default(),
            &NluConfig::default(),
            &PromptsConfig::default(),
        ));
        Conversation::new(Dialog::new(s, "5551234", "en", 10, 1_000_000), language)
    }

    fn heard(text: &str) -> Analysis {
        let mut a = Analysis::default();
        a.understanding.text = text.into();
        a.understanding.intent = crate::nlu::UNKNOWN.into();
        a.understanding.rule = crate::nlu::rules::match_rules(text, &[]);
        a
    }

    #[test]
    fn an_interruption_counts_for_the_next_turn_only() {
        let mut c = conversation("en");
        c.on_speech_started(false);
        assert!(!c.context().interrupted, "a reply nobody heard yet");
        c.on_speech_started(true);
        assert!(c.context().interrupted);
        c.on_heard("en", &heard("Hello?"), Duration::from_secs(3));
        assert!(!c.context().interrupted);
    }

    #[test]
    fn auto_keeps_the_first_detected_language_and_answers_in_it() {
        let mut c = conversation("auto");
        assert_eq!((c.stt_language(), c.language()), ("auto", "en"));
        let r = c.on_heard("zh", &heard("你好"), Duration::from_secs(3));
        assert_eq!((c.stt_language(), c.language()), ("zh", "zh"));
        assert!(r.text.chars().any(|ch| ch > '\u{2e80}'), "{}", r.text);
        c.on_heard("en", &heard("Hello"), Duration::from_secs(9));
        assert_eq!(c.language(), "zh");
    }
}
